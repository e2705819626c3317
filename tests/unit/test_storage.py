"""The object store contract, run over a local directory and over S3 (moto, real HTTP)."""

from __future__ import annotations

import hashlib
import os
import tracemalloc

import pytest
from boto3.s3.transfer import TransferConfig

from bonebase import storage
from bonebase.errors import BonebaseError, ConfigError, InputError, NotFoundError
from bonebase.storage import (
    LocalStore,
    ObjectInfo,
    content_key,
    open_store,
    put_content_addressed,
    sha256_file,
)
from bonebase.storage_s3 import S3Store

MiB = 1 << 20


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def store(request, tmp_path):
    """The same tests over both backends."""
    if request.param == "local":
        return open_store(str(tmp_path / "objects"))
    bucket = request.getfixturevalue("s3_bucket")
    return open_store(bucket.url, endpoint_url=bucket.endpoint_url)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.s3
def test_open_store_picks_backend(tmp_path, s3_bucket):
    assert isinstance(open_store(str(tmp_path)), LocalStore)
    assert isinstance(open_store(f"file://{tmp_path}"), LocalStore)
    s3 = open_store(s3_bucket.url, endpoint_url=s3_bucket.endpoint_url)
    assert isinstance(s3, S3Store)
    assert (s3.bucket, s3.prefix, s3.url) == (s3_bucket.bucket, "objects", s3_bucket.url)
    with pytest.raises(ConfigError, match="gs"):
        open_store("gs://bucket/x")
    with pytest.raises(ConfigError, match="no bucket"):
        open_store("s3:///prefix")


def test_bytes_round_trip(store):
    info = store.put_bytes("quarantine/site-a/x.dcm", b"DICM" * 10)
    assert info == ObjectInfo("quarantine/site-a/x.dcm", 40, _sha(b"DICM" * 10))
    assert store.get_bytes("quarantine/site-a/x.dcm") == b"DICM" * 10
    assert store.exists("quarantine/site-a/x.dcm")
    assert store.size("quarantine/site-a/x.dcm") == 40
    store.put_bytes("quarantine/site-a/x.dcm", b"")  # overwrite, and empty objects are fine
    assert store.get_bytes("quarantine/site-a/x.dcm") == b""


def test_file_round_trip_and_download(store, tmp_path):
    src = tmp_path / "in.bin"
    src.write_bytes(os.urandom(100_000))
    info = store.put_file("curated/a.bin", src)
    assert info.size == 100_000 and info.sha256 == sha256_file(src)
    dest = store.download("curated/a.bin", tmp_path / "out" / "deep" / "a.bin")
    assert dest.read_bytes() == src.read_bytes()
    assert [p.name for p in dest.parent.iterdir()] == ["a.bin"]  # no temp file left behind


def test_list_is_sorted_and_prefix_filtered(store):
    for key in ["b/2", "a/1", "a/10", "ab/3", "a/0/x"]:
        store.put_bytes(key, key.encode())
    assert list(store.list()) == ["a/0/x", "a/1", "a/10", "ab/3", "b/2"]
    assert list(store.list("a/")) == ["a/0/x", "a/1", "a/10"]
    assert list(store.list("a")) == ["a/0/x", "a/1", "a/10", "ab/3"]  # S3 string-prefix rule
    assert list(store.list("a/1")) == ["a/1", "a/10"]
    assert list(store.list("zzz/")) == []


def test_delete_is_idempotent(store):
    store.put_bytes("k/v", b"1")
    store.delete("k/v")
    store.delete("k/v")
    assert not store.exists("k/v")
    assert list(store.list()) == []


def test_missing_key_names_key_and_store(store, tmp_path):
    with pytest.raises(NotFoundError) as err:
        store.get_bytes("curated/nope.dcm")
    assert "curated/nope.dcm" in str(err.value) and store.url in str(err.value)
    with pytest.raises(NotFoundError):
        store.size("curated/nope.dcm")
    (tmp_path / "dl").mkdir()
    with pytest.raises(NotFoundError):
        store.download("curated/nope.dcm", tmp_path / "dl" / "x.dcm")
    assert not (tmp_path / "dl" / "x.dcm").exists()
    assert not list((tmp_path / "dl").iterdir())  # the temp file of the failed download is gone
    assert store.exists("curated/nope.dcm") is False


BAD_KEYS = ["", "/abs", "a/../b", "..", "a//b", "a/./b", "a/", "a\\b", "C:/x", ".bonebase-tmp-1"]


def test_bad_keys_are_refused(store):
    for key in BAD_KEYS:
        with pytest.raises(InputError, match="object key"):
            store.put_bytes(key, b"x")
        with pytest.raises(InputError):
            store.get_bytes(key)
        with pytest.raises(InputError):
            store.delete(key)
    assert list(store.list()) == []


def test_content_key_layout_and_validation():
    sha = _sha(b"x")
    assert content_key(sha) == f"curated/{sha[:2]}/{sha[2:4]}/{sha}.dcm"
    assert (
        content_key(sha, area="quarantine", suffix="") == f"quarantine/{sha[:2]}/{sha[2:4]}/{sha}"
    )
    for bad in ["abc", sha.upper(), sha[:-1] + "g"]:
        with pytest.raises(InputError, match="SHA-256"):
            content_key(bad)
    with pytest.raises(InputError):
        content_key(sha, area="../x")
    with pytest.raises(InputError):
        content_key(sha, suffix="dcm")


def test_content_addressed_dedup(store, tmp_path):
    data = b"same pixels" * 100
    first = put_content_addressed(store, data)
    assert first.key == content_key(_sha(data)) and first.size == len(data)
    path = tmp_path / "same.dcm"
    path.write_bytes(data)
    # The second write (from a file this time) finds the object and does not write it again.
    calls = []
    orig_put_file, orig_put_bytes = store.put_file, store.put_bytes
    store.put_file = lambda *a, **k: calls.append(a) or orig_put_file(*a, **k)
    store.put_bytes = lambda *a, **k: calls.append(a) or orig_put_bytes(*a, **k)
    again = put_content_addressed(store, path)
    assert again == first and calls == []
    other = put_content_addressed(store, b"other", area="quarantine")
    assert other.key.startswith("quarantine/") and calls
    assert list(store.list()) == sorted([first.key, other.key])


def test_local_write_is_atomic_on_failure(tmp_path, monkeypatch):
    store = LocalStore(tmp_path / "objects")
    store.put_bytes("curated/x.dcm", b"old")

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(storage.os, "fsync", disk_full)
    src = tmp_path / "new.dcm"
    src.write_bytes(b"new content")
    with pytest.raises(OSError, match="No space"):
        store.put_file("curated/x.dcm", src)
    with pytest.raises(OSError):
        store.put_bytes("curated/y.dcm", b"never")
    monkeypatch.undo()
    assert store.get_bytes("curated/x.dcm") == b"old"  # the old version is intact
    assert not store.exists("curated/y.dcm")
    assert sorted(p.name for p in (tmp_path / "objects" / "curated").iterdir()) == ["x.dcm"]


def test_local_put_file_streams(tmp_path):
    src = tmp_path / "big.bin"
    with open(src, "wb") as fh:
        for _ in range(16):
            fh.write(os.urandom(MiB))
    store = LocalStore(tmp_path / "objects")
    tracemalloc.start()
    try:
        info = put_content_addressed(store, src, suffix=".bin")  # hashes, then copies
        dest = store.download(info.key, tmp_path / "back.bin")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.size == 16 * MiB and sha256_file(dest) == info.sha256
    assert peak < 4 * MiB, f"peak {peak} bytes: the 16 MiB file was read whole"


def test_local_put_file_with_wrong_sha_is_refused(tmp_path):
    store = LocalStore(tmp_path / "objects")
    src = tmp_path / "a"
    src.write_bytes(b"a")
    with pytest.raises(InputError, match="changed"):
        store.put_file("k", src, sha256=_sha(b"b"))
    assert not store.exists("k")


def test_put_bytes_with_wrong_sha_is_refused(store):
    with pytest.raises(InputError, match="SHA-256"):
        store.put_bytes("k", b"a", sha256=_sha(b"b"))
    assert not store.exists("k")


@pytest.mark.s3
def test_s3_multipart_upload_is_streamed_and_verified(s3_bucket, s3_client, tmp_path):
    # moto enforces S3's 5 MiB minimum part size, so 11 MiB makes three parts.
    small = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    store = S3Store(
        s3_bucket.bucket,
        prefix=s3_bucket.prefix,
        endpoint_url=s3_bucket.endpoint_url,
        transfer_config=small,
    )
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(11 * MiB))
    info = store.put_file("curated/big.bin", src)
    head = s3_client.head_object(Bucket=s3_bucket.bucket, Key="objects/curated/big.bin")
    assert head["ETag"].strip('"').endswith("-3")  # the ETag of a 3-part multipart upload
    assert head["Metadata"]["sha256"] == info.sha256 == sha256_file(src)
    assert store.sha256("curated/big.bin") == info.sha256
    dest = store.download("curated/big.bin", tmp_path / "back.bin")
    assert sha256_file(dest) == info.sha256


@pytest.mark.s3
def test_s3_verification_catches_a_wrong_object(s3_bucket, s3_client, monkeypatch):
    store = open_store(s3_bucket.url, endpoint_url=s3_bucket.endpoint_url)
    real_upload = store._client.upload_fileobj

    def truncating_upload(fileobj, bucket, key, **kwargs):
        # A transfer that lost its tail: the object stored is shorter than the data sent.
        return real_upload(type(fileobj)(fileobj.read()[:-1]), bucket, key, **kwargs)

    monkeypatch.setattr(store._client, "upload_fileobj", truncating_upload)
    with pytest.raises(BonebaseError, match="did not verify"):
        store.put_bytes("curated/x.dcm", b"abcdef")
    assert not store.exists("curated/x.dcm")  # the wrong object was removed


@pytest.mark.s3
def test_s3_missing_bucket_is_a_clear_error(moto_endpoint):
    store = open_store("s3://no-such-bucket-bonebase/p", endpoint_url=moto_endpoint)
    for action in (
        lambda: store.put_bytes("a", b"x"),
        lambda: store.get_bytes("a"),
        lambda: store.exists("a"),
        lambda: list(store.list()),
        store.check,
    ):
        with pytest.raises(ConfigError, match="bucket 'no-such-bucket-bonebase' does not exist"):
            action()


@pytest.mark.s3
def test_s3_unreachable_endpoint_is_a_clear_error(moto_endpoint):
    import socket

    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = S3Store("b", endpoint_url=f"http://127.0.0.1:{port}", max_attempts=1)
    with pytest.raises(ConfigError, match="cannot reach the S3 endpoint"):
        store.get_bytes("a")


@pytest.mark.s3
def test_s3_missing_credentials_is_a_clear_error(moto_endpoint, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    store = open_store("s3://b/p", endpoint_url=moto_endpoint)
    with pytest.raises(ConfigError, match="no usable AWS credentials"):
        store.exists("a")


@pytest.mark.s3
def test_s3_bad_credentials_is_a_clear_error(s3_bucket, monkeypatch):
    import urllib.request

    def set_auth(count: str) -> None:
        # moto's switch for checking signatures: after COUNT unauthenticated requests.
        req = urllib.request.Request(
            f"{s3_bucket.endpoint_url}/moto-api/reset-auth",
            data=count.encode(),
            method="POST",
            headers={"Content-Type": "text/plain"},  # not a form: moto reads the raw body
        )
        urllib.request.urlopen(req).close()

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG1")
    store = open_store(s3_bucket.url, endpoint_url=s3_bucket.endpoint_url)
    set_auth("0")
    try:
        with pytest.raises(ConfigError, match="check the AWS credentials"):
            store.put_bytes("a", b"x")
    finally:
        set_auth("inf")


def test_batch_defers_sync_but_keeps_writes_atomic_and_visible(tmp_path, monkeypatch):
    """Inside batch() the local store skips per-file fsyncs and syncs once at the end."""
    import os as _os

    from bonebase.storage import LocalStore

    store = LocalStore(tmp_path / "objects")
    fsyncs, syncs = [], []
    real_fsync = _os.fsync
    monkeypatch.setattr("bonebase.storage.os.fsync", lambda fd: (fsyncs.append(fd), real_fsync(fd)))
    monkeypatch.setattr("bonebase.storage.os.sync", lambda: syncs.append(1))
    with store.batch():
        with store.batch():  # nested: only the outer block syncs
            store.put_bytes("a/1", b"one")
        store.put_bytes("a/2", b"two")
        assert store.get_bytes("a/1") == b"one" and store.exists("a/2")
        assert fsyncs == [] and syncs == []
    assert syncs == [1]
    store.put_bytes("a/3", b"three")  # outside a batch: fsynced (file and directory)
    assert len(fsyncs) == 2


def test_put_staged_moves_the_file_in(store, tmp_path):
    """Local stores stage inside themselves (a move is a rename); others upload and delete."""
    staging = store.staging_dir("7") or tmp_path / "staging"
    staging.mkdir(parents=True, exist_ok=True)
    data = b"de-identified bytes"
    sha = hashlib.sha256(data).hexdigest()
    key = content_key(sha)
    for _ in range(2):  # the second copy finds the object there and is only dropped
        staged = staging / f"{sha}.dcm"
        staged.write_bytes(data)
        info = store.put_staged(key, staged, sha256=sha)
        assert not staged.exists() and info.size == len(data) and info.sha256 == sha
    assert store.get_bytes(key) == data
    assert list(store.list("")) == [key]  # the staging area never shows in listings
