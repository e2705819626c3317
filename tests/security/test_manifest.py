"""Hostile and broken manifests through the real ingest flow (issue #15, points 7, 8 and 11).

A tiny hand-made submission (three radiographs, one case each) in the layout hospitals use:
folders and files named after the PatientID and accession number, MRN-shaped case ids. Real
Prefect, PostgreSQL and local object store.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from bonebase.config import Settings
from bonebase.db.sites import add_site
from bonebase.formats import MANIFEST_COLUMNS

DX = "1.2.840.10008.5.1.4.1.1.1.1"
# (case_id, patient_id, accession_number): what hospitals really write, MRN-shaped case ids.
CASES = [
    ("MRN20240017", "PID884120", "ACC5531907"),
    ("MRN20240018", "PID884121", "ACC5531908"),
    ("MRN20240019", "PID884122", "ACC5531909"),
]
ROW = "{case},{patient},{accession},F,15,distal femur,osteosarcoma,malignant,XR,yes"


def _image(path: Path, patient: str, accession: str, n: int) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DX
    meta.MediaStorageSOPInstanceUID = f"1.2.826.0.1.3680043.99.{n}.3"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(path.name, {}, file_meta=meta, preamble=b"\x00" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = DX, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = f"1.2.826.0.1.3680043.99.{n}.1"
    ds.SeriesInstanceUID = f"1.2.826.0.1.3680043.99.{n}.2"
    ds.PatientID, ds.AccessionNumber, ds.PatientName = patient, accession, f"Doe^Jane{n}"
    ds.PatientSex, ds.Modality, ds.StudyDate = "F", "DX", "20240105"
    ds.BurnedInAnnotation = "NO"
    ds.Rows = ds.Columns = 128
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelSpacing = [0.2, 0.2]
    ds.PixelData = np.random.default_rng(n).integers(0, 4096, (128, 128), "uint16").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def submission(root: Path, rows: list[bytes]) -> Path:
    """A submission folder: one image per case under PatientID/Accession/, the given rows."""
    for n, (_, patient, accession) in enumerate(CASES):
        _image(root / patient / accession / f"{patient}_{accession}.dcm", patient, accession, n)
    header = ",".join(MANIFEST_COLUMNS).encode()
    (root / "manifest.csv").write_bytes(b"\n".join([header, *rows]) + b"\n")
    return root


def rows() -> list[bytes]:
    return [ROW.format(case=c, patient=p, accession=a).encode() for c, p, a in CASES]


@pytest.fixture
def settings(tmp_path, db_url, db) -> Settings:
    s = Settings(home=tmp_path / "home", database_url=db_url, secret="t" * 40, env="test")
    s.ensure_home()
    add_site(db, code="HX", name="Hospital HX")
    db.commit()
    return s


def _ingest(settings: Settings, folder: Path) -> dict:
    from flows.ingest import ingest_submission

    return ingest_submission("HX", str(folder), settings=settings)


def _status(db, receipt: dict) -> str:
    return db.execute("SELECT status FROM submissions WHERE id = %s",
                      (receipt["submission"],)).fetchone()["status"]


def test_nul_in_a_manifest_cell_quarantines_that_row_only(settings, db, tmp_path,
                                                           prefect_harness):
    # Issue #15 point 7: a NUL committed the case, then broke the receipt's database write and
    # left the submission `running`.
    lines = rows()
    lines[1] = lines[1].replace(b"distal femur", b"distal\x00femur")
    receipt = _ingest(settings, submission(tmp_path / "sub", lines))
    assert _status(db, receipt) == "done"
    row_items = [q for q in receipt["quarantine"] if q["row"] == 2 and q["file"] is None]
    assert [q["reason"] for q in row_items] == ["control_character"]
    assert "row 2" in row_items[0]["message"] and "location" in row_items[0]["message"]
    assert receipt["counts"]["cases_accepted"] == 2
    assert {q["reason"] for q in receipt["quarantine"]} == {"control_character", "case_rejected"}
    stored = db.execute("SELECT receipt::text AS r FROM submissions").fetchone()["r"]
    assert "\\u0000" not in stored and Path(receipt["paths"]["json"]).exists()
    items = db.execute("SELECT message, case_ref FROM quarantine_items").fetchall()
    assert not any("\x00" in (i["message"] or "") + (i["case_ref"] or "") for i in items)


def test_encoding_and_ragged_rows_reach_the_receipt(settings, db, tmp_path, prefect_harness):
    # Issue #15 point 8: a non-UTF-8 row made the whole file Latin-1 with a warning on stderr
    # only; an extra field shifted every column silently.
    lines = rows()
    lines[0] = lines[0].replace(b"distal femur", "fémur distal".encode("cp1252"))
    lines[2] = lines[2] + b",left knee"
    receipt = _ingest(settings, submission(tmp_path / "sub", lines))
    assert _status(db, receipt) == "done"
    by_row = {q["row"]: q for q in receipt["quarantine"] if q["file"] is None}
    assert by_row[1]["reason"] == "not_utf8" and "UTF-8" in by_row[1]["fix"] + by_row[1]["message"]
    assert by_row[3]["reason"] == "ragged_row" and "row 3" in by_row[3]["message"]
    assert receipt["counts"]["cases_accepted"] == 1
    [warning] = [w for w in receipt["warnings"] if w["reason"] == "not_utf8"]
    assert re.search(r"offset \d+", warning["message"])


def test_data_docs_hold_no_identifying_value(settings, db, tmp_path, prefect_harness):
    # Issue #15 point 11: Data Docs pages listed the raw paths (PatientID/Accession folders)
    # and case ids (MRNs) of failing records.
    lines = rows()
    lines[0] = lines[0].replace(b",15,", b",214,")  # a failing row: its case id is rendered
    folder = submission(tmp_path / "sub", lines)
    stray = CASES[2]  # an image whose row is missing: its path is rendered
    # ... in a folder named after the patient (its PatientName is Doe^Jane9)
    _image(folder / stray[1] / "Jane9_Doe" / f"{stray[1]}_ACC0000001.dcm", stray[1],
           "ACC0000001", 9)
    receipt = _ingest(settings, folder)
    docs = settings.home / "datadocs" / str(receipt["submission"])
    files = [p for p in docs.rglob("*") if p.is_file()]
    assert any(p.suffix == ".html" for p in files) and receipt["data_docs"]
    text = b"".join(p.read_bytes() for p in files)
    assert b"impossible_age" in text or b"age_years" in text  # the failures are in the pages
    values = {v for case in CASES for v in case} | {"ACC0000001", "Jane9"}
    leaks = sorted(v for v in values if v.encode() in text)
    assert not leaks, f"Data Docs hold {leaks}"


ROOT = Path(__file__).resolve().parents[2]
# Where reason codes are born: suite metadata, reader/limit errors, quarantine items, review
# flags, the manifest reader's own problems, module constants of the ingest limits.
_CODE_PATTERNS = [
    r'meta\(\s*"(?:error|warning)",\s*"([a-z0-9_]+)"',
    r'reason\s*=\s*"([a-z0-9_]+)"',
    r'\.reason(?:,\s*[\w.]+)?\s*=\s*"([a-z0-9_]+)"',
    r'QuarantineItem\(\s*"([a-z0-9_]+)"',
    r'needs_review\.append\(\s*f?"([a-z0-9_]+)',
    r'_(?:problem|fault)\(\s*"([a-z0-9_]+)"',
]


def reason_codes() -> set[str]:
    """Every reason code the code base can put in a receipt or the quarantine."""
    from bonebase.ingest.receipt import FIXES
    from validation.messages import _TEMPLATES

    codes = set(FIXES) | set(_TEMPLATES)
    for folder in ("bonebase", "validation", "flows"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text()
            for pattern in _CODE_PATTERNS:
                codes |= set(re.findall(pattern, text))
    # Module constants naming codes (the ingest limits, the store's neutral "held" code).
    for path in (ROOT / "bonebase" / "ingest").glob("*.py"):
        codes |= set(re.findall(r'^[A-Z_]+ = "([a-z0-9_]+)"', path.read_text(), re.M))
    return codes


def test_every_reason_code_is_documented():
    # Issue #15 point 8: `unparseable_date:...` (and others) had no line in docs/manifest.md.
    docs = (ROOT / "docs" / "manifest.md").read_text()
    codes = reason_codes()
    assert {"unparseable_date", "ragged_row", "not_utf8", "case_rejected"} <= codes
    undocumented = sorted(c for c in codes if not re.search(rf"`{c}[`:]", docs))
    assert not undocumented, f"reason codes missing from docs/manifest.md: {undocumented}"
