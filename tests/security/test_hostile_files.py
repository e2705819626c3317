"""Hostile files in a submission (issue #15, points 3-5), each test written as the attack.

Links to a planted key and to /etc/passwd, a manifest that is a link to the key, DICOM files
with sequences nested 5,000 levels deep, a zip entry that expands 1,000-fold, a zip whose sizes
lie, a deflated DICOM claiming 16,000 x 16,000 pixels. Through the real ingest flow (Prefect,
PostgreSQL, the local object store) where it is the flow's behaviour that is attacked: each
hostile file costs one quarantine item with its reason, its bytes neither read nor kept, and the
rest of the submission is accepted. Peak memory is measured in a subprocess (ru_maxrss).
"""

from __future__ import annotations

import io
import json
import os
import stat
import struct
import subprocess
import sys
import textwrap
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

from bonebase.config import Settings
from bonebase.db.sites import add_site
from bonebase.errors import InputError
from bonebase.formats import MANIFEST_COLUMNS
from bonebase.ingest.scan import find_manifest, scan_files
from bonebase.ingest.source import as_folder, extract_zip

ROOT = Path(__file__).resolve().parents[2]
DX = "1.2.840.10008.5.1.4.1.1.1.1"
CASES = [("HX-0001", "PID884120", "ACC5531907"), ("HX-0002", "PID884121", "ACC5531908")]
ROW = "{case},{patient},{accession},F,15,distal femur,osteosarcoma,malignant,XR,yes"
PLANTED = "dev-" + "5ec7e7" * 10  # the consortium key an attacker wants to read
MIB = 1 << 20


def _dataset(patient: str, accession: str, n: int, *, rows: int = 128, cols: int = 128,
             syntax: str = ExplicitVRLittleEndian) -> FileDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DX
    meta.MediaStorageSOPInstanceUID = f"1.2.826.0.1.3680043.98.{n}.3"
    meta.TransferSyntaxUID = syntax
    ds = FileDataset(f"{n}.dcm", {}, file_meta=meta, preamble=b"\x00" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = DX, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = f"1.2.826.0.1.3680043.98.{n}.1"
    ds.SeriesInstanceUID = f"1.2.826.0.1.3680043.98.{n}.2"
    ds.PatientID, ds.AccessionNumber, ds.PatientName = patient, accession, f"Doe^Jane{n}"
    ds.PatientSex, ds.Modality, ds.StudyDate, ds.BurnedInAnnotation = "F", "DX", "20240105", "NO"
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = rows, cols, 1, \
        "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelSpacing = [0.2, 0.2]
    return ds


def _image(path: Path, patient: str, accession: str, n: int) -> None:
    ds = _dataset(patient, accession, n)
    ds.PixelData = np.random.default_rng(n).integers(0, 4096, (128, 128), "uint16").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def _submission(root: Path) -> Path:
    """Two good cases, one radiograph each, under PatientID/Accession/, and their manifest."""
    for n, (_, patient, accession) in enumerate(CASES):
        _image(root / patient / accession / "IMG1.dcm", patient, accession, n)
    lines = [",".join(MANIFEST_COLUMNS)] + [ROW.format(case=c, patient=p, accession=a)
                                            for c, p, a in CASES]
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    return root


def _nested(levels: int, *, defined: bool = False) -> bytes:
    """A DX file (written by pydicom) with a Content Sequence nested ``levels`` deep before
    Pixel Data. pydicom's own writer recurses per level, so the nesting is encoded here: items
    and sequences of undefined length (~24 bytes a level), or of defined length."""
    ds = _dataset("PID999001", "ACC999001", 90)
    ds.PixelData = bytes(128 * 128 * 2)
    buf = DicomBytesIO()
    ds.save_as(buf, enforce_file_format=True)
    raw = buf.getvalue()
    cut = raw.index(struct.pack("<HH", 0x7FE0, 0x0010))
    if defined:
        nest = b""  # the innermost item's content
        for _ in range(levels):
            item = struct.pack("<HHI", 0xFFFE, 0xE000, len(nest)) + nest
            nest = struct.pack("<HH2sHI", 0x0040, 0xA730, b"SQ", 0, len(item)) + item
    else:
        down = struct.pack("<HH2sHI", 0x0040, 0xA730, b"SQ", 0, 0xFFFFFFFF) + struct.pack(
            "<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
        up = struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
        nest = down * levels + up * levels
    return raw[:cut] + nest + raw[cut:]


def _deflated(claim: tuple[int, int], pixel_bytes: int) -> bytes:
    """A Deflated Explicit VR Little Endian DX file whose header claims ``claim`` (rows, cols)
    and whose deflate stream holds ``pixel_bytes`` of zeros as Pixel Data (~1000:1)."""
    ds = _dataset("PID999002", "ACC999002", 91, rows=claim[0], cols=claim[1],
                  syntax=DeflatedExplicitVRLittleEndian)
    head = DicomBytesIO()
    head.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(head, ds.file_meta, enforce_standard=True)
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    write_dataset(body, ds)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    out = [deflate.compress(body.getvalue()),
           deflate.compress(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, pixel_bytes)),
           deflate.flush(zlib.Z_FULL_FLUSH)]
    # After a full flush the compressor starts afresh, so one MiB of zeros compresses to the
    # same block every time: the block is made once and repeated (a 512 MB stream in 20 ms).
    block = deflate.compress(bytes(MIB)) + deflate.flush(zlib.Z_FULL_FLUSH)
    out.append(block * (pixel_bytes // MIB))
    out.append(deflate.compress(bytes(pixel_bytes % MIB)) + deflate.flush())
    return head.getvalue() + b"".join(out)


@pytest.fixture
def settings(tmp_path, db_url, db) -> Settings:
    s = Settings(home=tmp_path / "home", database_url=db_url, secret=PLANTED, env="test")
    s.ensure_home()
    s.secret_file.write_text(PLANTED + "\n")  # as `bonebase init` leaves it
    add_site(db, code="HX", name="Hospital HX")
    db.commit()
    return s


def _ingest(settings: Settings, source: Path) -> dict:
    from flows.ingest import ingest_submission

    return ingest_submission("HX", str(source), settings=settings)


def _items(db) -> dict[str, dict]:
    return {r["file"]: r for r in db.execute(
        "SELECT file, reason, message, object_key FROM quarantine_items WHERE file IS NOT NULL")}


def _accepted_everything_else(db, receipt: dict) -> None:
    status = db.execute("SELECT status FROM submissions WHERE id = %s",
                        (receipt["submission"],)).fetchone()["status"]
    assert status == "done"
    assert receipt["counts"]["cases_accepted"] == len(CASES)
    assert receipt["counts"]["files_accepted"] == len(CASES)


def _stored_bytes(home: Path) -> list[bytes]:
    return [p.read_bytes() for p in home.rglob("*")
            if p.is_file() and p.name != "secret.key" and p.stat().st_size < 64 * MIB]


def test_links_to_the_key_and_to_etc_passwd_are_quarantined_unread(settings, db, tmp_path,
                                                                   prefect_harness):
    # Point 3: links were followed; their targets' bytes were copied into quarantine.
    sub = _submission(tmp_path / "sub")
    # (Not in the PatientID folders, whose names receipts redact.)
    (sub / "extra").mkdir()
    (sub / "extra" / "key.dcm").symlink_to(settings.secret_file)
    (sub / "extra" / "passwd").symlink_to("/etc/passwd")
    (sub / "home").symlink_to(settings.home, target_is_directory=True)
    receipt = _ingest(settings, sub)
    _accepted_everything_else(db, receipt)
    items = _items(db)
    assert {f: i["reason"] for f, i in items.items()} == {
        "extra/key.dcm": "symbolic_link", "extra/passwd": "symbolic_link",
        "home": "symbolic_link"}
    assert all("symbolic link" in i["message"] for i in items.values())
    passwd = Path("/etc/passwd").read_bytes()[:32]
    for blob in _stored_bytes(settings.home):
        assert PLANTED.encode() not in blob and passwd not in blob


def test_a_manifest_that_links_to_the_key_is_refused_without_echoing_it(settings, tmp_path,
                                                                        prefect_harness, caplog):
    # Point 3: the manifest's "columns" (the key) were printed in the error and Prefect's log.
    sub = _submission(tmp_path / "sub")
    (sub / "manifest.csv").unlink()
    (sub / "manifest.csv").symlink_to(settings.secret_file)
    with pytest.raises(InputError) as err:
        _ingest(settings, sub)
    assert "symbolic link" in str(err.value)
    assert PLANTED not in str(err.value) and PLANTED not in caplog.text


def test_deeply_nested_sequences_cost_one_quarantine_item(settings, db, tmp_path,
                                                          prefect_harness):
    # Point 4: a RecursionError aborted the whole submission (running, no receipt).
    sub = _submission(tmp_path / "sub")
    (sub / "PID999001").mkdir()
    (sub / "PID999001" / "deep.dcm").write_bytes(_nested(5000))
    # Defined lengths: pydicom parses these lazily, so the depth is met only by the walks
    # that follow the read (de-identification, encoders, residue scan).
    (sub / "PID999001" / "deep-defined.dcm").write_bytes(_nested(400, defined=True))
    receipt = _ingest(settings, sub)
    _accepted_everything_else(db, receipt)
    assert {f: i["reason"] for f, i in _items(db).items()} == {
        "PID999001/deep.dcm": "too_deeply_nested",
        "PID999001/deep-defined.dcm": "too_deeply_nested"}
    assert Path(receipt["paths"]["json"]).exists()


def test_zip_bomb_entries_are_refused_and_quarantine_stays_small(settings, db, tmp_path,
                                                                  prefect_harness):
    # Point 5: a 2.4 MB zip with a 1 GiB entry was extracted whole and kept in quarantine. Here
    # a 64 MiB entry of zeros (~64 kB zipped, 1,000:1) against the default ratio limit of 200,
    # and an entry with symlink mode bits pointing at the key.
    sub = _submission(tmp_path / "sub")
    zpath = tmp_path / "sub.zip"
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(p for p in sub.rglob("*") if p.is_file()):
            zf.write(path, path.relative_to(sub).as_posix())
        with zf.open("extra/bomb.dcm", "w") as entry:
            for _ in range(64):
                entry.write(bytes(MIB))
        link = zipfile.ZipInfo("extra/key.dcm")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, str(settings.secret_file))
    assert zpath.stat().st_size < 200_000
    receipt = _ingest(settings, zpath)
    _accepted_everything_else(db, receipt)
    items = _items(db)
    assert {f: i["reason"] for f, i in items.items()} == {
        "extra/bomb.dcm": "decompression_bomb", "extra/key.dcm": "symbolic_link"}
    quarantine = settings.home / "objects" / "quarantine"
    kept = sum(p.stat().st_size for p in quarantine.rglob("*") if p.is_file()) \
        if quarantine.exists() else 0
    assert kept < MIB


def _zip_with_lying_entry(path: Path, *, fix_crc: bool) -> int:
    """A zip whose entry 'big.dcm' holds 32 MiB of zeros but declares 4,000 bytes (a ratio of
    well under 200); with ``fix_crc`` the CRC is that of the declared prefix. Returns the
    declared size."""
    declared = 4000
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.csv", "case_id\n")
        zf.writestr("big.dcm", bytes(32 * MIB))
        zf.writestr("small.dcm", b"x" * 100)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("big.dcm")
    crc = zlib.crc32(bytes(declared)) if fix_crc else info.CRC
    # Central directory record and local header: CRC, compressed and uncompressed sizes.
    central = data.index(b"PK\x01\x02")
    while data[central + 46:central + 46 + struct.unpack_from("<H", data, central + 28)[0]] \
            != b"big.dcm":
        central = data.index(b"PK\x01\x02", central + 4)
    struct.pack_into("<III", data, central + 16, crc, info.compress_size, declared)
    struct.pack_into("<III", data, info.header_offset + 14, crc, info.compress_size, declared)
    path.write_bytes(bytes(data))
    return declared


@pytest.mark.parametrize("fix_crc", [False, True])
def test_zip_entry_that_lies_about_its_size_expands_no_further(tmp_path, fix_crc):
    # Point 5: the declared sizes pass every limit; the bytes must be counted while extracting.
    zpath = tmp_path / "lying.zip"
    declared = _zip_with_lying_entry(zpath, fix_crc=fix_crc)
    dest = tmp_path / "out"
    dest.mkdir()
    refused = extract_zip(zpath, dest)
    written = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    assert written <= declared + 100 + len("case_id\n")
    assert (dest / "small.dcm").read_bytes() == b"x" * 100
    if not fix_crc:  # what was read does not match the CRC: refused, nothing kept
        assert [(r.rel, r.reason) for r in refused] == [("big.dcm", "corrupt_file")]
        assert not (dest / "big.dcm").exists()


def test_zip_limits_on_size_and_total_come_from_the_settings(tmp_path, monkeypatch):
    # Point 5: BONEBASE_MAX_FILE_MB and BONEBASE_MAX_ZIP_TOTAL_MB cap what is written.
    from bonebase.config import get_settings

    zpath = tmp_path / "sub.zip"
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("manifest.csv", "case_id\n")
        for name in ("a.dcm", "b.dcm", "c.dcm"):
            zf.writestr(name, os.urandom(MIB))  # incompressible: ratio 1
        zf.writestr("big.dcm", os.urandom(3 * MIB))
    monkeypatch.setenv("BONEBASE_MAX_FILE_MB", "2")
    monkeypatch.setenv("BONEBASE_MAX_ZIP_TOTAL_MB", "2.5")
    get_settings.cache_clear()
    try:
        with as_folder(str(zpath)) as folder:
            entries = {e.rel: e for e in scan_files(folder, find_manifest(folder))}
            on_disk = sorted(p.name for p in folder.rglob("*.dcm"))
    finally:
        get_settings.cache_clear()
    assert {rel: e.refused for rel, e in entries.items()} == {
        "a.dcm": None, "b.dcm": None, "c.dcm": "decompression_bomb", "big.dcm": "file_too_large"}
    assert on_disk == ["a.dcm", "b.dcm"]


def test_symlink_entry_named_manifest_refuses_the_zip(tmp_path):
    zpath = tmp_path / "sub.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        link = zipfile.ZipInfo("manifest.csv")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
        zf.writestr("a.dcm", b"x")
    with as_folder(str(zpath)) as folder, pytest.raises(InputError, match="symbolic_link"):
        find_manifest(folder)


def _peak(script: str) -> dict:
    """Run ``script`` in a fresh interpreter; its last line of output, as JSON."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True,
                          text=True, check=True, cwd=ROOT, timeout=120)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(("name", "claim", "pixel_bytes", "reason"), [
    # 16,000 x 16,000 x 16 bit: 512 MB inflated from ~500 kB; 2.6 GB of memory at ingest.
    ("claims-16000.dcm", (16_000, 16_000), 16_000 * 16_000 * 2, "too_many_pixels"),
    # A header that claims a small image over a stream that inflates to 256 MB.
    ("lies-64.dcm", (64, 64), 256 * MIB, "decompression_bomb"),
])
def test_deflated_bomb_is_refused_in_bounded_memory(tmp_path, name, claim, pixel_bytes, reason):
    path = tmp_path / name
    path.write_bytes(_deflated(claim, pixel_bytes))
    assert path.stat().st_size < 600_000
    staging = tmp_path / "staging"
    staging.mkdir()
    result = _peak(f"""
        import json, resource
        from pathlib import Path
        from bonebase.dicom.deid import Deidentifier
        from bonebase.ingest.process import process_file
        from bonebase.ingest.scan import FileEntry
        import validation.image_qc  # imported before the baseline: it is not the file's cost
        src = Path({str(path)!r})
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        r = process_file(FileEntry({name!r}, src, src.stat().st_size, "0" * 64),
                         deid=Deidentifier(b"k" * 40), site="HX", staging=Path({str(staging)!r}),
                         max_pixels=120_000_000)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({{"growth_kb": peak - base, "reason": r.reason, "message": r.message}}))
    """)
    assert result["reason"] == reason, result["message"]
    assert result["growth_kb"] * 1024 < 48 * MIB, f"peak memory grew by {result['growth_kb']} kB"
    assert name in result["message"] and "\n" not in result["message"]


def test_deflated_bomb_in_a_submission_is_one_quarantine_item(settings, db, tmp_path,
                                                              prefect_harness):
    # Point 5 through the flow, at the default BONEBASE_MAX_PIXELS (120 million).
    sub = _submission(tmp_path / "sub")
    (sub / "PID999002").mkdir()
    (sub / "PID999002" / "huge.dcm").write_bytes(_deflated((16_000, 16_000), 16_000 * 16_000 * 2))
    receipt = _ingest(settings, sub)
    _accepted_everything_else(db, receipt)
    assert {f: i["reason"] for f, i in _items(db).items()} == {
        "PID999002/huge.dcm": "too_many_pixels"}


def test_pixel_limit_applies_to_read_full(tmp_path):
    # The same check for the other readers (web upload, model server): from the header.
    from bonebase.dicom.read import DicomReadError, read_full

    data = _deflated((16_000, 16_000), 16_000 * 16_000 * 2)
    with pytest.raises(DicomReadError) as err:
        read_full(data, max_pixels=120_000_000)
    assert err.value.reason == "too_many_pixels"
    ok = _dataset("P", "A", 5)
    ok.PixelData = bytes(128 * 128 * 2)
    buf = io.BytesIO()
    ok.save_as(buf, enforce_file_format=True)
    assert read_full(buf.getvalue(), max_pixels=128 * 128).Rows == 128


def test_cli_validate_refuses_a_manifest_link_without_printing_the_key(tmp_path):
    # Point 3, on the command line: `bonebase validate` printed the key as "unexpected columns".
    home = tmp_path / "home"
    home.mkdir()
    (home / "secret.key").write_text(PLANTED + "\n")
    sub = _submission(tmp_path / "sub")
    (sub / "manifest.csv").unlink()
    (sub / "manifest.csv").symlink_to(home / "secret.key")
    env = {**os.environ, "BONEBASE_HOME": str(home), "COLUMNS": "200"}
    done = subprocess.run([sys.executable, "-m", "bonebase.cli", "validate", str(sub), "--site",
                           "HX"], capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert done.returncode != 0
    assert "symbolic link" in done.stdout + done.stderr
    assert PLANTED not in done.stdout + done.stderr and "Traceback" not in done.stderr


def test_a_file_swapped_for_a_link_after_the_scan_is_not_read(tmp_path):
    # Point 3, the race: scan saw a plain file, which became a link to the key before it was
    # processed; the open refuses to follow it.
    from bonebase.dicom.deid import Deidentifier
    from bonebase.ingest.process import process_file

    sub = _submission(tmp_path / "sub")
    entries = scan_files(sub, find_manifest(sub))
    target = entries[0].path
    target.unlink()
    target.symlink_to(tmp_path / "sub" / entries[1].rel)  # a readable DICOM file: not opened
    result = process_file(entries[0], deid=Deidentifier(b"k" * 40), site="HX",
                          staging=tmp_path / "staging", max_pixels=10**8)
    assert (result.reason, result.record, result.staged) == ("symbolic_link", None, None)


def test_pipes_and_devices_in_a_folder_are_refused_unread(tmp_path):
    # A FIFO would block the reader forever; it is listed, refused, never opened.
    sub = _submission(tmp_path / "sub")
    os.mkfifo(sub / "pipe.dcm")
    entries = {e.rel: e.refused for e in scan_files(sub, find_manifest(sub))}
    assert entries["pipe.dcm"] == "non_dicom"
    assert sum(r is None for r in entries.values()) == len(CASES)


def test_a_header_of_countless_empty_items_is_refused(tmp_path, monkeypatch):
    # Point 4's sibling: 500,000 empty items (8 MB) took 680 MB and minutes to de-identify, and
    # were stored. The limit is lowered here so that the file stays small.
    from bonebase.dicom import bounded
    from bonebase.dicom.deid import Deidentifier
    from bonebase.ingest.process import process_file
    from bonebase.ingest.scan import FileEntry

    monkeypatch.setattr(bounded, "MAX_ITEMS", 1000)
    raw = _nested(1)  # one sequence: its item is repeated
    item = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF) + struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
    path = tmp_path / "items.dcm"
    path.write_bytes(raw.replace(item, item * 5000, 1))
    result = process_file(FileEntry("items.dcm", path, path.stat().st_size, "0" * 64),
                          deid=Deidentifier(b"k" * 40), site="HX", staging=tmp_path,
                          max_pixels=10**8)
    assert result.reason == "corrupt_file" and "1,000 items" in result.message
    assert result.staged is None


def test_a_codestream_claiming_more_than_its_header_is_not_decoded(tmp_path):
    # Point 5, compressed: QC decodes a radiograph's first frame, and the J2K decoder allocates
    # what the codestream claims. A 64 x 64 header around a codestream of 20,000 x 20,000 (a few
    # hundred bytes) took 2.3 GB at ingest on main.
    import openjpeg
    from pydicom.encaps import encapsulate

    j2k = bytearray(openjpeg.encode(np.zeros((64, 64), np.uint16), bits_stored=12))
    assert j2k[2:4] == b"\xff\x51"  # SIZ: image size at bytes 8..16, tile size at 24..32
    j2k[8:16] = j2k[24:32] = struct.pack(">II", 20_000, 20_000)
    ds = _dataset("PID999003", "ACC999003", 92, rows=64, cols=64,
                  syntax="1.2.840.10008.1.2.4.90")  # JPEG 2000 Lossless
    ds.PixelData = encapsulate([bytes(j2k)])
    ds["PixelData"].VR = "OB"
    path = tmp_path / "j2k.dcm"
    ds.save_as(path, enforce_file_format=True)
    result = _peak(f"""
        import json, resource
        from pathlib import Path
        from bonebase.dicom.deid import Deidentifier
        from bonebase.ingest.process import process_file
        from bonebase.ingest.scan import FileEntry
        import validation.image_qc  # imported before the baseline: it is not the file's cost
        src = Path({str(path)!r})
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        r = process_file(FileEntry("j2k.dcm", src, src.stat().st_size, "0" * 64),
                         deid=Deidentifier(b"k" * 40), site="HX", staging=Path({str(tmp_path)!r}),
                         max_pixels=120_000_000)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({{"growth_kb": peak - base, "reason": r.reason, "message": r.message}}))
    """)
    assert result["reason"] == "corrupt_file"
    assert "20000 x 20000" in result["message"] and "not decoded" in result["message"]
    assert result["growth_kb"] * 1024 < 48 * MIB, f"peak memory grew by {result['growth_kb']} kB"


@pytest.mark.parametrize("error", [MemoryError, RecursionError, KeyError, AssertionError])
def test_any_failure_inside_one_file_is_that_files_quarantine_item(tmp_path, monkeypatch, error):
    # Point 4: whatever pydicom or de-identification raises on one file (MemoryError included)
    # is that file's reason, never the batch's exception; the message quotes no exception text.
    from bonebase.dicom.deid import Deidentifier
    from bonebase.ingest.process import process_batch

    sub = _submission(tmp_path / "sub")
    entries = scan_files(sub, find_manifest(sub))
    real = Deidentifier.deidentify

    def failing(self, ds, **kwargs):
        if ds.PatientID == CASES[0][1]:
            raise error(PLANTED)
        return real(self, ds, **kwargs)

    monkeypatch.setattr(Deidentifier, "deidentify", failing)
    results = process_batch(entries, secret=b"k" * 40, uid_root="2.25", site="HX",
                            staging=tmp_path / "staging", max_pixels=10**8)
    reasons = [r.reason for r in results]
    expected = "too_deeply_nested" if error is RecursionError else "corrupt_file"
    assert reasons == [expected, None]
    assert PLANTED not in results[0].message and results[0].record is None


def test_the_flow_applies_its_own_settings_limits(settings, db, tmp_path, prefect_harness):
    # Limits given to the flow in its settings (not only through BONEBASE_MAX_* in the
    # environment) reach the scan and the worker processes: 128 x 128 images over 10,000 pixels.
    sub = _submission(tmp_path / "sub")
    receipt = _ingest(settings.model_copy(update={"max_pixels": 10_000}), sub)
    assert {i["reason"] for i in _items(db).values()} == {"too_many_pixels"}
    assert receipt["counts"]["files_accepted"] == 0


def test_validate_lists_links_refused_unread_as_submit_does(tmp_path):
    # Point 3 in `bonebase validate` (validation.inputs.load_headers): it followed links, so a
    # link to an image outside the submission was read as one of its files.
    from validation.inputs import load_headers

    sub = _submission(tmp_path / "sub")
    outside = tmp_path / "elsewhere.dcm"
    _image(outside, "PID000999", "ACC000999", 9)
    (sub / "PID000999").mkdir()
    (sub / "PID000999" / "IMG1.dcm").symlink_to(outside)
    (sub / "passwd").symlink_to("/etc/passwd")
    headers, faults = load_headers(sub, qc=False)
    assert sorted(headers["file"]) == sorted(f"{p}/{a}/IMG1.dcm" for _, p, a in CASES)
    assert {(f.file, f.reason) for f in faults} == {
        ("PID000999/IMG1.dcm", "symbolic_link"), ("passwd", "symbolic_link")}
    assert not any("root:" in f.message for f in faults)


def test_an_unreadable_date_is_held_for_review_with_its_own_message(tmp_path):
    # Point 8: `unparseable_date:<Keyword>` said "the image may show identifying text".
    from bonebase.dicom.deid import Deidentifier
    from bonebase.ingest.process import process_file
    from bonebase.ingest.receipt import fix_for
    from bonebase.ingest.scan import FileEntry

    path = tmp_path / "IMG1.dcm"
    ds = _dataset("PID000777", "ACC000777", 7)
    ds.SeriesDate = "2024-13-45"
    ds.PixelData = np.zeros((128, 128), "uint16").tobytes()
    ds.save_as(path, enforce_file_format=True)
    entry = FileEntry("IMG1.dcm", path, path.stat().st_size, "0" * 64)
    result = process_file(entry, deid=Deidentifier(PLANTED.encode()), site="HX",
                          staging=tmp_path / "staging")
    assert result.reason == "unparseable_date:SeriesDate"
    assert "SeriesDate cannot be read" in result.message
    assert "identifying text" not in result.message
    assert "date" in fix_for(result.reason)
