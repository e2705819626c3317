"""An independent de-identifier (dicognito) on the same files as ours.

Two checks: (1) nothing that our profile must remove or replace (Table E.1-1 actions X, Z, D,
U after our options) keeps its original value in our output; (2) every attribute that
dicognito changes but we keep is in a reviewed allow-list, with the reason we keep it.
"""

from __future__ import annotations

import copy

import pydicom
import pytest
from dicognito.anonymizer import Anonymizer
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from bonebase.dicom.deid import Deidentifier
from bonebase.dicom.deid_table import action_table
from tests.unit.dicom_samples import make_instance

SITE = "KSNW"
MUST_CHANGE = {"X", "Z", "D", "U"}

# Attributes dicognito alters that bonebase keeps on purpose, each with its reason.
_TIMES_KEPT = (
    "Retain Longitudinal Temporal Information with Modified Dates: dates shift by whole days "
    "and times of day are kept (option column C); dicognito shifts by hours"
)
KEPT_ON_PURPOSE = {
    "StudyTime": _TIMES_KEPT,
    "SeriesTime": _TIMES_KEPT,
    "AcquisitionTime": _TIMES_KEPT,
    "ContentTime": _TIMES_KEPT,
    "RTPlanTime": _TIMES_KEPT,
    # A row newer than our option columns (X/Z/D): its D allows a value and, like every time
    # row under the Modified Dates option, the time of day is kept (deid_table.effective_action).
    "InstanceCreationTime": _TIMES_KEPT,
}


def _leaves(ds: Dataset, path: tuple = ()) -> dict[tuple, tuple[int, str]]:
    """Every non-sequence element by path (tags and item indexes): (tag, value as text)."""
    found: dict[tuple, tuple[int, str]] = {}
    for elem in ds:
        here = (*path, int(elem.tag))
        if elem.VR == "SQ":
            for index, item in enumerate(elem.value):
                found.update(_leaves(item, (*here, index)))
        elif not elem.tag.is_private:
            value = elem.value
            text = value.hex() if isinstance(value, bytes) else str(value)
            found[here] = (int(elem.tag), text.strip())
    return found


def _samples() -> list[tuple[str, Dataset]]:
    files = ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "test-SR.dcm"]
    out = [("sample", make_instance()), ("sample-burned", make_instance(burned_in="YES"))]
    out += [(name, pydicom.dcmread(get_testdata_file(name), force=True)) for name in files]
    return out


@pytest.fixture(scope="module")
def runs() -> list[tuple[str, dict, dict, dict]]:
    deid = Deidentifier(b"consortium-test-secret-0123456789")
    results = []
    for name, ds in _samples():
        theirs = copy.deepcopy(ds)
        Anonymizer(seed="bonebase-test").anonymize(theirs)
        ours = deid.deidentify(ds, site=SITE, patient_id=str(ds.get("PatientID") or "ID-1"))
        results.append((name, _leaves(ds), _leaves(ours.dataset), _leaves(theirs)))
    return results


def test_nothing_we_must_change_survives(runs: list) -> None:
    table = action_table()
    checked = 0
    for name, original, ours, _ in runs:
        for path, (tag, value) in original.items():
            action = table.action(tag)
            if action not in MUST_CHANGE or not value or value.startswith("1.2.840.10008."):
                continue
            checked += 1
            assert ours.get(path, (tag, ""))[1] != value, (name, path, action)
    assert checked > 50


def test_what_dicognito_changes_and_we_keep_is_reviewed(runs: list) -> None:
    kept_by_us: set[str] = set()
    for _, original, ours, theirs in runs:
        for path, (tag, value) in original.items():
            if not value or path not in theirs or theirs[path][1] == value:
                continue
            if ours.get(path, (tag, None))[1] == value:
                kept_by_us.add(pydicom.datadict.keyword_for_tag(tag) or f"{tag:08X}")
    unreviewed = kept_by_us - set(KEPT_ON_PURPOSE)
    assert not unreviewed, f"dicognito changes these but we keep them: {sorted(unreviewed)}"
    assert kept_by_us, "the comparison found nothing: dicognito did not run?"


def test_dicognito_changes_are_a_subset_of_ours_for_identity(runs: list) -> None:
    for name, original, ours, theirs in runs:
        for keyword in ("PatientName", "PatientID", "StudyInstanceUID", "SOPInstanceUID"):
            tag = pydicom.datadict.tag_for_keyword(keyword)
            if (tag,) in original and original[(tag,)][1]:
                assert theirs[(tag,)][1] != original[(tag,)][1], (name, keyword)
                assert ours[(tag,)][1] != original[(tag,)][1], (name, keyword)
