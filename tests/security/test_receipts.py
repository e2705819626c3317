"""Receipts that tell the truth, and tell nothing else (#15 points 9-11 and 4/7's "every
failure ends in a receipt"), as the faults and attacks they describe: one submission run twice at
once, a run cut off after some cases committed, a step that raises inside the real flow, a site
sending images another site holds, and record numbers used as case_id. Real Prefect flows, real
PostgreSQL, a local object store."""

from __future__ import annotations

import csv
import json
import shutil
import threading
from pathlib import Path

import pytest

from bonebase.config import Settings
from bonebase.db.sites import add_site
from bonebase.errors import BonebaseError
from tests.flows.test_ingest import _expected, _quarantined

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def consortium(tmp_path_factory) -> list[Path]:
    """Two small synthetic hospitals (each with its injected faults)."""
    from bonebase.synth import generate

    out = tmp_path_factory.mktemp("synth")
    generate(out, sites=2, cases_per_site=22, seed=31, workers=2)
    return sorted(p for p in out.iterdir() if p.is_dir())


@pytest.fixture
def settings(tmp_path, db_url) -> Settings:
    s = Settings(home=tmp_path / "home", database_url=db_url, secret="r" * 40, env="test")
    s.ensure_home()
    return s


def _register(db, *codes: str) -> None:
    for code in codes:
        add_site(db, code=code, name=f"Hospital {code}")
    db.commit()


def _truth(db, submission_id: int) -> dict:
    """What the database holds of one submission."""
    one = lambda sql: db.execute(sql, (submission_id,)).fetchone()["n"]  # noqa: E731
    return {
        "cases_new": one("SELECT count(*) AS n FROM case_versions WHERE submission_id = %s"
                         " AND version = 1"),
        "files_stored": one("SELECT count(*) AS n FROM instances WHERE submission_id = %s"),
        "quarantined": one("SELECT count(*) AS n FROM quarantine_items WHERE submission_id = %s"),
    }


def _told(receipt: dict) -> dict:
    return {k: receipt["counts"][k] for k in ("cases_new", "files_stored", "quarantined")}


def _stray_files(home: Path) -> list[Path]:
    """De-identified copies outside the curated area: staged files a run left behind."""
    return [p for p in home.rglob("*.dcm") if "curated" not in p.parts]


def _orphans(db, home: Path) -> set[str]:
    stored = {r["object_key"] for r in db.execute("SELECT object_key FROM instances")}
    curated = {p.relative_to(home / "objects").as_posix()
               for p in (home / "objects" / "curated").rglob("*") if p.is_file()}
    return curated - stored


# -- 9: one submission, two runs at once ----------------------------------------------------


def test_two_runs_of_one_submission_at_once_process_it_once(consortium, settings, db,
                                                            prefect_harness):
    from flows.ingest import ingest_submission

    site = consortium[0]
    _register(db, site.name)
    start, results, errors = threading.Barrier(2), [], []

    def run():
        start.wait()
        try:
            results.append(ingest_submission(site.name, str(site / "submission"),
                                             settings=settings))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    # One run did the work; the other waited for it and found the submission done.
    assert sorted(bool(r.get("already_ingested")) for r in results) == [False, True]
    got, rows = _quarantined(db)
    assert got == _expected(site)
    keys = [(r["reason"], r["file"], r["row_number"]) for r in rows]
    assert len(keys) == len(set(keys)), "a quarantine item recorded twice"
    sid = results[0]["submission"]
    for r in results:
        assert r["counts"] == results[0]["counts"]
        assert _told(r) == _truth(db, sid)
    assert db.execute("SELECT count(*) AS n FROM cases").fetchone()["n"] == (
        results[0]["counts"]["cases_new"])


def test_a_run_waits_for_the_run_that_holds_its_submission_until_that_one_dies(
        consortium, settings, db, db_url, prefect_harness):
    """Another run holds the submission (its lock taken on its own connection); a second run
    waits, and proceeds when the first one's connection goes, as when it is killed -9."""
    import time

    from bonebase.db import submissions as subs
    from bonebase.db.engine import connect
    from bonebase.ingest import scan
    from flows.ingest import ingest_submission

    site = consortium[0]
    _register(db, site.name)
    root = site / "submission"
    manifest = scan.find_manifest(root)
    digest = scan.submission_hash(manifest, scan.scan_files(root, manifest))
    site_id = db.execute("SELECT id FROM sites WHERE code = %s", (site.name,)).fetchone()["id"]
    row, _ = subs.register(db, site_id=site_id, source=str(root), content_hash=digest)
    db.commit()
    holder = connect(db_url, autocommit=True)  # the run that will be killed
    subs.lock(holder, row["id"])
    results = []
    second = threading.Thread(target=lambda: results.append(
        ingest_submission(site.name, str(root), settings=settings)))
    second.start()
    waiting = ("SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
               f" AND objid = {row['id']} AND objsubid = 2 AND database ="
               " (SELECT oid FROM pg_database WHERE datname = current_database())")
    deadline = time.monotonic() + 60
    while db.execute(waiting).fetchone()["n"] == 0 and time.monotonic() < deadline:
        db.commit()
        time.sleep(0.1)
    assert db.execute(waiting).fetchone()["n"] == 1 and not results, "the second run did not wait"
    db.commit()
    holder.close()  # the holder dies: PostgreSQL ends its session and releases the lock
    second.join(timeout=300)
    assert results and results[0]["submission"] == row["id"]
    assert _told(results[0]) == _truth(db, row["id"])
    assert db.execute("SELECT status FROM submissions").fetchone()["status"] == "done"


def test_receipt_after_an_interrupted_run_tells_what_the_submission_did(
        consortium, settings, db, monkeypatch, prefect_harness):
    """A run cut off after its first 5 cases committed (the window a kill -9 hits), then the
    same submission again: the second receipt reports the submission's cases as new and its
    files as stored (not as 'unchanged' and 'duplicate' because an earlier run wrote them)."""
    import bonebase.ingest.store as store_module
    from flows.ingest import ingest_submission

    site = consortium[0]
    _register(db, site.name)
    real_commit, calls = store_module.commit_cases, []

    def cut_off(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("cut off")
        return real_commit(*args, **kwargs)

    monkeypatch.setattr(store_module, "CASES_PER_COMMIT", 5)
    monkeypatch.setattr(store_module, "commit_cases", cut_off)
    with pytest.raises(BonebaseError):
        ingest_submission(site.name, str(site / "submission"), settings=settings)
    assert db.execute("SELECT count(*) AS n FROM cases").fetchone()["n"] == 5
    monkeypatch.setattr(store_module, "commit_cases", real_commit)

    receipt = ingest_submission(site.name, str(site / "submission"), settings=settings)
    c = receipt["counts"]
    assert _told(receipt) == _truth(db, receipt["submission"])
    assert (c["cases_new"], c["cases_unchanged"]) == (c["cases_accepted"], 0)
    assert (c["files_stored"], c["files_duplicate"]) == (c["files_accepted"], 0)
    assert {r["status"] for r in receipt["cases"]} == {"new"}
    assert _orphans(db, settings.home) == set() and not _stray_files(settings.home)


# -- 4/7: every failure ends in a final state with a receipt --------------------------------


@pytest.mark.parametrize("fault", ["raises", "receipt_unwritable"])
def test_a_fault_inside_the_flow_ends_in_a_failed_submission_with_a_receipt(
        fault, consortium, settings, db, monkeypatch, prefect_harness):
    """A step that raises after the cases committed (as a NUL in a manifest cell did), or a
    receipt that cannot be written: the submission ends 'failed' with a receipt saying where,
    the error is one line that quotes nothing of the files, no staged file is left, and the
    same submission run again finishes with a true receipt."""
    import bonebase.ingest.receipt as receipt_module
    import bonebase.ingest.store as store_module
    from flows.ingest import ingest_submission

    site = consortium[0]
    _register(db, site.name)
    planted = "CONTENTS-OF-A-FILE-4417"
    if fault == "raises":
        def broken(*args, **kwargs):
            raise ValueError(f"cannot handle {planted}")

        monkeypatch.setattr(store_module, "store_quarantine", broken)
    else:
        def disk_full(*args, **kwargs):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(receipt_module, "write_receipt", disk_full)
    with pytest.raises(BonebaseError) as failed:
        ingest_submission(site.name, str(site / "submission"), settings=settings)
    message = str(failed.value)
    assert "\n" not in message and planted not in message and "run the same submission" in message
    row = db.execute("SELECT id, status, receipt FROM submissions").fetchone()
    assert row["status"] == "failed"
    assert row["receipt"]["status"] == "failed" and row["receipt"]["failed_at"] in message
    assert planted not in json.dumps(row["receipt"])
    if fault == "raises":  # the receipt file exists too, and says the same
        written = json.loads((settings.home / "receipts" / f"submission-{row['id']}.json")
                             .read_text())
        assert written["status"] == "failed" and written["error"] == row["receipt"]["error"]
    assert not _stray_files(settings.home)
    monkeypatch.undo()

    receipt = ingest_submission(site.name, str(site / "submission"), settings=settings)
    assert db.execute("SELECT status FROM submissions").fetchone()["status"] == "done"
    assert _told(receipt) == _truth(db, receipt["submission"])
    assert receipt["counts"]["cases_new"] == receipt["counts"]["cases_accepted"] > 0
    got, _ = _quarantined(db)
    assert got == _expected(site)


# -- 10: a site submits images another site holds -------------------------------------------


def test_images_another_site_holds_leave_no_orphans_and_no_trace_in_the_receipt(
        consortium, settings, db, tmp_path, prefect_harness):
    from flows.ingest import ingest_submission

    first, other = consortium[0].name, consortium[1].name
    _register(db, first, other)
    held = ingest_submission(first, str(consortium[0] / "submission"), settings=settings)
    # The second site sends a copy of the first one's submission (a referred patient's images).
    copy = tmp_path / "copy"
    shutil.copytree(consortium[0] / "submission", copy)
    receipt = ingest_submission(other, str(copy), settings=settings)

    assert _orphans(db, settings.home) == set()
    empty = db.execute(
        "SELECT count(*) AS n FROM cases c WHERE NOT EXISTS (SELECT 1 FROM studies st"
        " JOIN series se ON se.study_id = st.id JOIN instances i ON i.series_id = se.id"
        " WHERE st.case_id = c.id)").fetchone()["n"]
    assert empty == 0, "a case accepted with no image"
    c = receipt["counts"]
    assert c["files_duplicate"] == 0 and c["cases_accepted"] == 0
    assert c["by_reason"].get("held_for_review", 0) >= held["counts"]["cases_accepted"]
    assert _told(receipt) == _truth(db, receipt["submission"])
    text = json.dumps(receipt) + Path(receipt["paths"]["markdown"]).read_text()
    pseudonyms = [r["case_pseudonym"] for r in db.execute("SELECT case_pseudonym FROM cases")]
    assert not [p for p in pseudonyms if p in text], "another site's case named"
    assert all("held for review" in q["message"] for q in receipt["quarantine"]
               if q["reason"] == "held_for_review")


def test_two_sites_sending_the_same_images_at_once_store_them_once(consortium, settings, db,
                                                                   tmp_path, prefect_harness):
    """Both sites' runs at once: one stores the images, the other's are held for review; no
    case without images, no orphans, no 'duplicates' in either receipt."""
    from flows.ingest import ingest_submission

    codes = [consortium[0].name, consortium[1].name]
    _register(db, *codes)
    copy = tmp_path / "copy"
    shutil.copytree(consortium[0] / "submission", copy)
    sources = {codes[0]: str(consortium[0] / "submission"), codes[1]: str(copy)}
    start, results, errors = threading.Barrier(2), {}, []

    def run(code):
        start.wait()
        try:
            results[code] = ingest_submission(code, sources[code], settings=settings)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(code,)) for code in codes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    stored = [r for r in results.values() if r["counts"]["files_stored"]]
    held = [r for r in results.values() if r["counts"]["by_reason"].get("held_for_review")]
    assert len(stored) == 1 and len(held) == 1 and stored[0] is not held[0]
    assert held[0]["counts"]["cases_accepted"] == 0
    for r in results.values():
        assert r["counts"]["files_duplicate"] == 0 and _told(r) == _truth(db, r["submission"])
    assert _orphans(db, settings.home) == set()
    assert db.execute(
        "SELECT count(*) AS n FROM cases c WHERE NOT EXISTS (SELECT 1 FROM studies st"
        " WHERE st.case_id = c.id)").fetchone()["n"] == 0


# -- 11: record numbers as case_id ----------------------------------------------------------


def test_record_numbers_used_as_case_id_are_stored_and_returned_nowhere(
        consortium, settings, db, db_url, tmp_path, prefect_harness):
    import psycopg

    from flows.ingest import ingest_submission

    site = consortium[0]
    _register(db, site.name)
    copy = tmp_path / "mrn"
    shutil.copytree(site / "submission", copy)
    with (copy / "manifest.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    mrns = [f"MRN{40719283 + 7919 * i}" for i in range(len(rows))]
    for row, mrn in zip(rows, mrns, strict=True):
        row["case_id"] = mrn
    with (copy / "manifest.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    receipt = ingest_submission(site.name, str(copy), settings=settings)
    assert receipt["counts"]["quarantined"] > 0 and receipt["counts"]["cases_accepted"] > 0
    with psycopg.connect(db_url) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()]
        dump = "\n".join(r[0] for t in tables  # every column of every row, as text
                         for r in conn.execute(f"SELECT t::text FROM {t} t").fetchall())  # noqa: S608
    places = {"database": dump, "returned receipt": json.dumps(receipt, default=str)}
    places |= {p.name: p.read_text() for p in (settings.home / "receipts").iterdir()}
    for where, text in places.items():
        found = [m for m in mrns if m.lower() in text.lower()]
        assert not found, f"{where} holds case_ids {found[:3]}"
    # The hospital still finds its rows: by number, with the case's pseudonym.
    for item in receipt["quarantine"] + receipt["cases"]:
        if item.get("row") is not None:
            assert item["case"] and item["case"].startswith(f"{site.name}-")


# -- no secret as a flow or task parameter; quarantine never copies a link or a refused entry -


def test_the_ingest_flow_gives_prefect_no_secret_and_no_database_url(consortium, settings, db,
                                                                    db_url, prefect_harness,
                                                                    tmp_path):
    """Whoever reads Prefect's API (flow and task runs, logs, artifacts) finds neither the
    consortium key nor the database URL of an ingest run, nor the submission's path (hospitals
    name folders after patients)."""
    import secrets
    import shutil

    from prefect.client.orchestration import get_client
    from psycopg.conninfo import conninfo_to_dict

    from flows.ingest import ingest_submission

    site = consortium[1]
    _register(db, site.name)
    key = secrets.token_hex(24)
    run = settings.model_copy(update={"secret": key})
    folder = tmp_path / "DOE_JANE_PID884120" / "submission"
    shutil.copytree(site / "submission", folder)
    ingest_submission(site.name, str(folder), settings=run)
    with get_client(sync_client=True) as client:
        flow_runs = client.read_flow_runs()
        task_runs = client.read_task_runs()
        seen = "\n".join(r.model_dump_json() for r in [*flow_runs, *task_runs])
        seen += "\n".join(r.model_dump_json() for r in client.read_logs())
        seen += "\n".join(a.model_dump_json() for a in client.read_artifacts())
    assert any(r.name and r.parameters.get("site") == site.name for r in flow_runs)
    assert key not in seen and key.encode().hex() not in seen
    assert db_url not in seen and conninfo_to_dict(db_url)["dbname"] not in seen
    assert "PID884120" not in seen and "DOE_JANE" not in seen


def test_quarantine_keeps_no_bytes_of_a_link_or_a_refused_entry(db, tmp_path):
    """Entries that must not be read (a link to the key file, a refused bomb) are recorded as
    quarantine items without their bytes; a plain file's bytes are kept."""
    import hashlib

    from bonebase.db import submissions as subs
    from bonebase.db.quarantine import QuarantineItem
    from bonebase.ingest.accept import Plan
    from bonebase.ingest.scan import FileEntry
    from bonebase.ingest.store import store_quarantine
    from bonebase.storage import LocalStore

    _register(db, "LNK")
    site_id = db.execute("SELECT id FROM sites WHERE code = 'LNK'").fetchone()["id"]
    row, _ = subs.register(db, site_id=site_id, source="x", content_hash="h")
    db.commit()
    key_file, sub = tmp_path / "secret.key", tmp_path / "sub"
    key_file.write_text("KEY-MATERIAL-5519")
    sub.mkdir()
    (sub / "link.dcm").symlink_to(key_file)
    (sub / "bomb.dcm").write_bytes(b"BOMB-BYTES-5519")
    (sub / "plain.dcm").write_bytes(b"PLAIN-BYTES")
    sha = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sub.iterdir()}
    entries = {p.name: FileEntry(p.name, p, p.stat().st_size, sha[p]) for p in sub.iterdir()}
    entries["bomb.dcm"] = FileEntry("bomb.dcm", sub / "bomb.dcm", 15, sha[sub / "bomb.dcm"],
                                    refused="zip_bomb")
    plan = Plan(quarantine=[(QuarantineItem("non_dicom", f"{name}: refused", file=name), None)
                            for name in sorted(entries)])
    store = LocalStore(tmp_path / "objects")
    assert store_quarantine(plan, conn=db, store=store, site_id=site_id,
                            submission_id=row["id"], entries=entries, manifest_bytes=b"") == 3
    kept = b"".join(p.read_bytes() for p in (tmp_path / "objects").rglob("*") if p.is_file())
    assert b"KEY-MATERIAL" not in kept and b"BOMB-BYTES" not in kept and b"PLAIN-BYTES" in kept
    items = {r["file"]: r["object_key"] for r in db.execute("SELECT * FROM quarantine_items")}
    assert items["link.dcm"] is None and items["bomb.dcm"] is None and items["plain.dcm"]


def test_migration_scrubs_case_ids_stored_by_older_versions(fresh_database):
    """Rows written before this fix (raw case_id in quarantine_items.case_ref, in its message and
    in the stored receipt) hold no case_id after `bonebase db upgrade`; pseudonyms stay."""
    from psycopg.types.json import Jsonb

    from bonebase.db.engine import connect
    from bonebase.db.migrate import upgrade

    url = fresh_database()
    upgrade(url, "0005")
    mrn, pseudonym = "MRN40719283", "HX-0123456789abcdef0123"
    old = {"submission": 1, "counts": {"quarantined": 2},
           "quarantine": [{"reason": "case_rejected", "row": 3, "case_id": mrn,
                           "message": f"a.dcm: its case {mrn} (row 3) was rejected"},
                          {"reason": "missing_column", "row": None, "case_id": None,
                           "message": "no column"}],
           "cases": [{"row": 4, "case_id": mrn, "status": "new", "files": ["a.dcm"]}],
           "warnings": [{"reason": "x", "row": 5, "case_id": mrn, "message": f"case {mrn}"}]}
    with connect(url) as conn:
        site = conn.execute("INSERT INTO sites (code, name) VALUES ('HX', 'H') RETURNING id"
                            ).fetchone()["id"]
        sub = conn.execute("INSERT INTO submissions (site_id, source, content_hash, receipt)"
                           " VALUES (%s, 's', 'h', %s) RETURNING id", (site, Jsonb(old))
                           ).fetchone()["id"]
        for ref, message in ((mrn, f"row 3, case {mrn}: no image"), (pseudonym, "kept")):
            conn.execute("INSERT INTO quarantine_items (submission_id, site_id, reason, message,"
                         " row_number, case_ref) VALUES (%s, %s, 'r', %s, 3, %s)",
                         (sub, site, message, ref))
        conn.commit()
    upgrade(url)
    with connect(url) as conn:
        items = conn.execute("SELECT case_ref, message, row_number FROM quarantine_items"
                             " ORDER BY id").fetchall()
        receipt = conn.execute("SELECT receipt FROM submissions").fetchone()["receipt"]
    assert [i["case_ref"] for i in items] == [None, pseudonym]
    assert items[0]["message"] == "row 3, case [redacted]: no image" and items[0]["row_number"] == 3
    assert mrn not in json.dumps(receipt) and "case_id" not in json.dumps(receipt)
    assert receipt["quarantine"][0]["message"] == "a.dcm: its case [redacted] (row 3) was rejected"
    assert [q["row"] for q in receipt["quarantine"]] == [3, None]
    assert receipt["cases"][0]["files"] == ["a.dcm"] and receipt["counts"] == old["counts"]


def test_submit_whose_receipt_cannot_be_written_ends_failed_in_one_line(consortium, db, db_url,
                                                                       tmp_path):
    """`bonebase submit` where the receipts folder cannot be written (it is a file): the command
    exits non-zero with one line naming the stage, no traceback, and the submission is 'failed'
    (not 'done' without a receipt); once the folder is fixed the same submit finishes it."""
    import os
    import subprocess
    import sys

    site = consortium[0]
    _register(db, site.name)
    home = tmp_path / "home"
    home.mkdir()
    (home / "receipts").write_text("not a folder")
    env = {**os.environ, "BONEBASE_HOME": str(home), "DATABASE_URL": db_url,
           "BONEBASE_SECRET": "q" * 40, "BONEBASE_INGEST_WORKERS": "2"}
    submit = [sys.executable, "-m", "bonebase.cli", "submit", str(site / "submission"),
              "--site", site.name]
    failed = subprocess.run(submit, capture_output=True, text=True, env=env, timeout=600)
    assert failed.returncode != 0 and "Traceback" not in failed.stderr, failed.stderr[-2000:]
    # The error, once from the command and once in Prefect's log of the flow run: one line each.
    lines = [line for line in failed.stderr.splitlines() if "failed while" in line]
    assert lines and all("failed while writing the receipt" in line for line in lines)
    row = db.execute("SELECT status, receipt FROM submissions").fetchone()
    assert row["status"] == "failed" and row["receipt"]["failed_at"] == "writing the receipt"

    (home / "receipts").unlink()
    again = subprocess.run(submit, capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert db.execute("SELECT status FROM submissions").fetchone()["status"] == "done"
    assert (home / "receipts" / f"submission-{row['receipt']['submission']}.json").exists()


def test_a_library_error_inside_a_task_reaches_prefect_without_its_message(
        consortium, settings, db, monkeypatch, prefect_harness):
    """Prefect logs and stores a failed task's exception; a library's message can quote what it
    read (a header value, a file's bytes). Inside a task, such an error is named by its type and
    place only; the submission still ends failed with its receipt."""
    from prefect.client.orchestration import get_client

    import validation.runner
    from flows.ingest import ingest_submission

    site = consortium[0]
    _register(db, site.name)
    planted = "DOE^JANE-PID-55731"

    def broken(*args, **kwargs):
        raise KeyError(f"no column for {planted}")

    monkeypatch.setattr(validation.runner, "validate_submission", broken)
    with pytest.raises(BonebaseError) as failed:
        ingest_submission(site.name, str(site / "submission"), settings=settings)
    assert "KeyError" in str(failed.value) and planted not in str(failed.value)
    with get_client(sync_client=True) as client:
        seen = "\n".join(r.model_dump_json() for r in client.read_logs())
        seen += "\n".join(r.model_dump_json() for r in client.read_task_runs())
    assert "KeyError" in seen and planted not in seen
    assert db.execute("SELECT status FROM submissions").fetchone()["status"] == "failed"
