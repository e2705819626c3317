"""S3 backend of the object store (AWS S3, MinIO, Ceph, moto), through boto3.

Credentials come from boto3's own chain (``AWS_*`` variables, profiles, instance roles); this
module never reads them itself. Uploads go through boto3's managed transfer (multipart above
``TransferConfig.multipart_threshold``) and are verified afterwards: the stored size must match
and the SHA-256 kept in the object's metadata must be the one computed locally.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
)

from bonebase.errors import BonebaseError, ConfigError, NotFoundError
from bonebase.storage import (
    TMP_PREFIX,
    ObjectInfo,
    ObjectStore,
    check_key,
    check_sha,
    sha256_file,
)

SHA_META = "sha256"
_CREDENTIAL_CODES = {
    "AccessDenied",
    "AllAccessDisabled",
    "ExpiredToken",
    "InvalidAccessKeyId",
    "InvalidToken",
    "SignatureDoesNotMatch",
    "403",
}
_MISSING_CODES = {"NoSuchKey", "NotFound", "404"}


class S3Store(ObjectStore):
    """Objects under ``prefix`` in an S3 bucket."""

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        transfer_config: TransferConfig | None = None,
        connect_timeout: float = 5.0,
        max_attempts: int = 3,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if self.prefix:
            check_key(self.prefix, what="prefix of the S3 store URL")
        self.endpoint_url = endpoint_url
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.transfer_config = transfer_config or TransferConfig()
        # A short connect timeout and few retries: an unreachable endpoint should fail in
        # seconds with a clear message, not hang for minutes in botocore's defaults.
        config = Config(
            connect_timeout=connect_timeout,
            retries={"max_attempts": max_attempts, "mode": "standard"},
        )
        # One session per store: boto3 sessions are not thread-safe, clients are.
        session = boto3.session.Session()
        self._client = session.client(
            "s3", endpoint_url=endpoint_url, region_name=region, config=config
        )
        self._bucket_checked = False

    # -- errors -------------------------------------------------------------------------------

    @property
    def _where(self) -> str:
        return f"{self.url} (endpoint {self.endpoint_url or 'AWS default'})"

    def _bucket_missing(self) -> ConfigError:
        return ConfigError(
            f"S3 bucket {self.bucket!r} does not exist at {self._where}: create it, or fix "
            "BONEBASE_STORAGE_URL / BONEBASE_S3_ENDPOINT_URL"
        )

    def _translate(self, exc: BaseException, *, op: str, key: str | None) -> BonebaseError:
        """Turn a boto3/botocore failure into a BonebaseError that says what to do."""
        if isinstance(exc, S3UploadFailedError) and isinstance(exc.__context__, ClientError):
            exc = exc.__context__  # boto3 wraps the ClientError that says what went wrong
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return ConfigError(
                f"no usable AWS credentials for {self._where}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
            )
        if isinstance(exc, ConnectionError | HTTPClientError):
            return ConfigError(
                f"cannot reach the S3 endpoint for {self._where}: {exc}; check "
                "BONEBASE_S3_ENDPOINT_URL and that the service is running"
            )
        if isinstance(exc, ParamValidationError):
            return ConfigError(f"invalid S3 request for {self._where}: {exc}")
        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code == "NoSuchBucket" or (op == "head_bucket" and code in _MISSING_CODES):
                return self._bucket_missing()
            if code in _CREDENTIAL_CODES:
                return ConfigError(
                    f"S3 refused {op} on {self._where} ({code}): check the AWS credentials "
                    "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_PROFILE) and their "
                    "permissions on the bucket"
                )
            if key is not None and code in _MISSING_CODES:
                self._check_bucket_once()  # a missing bucket also answers 404 to HEAD
                return self._not_found(key)
        what = f" of {key!r}" if key is not None else ""
        return BonebaseError(f"S3 {op}{what} failed on {self._where}: {exc}")

    @contextmanager
    def _errors(self, op: str, key: str | None = None) -> Iterator[None]:
        try:
            yield
        except BonebaseError:
            raise
        except (BotoCoreError, ClientError, S3UploadFailedError) as exc:
            raise self._translate(exc, op=op, key=key) from exc

    def _check_bucket_once(self) -> None:
        if not self._bucket_checked:
            self.check()

    def check(self) -> None:
        """Raise ConfigError unless the bucket exists and these credentials may use it."""
        with self._errors("head_bucket"):
            self._client.head_bucket(Bucket=self.bucket)
        self._bucket_checked = True

    # -- keys ---------------------------------------------------------------------------------

    def _full(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _head(self, key: str) -> dict:
        with self._errors("head_object", key):
            return self._client.head_object(Bucket=self.bucket, Key=self._full(key))

    # -- writes -------------------------------------------------------------------------------

    def _verify(self, key: str, *, size: int, sha: str) -> ObjectInfo:
        head = self._head(key)
        stored_size = head.get("ContentLength")
        stored_sha = head.get("Metadata", {}).get(SHA_META)
        if stored_size != size or stored_sha != sha:
            # Do not leave a wrong object under a (content-addressed) key that looks right.
            self.delete(key)
            raise BonebaseError(
                f"upload of {key!r} to {self._where} did not verify: stored {stored_size} "
                f"bytes with sha256 {stored_sha}, expected {size} bytes with {sha}; the "
                "object was removed, upload it again"
            )
        return ObjectInfo(key=key, size=size, sha256=sha)

    def _upload(self, key: str, source: Path | IO[bytes], *, size: int, sha: str) -> ObjectInfo:
        full = self._full(key)
        extra = {"Metadata": {SHA_META: sha}}
        with self._errors("upload", key):
            if isinstance(source, Path):
                self._client.upload_file(
                    str(source), self.bucket, full, ExtraArgs=extra, Config=self.transfer_config
                )
            else:
                self._client.upload_fileobj(
                    source, self.bucket, full, ExtraArgs=extra, Config=self.transfer_config
                )
        return self._verify(key, size=size, sha=sha)

    def put_bytes(self, key: str, data: bytes, *, sha256: str | None = None) -> ObjectInfo:
        sha = hashlib.sha256(data).hexdigest()
        check_sha(sha256, sha, what=f"data for {key!r}")
        return self._upload(key, io.BytesIO(data), size=len(data), sha=sha)

    def put_file(self, key: str, path: Path, *, sha256: str | None = None) -> ObjectInfo:
        path = Path(path)
        # The digest must be known before the upload starts (it travels as metadata), so an
        # unknown one costs a first pass over the file.
        sha = sha256 or sha256_file(path)
        return self._upload(key, path, size=path.stat().st_size, sha=sha)

    # -- reads --------------------------------------------------------------------------------

    def get_bytes(self, key: str) -> bytes:
        with self._errors("get_object", key):
            response = self._client.get_object(Bucket=self.bucket, Key=self._full(key))
            with response["Body"] as body:
                return body.read()

    def download(self, key: str, dest: Path) -> Path:
        dest = Path(dest)
        full = self._full(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=TMP_PREFIX, dir=dest.parent)
        os.close(fd)
        try:
            with self._errors("download", key):
                self._client.download_file(self.bucket, full, tmp_name, Config=self.transfer_config)
            with open(tmp_name, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp_name, dest)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return dest

    def exists(self, key: str) -> bool:
        try:
            self._head(key)
        except NotFoundError:
            return False
        return True

    def size(self, key: str) -> int:
        return int(self._head(key)["ContentLength"])

    def sha256(self, key: str) -> str | None:
        """The SHA-256 recorded in the object's metadata at upload (None if not uploaded here)."""
        return self._head(key).get("Metadata", {}).get(SHA_META)

    def list(self, prefix: str = "") -> Iterator[str]:
        base = f"{self.prefix}/" if self.prefix else ""
        paginator = self._client.get_paginator("list_objects_v2")
        # S3 returns keys in UTF-8 binary order, which is Python's str order: no sort needed,
        # and listing stays lazy page by page.
        with self._errors("list_objects_v2"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=base + prefix):
                for item in page.get("Contents", []):
                    yield item["Key"][len(base) :]

    def delete(self, key: str) -> None:
        with self._errors("delete_object", key):
            self._client.delete_object(Bucket=self.bucket, Key=self._full(key))
