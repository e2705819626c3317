"""Where submissions come from: folders, zips (path traversal refused), S3 prefixes."""

import zipfile

import pytest

from bonebase.errors import InputError
from bonebase.ingest.scan import find_manifest, scan_files, submission_hash
from bonebase.ingest.source import as_folder


def _submission(root):
    (root / "a").mkdir(parents=True)
    (root / "manifest.csv").write_text("case_id\n1\n")
    (root / "a" / "x.dcm").write_bytes(b"x" * 10)
    (root / "b.dcm").write_bytes(b"y" * 5)
    return root


def test_folder_scan_and_hash(tmp_path):
    root = _submission(tmp_path / "s")
    with as_folder(str(root)) as folder:
        manifest = find_manifest(folder)
        entries = scan_files(folder, manifest)
    assert [e.rel for e in entries] == ["a/x.dcm", "b.dcm"]
    first = submission_hash(manifest, entries)
    (root / "b.dcm").write_bytes(b"z" * 5)
    assert submission_hash(manifest, scan_files(root, manifest)) != first


def test_zip_is_extracted(tmp_path):
    root = _submission(tmp_path / "s")
    zpath = tmp_path / "sub.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for p in root.rglob("*"):
            if p.is_file():
                zf.write(p, p.relative_to(root).as_posix())
    with as_folder(str(zpath)) as folder:
        assert sorted(e.rel for e in scan_files(folder, find_manifest(folder))) == ["a/x.dcm", "b.dcm"]
        extracted = folder
    assert not extracted.exists()  # temporary copy removed


@pytest.mark.parametrize("bad", ["../evil.dcm", "/etc/evil.dcm", "a/../../evil.dcm"])
def test_zip_path_traversal_is_refused_whole(tmp_path, bad):
    zpath = tmp_path / "sub.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("manifest.csv", "case_id\n")
        zf.writestr(bad, b"x")
    with pytest.raises(InputError, match="outside the submission folder"):
        with as_folder(str(zpath)):
            pass
    assert not (tmp_path / "evil.dcm").exists()


def test_empty_folder_names_the_manifest(tmp_path):
    with pytest.raises(InputError, match="no manifest.csv"):
        find_manifest(tmp_path)


def test_missing_source_and_non_zip_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        with as_folder(str(tmp_path / "nope")):
            pass
    f = tmp_path / "x.txt"
    f.write_text("hi")
    with pytest.raises(InputError, match="not a zip"):
        with as_folder(str(f)):
            pass


@pytest.mark.s3
def test_s3_prefix_is_downloaded(tmp_path, s3_bucket):
    from bonebase.storage import open_store

    store = open_store(s3_bucket.url, endpoint_url=s3_bucket.endpoint_url)
    store.put_bytes("manifest.csv", b"case_id\n")
    store.put_bytes("img/1.dcm", b"abc")
    with as_folder(s3_bucket.url, endpoint_url=s3_bucket.endpoint_url) as folder:
        assert [e.rel for e in scan_files(folder, find_manifest(folder))] == ["img/1.dcm"]


def test_file_that_disappears_mid_run_is_reported_not_fatal(tmp_path):
    from bonebase.dicom.deid import Deidentifier
    from bonebase.ingest.process import process_file
    from bonebase.ingest.scan import FileEntry

    entry = FileEntry("gone/IMG1.dcm", tmp_path / "gone" / "IMG1.dcm", 10, "0" * 64)
    result = process_file(entry, deid=Deidentifier(b"k" * 32), site="HX", staging=tmp_path)
    assert result.reason == "missing_file"
    assert "disappeared" in result.message and result.staged is None
