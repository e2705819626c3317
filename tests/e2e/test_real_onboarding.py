"""#17 done-when 1: a hospital onboards with real DICOM files (tests/e2e/real_hospital.py: CR from
two vendors in JPEG 2000, MR, a multi-frame MR, a Japanese CT, a burned-in ultrasound, a truncated
file; three patients without accession numbers), as docs/stewards.md says: `site add`,
`validate`, then `submit`, each a real process on real PostgreSQL with a real
Prefect flow. The receipt is what a steward reading the files expects, and `validate` predicted
it exactly."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.e2e.real_hospital import build

pytestmark = pytest.mark.slow

SITE = "JP1"
BY_ACCESSION = "accession: patient_id + accession_number"
WITHOUT_ACCESSION = "accession: patient_id, the row and its images without accession number"

#: (row, matched by, file names) of the cases accepted. The receipt redacts RG1, RG3 and MR2 in
#: the names of RG1_J2KI.dcm, RG3_J2KR.dcm, MR2_J2KI.dcm and RG3_J2KI.dcm: each is part of
#: its file's PatientName (CompressedSamples^RG1), so "*" stands for it here.
CASES = [
    (1, BY_ACCESSION, ["*_J2KI.dcm"]),
    (2, BY_ACCESSION, ["*_J2KR.dcm"]),
    (3, WITHOUT_ACCESSION, ["*_J2KI.dcm", "*_J2KI.dcm", "emri_small.dcm"]),
]
#: (reason, row, file name) of what is quarantined, and what the message says why.
QUARANTINE = {
    ("burned_in_annotation", None, "GREYSCALE_IMAGE.dcm"): "the image may show identifying text",
    ("corrupt_file", None, "MR_truncated.dcm"): "the DICOM file is truncated",
    ("no_radiograph", 4, None): "the case has no radiograph",
    ("case_rejected", 4, "J2K_pixelrep_mismatch.dcm"): "its case (row 4) was rejected "
                                                       "(no_radiograph)",
    ("images_without_row", None, "CT_small.dcm"): "rule accession (patient_id + "
                                                  "accession_number): no row has its PatientID",
    ("images_without_row", None, "MR_small.dcm"): "PatientID matches row 5 but the image has no "
                                                  "AccessionNumber and the row's "
                                                  "accession_number is filled",
    ("row_without_images", 5, None): "1 image(s) with its patient_id as PatientID (e.g. "
                                      "[redacted]/[redacted]/MR_small.dcm) have another "
                                      "AccessionNumber",
}


def _prefect_api() -> str:
    """The session's Prefect test server (submit's flow reports there instead of starting a
    temporary server of its own: seconds per run)."""
    from prefect.settings import get_current_settings

    return str(get_current_settings().api.url)


def _run(*args, env):
    return subprocess.run([sys.executable, "-m", "bonebase.cli", *args], capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=300)


def _files(case: dict) -> list[str]:
    return sorted(f.rsplit("/", 1)[-1].replace("[redacted]", "*") for f in case["files"])


def test_a_hospital_onboards_from_real_files_and_validate_predicts_submit(tmp_path, db_url,
                                                                          monkeypatch,
                                                                          prefect_harness):
    submission = build(tmp_path / "export")
    # The consortium's key and database as an operator set them up (`bonebase init` is the
    # guide walk's; here a process less).
    env = {"BONEBASE_HOME": str(tmp_path / "home"), "DATABASE_URL": db_url, "COLUMNS": "200",
           "BONEBASE_SECRET": "real-files-" + "k" * 40, "PREFECT_API_URL": _prefect_api()}
    done = _run("site", "add", SITE, "--name", "Real Hospital", env=env)
    assert done.returncode == 0, done.stderr[-2000:]

    checked = _run("validate", str(submission), "--site", SITE, "--json", env=env)
    assert checked.returncode == 1, checked.stderr[-2000:]  # something would be quarantined
    predicted = json.loads(checked.stdout)
    submitted = _run("submit", str(submission), "--site", SITE, "--json", env=env)
    assert submitted.returncode == 0, submitted.stderr[-2000:]
    receipt = json.loads(submitted.stdout[submitted.stdout.index("{"):])

    # What a steward reading the files expects.
    assert receipt["match_rule"] == "accession (patient_id + accession_number), the default"
    assert [(c["row"], c["matched_by"], _files(c)) for c in receipt["cases"]] == CASES
    found = {(q["reason"], q["row"], q["file"] and q["file"].rsplit("/", 1)[-1]): q["message"]
             for q in receipt["quarantine"]}
    assert set(found) == set(QUARANTINE)
    for key, words in QUARANTINE.items():
        assert words in found[key], (key, found[key])
    assert receipt["counts"]["quarantined"] == len(QUARANTINE)
    assert {w["reason"] for w in receipt["warnings"]} == {"missing_pixel_spacing"}

    # validate said exactly this, entry for entry, and what it leaves to submit.
    assert predicted["quarantine"] == receipt["quarantine"]
    assert predicted["warnings"] == receipt["warnings"]
    assert [(c["row"], c["case"], c["matched_by"], c["files"]) for c in predicted["cases"]] == [
        (c["row"], c["case"], c["matched_by"], c["files"]) for c in receipt["cases"]]
    assert predicted["match_rule"] == receipt["match_rule"]
    assert predicted["deidentified"] == receipt["deidentified"]
    assert set(receipt["deidentified"]) == {"free_text", "burned_in_text"}
    assert "new, updated or unchanged" in predicted["not_predicted"]

    # The receipt's Markdown names the rule per case; the printed prediction lists every item.
    shown = _run("submissions", "show", str(receipt["submission"]), env=env).stdout
    assert f"| 3 | {receipt['cases'][2]['case']} | {WITHOUT_ACCESSION} | 3 |" in shown
    from bonebase.ingest import cli

    monkeypatch.setattr(cli.console, "width", 1000)  # one line per item
    with cli.console.capture() as printed:
        cli._print_prediction(predicted)
    text = printed.get()
    assert text.count("\nquarantine ") == len(QUARANTINE) and "[redacted]" in text
    assert "submit would accept 3 cases (5 files), quarantine 7, warn 2" in text
    assert f"accept     1 case(s) matched by {WITHOUT_ACCESSION}: row(s) 3" in text
