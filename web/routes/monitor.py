"""The monitoring page (#23): the champion's performance per site over time, drift, alerts.

Researchers and above. Charts are drawn on the server as inline SVG (bonebase.monitor.charts):
no script, no CDN. Each drift check's HTML report is served from the object store with scripts
forbidden.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response
from psycopg import Connection

from bonebase.db import models as db_models
from bonebase.monitor import charts, db, drift, status
from web.auth import get_conn, require
from web.render import render, t

router = APIRouter()
TASKS = ("benign_vs_malignant", "os_vs_gct")


def _series(rows: list[dict], metric: str) -> dict:
    """{site: [(month, value, lo, hi)]} of a metric from the status rows' monthly figures."""
    out = {}
    for r in rows:
        pts = []
        for month, figs in (r.get("months") or {}).items():
            m = figs.get(metric)
            pts.append((month, m["value"], m["lo"], m["hi"]) if m else (month, None, None, None))
        out[r["site"]] = pts
    return out


def _positive_class(task: str) -> str:
    """The name the served model gives class 1 of ``task`` (its answers' probability keys)."""
    from bonebase import vocab

    names = getattr(vocab, "CLASS_NAMES", {}).get(task)
    return names[1] if names else {"os_vs_gct": "osteosarcoma"}.get(task, "malignant")


def _output_charts(request: Request, conn: Connection, model_id: int,
                   sites: list[str]) -> list[str]:
    reference = [r["features"] for r in db.scores(conn, model_id=model_id, role="reference")]
    out = []
    for site in sites:
        current = [r["features"] for r in db.scores(conn, model_id=model_id, role="watch",
                                                    site=site)]
        hist = drift.histogram(reference, current, "probability", bins=10)
        if hist:
            out.append(charts.paired_histogram(
                hist, title=t(request, "P(positive) at %(site)s", site=site),
                labels=(t(request, "training data"), site)))
    return out


@router.get("/monitor")
def monitor_page(request: Request, task: str = "benign_vs_malignant",
                 conn: Connection = Depends(get_conn, scope="function"),
                 user=Depends(require("researcher"))):
    if task not in TASKS:
        raise HTTPException(404, t(request, "no task %(task)s; the watch scores %(tasks)s",
                                   task=task, tasks=", ".join(TASKS)))
    model = db_models.deployed_model(conn, task=task)
    ctx = {"task": task, "tasks": TASKS, "model": model, "rows": [], "alerts": []}
    if model is not None:
        rows = status.table(conn, model_id=model["id"])
        checks = {c["id"]: c for c in db.latest_checks(conn, model_id=model["id"])}
        features = []
        for r in rows:
            check = checks.get(r.get("drift_check"))
            features.extend({"site": r["site"], **f} for f in
                            (check["result"]["features"] if check else []))
        positive = _positive_class(task)
        ctx.update(
            rows=rows, features=features,
            feature_names=list(dict.fromkeys(f["feature"] for f in features)),
            alerts=[a for a in db.open_alerts(conn) if a["model_id"] == model["id"]],
            auc_chart=charts.band_chart(_series(rows, "auc"), floor=None, title=t(
                request, "AUC per site and month (95%% CI band)")),
            sens_chart=charts.band_chart(_series(rows, "sensitivity"), title=t(
                request, "Sensitivity at the locked threshold (95%% CI band)")),
            output_charts=_output_charts(request, conn, model["id"], [r["site"] for r in rows]),
            asked=status.ask_the_model(conn, model_row=model, positive_class=positive),
            fmt=status.text_rows,
        )
    return render(request, "monitor.html", **ctx)


@router.get("/monitor/checks/{check_id}/report")
def drift_report(request: Request, check_id: int,
                 conn: Connection = Depends(get_conn, scope="function"),
                 user=Depends(require("researcher"))):
    row = db.get_check(conn, check_id)
    if row is None or not row["report_key"]:
        raise HTTPException(404, t(request, "check %(id)s has no drift report", id=check_id))
    data = request.app.state.store.get_bytes(row["report_key"])
    return Response(data, media_type="text/html",
                    headers={"Content-Security-Policy": "script-src 'none'"})
