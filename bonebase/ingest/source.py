"""Where a submission comes from: a folder, a zip file or an S3 prefix, always seen as a folder.

A zip is extracted under limits (issue #15): entries that are symbolic links, that claim more
than BONEBASE_MAX_FILE_MB, that expand more than BONEBASE_MAX_ZIP_RATIO-fold or past
BONEBASE_MAX_ZIP_TOTAL_MB, or that inflate past what they declared, are not written; they are
listed as :class:`Refusal` for :func:`bonebase.ingest.scan.scan_files` to turn into quarantine
items.
"""

from __future__ import annotations

import hashlib
import stat
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from bonebase.errors import InputError
from bonebase.ingest import limits as lim

CHUNK = 1 << 20


@dataclass(frozen=True)
class Refusal:
    """A zip entry that was not extracted: its path, declared size, reason code and identity."""

    rel: str
    size: int
    reason: str
    sha256: str  # of the entry's declared identity (name, CRC, sizes), not of its bytes


# Refusals of the zips extracted by as_folder in this process, by extraction folder. Kept in
# memory rather than in a file of the folder, which a submission could forge.
_REFUSED: dict[Path, list[Refusal]] = {}


def refused_in(root: Path) -> list[Refusal]:
    """Zip entries refused while extracting ``root`` (none for a folder or S3 submission)."""
    return list(_REFUSED.get(Path(root), ()))


def _safe_member(name: str) -> bool:
    path = PurePosixPath(name.replace("\\", "/"))
    return not (path.is_absolute() or ".." in path.parts or name.startswith(("/", "\\"))
                or (len(name) > 1 and name[1] == ":"))


def _refusal(member: zipfile.ZipInfo, reason: str) -> Refusal:
    ident = f"{member.filename}\0{member.CRC}\0{member.file_size}\0{member.compress_size}"
    return Refusal(PurePosixPath(member.filename).as_posix(), member.file_size, reason,
                   hashlib.sha256(f"refused\0{reason}\0{ident}".encode()).hexdigest())


def _declared_refusal(member: zipfile.ZipInfo, limits: lim.Limits, total: int) -> str | None:
    """The reason to refuse an entry from what the zip declares, before reading a byte."""
    if stat.S_ISLNK(member.external_attr >> 16):
        return lim.SYMBOLIC_LINK
    if member.file_size > limits.max_file_bytes:
        return lim.FILE_TOO_LARGE
    # Small entries may compress extremely well (a blank image); only large ones can be bombs.
    if member.file_size > CHUNK and member.file_size > limits.max_zip_ratio * max(
            member.compress_size, 1):
        return lim.DECOMPRESSION_BOMB
    if total + member.file_size > limits.max_zip_total_bytes:
        return lim.DECOMPRESSION_BOMB
    return None


def _copy_counted(zf: zipfile.ZipFile, member: zipfile.ZipInfo, target: Path) -> str | None:
    """Extract one entry, stopping as soon as it yields more than it declared (the declared
    size was checked against the limits); returns a reason when the entry was refused."""
    try:
        with zf.open(member) as src, open(target, "wb") as out:
            written = 0
            while block := src.read(CHUNK):
                written += len(block)
                if written > member.file_size:
                    raise OverflowError
                out.write(block)
        return None
    except OverflowError:
        reason = lim.DECOMPRESSION_BOMB
    except (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError, RuntimeError):
        reason = "corrupt_file"  # bad CRC, damaged stream, unsupported method or encryption
    target.unlink(missing_ok=True)
    return reason


def extract_zip(zip_path: Path, dest: Path, *, limits: lim.Limits | None = None) -> list[Refusal]:
    """Extract a zip, refusing it whole if any entry would land outside ``dest`` (../x, /etc/x);
    entries over the limits are not written and are returned as refusals."""
    limits = limits or lim.current()
    refused: list[Refusal] = []
    try:
        with zipfile.ZipFile(zip_path) as zf:
            unsafe = [m.filename for m in zf.infolist() if not _safe_member(m.filename)]
            if unsafe:
                raise InputError(
                    f"{zip_path.name}: entry {unsafe[0]!r} points outside the submission folder "
                    f"({len(unsafe)} such entries); nothing was ingested - re-create the zip with "
                    "paths relative to the submission folder"
                )
            total = 0
            for member in zf.infolist():
                if member.is_dir():
                    continue
                reason = _declared_refusal(member, limits, total)
                if reason is None:
                    target = dest / member.filename
                    target.parent.mkdir(parents=True, exist_ok=True)
                    reason = _copy_counted(zf, member, target)
                if reason is None:
                    total += member.file_size
                else:
                    refused.append(_refusal(member, reason))
    except zipfile.BadZipFile:
        raise InputError(f"{zip_path}: not a readable zip file; re-create it and resubmit") from None
    return refused


@contextmanager
def as_folder(source: str, *, endpoint_url: str | None = None, region: str | None = None,
              limits: lim.Limits | None = None) -> Iterator[Path]:
    """Yield a local folder holding the submission; temporary copies are removed afterwards.

    A zip is extracted under ``limits`` (default: the environment's BONEBASE_MAX_*)."""
    if source.startswith("s3://"):
        from bonebase.storage import open_store

        store = open_store(source, endpoint_url=endpoint_url, region=region)
        with tempfile.TemporaryDirectory(prefix="bonebase-s3-") as tmp:
            keys = list(store.list(""))
            if not keys:
                raise InputError(f"{source}: no objects under this prefix; check the S3 path")
            for key in keys:
                store.download(key, Path(tmp) / key)
            yield Path(tmp)
        return
    path = Path(source)
    if not path.exists():
        raise InputError(f"{source}: no such file or folder; give a submission folder, zip or s3:// URL")
    if path.is_file():
        if not zipfile.is_zipfile(path):
            raise InputError(f"{source}: a file that is not a zip; give the submission folder or a zip")
        with tempfile.TemporaryDirectory(prefix="bonebase-zip-") as tmp:
            root = Path(tmp)
            _REFUSED[root] = extract_zip(path, root, limits=limits)
            try:
                yield root
            finally:
                _REFUSED.pop(root, None)
        return
    yield path
