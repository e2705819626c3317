"""A data steward's session on the command line: submit, read the receipt, work the quarantine."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def run(*args, env):
    return subprocess.run([sys.executable, "-m", "bonebase.cli", *args], capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=600)


def test_submit_receipt_and_quarantine(tmp_path, migrated_database, db):
    from bonebase.synth import generate

    generate(tmp_path / "synth", sites=1, cases_per_site=22, seed=5, workers=1)
    site = json.loads((tmp_path / "synth" / "sites.json").read_text())[0]["code"]
    env = {"BONEBASE_HOME": str(tmp_path / "home"), "DATABASE_URL": migrated_database,
           "COLUMNS": "200",
           "BONEBASE_ACTOR": "steward-ann"}
    assert run("init", env=env).returncode == 0
    assert run("site", "import", str(tmp_path / "synth" / "sites.json"), env=env).returncode == 0
    submission = str(tmp_path / "synth" / site / "submission")

    checked = run("validate", submission, "--site", site, "--json", env=env)
    assert checked.returncode == 1  # the injected faults are errors
    found = {f["reason"] for f in json.loads(checked.stdout)["quarantine"]}
    assert {"corrupt_file", "impossible_age", "unknown_diagnosis", "blank_image"} <= found
    assert run("validate", submission, "--site", site, "--open", env=env).stdout.count(
        "index.html") == 1

    first = run("submit", submission, "--site", site, "--json", env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    receipt = json.loads(first.stdout[first.stdout.index("{"):])
    assert receipt["counts"]["cases_accepted"] > 0 and receipt["counts"]["quarantined"] > 0
    again = run("submit", submission, "--site", site, env=env)
    assert again.returncode == 0 and "already ingested" in again.stdout

    listed = run("submissions", "list", "--site", site, env=env)
    assert "done" in listed.stdout
    shown = run("submissions", "show", str(receipt["submission"]), env=env)
    assert "# Receipt" in shown.stdout and "Quarantined" in shown.stdout

    items = json.loads(run("quarantine", "list", "--site", site, "--json", env=env).stdout)
    assert {"corrupt_file", "non_dicom"} <= {i["reason"] for i in items}
    assert "non_dicom" in run("quarantine", "list", "--site", site, env=env).stdout
    item_id = db.execute("SELECT id FROM quarantine_items WHERE reason = 'non_dicom'").fetchone()["id"]
    no_reason = run("quarantine", "discard", str(item_id), env=env)
    assert no_reason.returncode != 0 and "--reason" in no_reason.stderr
    done = run("quarantine", "discard", str(item_id), "--reason", "screenshot, not an image",
               env=env)
    assert done.returncode == 0, done.stderr
    row = db.execute("SELECT status, resolved_by FROM quarantine_items WHERE id = %s",
                     (item_id,)).fetchone()
    assert (row["status"], row["resolved_by"]) == ("discarded", "steward-ann")
    twice = run("quarantine", "discard", str(item_id), "--reason", "x", env=env)
    assert twice.returncode != 0 and "already discarded" in twice.stderr

    card = json.loads(run("site", "quality", site, "--json", env=env).stdout)[0]
    c = receipt["counts"]
    assert card["acceptance"] == round(c["cases_accepted"] / c["rows"], 4)
    assert card["submissions"] == 1 and card["top_reasons"]

    bad_site = run("submit", submission, "--site", "zz", env=env)
    assert bad_site.returncode != 0 and "Traceback" not in bad_site.stderr
    missing = run("submit", str(tmp_path / "nope"), "--site", site, env=env)
    assert missing.returncode != 0 and "no such file" in missing.stderr


def test_submit_killed_midway_then_rerun_finishes_without_duplicates(tmp_path, migrated_database,
                                                                      db):
    """`kill -9` of a running `bonebase submit` (its pool workers and Prefect server too) while
    files are being de-identified: running the same submit again finishes the submission, with
    every good case stored once and exactly the injected faults quarantined."""
    import signal
    import time

    from bonebase.db.cases import counts
    from bonebase.synth import generate
    from tests.flows.test_ingest import _expected, _quarantined

    generate(tmp_path / "synth", sites=1, cases_per_site=40, seed=7, workers=1)
    site = json.loads((tmp_path / "synth" / "sites.json").read_text())[0]["code"]
    home = tmp_path / "home"
    # One worker: processing takes a few seconds, a wide window to kill it in.
    env = {"BONEBASE_HOME": str(home), "DATABASE_URL": migrated_database,
           "BONEBASE_INGEST_WORKERS": "1"}
    assert run("init", env=env).returncode == 0
    assert run("site", "import", str(tmp_path / "synth" / "sites.json"), env=env).returncode == 0
    submission = str(tmp_path / "synth" / site / "submission")

    victim = subprocess.Popen([sys.executable, "-m", "bonebase.cli", "submit", submission,
                               "--site", site], env={**os.environ, **env},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)  # its own process group: workers die too
    deadline = time.monotonic() + 300
    # The first de-identified file staged: registration is committed, processing under way.
    while not any(home.rglob("*.dcm")) and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(victim.pid, signal.SIGKILL)
    assert victim.wait(timeout=60) == -signal.SIGKILL  # killed, not finished
    assert db.execute("SELECT status FROM submissions").fetchone()["status"] == "running"
    assert counts(db)["cases"] == 0

    again = run("submit", submission, "--site", site, "--json", env=env)
    assert again.returncode == 0, again.stderr[-2000:]
    receipt = json.loads(again.stdout[again.stdout.index("{"):])
    assert db.execute("SELECT count(*) AS n, min(status) AS s FROM submissions").fetchone() == {
        "n": 1, "s": "done"}
    c = counts(db)
    assert c["cases"] == receipt["counts"]["cases_accepted"] > 0
    assert c["instances"] == receipt["counts"]["files_accepted"]
    # The receipt tells what the submission did, the killed run's share included.
    assert (receipt["counts"]["cases_new"], receipt["counts"]["files_stored"]) == (
        c["cases"], c["instances"])
    assert receipt["counts"]["quarantined"] == db.execute(
        "SELECT count(*) AS n FROM quarantine_items").fetchone()["n"]
    got, _ = _quarantined(db)
    assert got == _expected(tmp_path / "synth" / site)
    # Nothing of the killed run is left behind: no staged or partial files, no stray objects.
    assert not [p for p in home.rglob("*") if p.is_file() and p.suffix in (".dcm", ".part")
                and ".bonebase-tmp-" in str(p)]
    stored = {r["object_key"] for r in db.execute("SELECT object_key FROM instances")}
    curated = {str(p.relative_to(home / "objects")) for p in (home / "objects" / "curated").rglob("*")
               if p.is_file()}
    assert curated == stored
