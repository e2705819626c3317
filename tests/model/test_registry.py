"""Model registry on a real database, a local object store and a private BentoML model store:
register, gate, approve/reject, deploy, compare and rollback."""

from __future__ import annotations

import copy

import pytest
import torch

from bonebase.db import audit
from bonebase.db import models as q
from bonebase.errors import InputError, NotFoundError
from bonebase.model.checkpoint import save_checkpoint
from bonebase.release import registry
from bonebase.release.gate import check_gate
from bonebase.storage import LocalStore

POLICY = {"auc_ci_low_min": 0.6, "site_auc_min": 0.55, "ece_max": 0.2, "min_test_cases": 10}
GOOD = {
    "task": "benign_vs_malignant",
    "test": {"n_cases": 40, "auc": 0.85, "auc_delong_lo": 0.74, "ece": 0.05},
    "external": {"n_cases": 30, "auc": 0.8, "auc_delong_lo": 0.66, "ece": 0.08},
    "external_MUC": {"n_cases": 30, "auc": 0.8},
}


def _metrics(**changes) -> dict:
    m = copy.deepcopy(GOOD)
    for path, value in changes.items():
        part, key = path.split("__")
        m[part][key] = value
    return m


@pytest.fixture
def bento_store(tmp_path):
    """A private BentoML model store for this test (never the user's ~/bentoml)."""
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.models import ModelStore

    BentoMLContainer.model_store.set(ModelStore(tmp_path / "bentoml-models"))
    yield tmp_path / "bentoml-models"
    BentoMLContainer.model_store.reset()


@pytest.fixture
def store(tmp_path):
    return LocalStore(tmp_path / "objects")


@pytest.fixture(scope="module")
def checkpoints(checkpoint, tmp_path_factory):
    """Two different checkpoints of one task: the trained one and one with perturbed weights."""
    root = tmp_path_factory.mktemp("ckpts")
    a = save_checkpoint(checkpoint, root / "a.pt")
    other = copy.deepcopy(checkpoint)
    gen = torch.Generator().manual_seed(5)
    # weights only: BatchNorm's running statistics are true averages since precise BN (a variance
    # of ~4e-4 plus noise turns negative, and the scores NaN)
    other.state_dict = {
        k: v + 0.05 * torch.randn(v.shape, generator=gen)
        if v.is_floating_point() and "running_" not in k
        else v
        for k, v in other.state_dict.items()
    }
    b = save_checkpoint(other, root / "b.pt")
    return a, b


def test_gate_passes_and_fails_on_each_check():
    assert check_gate(GOOD, policy=POLICY, comparison={"champion": None})["passed"]
    for bad, check in (
        ({"test__auc_delong_lo": 0.5}, "auc_ci_low[test]"),
        ({"test__ece": 0.3}, "ece[test]"),
        ({"test__n_cases": 5}, "n_cases[test]"),
        ({"external_MUC__auc": 0.5}, "site_auc[MUC]"),
    ):
        result = check_gate(_metrics(**bad), policy=POLICY)
        assert not result["passed"]
        assert [c["check"] for c in result["checks"] if not c["passed"]] == [check]


def test_gate_noninferiority_needs_a_comparison_with_the_champion():
    policy = {"noninferiority_margin": 0.05}
    assert not check_gate(GOOD, policy=policy, comparison={"champion": 3})["passed"]
    worse = {"champion": 3, "delong": {"ci_low": -0.08}}
    assert not check_gate(GOOD, policy=policy, comparison=worse)["passed"]
    close = {"champion": 3, "delong": {"ci_low": -0.03}}
    assert check_gate(GOOD, policy=policy, comparison=close)["passed"]
    with pytest.raises(InputError, match="unknown keys"):
        check_gate(GOOD, policy={"auc_min": 0.7})


def test_register_is_idempotent_and_stores_the_checkpoint(db, store, checkpoints):
    a, _ = checkpoints
    first = registry.register(db, store, checkpoint=a, metrics=GOOD, by="ml-eng")
    again = registry.register(db, store, checkpoint=a, metrics=GOOD, by="ml-eng")
    assert first["id"] == again["id"] and first["status"] == "candidate"
    assert first["dataset_version"] == "test-v1" and first["params_hash"]
    assert store.get_bytes(first["checkpoint_key"]) == a.read_bytes()
    assert [e["action"] for e in audit.events(db, entity="model")] == ["model.register"]


def test_approval_rules_and_deploy_refuses_unapproved(db, store, checkpoints, bento_store):
    a, _ = checkpoints
    m = registry.register(db, store, checkpoint=a, metrics=_metrics(test__ece=0.5), by="x")
    with pytest.raises(InputError, match="only an approved model"):
        registry.deploy(db, store, m["id"], by="ops")
    with pytest.raises(InputError, match="name of the person"):
        registry.approve(db, store, m["id"], by="  ", policy=POLICY)
    with pytest.raises(InputError, match="fails the release gate"):
        registry.approve(db, store, m["id"], by="Dr Who", policy=POLICY)
    with pytest.raises(InputError, match="needs a --reason"):
        registry.approve(db, store, m["id"], by="Dr Who", policy=POLICY, override=True)
    assert q.get_model(db, m["id"])["status"] == "candidate"
    out = registry.approve(
        db, store, m["id"], by="Dr Who", policy=POLICY, override=True, reason="pilot only"
    )
    assert out["status"] == "approved" and not out["gate"]["passed"]
    (approval,) = q.approvals_of(db, m["id"])
    assert approval["override"] and approval["by_person"] == "Dr Who"
    assert approval["gate"]["checks"]
    dep = registry.deploy(db, store, m["id"], by="ops", url="http://127.0.0.1:3000")
    assert dep["bento_tag"].startswith("bonebase-diagnosis:m") and dep["action"] == "deploy"
    assert (bento_store / "bonebase-diagnosis").is_dir()
    assert q.deployed_model(db, task="benign_vs_malignant")["id"] == m["id"]


def test_compare_deploy_and_rollback(db, store, checkpoints, bento_store, tiny_data):
    a, b = checkpoints
    ma = registry.register(db, store, checkpoint=a, metrics=GOOD, by="x")
    mb = registry.register(db, store, checkpoint=b, metrics=GOOD, by="x")
    registry.approve(db, store, ma["id"], by="Dr A", policy=POLICY)
    registry.deploy(db, store, ma["id"], by="ops")
    # With A deployed, B's non-inferiority is tested head to head on the locked test cases.
    policy = {**POLICY, "noninferiority_margin": 1.0}
    cmp = registry.compare(db, store, a=mb["id"], b=ma["id"], data_dir=tiny_data)
    assert cmp["n_cases"] > 0 and 0.0 <= cmp["a"]["auc"] <= 1.0
    assert cmp["delong"]["diff"] == pytest.approx(cmp["a"]["auc"] - cmp["b"]["auc"])
    assert {s["site"] for s in cmp["sites"]} >= {"MUC"}
    with pytest.raises(InputError, match="noninferiority"):
        registry.approve(db, store, mb["id"], by="Dr B", policy=policy)
    out = registry.approve(db, store, mb["id"], by="Dr B", policy=policy, data_dir=tiny_data)
    assert out["gate"]["champion"] == ma["id"] and "comparison" in out["gate"]
    registry.deploy(db, store, mb["id"], by="ops")
    assert q.get_model(db, ma["id"])["status"] == "approved"
    back = registry.rollback(db, store, task="benign_vs_malignant", by="ops")
    assert back["model_id"] == ma["id"] and back["action"] == "rollback"
    assert q.deployed_model(db, task="benign_vs_malignant")["id"] == ma["id"]
    assert q.get_model(db, mb["id"])["status"] == "retired"
    with pytest.raises(NotFoundError, match="no earlier approved"):
        registry.rollback(db, store, task="benign_vs_malignant", by="ops")
    actions = [e["action"] for e in audit.events(db, entity="model")]
    assert actions[0] == "model.rollback" and actions.count("model.deploy") == 2


def test_reject_needs_reason_and_blocks_deploy(db, store, checkpoints, bento_store):
    a, _ = checkpoints
    m = registry.register(db, store, checkpoint=a, metrics=GOOD, by="x")
    with pytest.raises(InputError, match="reason"):
        registry.reject(db, m["id"], by="Dr C", reason="")
    assert registry.reject(db, m["id"], by="Dr C", reason="leak suspected")["status"] == "rejected"
    with pytest.raises(InputError, match="rejected"):
        registry.deploy(db, store, m["id"], by="ops")


def test_cli_register_list_and_approve_needs_by(db_url, bonebase_env, checkpoints, tmp_path):
    import json

    from typer.testing import CliRunner

    from bonebase.release.cli import models_app

    a, _ = checkpoints
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps(GOOD))
    runner = CliRunner()
    reg = runner.invoke(
        models_app, ["register", "--model", str(a), "--metrics", str(metrics), "--by", "eng"]
    )
    assert reg.exit_code == 0, reg.output
    listed = runner.invoke(models_app, ["list", "--json"])
    assert listed.exit_code == 0
    (row,) = json.loads(listed.output)
    assert row["status"] == "candidate" and row["created_by"] == "eng"
    refused = runner.invoke(models_app, ["approve", str(row["id"])])
    assert refused.exit_code != 0 and "name of the person" in str(refused.exception)
