"""Where a submission comes from: a folder, a zip file or an S3 prefix, always seen as a folder."""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from bonebase.errors import InputError


def _safe_member(name: str) -> bool:
    path = PurePosixPath(name.replace("\\", "/"))
    return not (path.is_absolute() or ".." in path.parts or name.startswith(("/", "\\"))
                or (len(name) > 1 and name[1] == ":"))


def extract_zip(zip_path: Path, dest: Path) -> None:
    """Extract a zip, refusing it whole if any entry would land outside ``dest`` (../x, /etc/x)."""
    try:
        with zipfile.ZipFile(zip_path) as zf:
            unsafe = [m.filename for m in zf.infolist() if not _safe_member(m.filename)]
            if unsafe:
                raise InputError(
                    f"{zip_path.name}: entry {unsafe[0]!r} points outside the submission folder "
                    f"({len(unsafe)} such entries); nothing was ingested - re-create the zip with "
                    "paths relative to the submission folder"
                )
            for member in zf.infolist():
                if member.is_dir():
                    continue
                target = dest / member.filename
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)  # streamed: large entries stay on disk
    except zipfile.BadZipFile:
        raise InputError(f"{zip_path}: not a readable zip file; re-create it and resubmit") from None


@contextmanager
def as_folder(source: str, *, endpoint_url: str | None = None,
              region: str | None = None) -> Iterator[Path]:
    """Yield a local folder holding the submission; temporary copies are removed afterwards."""
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
            extract_zip(path, Path(tmp))
            yield Path(tmp)
        return
    yield path
