"""Object store for de-identified DICOM: a local directory or an S3 bucket, same contract.

Keys are ``/``-separated relative paths. Curated objects live under content-addressed keys
(``curated/ab/cd/abcd….dcm``, see :func:`content_key`) so that the same file ingested twice is
one object; rejected originals go to a quarantine area. :func:`open_store` picks the backend
from a URL: ``s3://bucket/prefix`` gives :class:`~bonebase.storage_s3.S3Store`, anything else a
:class:`LocalStore` rooted at that path.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from bonebase.errors import ConfigError, InputError, NotFoundError

if TYPE_CHECKING:
    from bonebase.storage_s3 import S3Store

CHUNK = 1 << 20
# Temporary files of in-flight writes carry this prefix; listings hide them and keys may not use it.
TMP_PREFIX = ".bonebase-tmp-"
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


@dataclass(frozen=True)
class ObjectInfo:
    """What a write stored: the key, its size in bytes and its SHA-256 (hex) when known."""

    key: str
    size: int
    sha256: str | None


def check_key(key: str, *, what: str = "key") -> str:
    """Return ``key`` if it is a safe relative ``/``-separated path, else raise InputError."""
    problem = None
    if not isinstance(key, str) or not key:
        problem = "is empty"
    elif key.startswith("/") or "\\" in key or "\x00" in key or re.match(r"^[A-Za-z]:", key):
        problem = "must be a relative '/'-separated path (no leading '/', '\\', drive or NUL)"
    else:
        for part in key.split("/"):
            if part in ("", ".", ".."):
                problem = "may not contain empty, '.' or '..' segments"
            elif part.startswith(TMP_PREFIX):
                problem = f"may not use the reserved prefix {TMP_PREFIX!r}"
    if problem:
        raise InputError(f"object {what} {key!r} {problem}; use a path like 'curated/ab/cd/….dcm'")
    return key


def sha256_file(path: Path, *, chunk: int = CHUNK) -> str:
    """SHA-256 (hex) of a file, read in chunks so that large files never sit in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def content_key(sha256_hex: str, *, area: str = "curated", suffix: str = ".dcm") -> str:
    """Content-addressed key ``AREA/ab/cd/abcd….SUFFIX`` for a SHA-256 hex digest."""
    if not isinstance(sha256_hex, str) or not _SHA256_RE.match(sha256_hex):
        raise InputError(
            f"content key needs a SHA-256 as 64 lowercase hex characters, got {sha256_hex!r}"
        )
    check_key(area, what="area")
    if suffix and ("/" in suffix or not suffix.startswith(".")):
        raise InputError(f"content key suffix {suffix!r} must be empty or like '.dcm'")
    # Two levels of fan-out keep directories (and S3 listings per prefix) small.
    return f"{area}/{sha256_hex[:2]}/{sha256_hex[2:4]}/{sha256_hex}{suffix}"


class ObjectStore(ABC):
    """A flat key → bytes store; writes are all-or-nothing and keys are checked."""

    url: str

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group many writes: each is durable when the block exits (not necessarily before).

        Callers that record objects elsewhere (database rows) do so after the block, so nothing
        is recorded that a crash could lose. The default: every write is durable on return.
        """
        yield

    @abstractmethod
    def put_bytes(self, key: str, data: bytes, *, sha256: str | None = None) -> ObjectInfo:
        """Store ``data`` under ``key``, replacing any object there."""

    @abstractmethod
    def put_file(self, key: str, path: Path, *, sha256: str | None = None) -> ObjectInfo:
        """Stream the file at ``path`` to ``key``; ``sha256`` saves hashing it again if known."""

    def staging_dir(self, name: str) -> Path | None:
        """A local folder whose files :meth:`put_staged` moves in cheaply; None: no such folder."""
        return None

    def put_staged(self, key: str, path: Path, *, sha256: str) -> ObjectInfo:
        """Move a finished local file (written by this process, hashed as ``sha256``) to ``key``.

        The file is gone afterwards. Default: upload it (:meth:`put_file`), then delete it.
        """
        info = self.put_file(key, path, sha256=sha256)
        path.unlink(missing_ok=True)
        return info

    @abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """The object's content; NotFoundError if there is none."""

    @abstractmethod
    def download(self, key: str, dest: Path) -> Path:
        """Stream the object to ``dest`` (appearing there whole or not at all); returns ``dest``."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""

    @abstractmethod
    def size(self, key: str) -> int:
        """Size in bytes of the object; NotFoundError if there is none."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys starting with ``prefix`` (plain string prefix, as in S3), in sorted order."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error."""

    def _not_found(self, key: str) -> NotFoundError:
        return NotFoundError(
            f"no object {key!r} in store {self.url}; check the key (`list`) and the store URL"
        )


def put_content_addressed(
    store: ObjectStore, src: bytes | Path, *, area: str = "curated", suffix: str = ".dcm"
) -> ObjectInfo:
    """Store ``src`` under its content key; an object already there is not written again."""
    if isinstance(src, bytes | bytearray | memoryview):
        data = bytes(src)
        sha = hashlib.sha256(data).hexdigest()
    else:
        data, sha = None, sha256_file(Path(src))
    key = content_key(sha, area=area, suffix=suffix)
    try:
        # One request answers both "is it there" and "how big": the dedup path costs one call.
        return ObjectInfo(key=key, size=store.size(key), sha256=sha)
    except NotFoundError:
        pass
    if data is not None:
        return store.put_bytes(key, data, sha256=sha)
    return store.put_file(key, Path(src), sha256=sha)


def check_sha(expected: str | None, actual: str, *, what: str) -> None:
    """Raise InputError if a caller-supplied SHA-256 (``expected``) differs from ``actual``."""
    if expected is not None and expected != actual:
        raise InputError(
            f"{what} has SHA-256 {actual}, not the {expected} given; the source changed since "
            "it was hashed, or the digest belongs to other data: hash it again and retry"
        )


def _fsync_dir(path: Path) -> None:
    # The rename is durable only once the directory entry is on disk (POSIX); Windows has no
    # directory handles to fsync, which is why this is best effort.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(
    dest: Path, source: IO[bytes], *, chunk: int = CHUNK, durable: bool = True
) -> tuple[int, str]:
    """Copy the stream ``source`` to ``dest`` atomically; returns (size, sha256 hex).

    A temporary file in the same directory is written, fsynced and renamed over ``dest``, so
    readers see the old content or the new, never a partial file; on error it is removed.
    ``durable=False`` skips the fsyncs (still atomic); the caller syncs later (a batch).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=TMP_PREFIX, dir=dest.parent)
    tmp = Path(tmp_name)
    digest, size = hashlib.sha256(), 0
    try:
        with os.fdopen(fd, "wb") as out:
            while block := source.read(chunk):
                digest.update(block)
                out.write(block)
                size += len(block)
            out.flush()
            if durable:
                os.fsync(out.fileno())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync_dir(dest.parent)
    return size, digest.hexdigest()


class LocalStore(ObjectStore):
    """Objects as files under a root directory; every write is atomic and fsynced."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser().absolute()
        self.url = str(self.root)
        self._deferred = False

    @contextmanager
    def batch(self) -> Iterator[None]:
        # Two fsyncs per object (file and directory) cost more than the copy itself on ingest
        # of thousands of small files; one sync() at the end of the block makes them all durable.
        outer, self._deferred = self._deferred, True
        try:
            yield
        finally:
            self._deferred = outer
            if not outer:
                os.sync()

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put_bytes(self, key: str, data: bytes, *, sha256: str | None = None) -> ObjectInfo:
        if sha256 is not None:
            check_sha(sha256, hashlib.sha256(data).hexdigest(), what=f"data for {key!r}")
        size, sha = atomic_write(self._path(key), io.BytesIO(data), durable=not self._deferred)
        return ObjectInfo(key=key, size=size, sha256=sha)

    def put_file(self, key: str, path: Path, *, sha256: str | None = None) -> ObjectInfo:
        dest = self._path(key)
        with open(path, "rb") as src:
            size, sha = atomic_write(dest, src, durable=not self._deferred)
        if sha256 is not None and sha256 != sha:
            # The hash the caller keyed the object by no longer matches what was copied.
            dest.unlink(missing_ok=True)
            check_sha(sha256, sha, what=str(path))
        return ObjectInfo(key=key, size=size, sha256=sha)

    def staging_dir(self, name: str) -> Path:
        # Inside the root (same file system, so a move is a rename) and under the reserved
        # prefix, so listings and keys never see it.
        check_key(name, what="staging name")
        return self.root / f"{TMP_PREFIX}staging" / name

    def put_staged(self, key: str, path: Path, *, sha256: str) -> ObjectInfo:
        # The hash is trusted, not recomputed: the caller wrote and hashed these bytes itself
        # (ingest workers hash the de-identified output as they write it).
        dest = self._path(key)
        if dest.is_file():  # content-addressed: the same bytes are already there
            path.unlink(missing_ok=True)
            return ObjectInfo(key=key, size=dest.stat().st_size, sha256=sha256)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not self._deferred:
            with open(path, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(path, dest)
        if not self._deferred:
            _fsync_dir(dest.parent)
        return ObjectInfo(key=key, size=dest.stat().st_size, sha256=sha256)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise self._not_found(key) from None

    def download(self, key: str, dest: Path) -> Path:
        dest = Path(dest)
        try:
            src = open(self._path(key), "rb")  # noqa: SIM115 - closed below
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise self._not_found(key) from None
        with src:
            atomic_write(dest, src)
        return dest

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        path = self._path(key)
        if not path.is_file():
            raise self._not_found(key)
        return path.stat().st_size

    def list(self, prefix: str = "") -> Iterator[str]:
        # Walk only the deepest directory the prefix names, then filter by string prefix.
        base = self.root.joinpath(*prefix.split("/")[:-1]) if prefix else self.root
        if prefix and "/" in prefix:
            check_key(prefix.rsplit("/", 1)[0], what="prefix")
        if not base.is_dir():
            return iter(())
        keys = []
        for dirpath, dirs, files in os.walk(base):
            dirs[:] = [d for d in dirs if not d.startswith(TMP_PREFIX)]  # staging areas
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for name in files:
                if name.startswith(TMP_PREFIX):
                    continue
                key = name if rel == "." else f"{rel}/{name}"
                if key.startswith(prefix):
                    keys.append(key)
        return iter(sorted(keys))

    def delete(self, key: str) -> None:
        # Empty directories are left in place: removing them races with a concurrent write
        # that has just created them.
        self._path(key).unlink(missing_ok=True)


def open_store(
    url: str, *, endpoint_url: str | None = None, region: str | None = None
) -> ObjectStore:
    """The store named by ``url``: ``s3://bucket/prefix`` → S3Store, a path → LocalStore."""
    match = _SCHEME_RE.match(url)
    if match is None:
        return LocalStore(Path(url))
    scheme = match.group(1).lower()
    if scheme == "file":
        return LocalStore(Path(url[len("file://") :]))
    if scheme != "s3":
        raise ConfigError(
            f"storage URL {url!r} has scheme {scheme!r}; use s3://bucket/prefix or a local path"
        )
    from bonebase.storage_s3 import S3Store

    bucket, _, prefix = url[len("s3://") :].partition("/")
    if not bucket:
        raise ConfigError(f"storage URL {url!r} names no bucket; use s3://bucket/prefix")
    return S3Store(bucket, prefix=prefix, endpoint_url=endpoint_url, region=region)


__all__ = [
    "ObjectInfo",
    "ObjectStore",
    "LocalStore",
    "S3Store",
    "check_key",
    "content_key",
    "open_store",
    "put_content_addressed",
    "sha256_file",
]


def __getattr__(name: str) -> object:
    # S3Store lives in its own module (boto3 import cost, file size) but is part of this API.
    if name == "S3Store":
        from bonebase.storage_s3 import S3Store

        return S3Store
    raise AttributeError(name)
