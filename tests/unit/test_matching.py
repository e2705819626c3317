"""The match rules (bonebase.ingest.match) on plain rows and images: what matches, and why what
does not, said without quoting a value."""

from __future__ import annotations

import pandas as pd
import pytest

from bonebase.errors import InputError
from bonebase.ingest import match
from bonebase.ingest.match import Image

ROWS = [
    {"row": 1, "patient_id": "P1", "accession_number": "A1", "study_date": "2021-03-04",
     "study_instance_uid": "1.2.3.1", "folder": "P1/s1"},
    {"row": 2, "patient_id": "P2", "accession_number": "", "study_date": "20210305",
     "study_instance_uid": "1.2.3.2", "folder": "P2"},
    {"row": 3, "patient_id": "P3", "accession_number": "A3", "study_date": "",
     "study_instance_uid": "", "folder": ""},
]
IMAGES = [
    Image("P1/s1/a.dcm", "P1", "A1", "20210304", "1.2.3.1"),
    Image("P2/x/b.dcm", "P2", "", "20210305", "1.2.3.2"),
    Image("P2/x/c.dcm", "P2", "A9", "20210305", "1.2.3.2"),  # an accession the row lacks
    Image("P3/d.dcm", "P3", "", "20210306", "1.2.3.3"),  # the row has an accession, not it
    Image("Q/e.dcm", "Q9", "A1", "20210304", "9.9"),  # nobody's patient
]
VALUES = ("P1", "P2", "P3", "Q9", "A1", "A3", "A9", "2021", "1.2.3", "9.9")


def _quotes_no_value(text: str) -> bool:
    # Files are named (a receipt redacts their paths); the text around them quotes nothing.
    for image in IMAGES:
        text = text.replace(image.file, "<file>")
    return not any(v in text for v in VALUES)


@pytest.mark.parametrize(("rule", "matched", "unmatched_rows"), [
    ("accession", {"P1/s1/a.dcm": [1], "P2/x/b.dcm": [2]}, {3}),
    ("patient_date", {"P1/s1/a.dcm": [1], "P2/x/b.dcm": [2], "P2/x/c.dcm": [2]}, {3}),
    ("study_uid", {"P1/s1/a.dcm": [1], "P2/x/b.dcm": [2], "P2/x/c.dcm": [2]}, {3}),
    ("folder", {"P1/s1/a.dcm": [1], "P2/x/b.dcm": [2], "P2/x/c.dcm": [2]}, {3}),
])
def test_each_rule_matches_what_it_compares(rule, matched, unmatched_rows):
    result = match.match(ROWS, IMAGES, rule=rule)
    assert {f: rows for f, rows in result.rows_of.items() if rows} == matched
    assert set(result.why_row) == unmatched_rows
    assert set(result.why_file) == {i.file for i in IMAGES} - set(matched)
    assert all(_quotes_no_value(t) for t in [*result.why_row.values(),
                                             *result.why_file.values()])
    assert set(result.how) == {1, 2}


def test_the_default_rule_explains_each_miss_by_row_and_attribute():
    result = match.match(ROWS, IMAGES)
    assert result.rule == "accession" and result.how[2].startswith("accession: patient_id, the row")
    why = result.why_file
    assert why["P2/x/c.dcm"].endswith(
        "PatientID matches row 2 but the row's accession_number is empty and the image has an "
        "AccessionNumber")
    assert why["P3/d.dcm"].endswith("PatientID matches row 3 but the image has no "
                                    "AccessionNumber and the row's accession_number is filled "
                                    "(leave it empty for such images)")
    assert why["Q/e.dcm"].endswith("no row has its PatientID")
    assert result.why_row[3].endswith("1 image(s) with its patient_id as PatientID (e.g. "
                                      "P3/d.dcm) have another AccessionNumber")


def test_rows_without_the_rules_value_say_which_column_is_empty():
    by_date = match.match(ROWS, IMAGES, rule="patient_date")
    assert by_date.why_row[3] == "rule patient_date (patient_id + study_date): its study_date is empty"
    bad = [{**ROWS[0], "study_date": "04/03/21"}]
    assert match.match(bad, IMAGES, rule="patient_date").why_row[1].endswith(
        "its study_date is not a date (write YYYY-MM-DD)")
    assert match.match(ROWS, IMAGES, rule="folder").why_row[3].endswith("its folder is empty")
    assert match.match(ROWS, IMAGES, rule="study_uid").why_row[3].endswith(
        "its study_instance_uid is empty")


def test_the_folder_rule_takes_the_deepest_folder_and_the_manifests_folder_as_base():
    rows = [{"row": 1, "patient_id": "P", "folder": "P"},
            {"row": 2, "patient_id": "P", "folder": "./P/late/"}]
    images = [Image("export/P/early/1.dcm", "P"), Image("export/P/late/2.dcm", "P")]
    result = match.match(rows, images, rule="folder", base="export")
    assert result.rows_of == {"export/P/early/1.dcm": [1], "export/P/late/2.dcm": [2]}
    assert match.match(rows, images, rule="folder").why_file["export/P/late/2.dcm"].endswith(
        "it lies in no folder that the folder column names (PatientID matches rows 1, 2)")


def test_a_declaration_wins_then_the_site_then_the_default():
    assert match.choose("folder", "study_uid") == ("folder", "declared for this submission (--match)")
    assert match.choose(None, "study_uid")[0] == "study_uid"
    assert match.choose(None, None) == ("accession", "the default")
    with pytest.raises(InputError, match="match rule 'uid' is unknown: use one of accession"):
        match.choose("uid", None)
    with pytest.raises(InputError, match="manifest.csv has no folder column, which the match "
                                         "rule folder"):
        match.require_columns("folder", ["case_id", "patient_id"])
    match.require_columns("accession", ["case_id"])  # the format's columns are checked elsewhere


def test_identifying_values_cover_dates_in_the_forms_hospitals_write_and_folder_parts():
    manifest = pd.DataFrame(ROWS)
    found = match.identifying_values(manifest, IMAGES)
    assert {"2021-03-04", "20210304", "04.03.2021", "2021_03_04", "P1/s1", "1.2.3.1",
            "20210306"} <= found
    assert not {"s1", "P2"} & found  # under 3 characters: not specific enough to redact


def test_dates_in_paths_are_found_in_the_forms_folders_use():
    paths = ["P1/2004-08-26/a.dcm", "P2/20191019_CT/b.dcm", "P3/26.08.2004/c.dcm",
             "P4/1.2.840.20040826.5/d.dcm", "P5/IMG0001/e.dcm", "P6/2004-13-45/f.dcm",
             "P7/12345678/g.dcm"]
    # Not: digits inside a UID, a serial, a date that is no date, an id outside 1900-2100.
    assert match.dates_in_paths(paths) == {"2004-08-26", "20191019", "26.08.2004"}


def test_a_case_id_that_is_already_the_sites_pseudonym_is_kept():
    # A gateway sends its cases pseudonymised; hashing them again would split a patient's case
    # sent through the gateway from the same case sent as a folder.
    from bonebase.dicom.deid import Deidentifier
    from bonebase.ingest.accept import case_record, case_ref

    deid = Deidentifier(b"k" * 40)
    hashed = case_ref("HX-0042", site="HX", deid=deid)
    assert hashed.startswith("HX-") and deid.is_pseudonym("HX", hashed)
    assert case_ref(hashed, site="HX", deid=deid) == hashed
    row = {"case_id": hashed, "patient_id": "P1", "age": "12", "sex": "F"}
    assert case_record(row, site="HX", deid=deid).case_pseudonym == hashed
    assert case_ref(hashed, site="BJ", deid=deid) != hashed  # another site's form: hashed
