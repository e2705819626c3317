"""The model registry: candidates, the release gate, named approvals, deployments, rollback.

Lifecycle of a model row: ``candidate`` → ``approved`` (gate passed, or failed and overridden
with a reason, by a named person) or ``rejected`` → ``deployed`` (saved into the BentoML model
store as ``bonebase-diagnosis:m<id>-<sha>``) → back to ``approved`` when a newer model is
deployed, or ``retired`` when rolled back. Every step writes a row (approvals, deployments) and
an audit event, so the lineage dataset version → code revision → params → model → deployment is
in the database. Checkpoints and reports live in the object store under ``models/<sha256>/``.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

from psycopg import Connection

from bonebase.db import audit
from bonebase.db import models as q
from bonebase.errors import InputError, NotFoundError
from bonebase.model.checkpoint import load_checkpoint
from bonebase.model.inference import Predictor
from bonebase.release.gate import check_gate, compare_predictors
from bonebase.release.serving import bento_version, save_to_bentoml
from bonebase.storage import ObjectStore, check_sha, sha256_file


def _need_person(by: str | None, what: str) -> str:
    if by is None or not str(by).strip():
        raise InputError(f"{what} needs the name of the person responsible: pass --by NAME")
    return str(by).strip()


def params_hash(train_params: dict) -> str:
    """Short hash of a checkpoint's training parameters (same params → same hash)."""
    blob = json.dumps(train_params, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def register(
    conn: Connection,
    store: ObjectStore,
    *,
    checkpoint: str | Path,
    metrics: dict | str | Path,
    report: str | Path | None = None,
    by: str | None = None,
    dataset_version: str | None = None,
) -> dict:
    """Upload ``checkpoint`` (and ``report``) to the store and add a candidate with
    ``metrics`` (a dict or ``reports/metrics.json``); the same checkpoint twice is one model.
    ``dataset_version`` (e.g. ``v3``, a recorded dataset version) replaces the checkpoint's
    content hash of its labels and split when the caller knows which version it trained on."""
    checkpoint = Path(checkpoint)
    ckpt = load_checkpoint(checkpoint)
    if not isinstance(metrics, dict):
        mpath = Path(metrics)
        if not mpath.is_file():
            raise NotFoundError(f"{mpath}: no metrics; run the evaluate stage first")
        metrics = json.loads(mpath.read_text(encoding="utf-8"))
    if metrics.get("task", ckpt.task) != ckpt.task:
        raise InputError(
            f"metrics are for task {metrics['task']!r} but {checkpoint} is a {ckpt.task!r} "
            "model; re-run the evaluate stage"
        )
    sha = sha256_file(checkpoint)
    key = f"models/{sha}/model.pt"
    store.put_file(key, checkpoint, sha256=sha)
    report_key = None
    if report is not None:
        report = Path(report)
        if not report.is_file():
            raise NotFoundError(f"{report}: no report; run the evaluate stage first")
        report_key = f"models/{sha}/{report.name}"
        store.put_file(report_key, report)
    actor = by or audit.current_actor()
    with conn.transaction():
        row, created = q.insert_model(
            conn,
            task=ckpt.task,
            arch=ckpt.arch,
            checkpoint_key=key,
            checkpoint_sha256=sha,
            metrics=metrics,
            report_key=report_key,
            dataset_version=dataset_version or ckpt.dataset_version,
            code_revision=ckpt.code_revision,
            params_hash=params_hash(ckpt.train_params),
            threshold=ckpt.threshold,
            created_by=actor,
        )
        if created:
            audit.record(
                conn,
                action="model.register",
                entity="model",
                entity_id=row["id"],
                actor=actor,
                details={
                    "sha256": sha,
                    "task": ckpt.task,
                    "dataset_version": dataset_version or ckpt.dataset_version,
                    "data_hash": ckpt.dataset_version,
                },
            )
    return row


def show(conn: Connection, model_id: int) -> dict:
    """A model with its approvals and deployments."""
    model = q.get_model(conn, model_id)
    deps = [d for d in q.deployments(conn, task=model["task"]) if d["model_id"] == model_id]
    return {**model, "approvals": q.approvals_of(conn, model_id), "deployments": deps}


def fetch_checkpoint(store: ObjectStore, model: dict, dest_dir: str | Path) -> Path:
    """Download a model's checkpoint to ``dest_dir`` and verify its SHA-256."""
    dest = Path(dest_dir) / f"model-{model['id']}.pt"
    store.download(model["checkpoint_key"], dest)
    check_sha(model["checkpoint_sha256"], sha256_file(dest), what=f"model {model['id']}")
    return dest


def compare(conn: Connection, store: ObjectStore, *, a: int, b: int, data_dir: str | Path) -> dict:
    """Model ``a`` vs ``b`` on the same locked test + external cases of ``data_dir``: AUCs
    with CIs, paired DeLong test of AUC(a) - AUC(b), per-site table, stored metrics."""
    ma, mb = q.get_model(conn, a), q.get_model(conn, b)
    with tempfile.TemporaryDirectory(prefix="bonebase-compare-") as tmp:
        pa = Predictor.from_checkpoint(fetch_checkpoint(store, ma, tmp))
        pb = Predictor.from_checkpoint(fetch_checkpoint(store, mb, tmp))
        out = compare_predictors(pa, pb, data_dir=data_dir, labels=("a", "b"))
    out["models"] = {"a": a, "b": b}
    out["stored_metrics"] = {
        "a": {k: ma["metrics"].get(k) for k in ("test", "external")},
        "b": {k: mb["metrics"].get(k) for k in ("test", "external")},
    }
    return out


def gate(
    conn: Connection,
    store: ObjectStore,
    model_id: int,
    *,
    policy: dict,
    data_dir: str | Path | None = None,
) -> dict:
    """The release gate for ``model_id``; with a deployed champion of the same task and
    ``data_dir``, non-inferiority is tested head to head on the same cases."""
    model = q.get_model(conn, model_id)
    champion = q.deployed_model(conn, task=model["task"])
    comparison: dict | None = {"champion": None}
    if champion is not None and champion["id"] != model_id:
        comparison = None
        if data_dir is not None and "noninferiority_margin" in policy:
            comparison = compare(conn, store, a=model_id, b=champion["id"], data_dir=data_dir)
        comparison = {**(comparison or {}), "champion": champion["id"]}
    result = check_gate(model["metrics"], policy=policy, comparison=comparison)
    result["champion"] = comparison.get("champion") if comparison else None
    if comparison and "delong" in comparison:
        result["comparison"] = {k: comparison[k] for k in ("a", "b", "delong", "sites")}
    return result


def approve(
    conn: Connection,
    store: ObjectStore,
    model_id: int,
    *,
    by: str | None,
    reason: str = "",
    override: bool = False,
    policy: dict,
    data_dir: str | Path | None = None,
) -> dict:
    """Approve a candidate after the release gate. A failed gate needs ``override`` and a
    ``reason``; the gate result, the person and the override are recorded."""
    person = _need_person(by, "approving a model")
    model = q.get_model(conn, model_id)
    if model["status"] not in ("candidate", "rejected"):
        raise InputError(f"model {model_id} is {model['status']}; only candidates are approved")
    result = gate(conn, store, model_id, policy=policy, data_dir=data_dir)
    if not result["passed"]:
        failed = ", ".join(c["check"] for c in result["checks"] if not c["passed"])
        if not override:
            raise InputError(
                f"model {model_id} fails the release gate ({failed}); fix it, or approve with "
                "--override and a --reason"
            )
        if not reason.strip():
            raise InputError(f"overriding the failed gate ({failed}) needs a --reason")
    with conn.transaction():
        q.add_approval(
            conn,
            model_id=model_id,
            decision="approved",
            by=person,
            reason=reason,
            gate=result,
            override=bool(override and not result["passed"]),
        )
        q.set_status(conn, model_id, status="approved")
        audit.record(
            conn,
            action="model.approve",
            entity="model",
            entity_id=model_id,
            actor=person,
            details={"gate_passed": result["passed"], "override": override, "reason": reason},
        )
    return {**q.get_model(conn, model_id), "gate": result}


def reject(conn: Connection, model_id: int, *, by: str | None, reason: str) -> dict:
    """Reject a model (not deployed now) with a reason."""
    person = _need_person(by, "rejecting a model")
    if not reason or not reason.strip():
        raise InputError("rejecting a model needs a --reason")
    model = q.get_model(conn, model_id)
    if model["status"] == "deployed":
        raise InputError(f"model {model_id} is deployed; roll back first, then reject it")
    with conn.transaction():
        q.add_approval(
            conn,
            model_id=model_id,
            decision="rejected",
            by=person,
            reason=reason,
            gate={},
            override=False,
        )
        q.set_status(conn, model_id, status="rejected")
        audit.record(
            conn,
            action="model.reject",
            entity="model",
            entity_id=model_id,
            actor=person,
            details={"reason": reason},
        )
    return q.get_model(conn, model_id)


def _to_bentoml(store: ObjectStore, model: dict) -> str:
    with tempfile.TemporaryDirectory(prefix="bonebase-deploy-") as tmp:
        path = fetch_checkpoint(store, model, tmp)
        labels = {
            "registry_id": model["id"],
            "task": model["task"],
            "arch": model["arch"],
            "dataset_version": model["dataset_version"],
            "code_revision": model["code_revision"],
            "params_hash": model["params_hash"],
        }
        # "ood", "explanation": the out-of-distribution detector and the heat-map method/layer the
        # approved model was evaluated with, used by the served answer (serving/service.py, #21)
        kept = ("test", "external", "ood", "explanation")
        metadata = {"metrics": {k: model["metrics"].get(k) for k in kept}}
        version = bento_version(model["id"], model["checkpoint_sha256"])
        return save_to_bentoml(path, version=version, labels=labels, metadata=metadata)


def _switch(conn: Connection, *, new: dict, old: dict | None, old_status: str) -> None:
    if old is not None and old["id"] != new["id"]:
        q.set_status(conn, old["id"], status=old_status)
    q.set_status(conn, new["id"], status="deployed")


def deploy(
    conn: Connection,
    store: ObjectStore,
    model_id: int,
    *,
    by: str | None,
    url: str | None = None,
) -> dict:
    """Deploy an approved model: save it into the BentoML model store and make it the
    task's champion (the previous one goes back to approved). Returns the deployment row;
    serve it with ``BONEBASE_MODEL_TAG=<bento_tag> bentoml serve serving.service:Diagnosis``."""
    person = _need_person(by, "deploying a model")
    model = q.get_model(conn, model_id)
    if model["status"] != "approved":
        raise InputError(
            f"model {model_id} is {model['status']}; only an approved model can be deployed "
            "(run `bonebase models approve` first)"
        )
    tag = _to_bentoml(store, model)
    with conn.transaction():
        _switch(
            conn, new=model, old=q.deployed_model(conn, task=model["task"]), old_status="approved"
        )
        row = q.add_deployment(
            conn, model_id=model_id, action="deploy", by=person, bento_tag=tag, url=url
        )
        audit.record(
            conn,
            action="model.deploy",
            entity="model",
            entity_id=model_id,
            actor=person,
            details={"bento_tag": tag, "url": url},
        )
    return row


def rollback(
    conn: Connection, store: ObjectStore, *, task: str, by: str | None, url: str | None = None
) -> dict:
    """Put the previously deployed, still approved model of ``task`` back; the current one is
    retired. Returns the deployment row (action rollback)."""
    person = _need_person(by, "rolling back")
    current = q.deployed_model(conn, task=task)
    if current is None:
        raise NotFoundError(f"no model is deployed for task {task!r}; nothing to roll back")
    previous = None
    for dep in q.deployments(conn, task=task, limit=1000):
        if dep["model_id"] == current["id"]:
            continue
        candidate = q.get_model(conn, dep["model_id"])
        if candidate["status"] == "approved":
            previous = candidate
            break
    if previous is None:
        raise NotFoundError(
            f"task {task!r} has no earlier approved deployment to roll back to; deploy another "
            "approved model instead"
        )
    tag = _to_bentoml(store, previous)
    with conn.transaction():
        _switch(conn, new=previous, old=current, old_status="retired")
        row = q.add_deployment(
            conn, model_id=previous["id"], action="rollback", by=person, bento_tag=tag, url=url
        )
        audit.record(
            conn,
            action="model.rollback",
            entity="model",
            entity_id=previous["id"],
            actor=person,
            details={"from_model": current["id"], "bento_tag": tag, "url": url},
        )
    return row


list_models = q.list_models

__all__ = [
    "approve",
    "compare",
    "deploy",
    "fetch_checkpoint",
    "gate",
    "list_models",
    "params_hash",
    "register",
    "reject",
    "rollback",
    "show",
]
