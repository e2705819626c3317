"""`make demo`'s story, smaller: 3 + 1 hospitals of 22 cases, 64 px, one epoch — every step real
(PostgreSQL, Prefect flows, git + DVC, training, BentoML serve over HTTP)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bonebase.db.engine import connect

pytestmark = pytest.mark.slow


def test_demo_story_end_to_end_and_rerun_is_safe(demo_run):
    out, db, lines = demo_run.out, demo_run.db, demo_run.lines
    answer = out["diagnosis"]
    assert set(answer["probabilities"]) == {"benign", "malignant"}
    assert answer["gradcam_png"] and answer["model_version"].startswith("bonebase-diagnosis:m")
    assert out["candidate"] and out["candidate"] != out["champion"]
    assert out["comparison"]["n_cases"] > 0 and "p" in out["comparison"]["delong"]
    assert Path(out["report"]).is_file()
    models = db["models"]
    assert models[out["champion"]]["status"] == "deployed"
    assert models[out["champion"]]["dataset_version"] == "v1"
    assert models[out["candidate"]]["status"] == "candidate"  # never deployed by itself
    assert models[out["candidate"]]["dataset_version"] == "v2"
    (approval,) = db["approvals"]
    assert approval["by_person"] == "Demo Steward" and approval["reason"]
    assert db["deployments"] == 1 and len(db["sites"]) == 4
    assert any("a fifth hospital joins" in line for line in lines)

    # the second run: nothing new (the database above is as both runs left it)
    again = demo_run.again
    assert again["champion"] == out["champion"] and again["candidate"] is None
    assert any("nothing changed" in line for line in demo_run.again_lines)
    assert len(models) == 2 and db["dataset_versions"] == 2


def test_the_demo_trains_with_its_projects_params(demo_run):
    """One set of parameters (#17 point 9): the demo's project is a clone of the checkout, its
    params.yaml the checkout's but for the sizes the demo was given, and the model was trained
    with them; the guides continue in that project."""
    import yaml

    project = Path(demo_run.out["project"])
    assert project == demo_run.settings.home / "project"
    ours = yaml.safe_load((demo_run.checkout / "params.yaml").read_text())
    theirs = yaml.safe_load((project / "params.yaml").read_text())
    assert theirs["train"]["epochs"] == 1 and theirs["export"]["size"] == 64
    for section in ("task", "split", "release"):
        assert theirs[section] == ours[section]
    history = (project / "models" / "train_history.json").read_text()
    assert history.count('"epoch"') == 1


def test_the_demo_shows_its_progress_and_what_each_stage_took(demo_run):
    """#17 point 11: each stage with its duration, training epochs as progress lines (not the
    pipeline's JSON), no DVC hint to `git add dvc.lock` (the project is not the user's
    repository) anywhere the demo prints or logs to the console, and a summary that names an
    existing Data Docs page instead of a placeholder."""
    from bonebase.demo_cli import summary

    out, lines = demo_run.out, demo_run.lines
    stages = [what for what, _ in out["durations"]]
    assert len(stages) == 8 and all(seconds > 0 for _, seconds in out["durations"])
    assert any(s.startswith("dataset version + training") for s in stages)
    assert len([line for line in lines if line.startswith("   (") and line.endswith(" s)")]) == 8
    assert [line for line in lines if line.startswith("   epoch 1/1: ")] and len(
        [line for line in lines if "epoch 1/1" in line]) == 2  # fmt: skip
    printed = "\n".join(lines + demo_run.again_lines) + demo_run.console
    assert "git add" not in printed and "To track the changes" not in printed
    assert '{"epoch"' not in printed
    assert "Running stage 'train'" not in demo_run.console  # the pipeline's lines stay off it
    rows = dict(summary(out, home=demo_run.settings.home, serving=False))
    docs = rows["Data Docs (validation)"].split(" (")[0]
    assert "<" not in docs and docs.endswith("index.html") and Path(docs).is_file()
    assert str(Path(out["project"])) in rows["project (docs/mlops.md)"]
    assert [what for what in rows if what.startswith("took ")]
    assert all(what.strip() for what in rows)


def test_after_the_demo_only_secret_key_holds_the_secret(demo_run):
    """#15's done-when: after the demo (the story above, same fixture: no second run), no file
    under BONEBASE_HOME but secret.key, no row of the database, no Prefect API answer or
    Prefect database byte, and no line the demo printed holds the key or the DB password."""
    from tests.security.leaks import database_leaks, file_leaks, prefect_leaks

    settings = demo_run.settings
    values = [settings.secret, demo_run.password]
    assert file_leaks(settings.home, values, allowed={settings.secret_file}) == []
    with connect(settings.database_url) as conn:
        assert database_leaks(conn, values) == []
    assert prefect_leaks(values) == []
    printed = demo_run.lines + demo_run.again_lines + demo_run.console.splitlines()
    assert not [line for line in printed if any(v in line for v in values)]


def test_after_the_demo_no_submitted_identifying_value_is_stored(demo_run):
    """#15's done-when: after the demo, the database, receipts, Data Docs, logs, the curated
    store, the DVC workspace, Prefect and the demo's own output hold none of the identifying
    values the hospitals submitted (names, patient ids, accession numbers, physicians) nor the
    sites' case ids. Only the inputs, the quarantine's original bytes and the copy of this
    repository the demo trains in (its docs show example ids) may. A value counts as a whole
    token, as the residue scan counts it: an 8-digit PatientID also occurs, by chance, inside
    the 39-digit remapped UIDs."""
    import csv

    import pydicom

    from tests.security.leaks import database_leaks, file_leaks, prefect_leaks, whole_tokens

    settings = demo_run.settings
    synth = settings.home / "demo-synth"
    values: set[str] = set()
    for path in synth.rglob("*.dcm"):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:  # noqa: BLE001 - the injected faults include unreadable files
            continue
        for keyword in ("PatientName", "PatientID", "AccessionNumber", "OtherPatientIDs",
                        "ReferringPhysicianName", "PerformingPhysicianName", "OperatorsName"):
            value = str(ds.get(keyword, "") or "").strip()
            if len(value) >= 5:
                values.add(value)
    for manifest in synth.rglob("manifest.csv"):
        with manifest.open(encoding="utf-8", newline="") as fh:
            values |= {r["case_id"] for r in csv.DictReader(fh) if len(r.get("case_id") or "") >= 5}
    assert len(values) > 100, "the generator put identifying values in the headers"
    tokens = whole_tokens(sorted(values))
    skipped = (synth, settings.home / "project", settings.home / "pg")
    allowed = {p for p in settings.home.rglob("*")
               if p == settings.secret_file or "quarantine" in p.parts
               or any(s in p.parents for s in skipped)}
    assert file_leaks(settings.home, tokens, allowed=allowed) == []
    with connect(settings.database_url) as conn:
        assert database_leaks(conn, tokens) == []
    assert prefect_leaks(tokens) == []
    printed = demo_run.lines + demo_run.again_lines + demo_run.console.splitlines()
    assert not [line for line in printed if tokens.search(line.encode())]
