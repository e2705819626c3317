"""`make demo`'s story, smaller: 3 + 1 hospitals of 22 cases, 64 px, one epoch — every step real
(PostgreSQL, Prefect flows, git + DVC, training, BentoML serve over HTTP)."""

from __future__ import annotations

import secrets
import socket
from pathlib import Path

import pytest

from bonebase.config import Settings
from bonebase.db.engine import connect

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def demo_world(fresh_database, tmp_path_factory, prefect_harness):
    """The demo's settings, in the environment as `bonebase demo` has them; the consortium key
    and a DATABASE_URL password are unique values for the secrets scan (the test server trusts
    local connections: the password is accepted and ignored)."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from bonebase.config import get_settings
    from bonebase.demo_cli import DemoConfig

    password = "pw" + secrets.token_hex(12)
    url = make_conninfo(**{**conninfo_to_dict(fresh_database()), "password": password})
    home = tmp_path_factory.mktemp("demo-home")
    settings = Settings(home=home, database_url=url, secret="demo-" + secrets.token_urlsafe(32),
                        env="test")  # fmt: skip
    cfg = DemoConfig(sites=3, cases_per_site=22, seed=3, image_size=64, export_size=64,
                     epochs=1, bootstrap=50, port=_free_port(), keep_serving=False)  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:
        for name, value in settings.environ().items():
            mp.setenv(name, value)
        get_settings.cache_clear()
        yield settings, cfg, {"password": password, "lines": []}
    get_settings.cache_clear()


def test_demo_story_end_to_end_and_rerun_is_safe(demo_world):
    from bonebase.demo_cli import run_demo

    settings, cfg, seen = demo_world
    lines: list[str] = seen["lines"]
    out = run_demo(repo=ROOT, cfg=cfg, say=lines.append)

    answer = out["diagnosis"]
    assert set(answer["probabilities"]) == {"benign", "malignant"}
    assert answer["gradcam_png"] and answer["model_version"].startswith("bonebase-diagnosis:m")
    assert out["candidate"] and out["candidate"] != out["champion"]
    assert out["comparison"]["n_cases"] > 0 and "p" in out["comparison"]["delong"]
    assert Path(out["report"]).is_file()
    with connect(settings.database_url) as conn:
        models = {m["id"]: m for m in conn.execute("SELECT * FROM models").fetchall()}
        assert models[out["champion"]]["status"] == "deployed"
        assert models[out["champion"]]["dataset_version"] == "v1"
        assert models[out["candidate"]]["status"] == "candidate"  # never deployed by itself
        assert models[out["candidate"]]["dataset_version"] == "v2"
        approval = conn.execute("SELECT * FROM approvals").fetchone()
        assert approval["by_person"] == "Demo Steward" and approval["reason"]
        assert conn.execute("SELECT count(*) AS n FROM deployments").fetchone()["n"] == 1
        sites = {r["code"] for r in conn.execute("SELECT code FROM sites").fetchall()}
    assert len(sites) == 4
    assert any("a fifth hospital joins" in line for line in lines)

    again: list[str] = []
    out2 = run_demo(repo=ROOT, cfg=cfg, say=again.append)
    lines += again
    assert out2["champion"] == out["champion"] and out2["candidate"] is None
    assert any("nothing changed" in line for line in again)
    with connect(settings.database_url) as conn:
        assert conn.execute("SELECT count(*) AS n FROM models").fetchone()["n"] == len(models)
        assert conn.execute("SELECT count(*) AS n FROM dataset_versions").fetchone()["n"] == 2
        assert conn.execute("SELECT count(*) AS n FROM deployments").fetchone()["n"] == 1


def test_after_the_demo_only_secret_key_holds_the_secret(demo_world):
    """#15's done-when: after the demo (the story above, same fixture: no second run), no file
    under BONEBASE_HOME but secret.key, no row of the database, no Prefect API answer or
    Prefect database byte, and no line the demo printed holds the key or the DB password."""
    from tests.security.leaks import database_leaks, file_leaks, prefect_leaks

    settings, _, seen = demo_world
    assert seen["lines"], "runs after test_demo_story_end_to_end_and_rerun_is_safe (its state)"
    values = [settings.secret, seen["password"]]
    assert file_leaks(settings.home, values, allowed={settings.secret_file}) == []
    with connect(settings.database_url) as conn:
        assert database_leaks(conn, values) == []
    assert prefect_leaks(values) == []
    assert not [line for line in seen["lines"] if any(v in line for v in values)]


def test_after_the_demo_no_submitted_identifying_value_is_stored(demo_world):
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

    settings, _, seen = demo_world
    assert seen["lines"], "runs after test_demo_story_end_to_end_and_rerun_is_safe (its state)"
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
    assert not [line for line in seen["lines"] if tokens.search(line.encode())]
