"""Matching a submission's images to its manifest rows with what hospitals have (#17 points 1
and 2), and who may submit at all (#18 point 5). Real Prefect flows, real PostgreSQL."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bonebase.config import Settings
from bonebase.db.sites import add_site, update_site
from bonebase.errors import InputError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def synth_site(tmp_path_factory) -> Path:
    """One small synthetic hospital with its injected faults."""
    from bonebase.synth import generate

    out = tmp_path_factory.mktemp("synth")
    generate(out, sites=1, cases_per_site=22, seed=23, workers=2)
    return next(p for p in out.iterdir() if p.is_dir())


@pytest.fixture
def settings(tmp_path, db_url) -> Settings:
    s = Settings(home=tmp_path / "home", database_url=db_url, secret="m" * 40, env="test")
    s.ensure_home()
    return s


def test_an_inactive_site_is_refused_before_anything_is_registered(settings, synth_site, db,
                                                                   prefect_harness):
    from flows.ingest import ingest_submission

    add_site(db, code=synth_site.name, name="Hospital Z")
    update_site(db, synth_site.name, active=False)
    db.commit()
    with pytest.raises(InputError, match=f"site {synth_site.name} .* is marked inactive"):
        ingest_submission(synth_site.name, str(synth_site / "submission"), settings=settings)
    assert db.execute("SELECT count(*) AS n FROM submissions").fetchone()["n"] == 0


def _key(items: list[dict]) -> list[tuple]:
    return sorted((q["reason"], q["row"] or 0, q["file"] or "", q["message"]) for q in items)


def test_validate_predicts_what_submit_quarantines_on_the_faulty_site(settings, synth_site, db,
                                                                      prefect_harness):
    # #17 point 2: validate said 0 errors where submit quarantined 4, and another reason for
    # the same file. Every injected fault kind of bonebase.synth is in this submission.
    from flows.ingest import ingest_submission
    from flows.ingest_check import predict_submission

    add_site(db, code=synth_site.name, name="Hospital S")
    db.commit()
    path = str(synth_site / "submission")
    predicted = predict_submission(synth_site.name, path, settings=settings)
    assert not list((settings.home / "staging").iterdir())  # the scratch copy is gone
    assert db.execute("SELECT count(*) AS n FROM submissions").fetchone()["n"] == 0
    receipt = ingest_submission(synth_site.name, path, settings=settings)
    assert receipt["quarantine"] and _key(predicted["quarantine"]) == _key(receipt["quarantine"])
    assert predicted["warnings"] == receipt["warnings"]
    assert [c["row"] for c in predicted["cases"]] == [c["row"] for c in receipt["cases"]]
    assert predicted["counts"]["by_reason"] == receipt["counts"]["by_reason"]
    assert predicted["deidentified"] == receipt["deidentified"]

    # The same images from another site: held for review, which validate reads from the
    # database (what other sites hold) and predicts as submit then does.
    add_site(db, code="OTHER", name="Hospital O")
    db.commit()
    predicted = predict_submission("OTHER", path, settings=settings)
    receipt = ingest_submission("OTHER", path, settings=settings)
    assert "held_for_review" in predicted["counts"]["by_reason"]
    assert _key(predicted["quarantine"]) == _key(receipt["quarantine"])
    assert predicted["cases"] == receipt["cases"] == []


@pytest.fixture(scope="module")
def named_folders(tmp_path_factory) -> tuple[Path, list[str]]:
    """The real-files hospital (tests/e2e/real_hospital.py) with its patients' folders named
    after their names and PatientIDs, study dates as subfolders, and the manifest's study_date
    and folder columns; and every identifying value of it."""
    from tests.e2e.real_hospital import LAYOUT, ROWS, build

    rename = {"9RG1": "CompressedSamples^RG1 9RG1", "11RG3": "Sample_Fuji_11RG3",
              "5MR2": "Kompressed_MR2_5MR2", "4MR1": "Sample MR1 4MR1"}
    root = build(tmp_path_factory.mktemp("named") / "export", extra_columns=True, rename=rename)
    values = {*rename.values(), *(folder.split("/")[0] for folder in LAYOUT)}
    for folder in LAYOUT:
        day = folder.split("/")[1]
        values |= {day, day.replace("-", "")}
    for row in ROWS:
        values |= {row[1], row[2]} - {""}
    values |= {"FUJI95706", "104111149", "exam Number", "JXD191021006"}
    return root, sorted(values)


@pytest.mark.parametrize("rule", ["folder", "patient_date"])
def test_folder_and_date_rules_match_and_no_receipt_shows_a_folder_or_date(
        rule, named_folders, settings, db, prefect_harness):
    # The attack: a hospital whose folders are named after its patients (name and PatientID)
    # and study dates, matched by folder or by date. Nothing of it may reach a receipt, the
    # prediction, or the database.
    from flows.ingest import ingest_submission
    from flows.ingest_check import predict_submission
    from tests.security.leaks import database_leaks, file_leaks, whole_tokens

    root, values = named_folders
    add_site(db, code="NF", name="Named Folders", match_rule="study_uid")
    db.commit()
    predicted = predict_submission("NF", str(root), settings=settings, match_rule=rule)
    receipt = ingest_submission("NF", str(root), settings=settings, match_rule=rule)
    compared = "folder" if rule == "folder" else "patient_id + study_date"
    # The submission's --match wins over the site's rule (study_uid).
    assert receipt["match_rule"] == f"{rule} ({compared}), declared for this submission (--match)"
    matched = {c["row"]: c["matched_by"] for c in receipt["cases"]}
    assert matched == {1: f"{rule}: {compared}", 2: f"{rule}: {compared}",
                       3: f"{rule}: {compared}"}
    files_of_3 = len(next(c for c in receipt["cases"] if c["row"] == 3)["files"])
    # By folder, row 3's folder holds both of its studies; by date, only the study of its date.
    assert files_of_3 == (3 if rule == "folder" else 2)
    if rule == "patient_date":
        assert any(q["reason"] == "images_without_row" and "emri_small" in q["file"]
                   and "PatientID matches row 3 but StudyDate differs" in q["message"]
                   for q in receipt["quarantine"])
    assert _key(predicted["quarantine"]) == _key(receipt["quarantine"])

    pattern = whole_tokens(values)
    told = json.dumps([predicted, receipt], default=str).encode()
    assert not pattern.findall(told), sorted(set(pattern.findall(told)))
    assert not file_leaks(settings.home / "receipts", pattern)
    assert not database_leaks(db, pattern)


def test_an_inactive_site_is_told_so_by_submit_and_validate(tmp_path, db_url, synth_site, db):
    import subprocess
    import sys

    add_site(db, code="OLD", name="Old Hospital")
    update_site(db, "OLD", active=False)
    db.commit()
    env = {**os.environ, "BONEBASE_HOME": str(tmp_path / "home"), "DATABASE_URL": db_url,
           "BONEBASE_SECRET": "i" * 40, "COLUMNS": "200"}
    for command in ("validate", "submit"):
        done = subprocess.run([sys.executable, "-m", "bonebase.cli", command,
                               str(synth_site / "submission"), "--site", "OLD"],
                              capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == InputError.exit_code and "Traceback" not in done.stderr
        assert "site OLD (Old Hospital) is marked inactive" in done.stderr, done.stderr[-500:]
        assert "bonebase site update OLD --active" in done.stderr
    done = subprocess.run([sys.executable, "-m", "bonebase.cli", "submit",
                           str(synth_site / "submission"), "--site", "OLD", "--match", "uid"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == InputError.exit_code
    assert "match rule 'uid' is unknown: use one of accession" in done.stderr
