"""A hospital gateway's files (issue #18): central ingest keeps their pseudonyms, dates and UIDs
when, and only when, they carry a valid mark under the consortium key."""

from __future__ import annotations

import pydicom

from bonebase.dicom.deid import Deidentifier
from bonebase.dicom.deid_mark import gateway_mark
from tests.unit.dicom_samples import PHI, make_instance

SECRET = b"consortium-test-secret-0123456789"
SITE = "KSNW"


def _on_the_gateway(deid: Deidentifier, *, key: bytes = SECRET) -> pydicom.Dataset:
    """What a gateway sends: the profile applied on site, then its mark added."""
    out = deid.deidentify(make_instance(), site=SITE).dataset
    mark = gateway_mark(key, SITE, str(out.PatientID), str(out.SOPInstanceUID))
    out.DeidentificationMethod = [*out.DeidentificationMethod, mark]
    return out


def _ids(ds: pydicom.Dataset) -> tuple:
    return (str(ds.PatientID), str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID),
            str(ds.SOPInstanceUID), str(ds.StudyDate))


def test_a_marked_file_keeps_its_pseudonym_dates_and_uids():
    deid = Deidentifier(SECRET)
    sent = _on_the_gateway(deid)
    central = deid.deidentify(sent, site=SITE)
    assert _ids(central.dataset) == _ids(sent)
    # the same patient sent as a folder gets the same pseudonym: the two link up
    assert central.pseudonym == deid.deidentify(make_instance(), site=SITE).pseudonym
    assert not central.residue


def test_a_forged_or_moved_mark_is_de_identified_again():
    deid = Deidentifier(SECRET)
    forged = _on_the_gateway(deid, key=b"another-key-of-another-party-0123")
    assert _ids(deid.deidentify(forged, site=SITE).dataset)[1:4] != _ids(forged)[1:4]
    moved = _on_the_gateway(deid)
    moved.SOPInstanceUID = "2.25.1234"  # the mark was made for another file
    assert deid.deidentify(moved, site=SITE).dataset.SOPInstanceUID != "2.25.1234"


def test_the_profile_still_runs_on_a_marked_file():
    deid = Deidentifier(SECRET)
    sent = _on_the_gateway(deid)
    sent.InstitutionName = PHI["institution"]  # a gateway that missed something
    sent.OperatorsName = PHI["operator"]
    out = deid.deidentify(sent, site=SITE).dataset
    assert PHI["institution"] not in str(out.get("InstitutionName", ""))
    assert PHI["operator"] not in str(out.get("OperatorsName", ""))


def test_a_pseudonym_is_not_hashed_again():
    deid = Deidentifier(SECRET)
    p = deid.pseudonym(SITE, PHI["patient_id"])
    assert deid.pseudonym(SITE, p) == p
    assert deid.pseudonym("OTHER", p) != p  # another site's pseudonym is an ID like any other


def test_a_value_seen_as_station_and_as_a_person_counts_as_the_person():
    """A StationName read before an OperatorsName with the same word must not let the residue
    rule clear that word inside an equipment name (docs/quarantine.md)."""
    ds = make_instance()
    ds.StationName = "SMITH"
    ds.OperatorsName = "SMITH"
    ds.Manufacturer = "SMITH_Medical"
    result = Deidentifier(SECRET).deidentify(ds, site=SITE)
    assert result.sources["SMITH"] == "OperatorsName"
    assert any("Manufacturer holds the OperatorsName value" in hit for hit in result.residue)
