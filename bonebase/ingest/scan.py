"""List a submission's files and fingerprint the submission."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from bonebase.errors import InputError
from bonebase.storage import sha256_file

MANIFEST = "manifest.csv"


@dataclass(frozen=True)
class FileEntry:
    rel: str  # path inside the submission, '/'-separated
    path: Path
    size: int
    sha256: str  # of the bytes as submitted


def find_manifest(root: Path) -> Path:
    found = sorted(root.rglob(MANIFEST), key=lambda p: len(p.parts))
    if not found:
        raise InputError(
            f"{root}: no {MANIFEST} in the submission; add the manifest (one row per case, see "
            "docs/manifest.md) and resubmit"
        )
    return found[0]


def scan_files(root: Path, manifest: Path) -> list[FileEntry]:
    """Every file of the submission except the manifest, sorted by path, hashed (streamed)."""
    entries = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p != manifest):
        try:
            entries.append(FileEntry(path.relative_to(root).as_posix(), path, path.stat().st_size,
                                     sha256_file(path)))
        except FileNotFoundError:
            continue  # vanished between listing and hashing: it was never part of the submission
    return entries


def submission_hash(manifest: Path, entries: list[FileEntry]) -> str:
    """sha256 over the manifest and the (path, size, hash) list: the identity of a submission."""
    h = hashlib.sha256(manifest.read_bytes())
    for e in entries:
        h.update(f"\n{e.rel}\t{e.size}\t{e.sha256}".encode())
    return h.hexdigest()
