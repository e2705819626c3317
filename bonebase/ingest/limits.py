"""What a submitted file may claim before it is refused unread (issue #15: hostile submissions).

The limits come from Settings (BONEBASE_MAX_FILE_MB, BONEBASE_MAX_ZIP_RATIO,
BONEBASE_MAX_ZIP_TOTAL_MB, BONEBASE_MAX_PIXELS). A refused file becomes one quarantine item whose
reason is one of the codes below; its bytes are neither read nor stored.
"""

from __future__ import annotations

from dataclasses import dataclass

SYMBOLIC_LINK = "symbolic_link"
FILE_TOO_LARGE = "file_too_large"
DECOMPRESSION_BOMB = "decompression_bomb"
TOO_MANY_PIXELS = "too_many_pixels"
TOO_DEEPLY_NESTED = "too_deeply_nested"
NOT_A_FILE = "non_dicom"  # a pipe, socket or device: nothing to read, and reading could block
MIB = 1 << 20


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int
    max_zip_ratio: float
    max_zip_total_bytes: int
    max_pixels: int

    @classmethod
    def from_settings(cls, settings) -> Limits:
        return cls(max_file_bytes=int(settings.max_file_mb * MIB),
                   max_zip_ratio=float(settings.max_zip_ratio),
                   max_zip_total_bytes=int(settings.max_zip_total_mb * MIB),
                   max_pixels=int(settings.max_pixels))


def current() -> Limits:
    """The limits of this process's settings (the environment's BONEBASE_MAX_*)."""
    from bonebase.config import get_settings

    return Limits.from_settings(get_settings())


def refusal_message(rel: str, reason: str, size: int) -> str:
    """One line for a file refused unread: what was found and what the site does."""
    if reason == SYMBOLIC_LINK:
        return (f"{rel}: a symbolic link; links are not followed (they can point outside the "
                "submission): put the file itself in the folder and resubmit")
    if reason == FILE_TOO_LARGE:
        return (f"{rel}: {size / MIB:.0f} MiB, over the per-file limit (BONEBASE_MAX_FILE_MB); "
                "the file was not read: export the image again or send it separately")
    if reason == DECOMPRESSION_BOMB:
        return (f"{rel}: the zip entry expands far beyond its compressed size or the zip's "
                "limits (BONEBASE_MAX_ZIP_RATIO, BONEBASE_MAX_ZIP_TOTAL_MB); it was not "
                "extracted: send the file unzipped or check where it came from")
    if reason == NOT_A_FILE:
        return (f"{rel}: not a plain file (a pipe, socket or device); it was not read: remove it "
                "from the submission folder")
    if reason == "corrupt_file":
        return (f"{rel}: the zip entry cannot be extracted (damaged data or a wrong checksum); "
                "zip the submission again and resubmit")
    return f"{rel}: refused unread ({reason}); check the file and resubmit"
