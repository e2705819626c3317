"""`bonebase federated run` in Flower's simulation runtime on the synthetic sites' homes: it
trains, registers a candidate with its lineage, and the candidate is approved and deployed with
the same commands as any model; a site that drops out mid-round. (Each run starts Ray and a
worker that imports torch and MONAI: a minute or more on a loaded machine, so the refusal at
the first round is tested on the strategy with the ClientApp's real reply, in test_client.)"""

from __future__ import annotations

import json
import os
from itertools import pairwise
from pathlib import Path

import pytest
import torch

from bonebase.federated.simulation import simulate
from bonebase.model.checkpoint import load_checkpoint
from tests.federated.conftest import EXTERNAL, TINY, TRAINING, optimizer_steps


@pytest.fixture
def env(tmp_path, db_url, monkeypatch) -> dict:
    """The consortium's environment (its home, the test database, a private BentoML store), for
    a process and for commands run in this one."""
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.models import ModelStore

    from bonebase.config import get_settings

    values = {"BONEBASE_HOME": str(tmp_path / "consortium"), "DATABASE_URL": db_url,
              "BENTOML_HOME": str(tmp_path / "bentoml"), "BONEBASE_ENV": "test"}  # fmt: skip
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    BentoMLContainer.model_store.set(ModelStore(tmp_path / "bentoml" / "models"))
    yield {**os.environ, **values}
    BentoMLContainer.model_store.reset()
    get_settings.cache_clear()


def _here(app, args: list[str]):
    """A command run in this process (Typer's runner), for the steps after the run."""
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_run_registers_a_candidate_that_is_approved_and_deployed(consortium, env, tmp_path, db):
    out = tmp_path / "out"
    params = str(consortium / "params.yaml")
    from bonebase.federated.cli import federated_app
    from bonebase.release.cli import models_app

    text = _here(federated_app, [
        "run", "--sites", ",".join([*TRAINING, EXTERNAL]), "--homes", str(consortium / "homes"),
        "--rounds", "4", "--params", params, "--eval-data", str(consortium / "data"),
        "--out", str(out), "--by", "fl-test", "--dp-clip", "50", "--dp-noise", "0.001",
        "--parallel-sites", "1"])  # fmt: skip
    assert f"excluded: site {EXTERNAL}: no data for task benign_vs_malignant" in text
    # the defaults: rounds of a quarter epoch (4 rounds: one epoch), optimizers kept, last round
    assert all(f"round {r}: 3 sites trained" in text for r in (1, 2, 3, 4))
    model = db.execute("SELECT * FROM models").fetchone()
    assert f"registered as candidate model {model['id']}" in text
    assert model["status"] == "candidate" and model["task"] == "benign_vs_malignant"
    assert model["dataset_version"].startswith("fed:BJ1=")
    lineage = db.execute("SELECT * FROM federated_runs WHERE model_id = %s",
                         (model["id"],)).fetchone()  # fmt: skip
    assert lineage["sites"] == sorted(TRAINING) and lineage["rounds"] == 4
    assert lineage["strategy"] == "fedavg" and lineage["created_by"] == "fl-test"
    assert set(lineage["site_datasets"]) == set(TRAINING)
    dp = lineage["privacy"]["differential_privacy"]
    assert {k: dp[k] for k in ("mechanism", "clipping", "side", "clipping_norm",
                               "noise_multiplier")} == {
        "mechanism": "gaussian", "clipping": "fixed", "side": "server", "clipping_norm": 50.0,
        "noise_multiplier": 0.001}  # fmt: skip
    # the ε spent for δ over the four rounds: huge at this token noise (no privacy to speak of)
    assert dp["delta"] == 1e-5 and dp["rounds_accounted"] == 4 and dp["epsilon"] > 1e4
    assert lineage["privacy"]["secure_aggregation"] is None
    assert EXTERNAL in lineage["details"]["excluded"]
    ckpt = load_checkpoint(out / "model.pt")
    assert ckpt.arch == "resnet10-slim" and ckpt.image_size == 32 and ckpt.export_size == 32
    assert [h["epoch"] for h in ckpt.history] == [1, 2, 3, 4] and ckpt.threshold is not None
    fed = ckpt.train_params["federated"]
    assert fed["keep_round"] == "last" and fed["selected_round"] == 4
    assert fed["rounds_per_epoch"] == 4 and fed["keep_optimizer"] is True
    # each site's optimizer went on from one round to the next, at the site
    steps = optimizer_steps(fed)
    assert steps[0] == dict.fromkeys(TRAINING, 0)
    assert all(0 < a[site] < b[site] for a, b in pairwise(steps[1:]) for site in TRAINING)
    assert fed["optimizer_resets"] == []
    assert ckpt.train_params["federated"]["site_datasets"] == lineage["site_datasets"]
    assert all(torch.isfinite(v.float()).all() for v in ckpt.state_dict.values())
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["external"]["n_cases"] > 0 and model["metrics"]["external"] == metrics["external"]

    shown = json.loads(_here(federated_app, ["show", str(model["id"])]))
    assert shown["site_datasets"] == lineage["site_datasets"]
    assert shown["privacy"]["differential_privacy"]["epsilon"] == dp["epsilon"]
    _here(models_app, ["approve", str(model["id"]), "--by", "Dr Approver", "--params", params])
    assert db.execute("SELECT status FROM models").fetchone()["status"] == "approved"
    _here(models_app, ["deploy", str(model["id"]), "--by", "Dr Deployer"])
    row = db.execute("SELECT * FROM deployments WHERE model_id = %s", (model["id"],)).fetchone()
    assert row["action"] == "deploy" and row["bento_tag"].startswith("bonebase-diagnosis:m")


def drop_bos_in_round_two(msg, context, call_next):
    """A Flower client mod: the third site (BOS) loses its connection in round 2's training."""
    config = msg.content.config_records.get("config") or {}
    if (msg.metadata.message_type == "train" and int(config.get("server-round", 0)) == 2
            and int(context.node_config.get("partition-id", -1)) == 2):  # fmt: skip
        raise ConnectionError("connection to the consortium lost")
    return call_next(msg, context)


def test_a_site_dropping_out_mid_round_leaves_the_round_to_the_others(consortium, tmp_path):
    said: list[str] = []
    done = simulate({**TINY, "sites": ",".join(TRAINING), "homes": str(consortium / "homes"),
                     "rounds": 2, "rounds-per-epoch": 2, "out-dir": str(tmp_path / "out")},
                    say=said.append, mods=[drop_bos_in_round_two], actors=1)  # fmt: skip
    assert "round 2: completes with 2 of 3 sites (minimum 2)" in said
    assert any(line.startswith("round 2: BOS dropped out of training") for line in said)
    lineage = json.loads(Path(done["lineage"]).read_text())
    assert [(d["round"], d["site"], d["stage"]) for d in lineage["dropped"]] == [
        (2, "BOS", "training")]
    assert [h["sites"] for h in lineage["history"]] == [3, 2]
    assert load_checkpoint(done["model"]).train_params["federated"]["sites"] == sorted(TRAINING)


def test_client_side_clipping_with_kept_optimizers_runs_and_is_recorded(consortium, tmp_path):
    """Differential privacy clipped at the hospitals (dp-side client, Flower's clipping mod)
    with each hospital keeping its optimizer: two rounds of half an epoch complete, the kept
    optimizers go on from round to round at home, and the lineage records the side, the
    clipping norm and the ε of both rounds."""
    said: list[str] = []
    done = simulate({**TINY, "sites": ",".join(TRAINING), "homes": str(consortium / "homes"),
                     "rounds": 2, "rounds-per-epoch": 2, "dp-clip": 0.5, "dp-noise": 0.001,
                     "dp-side": "client", "out-dir": str(tmp_path / "out")},
                    say=said.append, actors=1)  # fmt: skip
    ckpt = load_checkpoint(done["model"])
    fed = ckpt.train_params["federated"]
    dp = fed["privacy"]["differential_privacy"]
    assert (dp["side"], dp["clipping_norm"], dp["rounds_accounted"]) == ("client", 0.5, 2)
    steps = optimizer_steps(fed)
    assert steps[0] == dict.fromkeys(TRAINING, 0) and min(steps[1].values()) > 0
    assert fed["optimizer_resets"] == [] and not any("fresh optimizer" in line for line in said)
    assert all(torch.isfinite(v.float()).all() for v in ckpt.state_dict.values())
