"""The champion watch: score new radiographs with the deployed model, check each site.

``score(conn, store, model, ...)`` scores, in batches, what the champion has not scored yet:
first its reference (the cases of the dataset version it was trained on, or what had arrived
before it was registered when that version's case list is unknown), then new radiographs (of
one submission, or all). ``check_site`` turns a site's scores into a performance check and a
drift check against the reference, records both, and raises an alert (an audit event, a
Prefect event, and an open alert on the models page) when a threshold of the policy breaks.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from pathlib import Path

from psycopg import Connection

from bonebase.db import audit
from bonebase.db import models as model_q
from bonebase.errors import InputError, NotFoundError
from bonebase.monitor import db, drift, early, performance, report
from bonebase.monitor.db import champion
from bonebase.monitor.policy import Policy
from bonebase.monitor.scoring import Model, inference_network, score_batches, scored_early
from bonebase.storage import ObjectStore

ALERT_EVENT = "bonebase.monitor.alert"
# The first key of the watch's two-key advisory lock (the second is the model id): its own
# space, apart from the submissions' (bonebase.db.submissions).
_SCORING_LOCK = 0x77617463  # "watc"


#: How the watch runs the network: "optimized" (BatchNorm folded, TorchScript, oneDNN: the
#: default), "fused" (BatchNorm folded only) or "as_trained" (the predictor's own network);
#: benchmarks/ingest_watch.py compares them. All give the served model's scores (tests/monitor).
SCORING = "optimized"
#: True: the next batch is read while the network runs on this one (scoring.score_batches).
PIPELINE = True
_LOADED: dict[str, tuple] = {}  # checkpoint sha256 -> (Predictor, {mode: network}), last two


def _predictor(model_row: dict, fetch: Callable[[str], Path]) -> tuple:
    """The model's Predictor and scoring network, loaded once per process and checkpoint;
    ``fetch(folder)`` gives the checkpoint's file (verified) when it is not loaded yet."""
    from bonebase.model.inference import Predictor

    sha = model_row["checkpoint_sha256"]
    if sha not in _LOADED:
        with tempfile.TemporaryDirectory(prefix="bonebase-watch-") as tmp:
            predictor = Predictor.from_checkpoint(fetch(tmp))
        while len(_LOADED) >= 2:
            _LOADED.pop(next(iter(_LOADED)))
        _LOADED[sha] = (predictor, {})
    predictor, networks = _LOADED[sha]
    if SCORING not in networks:  # built once per process and checkpoint (about a second)
        size = predictor.checkpoint.image_size if SCORING == "optimized" else None
        networks[SCORING] = (None if SCORING == "as_trained"
                             else inference_network(predictor.net, image_size=size))
    return predictor, networks[SCORING]


def load(store: ObjectStore, model_row: dict) -> Model:
    """A registered model's checkpoint, fetched and verified, as a :class:`Model`; kept loaded
    for the process's next calls (a checkpoint's content never changes: its hash is its key)."""
    from bonebase.release.registry import fetch_checkpoint

    return _model(model_row, lambda tmp: fetch_checkpoint(store, model_row, tmp))


def load_file(path: Path, model_row: dict) -> Model:
    """:func:`load` of a checkpoint already fetched and verified to ``path`` (the early scorer's
    process, bonebase.monitor.early, which holds no store)."""
    return _model(model_row, lambda tmp: path)


def _model(model_row: dict, fetch: Callable[[str], Path]) -> Model:
    predictor, network = _predictor(model_row, fetch)
    if len(predictor.classes) != 2 or predictor.threshold is None:
        raise InputError(f"model {model_row['id']} has {len(predictor.classes)} classes; the "
                         "watch scores two-class tasks (benign_vs_malignant, os_vs_gct)")
    return Model(id=model_row["id"], task=model_row["task"], predictor=predictor,
                 network=network)


def _reference_cases(conn: Connection, model_row: dict) -> list[int] | None:
    match = re.fullmatch(r"v(\d+)", str(model_row.get("dataset_version") or ""))
    if not match:
        return None
    rows = conn.execute("SELECT case_id FROM dataset_version_cases WHERE version = %s",
                        (int(match.group(1)),)).fetchall()
    return [r["case_id"] for r in rows] or None


def has_reference(conn: Connection, model_id: int) -> bool:
    return conn.execute("SELECT EXISTS (SELECT 1 FROM watch_scores WHERE model_id = %s AND"
                        " role = 'reference')", (model_id,)).fetchone()["exists"]


def score(conn: Connection, store: ObjectStore, model: Model, *, policy: Policy,
          submission_id: int | None = None,
          progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Score the reference (once per model) and the new radiographs not scored yet (of
    ``submission_id``, or all). Returns counts: reference, watch, unreadable, and early (of
    watch: scored while the submission was stored, bonebase.monitor.early)."""
    # Radiographs scored while the submission was being stored (the same bytes, by hash):
    # taken before the lock below, which another ingest's watch may hold while its own early
    # scoring, queued before this one's in the scoring process, is stopped and collected.
    ahead = early.take(submission_id, model.id) if submission_id is not None else {}
    # One scorer per model at a time (deferred watches of two submissions can overlap): the
    # second waits for the first's commit, then finds what it stored already scored.
    conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_SCORING_LOCK, model.id))
    model_row = model_q.get_model(conn, model.id)
    counts = {"reference": 0, "watch": 0, "unreadable": 0, "early": 0}
    modalities = list(policy.modalities)
    todo_by_role = []
    if not has_reference(conn, model.id):
        cases = _reference_cases(conn, model_row)
        if cases is not None:
            ref = db.unscored(conn, model_id=model.id, modalities=modalities, case_ids=cases)
        else:
            ref = db.unscored(conn, model_id=model.id, modalities=modalities,
                              before=model_row["created_at"])
        todo_by_role.append(("reference", ref))
    todo_by_role.append(("watch", db.unscored(conn, model_id=model.id, modalities=modalities,
                                              submission_id=submission_id)))
    for role, todo in todo_by_role:
        done, total = 0, len(todo)
        if role == "watch" and ahead:
            ready = [row for row in todo if row["sha256"] in ahead]
            todo = [row for row in todo if row["sha256"] not in ahead]
            counts["early"] = _store_early(conn, model, policy, ready, ahead)
            done = counts["watch"] = counts["early"]
            if progress:
                progress(role, done, total)
        # Each batch is stored as it is scored: memory stays at two batches (the next is read
        # while this one runs through the network).
        for rows in score_batches(store, model, todo, batch=policy.batch,
                                  intermediate_as=policy.intermediate_as, pipelined=PIPELINE):
            with conn.transaction():
                counts[role] += db.insert_scores(conn, model_id=model.id, role=role, rows=rows)
            counts["unreadable"] += sum(r["error"] is not None for r in rows)
            done += len(rows)
            if progress:
                progress(role, done, total)
    return counts


def _store_early(conn: Connection, model: Model, policy: Policy, ready: list[dict],
                 ahead: dict[str, dict]) -> int:
    """Store the rows ``ready``, scored early (``ahead``, by content hash); how many were new."""
    rows = [scored_early(model, row, ahead[row["sha256"]],
                         intermediate_as=policy.intermediate_as) for row in ready]
    with conn.transaction():
        return db.insert_scores(conn, model_id=model.id, role="watch", rows=rows)


def _performance_breach(figs: dict, policy: Policy) -> list[str]:
    """Why a site's figures breach the policy: its AUC or the AUC CI's lower bound (both classes
    present), its sensitivity at the locked threshold or that CI's lower bound (positives
    present); nothing below ``min_cases`` labelled cases."""
    if figs["n"] < policy.min_cases:
        return []
    reasons = []
    auc = figs.get("auc")
    if auc is not None and min(figs["positives"], figs["n"] - figs["positives"]) > 0:
        if auc["value"] < policy.auc_min:
            reasons.append(f"AUC {auc['value']:.3f} < {policy.auc_min}")
        if auc["lo"] < policy.auc_ci_low_min:
            reasons.append(f"AUC 95% CI lower bound {auc['lo']:.3f} < {policy.auc_ci_low_min}")
    sens = figs.get("sensitivity")
    if sens is not None and figs["positives"] > 0:
        if sens["value"] < policy.sensitivity_min:
            reasons.append(f"sensitivity {sens['value']:.3f} < {policy.sensitivity_min} "
                           f"({figs['positives']} positives)")
        if sens["lo"] < policy.sensitivity_ci_low_min:
            reasons.append(f"sensitivity 95% CI lower bound {sens['lo']:.3f} < "
                           f"{policy.sensitivity_ci_low_min}")
    return reasons


def check_site(conn: Connection, store: ObjectStore, model: Model, *, site: str,
               policy: Policy) -> dict:
    """Performance and drift of ``site``'s new radiographs for ``model``: both checks recorded,
    the drift report stored (``monitor/m<model>/<site>/drift-<check>.html``), an alert raised
    on a breach. Returns {site, performance, drift, alerts}."""
    site_row = conn.execute("SELECT id FROM sites WHERE code = %s", (site,)).fetchone()
    if site_row is None:
        raise NotFoundError(f"no site {site}; see bonebase site list")
    current = db.scores(conn, model_id=model.id, role="watch", site=site)
    reference = db.scores(conn, model_id=model.id, role="reference")
    threshold = float(model.predictor.threshold)
    figs = performance.by_site(current, threshold).get(site, {"all": performance.figures(
        [], [], threshold), "months": {}})
    perf_reasons = _performance_breach(figs["all"], policy)
    shift = drift.compare([r["features"] for r in reference], [r["features"] for r in current],
                          alpha=policy.drift_alpha)
    drift_reasons = []
    if shift["share"] is not None and shift["share"] > policy.max_drift_share:
        drift_reasons.append(f"{len(shift['drifted'])} of {shift['tested']} features drift "
                             f"({', '.join(shift['drifted'])}): share {shift['share']:.2f} > "
                             f"{policy.max_drift_share}")
    html = report.drift_html(site=site, model_id=model.id, result=shift,
                             reference=[r["features"] for r in reference],
                             current=[r["features"] for r in current], reasons=drift_reasons)
    alerts = []
    with conn.transaction():
        perf = db.add_check(conn, model_id=model.id, site_id=site_row["id"], kind="performance",
                            result={**figs, "threshold": threshold, "reasons": perf_reasons},
                            breached=bool(perf_reasons))
        shift["reasons"] = drift_reasons
        chk = db.add_check(conn, model_id=model.id, site_id=site_row["id"], kind="drift",
                           result=shift, breached=bool(drift_reasons))
        key = f"monitor/m{model.id}/{site}/drift-{chk['id']}.html"
        store.put_bytes(key, html.encode("utf-8"))
        conn.execute("UPDATE watch_checks SET report_key = %s WHERE id = %s", (key, chk["id"]))
        for check, reasons in ((perf, perf_reasons), (chk, drift_reasons)):
            if reasons:
                details = {"model": model.id, "site": site, "kind": check["kind"],
                           "check": check["id"], "reasons": reasons}
                audit.record(conn, action="monitor.alert", entity="model", entity_id=model.id,
                             details=details)
                alerts.append(details)
    for details in alerts:
        emit_alert(details)
    return {"site": site, "performance": figs, "performance_check": perf["id"],
            "drift": shift, "drift_check": chk["id"], "report_key": key, "alerts": alerts}


def emit_alert(details: dict) -> bool:
    """A Prefect event ``bonebase.monitor.alert`` (an automation's trigger), resource the site;
    False when no Prefect API took it (the audit event and the open alert are recorded anyway)."""
    try:
        from prefect.events import emit_event

        event = emit_event(
            event=ALERT_EVENT,
            resource={"prefect.resource.id": f"bonebase.site.{details['site']}",
                      "bonebase.model": str(details["model"])},
            payload=details,
        )
    except Exception:  # noqa: BLE001 - the event is a courtesy; the alert is in the database
        return False
    return event is not None


def sites_with_scores(conn: Connection, model_id: int) -> list[str]:
    rows = conn.execute("SELECT DISTINCT s.code FROM watch_scores w JOIN sites s ON"
                        " s.id = w.site_id WHERE w.model_id = %s AND w.role = 'watch'"
                        " ORDER BY s.code", (model_id,)).fetchall()
    return [r["code"] for r in rows]


__all__ = ["ALERT_EVENT", "champion", "check_site", "emit_alert", "has_reference", "load",
           "load_file", "score", "sites_with_scores"]
