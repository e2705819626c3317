"""The ingest flow end to end on a synthetic hospital: real Prefect, PostgreSQL and object store."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import psycopg
import pydicom
import pytest

from bonebase.config import Settings
from bonebase.db.cases import counts
from bonebase.db.engine import connect
from bonebase.db.sites import add_site
from bonebase.errors import BonebaseError

pytestmark = pytest.mark.slow

IDENTIFYING = ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber",
               "InstitutionName", "InstitutionAddress", "ReferringPhysicianName",
               "PerformingPhysicianName", "OperatorsName")


@pytest.fixture(scope="module")
def consortium(tmp_path_factory) -> Path:
    from bonebase.synth import generate

    out = tmp_path_factory.mktemp("synth")
    generate(out, sites=2, cases_per_site=24, seed=11, workers=2)
    return out


@pytest.fixture
def site_dir(consortium) -> Path:
    # The second site (BJ1): a code of 3+ characters that the site also writes into its headers,
    # which the first site's 2-letter code does not exercise.
    return sorted(p for p in consortium.iterdir() if p.is_dir())[0]


@pytest.fixture
def settings(tmp_path, db_url, db) -> Settings:
    s = Settings(home=tmp_path / "home", database_url=db_url, secret="t" * 40, env="test")
    s.ensure_home()
    return s


def _register(db, code):
    add_site(db, code=code, name=f"Hospital {code}")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _expected(site_dir: Path) -> set[tuple]:
    sub = site_dir / "submission"
    found = set()
    for f in json.loads((site_dir / "faults.json").read_text()):
        found.add((f["kind"], _sha(sub / f["file"])) if f["file"] else (f["kind"], f["row"]))
    return found


def _quarantined(conn) -> tuple[set[tuple], list[dict]]:
    rows = conn.execute("SELECT * FROM quarantine_items ORDER BY id").fetchall()
    got = set()
    for r in rows:
        if r["reason"] == "case_rejected":
            continue
        if r["file"] is not None:
            # Quarantined files are kept under their content hash.
            got.add((r["reason"], r["object_key"].rsplit("/", 1)[1].removesuffix(".bin")))
        else:
            got.add((r["reason"], r["row_number"]))
    return got, rows


def _identifiers(sub: Path) -> set[str]:
    values = set()
    for path in sub.rglob("*"):
        if not path.is_file() or path.name == "manifest.csv":
            continue
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:
            continue
        for kw in IDENTIFYING:
            value = str(ds.get(kw, "") or "").strip()
            if len(value) >= 4:
                values.add(value)
    return values


def test_ingest_quarantines_exactly_the_injected_faults(settings, site_dir, db, prefect_harness):
    from flows.ingest import ingest_submission

    code = site_dir.name
    _register(db, code)
    receipt = ingest_submission(code, str(site_dir / "submission"), settings=settings)
    got, rows = _quarantined(db)
    assert got == _expected(site_dir)
    # Every file is accounted for: stored in a case, or in quarantine (case_rejected included).
    files = [p for p in (site_dir / "submission").rglob("*")
             if p.is_file() and p.name != "manifest.csv"]
    quarantined_files = [r for r in rows if r["file"] is not None]
    assert receipt["counts"]["files_accepted"] + len(quarantined_files) == len(files)
    assert counts(db)["instances"] == receipt["counts"]["files_stored"] > 0
    # Every quarantined file's original bytes are kept.
    for r in quarantined_files:
        assert (settings.home / "objects" / r["object_key"]).exists()
    assert Path(receipt["paths"]["markdown"]).read_text().startswith("# Receipt")

    # A re-run of the same submission is a no-op that says so.
    before = counts(db)
    again = ingest_submission(code, str(site_dir / "submission"), settings=settings)
    assert again["already_ingested"] is True
    assert counts(db) == before
    assert db.execute("SELECT count(*) AS n FROM quarantine_items").fetchone()["n"] == len(rows)


def test_nothing_identifying_is_stored(settings, site_dir, db, db_url, prefect_harness):
    from flows.ingest import ingest_submission

    code = site_dir.name
    _register(db, code)
    ingest_submission(code, str(site_dir / "submission"), settings=settings)
    identifiers = _identifiers(site_dir / "submission")
    assert len(identifiers) > 20  # the generator put PHI in the headers
    with psycopg.connect(db_url) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname='public'").fetchall()]
        dump = "\n".join(str(row) for t in tables
                         for row in conn.execute(f"SELECT * FROM {t}").fetchall())  # noqa: S608
    leaks = sorted(v for v in identifiers if v in dump)
    assert not leaks, f"identifying values in the database: {leaks[:5]}"
    curated = list((settings.home / "objects" / "curated").rglob("*.dcm"))
    assert curated
    for path in curated:
        data = path.read_bytes()
        hits = [v for v in identifiers if v.encode() in data]
        assert not hits, f"{path.name} holds {hits[:3]}"
    receipts = "".join(p.read_text() for p in (settings.home / "receipts").iterdir())
    assert not [v for v in identifiers if v in receipts]


def test_corrected_row_makes_a_new_version(settings, site_dir, db, tmp_path, prefect_harness):
    import csv

    from flows.ingest import ingest_submission

    code = site_dir.name
    _register(db, code)
    first = ingest_submission(code, str(site_dir / "submission"), settings=settings)
    row_number = first["cases"][0]["row"]
    copy = tmp_path / "resubmission"
    shutil.copytree(site_dir / "submission", copy)
    manifest = copy / "manifest.csv"
    with manifest.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    rows[row_number - 1]["age"] = str(int(rows[row_number - 1]["age"]) + 1)
    with manifest.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    receipt = ingest_submission(code, str(copy), settings=settings)
    c = receipt["counts"]
    assert (c["cases_updated"], c["cases_new"]) == (1, 0)
    assert c["files_stored"] == 0 and c["files_duplicate"] == c["files_accepted"]
    versions = db.execute("SELECT version, data FROM case_versions WHERE case_id ="
                          " (SELECT id FROM cases WHERE version = 2) ORDER BY version").fetchall()
    assert [v["version"] for v in versions] == [1, 2]
    assert versions[1]["data"]["age"] == versions[0]["data"]["age"] + 1


def test_ingest_into_s3(settings, site_dir, db, s3_bucket, prefect_harness):
    from bonebase.storage import open_store
    from flows.ingest import ingest_submission

    code = site_dir.name
    _register(db, code)
    s3 = settings.model_copy(update={"storage_url": s3_bucket.url,
                                     "s3_endpoint_url": s3_bucket.endpoint_url})
    receipt = ingest_submission(code, str(site_dir / "submission"), settings=s3)
    store = open_store(s3_bucket.url, endpoint_url=s3_bucket.endpoint_url)
    keys = list(store.list("curated/"))
    assert len(keys) == receipt["counts"]["files_stored"] > 0
    with connect(settings.database_url) as conn:
        stored = {r["object_key"] for r in conn.execute("SELECT object_key FROM instances")}
    assert stored == set(keys)


def test_crash_midway_then_rerun_finishes_without_duplicates(settings, site_dir, db, monkeypatch,
                                                             prefect_harness):
    """A failure after some cases committed marks the submission 'failed' (with a receipt);
    running it again completes it, nothing is stored twice, and the receipt counts the cases
    the first run committed as the submission's new cases."""
    import bonebase.ingest.store as store_module
    from flows.ingest import ingest_submission

    code = site_dir.name
    _register(db, code)
    real_commit, calls = store_module.commit_cases, []

    def crashing_commit(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:  # the first transaction (5 whole cases) commits, then the crash
            raise RuntimeError("simulated crash")
        return real_commit(*args, **kwargs)

    monkeypatch.setattr(store_module, "CASES_PER_COMMIT", 5)
    monkeypatch.setattr(store_module, "commit_cases", crashing_commit)
    with pytest.raises(BonebaseError, match="failed while storing the cases"):
        ingest_submission(code, str(site_dir / "submission"), settings=settings)
    status = db.execute("SELECT status FROM submissions").fetchone()["status"]
    assert status == "failed"
    assert counts(db)["cases"] == 5
    monkeypatch.setattr(store_module, "commit_cases", real_commit)

    receipt = ingest_submission(code, str(site_dir / "submission"), settings=settings)
    assert db.execute("SELECT count(*) AS n, min(status) AS s FROM submissions").fetchone() == {
        "n": 1, "s": "done"}
    c = counts(db)
    assert c["cases"] == receipt["counts"]["cases_accepted"]
    assert c["instances"] == receipt["counts"]["files_accepted"]
    # Committed before the crash by this same submission: new, as the database says.
    assert receipt["counts"]["cases_new"] == receipt["counts"]["cases_accepted"]
    got, _ = _quarantined(db)
    assert got == _expected(site_dir)
