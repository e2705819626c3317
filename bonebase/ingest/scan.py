"""List a submission's files and fingerprint the submission.

Symbolic links are never followed (issue #15: a link to /etc/passwd or to the consortium key
would otherwise be read, copied into quarantine or echoed): a link becomes a file entry refused
unread, and a manifest that is a link refuses the submission. So do files over the size limit.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from bonebase.dicom.raster import RowValues
from bonebase.errors import InputError
from bonebase.ingest import limits as lim
from bonebase.ingest.source import refused_in

MANIFEST = "manifest.csv"
CHUNK = 1 << 20


@dataclass(frozen=True)
class FileEntry:
    rel: str  # path inside the submission, '/'-separated
    path: Path
    size: int
    sha256: str  # of the bytes as submitted (of the entry's identity when refused)
    # Quarantine reason of a file that must not be read or copied (a link, a refused zip
    # entry, a file over the size limit); None for an ordinary file.
    refused: str | None = None
    # The manifest row whose image_file column names the file (bonebase.ingest.named): what the
    # header of a JPEG or PNG is built from. None for a file no row names.
    named: RowValues | None = None
    # Whether the manifest names files (an image_file column): a JPEG or PNG it does not name is
    # then unlisted_image; in a DICOM-only submission it is non_dicom, as any other non-DICOM file.
    listing: bool = False


def find_manifest(root: Path, *, limits: lim.Limits | None = None) -> Path:
    """The shallowest manifest.csv under ``root``; a link or an oversized one is refused."""
    found = sorted(root.rglob(MANIFEST), key=lambda p: len(p.parts))
    # A zip's manifest entry that was refused (a link, a bomb) is not there to be found.
    refused = sorted((r for r in refused_in(root) if r.rel.rsplit("/", 1)[-1] == MANIFEST),
                     key=lambda r: r.rel.count("/"))
    if refused and (not found or refused[0].rel.count("/") < len(found[0].relative_to(root).parts)):
        raise InputError(
            f"{refused[0].rel}: the submission's manifest was refused ({refused[0].reason}); "
            "put manifest.csv itself, as a plain file, in the zip and resubmit")
    if not found:
        raise InputError(
            f"{root}: no {MANIFEST} in the submission; add the manifest (one row per case, see "
            "docs/manifest.md) and resubmit"
        )
    manifest = found[0]
    info = manifest.lstat()
    if stat.S_ISLNK(info.st_mode):
        raise InputError(
            f"{manifest.relative_to(root).as_posix()}: the manifest is a symbolic link; links are "
            "not followed: copy the manifest itself into the submission folder and resubmit")
    if not stat.S_ISREG(info.st_mode):
        raise InputError(f"{manifest.relative_to(root).as_posix()}: the manifest is not a plain "
                         "file; put manifest.csv itself in the submission folder and resubmit")
    limits = limits or lim.current()
    if info.st_size > limits.max_file_bytes:
        raise InputError(
            f"{manifest.relative_to(root).as_posix()}: {info.st_size / lim.MIB:.0f} MiB, over the "
            "per-file limit (BONEBASE_MAX_FILE_MB); send a manifest of one row per case")
    return manifest


def _walk(root: Path) -> list[tuple[Path, os.stat_result]]:
    """Every non-directory under ``root`` with its lstat; links to folders are not entered."""
    found = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        base = Path(folder)
        # os.walk lists a link to a folder among dirs without entering it: it is a link entry.
        for name in [*dirs, *files]:
            path = base / name
            try:
                info = path.lstat()
            except FileNotFoundError:
                continue  # vanished between listing and looking: never part of the submission
            if not stat.S_ISDIR(info.st_mode):
                found.append((path, info))
    return found


def _sha256_nofollow(path: Path) -> str:
    """SHA-256 of a file opened without following a link (a file swapped for a link after the
    listing is refused by the open, not read); streamed."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _identity(reason: str, rel: str, info: os.stat_result, extra: str = "") -> str:
    return hashlib.sha256(f"refused\0{reason}\0{rel}\0{info.st_size}\0{extra}".encode()).hexdigest()


def scan_files(root: Path, manifest: Path, *, limits: lim.Limits | None = None) -> list[FileEntry]:
    """Every file of the submission except the manifest, sorted by path, hashed (streamed).

    Links, special files and files over BONEBASE_MAX_FILE_MB are listed refused, unread; so are
    the zip entries refused at extraction (see :func:`bonebase.ingest.source.extract_zip`).
    """
    limits = limits or lim.current()
    entries = []
    for path, info in _walk(root):
        if path == manifest:
            continue
        rel = path.relative_to(root).as_posix()
        if stat.S_ISLNK(info.st_mode) or not stat.S_ISREG(info.st_mode):
            # A link's target names what it points at; hashing the name keeps it out of
            # the identity while two different links still differ.
            link = stat.S_ISLNK(info.st_mode)
            reason = lim.SYMBOLIC_LINK if link else lim.NOT_A_FILE
            target = os.readlink(path) if link else ""
            entries.append(FileEntry(rel, path, 0, _identity(reason, rel, info, target),
                                     refused=reason))
            continue
        if info.st_size > limits.max_file_bytes:
            entries.append(FileEntry(rel, path, info.st_size,
                                     _identity(lim.FILE_TOO_LARGE, rel, info, str(info.st_mtime_ns)),
                                     refused=lim.FILE_TOO_LARGE))
            continue
        try:
            entries.append(FileEntry(rel, path, info.st_size, _sha256_nofollow(path)))
        except FileNotFoundError:
            continue  # vanished between listing and hashing: it was never part of the submission
        except OSError:  # replaced by a link (ELOOP) after the listing: refused, not followed
            entries.append(FileEntry(rel, path, 0, _identity(lim.SYMBOLIC_LINK, rel, info),
                                     refused=lim.SYMBOLIC_LINK))
    for r in refused_in(root):
        entries.append(FileEntry(r.rel, root / r.rel, r.size, r.sha256, refused=r.reason))
    # By path components, as pathlib sorts paths: the order (and so the submission's hash) of
    # earlier versions ('a/b' before 'a-b/c', which a plain string sort reverses).
    return sorted(entries, key=lambda e: e.rel.split("/"))


def submission_hash(manifest: Path, entries: list[FileEntry]) -> str:
    """sha256 over the manifest and the (path, size, hash) list: the identity of a submission."""
    h = hashlib.sha256(manifest.read_bytes())
    for e in entries:
        h.update(f"\n{e.rel}\t{e.size}\t{e.sha256}".encode())
    return h.hexdigest()
