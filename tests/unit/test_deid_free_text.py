"""Identifying text in free-text attributes (issue #19, done-when 1).

Names (the patient's and another person's), record numbers, telephone numbers, addresses,
e-mail and dates go into ImageComments, AdditionalPatientHistory, StudyDescription,
SeriesDescription, RequestedProcedureDescription and a private text tag of a real file
(pydicom's CT_small.dcm) and of a synthetic radiograph. Under the default policy none of them is
in the stored bytes or in what goes to the database; with descriptors kept the detector removes
them while the clinical description survives.
"""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from bonebase.dicom import free_text
from bonebase.dicom.deid import Deidentifier
from bonebase.ingest.process import process_file
from bonebase.ingest.scan import FileEntry
from bonebase.storage import sha256_file
from tests.unit.dicom_samples import PHI, make_instance

SECRET = b"consortium-test-secret-0123456789"
SITE = "HX"
CLINICAL = "non-ossifying fibroma of distal tibia"
OTHER_PERSON = ("Dr. Hannelore Brandstetter", "Brandstetter")
# Identifying values that no attribute of the file holds: only the detector can find them.
FOREIGN = ("Brandstetter", "Hannelore", "555-1234", "+44 20 7946 0958", "Baker Street",
           "jane.roe@example.org", "03/04/2019", "17 March 2021", "448812")
TEXTS = {
    "ImageComments": f"{CLINICAL}; seen by {OTHER_PERSON[0]}, MRN 555-1234",
    "AdditionalPatientHistory": "{name} lives at 12 Baker Street, phone +44 20 7946 0958",
    "StudyDescription": f"{CLINICAL} {{pid}} 03/04/2019",
    "SeriesDescription": "AP knee, mail jane.roe@example.org",
    "RequestedProcedureDescription": "biopsy planned 17 March 2021, case #448812",
}


def _with_free_text(ds: pydicom.Dataset) -> pydicom.Dataset:
    name, pid = str(ds.PatientName).replace("^", " "), str(ds.PatientID)
    for keyword, text in TEXTS.items():
        setattr(ds, keyword, text.format(name=name, pid=pid))
    block = ds.private_block(0x0011, "HOSPITAL NOTES", create=True)
    block.add_new(0x01, "LO", f"{name} MRN 555-1234")
    return ds


def _real() -> pydicom.Dataset:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PatientName, ds.PatientID = "Kowalczyk^Zbigniew", "PID-8812734"
    return ds


def _synthetic() -> pydicom.Dataset:
    return make_instance()


def _own_values(ds: pydicom.Dataset) -> list[str]:
    name = str(ds.PatientName)
    return [*name.split("^")[:2], str(ds.PatientID)]


@pytest.fixture(scope="module")
def processed(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("freetext")
    out = {}
    for kind, make in (("real", _real), ("synthetic", _synthetic)):
        ds = _with_free_text(make())
        path = tmp / f"{kind}.dcm"
        ds.save_as(path, enforce_file_format=True)
        values = [v for v in _own_values(ds) if v] + list(FOREIGN)
        for keep in (False, True):
            deid = Deidentifier(SECRET, keep_descriptors=keep)
            staging = tmp / f"{kind}-{keep}"
            staging.mkdir()
            entry = FileEntry(path.name, path, path.stat().st_size, sha256_file(path))
            out[kind, keep] = (process_file(entry, deid=deid, site=SITE, staging=staging), values)
    return out


def _stored_text(result) -> str:
    assert result.reason is None, result.message
    data = Path(result.staged).read_bytes()
    db = " ".join(str(v) for v in result.extra.values())  # what accept() writes to the database
    return (data.decode("latin-1") + " " + db).casefold()


@pytest.mark.parametrize("kind", ["real", "synthetic"])
def test_default_removes_every_free_text_attribute(processed, kind) -> None:
    result, values = processed[kind, False]
    stored = _stored_text(result)
    for value in values:
        assert value.casefold() not in stored, value
    assert CLINICAL not in stored  # removed, as the Basic Profile does
    assert result.extra["study_description"] is None
    ds = pydicom.dcmread(result.staged)
    assert not any(ds.get(k) for k in TEXTS) and not any(t.is_private for t in ds.keys())
    assert "Clean Descriptors Option" not in ds.DeidentificationMethod
    assert {k: result.extra["free_text"].get(k) for k in TEXTS} == dict.fromkeys(TEXTS, "removed")


@pytest.mark.parametrize("kind", ["real", "synthetic"])
def test_kept_descriptors_pass_the_detector(processed, kind) -> None:
    result, values = processed[kind, True]
    stored = _stored_text(result)
    for value in values:
        assert value.casefold() not in stored, value
    ds = pydicom.dcmread(result.staged)
    assert CLINICAL in ds.StudyDescription and CLINICAL in ds.ImageComments
    assert result.extra["study_description"].startswith(CLINICAL)
    assert "knee" in ds.SeriesDescription.casefold()
    assert "Clean Descriptors Option" in ds.DeidentificationMethod
    assert result.extra["free_text"]["ImageComments"] == "cleaned"


@pytest.mark.parametrize("text", [
    CLINICAL, "KNEE AP", "T1 FSE 3 mm axial", "Osteosarcoma distal femur, Enneking IIB",
    "Giant cell tumour of proximal tibia, follow-up 2 years", "CT CHEST W CONTRAST 5mm",
    "Ewing sarcoma right humerus, 12 x 8 cm", "MR LEFT KNEE WITH CONTRAST",
    "Ewing Sarcoma of the femur", "Jones Fracture, Baker Cyst",
])
def test_clinical_text_survives(text: str) -> None:
    assert free_text.clean(text) == (text, [])


@pytest.mark.parametrize(("text", "kind"), [
    ("Dr. Miller reviewed", free_text.NAME), ("John Miller", free_text.NAME),
    ("Miller, John", free_text.NAME), ("MILLER^JOHN", free_text.NAME),
    ("MRN 555-1234", free_text.RECORD), ("ID: A12345", free_text.RECORD),
    ("call 030 1234 5678", free_text.PHONE), ("x@example.org", free_text.EMAIL),
    ("12 Baker Street", free_text.ADDRESS), ("Hauptstr. 5", free_text.ADDRESS),
    ("on 03/04/2019", free_text.DATE), ("4 March 2019", free_text.DATE),
    # first names of other scripts' locales, romanised, and without their accents
    ("seen with Wei Miller", free_text.NAME), ("Jorg Miller called", free_text.NAME),
    ("Miller, Yuki", free_text.NAME),
])
def test_detector_finds_each_kind(text: str, kind: str) -> None:
    cleaned, kinds = free_text.clean(text)
    assert kind in kinds, (text, kinds)
    assert not any(ch.isdigit() for ch in cleaned) and "Miller" not in cleaned


def test_patient_name_tolerant_of_case_and_order() -> None:
    deid = Deidentifier(SECRET, keep_descriptors=True)
    ds = make_instance()
    ds.ImageComments = f"{CLINICAL}, {PHI['family'].upper()} {PHI['given'].lower()}"
    out = deid.deidentify(ds, site=SITE).dataset
    assert out.ImageComments == CLINICAL
