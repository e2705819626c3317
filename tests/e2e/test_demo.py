"""`make demo`'s story, smaller: 3 + 1 hospitals of 22 cases, 64 px, one epoch — every step real
(PostgreSQL, Prefect flows, git + DVC, training, BentoML serve over HTTP)."""

from __future__ import annotations

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
    from bonebase.demo import DemoConfig

    url = fresh_database()
    home = tmp_path_factory.mktemp("demo-home")
    settings = Settings(home=home, database_url=url, secret="d" * 40, env="test")
    cfg = DemoConfig(sites=3, cases_per_site=22, seed=3, image_size=64, export_size=64,
                     epochs=1, bootstrap=50, port=_free_port(), keep_serving=False)  # fmt: skip
    return settings, cfg


def test_demo_story_end_to_end_and_rerun_is_safe(demo_world):
    from bonebase.demo import run_demo

    settings, cfg = demo_world
    lines: list[str] = []
    out = run_demo(settings, repo=ROOT, cfg=cfg, say=lines.append)

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
    out2 = run_demo(settings, repo=ROOT, cfg=cfg, say=again.append)
    assert out2["champion"] == out["champion"] and out2["candidate"] is None
    assert any("nothing changed" in line for line in again)
    with connect(settings.database_url) as conn:
        assert conn.execute("SELECT count(*) AS n FROM models").fetchone()["n"] == len(models)
        assert conn.execute("SELECT count(*) AS n FROM dataset_versions").fetchone()["n"] == 2
        assert conn.execute("SELECT count(*) AS n FROM deployments").fetchone()["n"] == 1
