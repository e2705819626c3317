"""The models page: the champion (deployed) per task, candidates, approvals and reports.

Each model shows its task's headline metrics: the AUC on the locked internal test set and on
the external (held-out) hospitals, with DeLong 95% CIs, and the release gate's verdict as
recorded with the model's last approval.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response
from psycopg import Connection

from bonebase.db import models as db_models
from bonebase.i18n import N_
from bonebase.monitor.db import open_alerts  # the champion watch's banner (#23)
from web.auth import get_conn, require
from web.render import gettext_for, render, t

router = APIRouter()
TYPES = {".html": "text/html", ".md": "text/markdown; charset=utf-8", ".json": "application/json",
         ".pdf": "application/pdf", ".png": "image/png"}


@router.get("/models")
def model_list(request: Request, conn: Connection = Depends(get_conn, scope="function"),
               user=Depends(require("researcher"))):
    rows = db_models.list_models(conn)
    champions = {r["task"]: r for r in rows if r["status"] == "deployed"}
    approvals = {r["id"]: db_models.approvals_of(conn, r["id"]) for r in rows}
    tr = gettext_for(request)
    headlines = {r["id"]: {"auc": headline_aucs(r["metrics"], tr),
                           "gate": gate_verdict(approvals[r["id"]], tr),
                           "explain": explanation_line(r["metrics"], tr),
                           "ood": ood_line(r["metrics"], tr)}
                 for r in rows}
    return render(request, "models.html", rows=rows, champions=champions, approvals=approvals,
                  headlines=headlines, alerts=open_alerts(conn),
                  deployments=db_models.deployments(conn, limit=20))


@router.get("/models/{model_id}/report")
def report(request: Request, model_id: int, conn: Connection = Depends(get_conn, scope="function"),
           user=Depends(require("researcher"))):
    model = db_models.get_model(conn, model_id)
    if not model["report_key"]:
        raise HTTPException(404, t(request, "model %(id)s was registered without a report",
                                   id=model_id))
    data = request.app.state.store.get_bytes(model["report_key"])
    kind = TYPES.get(PurePosixPath(model["report_key"]).suffix, "text/plain; charset=utf-8")
    # A report is our own file, but served as a download-free page it must not run scripts.
    return Response(data, media_type=kind,
                    headers={"Content-Security-Policy": "script-src 'none'"})


# metrics.json split -> what the page calls it (bonebase/model/evaluate.py writes the splits).
SPLITS = {"test": N_("internal"), "external": N_("external")}


def _same(message: str) -> str:
    return message


def _num(value) -> str:
    return "–" if not isinstance(value, int | float) else f"{value:.3f}"


def headline_aucs(metrics: dict | None, tr=_same) -> list[tuple[str, str]]:
    """("internal", "0.812 (95% CI 0.701–0.905)") and the same for "external", where evaluated;
    words in the language of ``tr`` (a web msgid's translation, as every line below)."""
    out = []
    for split, label in SPLITS.items():
        m = (metrics or {}).get(split)
        if not isinstance(m, dict):
            continue
        if not isinstance(m.get("auc"), int | float):
            out.append((tr(label), m.get("note") or tr(N_("AUC undefined"))))
            continue
        text = _num(m["auc"])
        lo, hi = m.get("auc_delong_lo"), m.get("auc_delong_hi")
        if isinstance(lo, int | float) and isinstance(hi, int | float):
            text += tr(N_(" (95%% CI %(lo)s–%(hi)s)")) % {"lo": _num(lo), "hi": _num(hi)}
        out.append((tr(label), text))
    return out


def explanation_line(metrics: dict | None, tr=_same) -> str:
    """Heat-map scores of the set the gate judges (external, else test), with 95% CIs."""
    e = (metrics or {}).get("explanation") or {}
    where = "external" if e.get("external") else "test"
    s = (e.get(where) or {}).get("all")
    if not s:
        return tr(N_("not scored"))
    parts = []
    for key, label in (("pointing_game", N_("pointing")), ("weighting_game", N_("weighting")),
                       ("iou", "IoU")):
        lo, hi = s.get(f"{key}_lo"), s.get(f"{key}_hi")
        ci = f" ({_num(lo)}–{_num(hi)})" if isinstance(lo, int | float) else ""
        parts.append(f"{tr(label)} {_num(s.get(key))}{ci}")
    return tr(N_("%(scores)s: %(method)s on %(layer)s, %(set)s n=%(n)s")) % {
        "scores": "; ".join(parts), "method": e.get("method"), "layer": e.get("layer"),
        "set": tr(N_("external")) if where == "external" else tr(N_("test")), "n": s.get("n")}


def ood_line(metrics: dict | None, tr=_same) -> str:
    """The out-of-distribution detector's false alarms and detections, where evaluated."""
    o = (metrics or {}).get("ood")
    if not o:
        return ""
    return tr(N_("unlike-training-data detector: false alarms %(alarms)s (external), detected "
                 "%(detected)s (unrelated images)")) % {
        "alarms": _num(o.get("false_alarm_external")),
        "detected": _num(o.get("detection_unrelated"))}


def gate_verdict(approvals: list[dict], tr=_same) -> str:
    """The release gate's result recorded with the model's last approval that ran it."""
    judged = [a for a in approvals if a.get("gate")]
    if not judged:
        if not approvals:
            return tr(N_("not run yet"))
        return tr(N_("not run (%(decision)s)")) % {"decision": approvals[-1]["decision"]}
    last = judged[-1]
    gate = last["gate"]
    if gate.get("passed"):
        return tr(N_("passed"))
    failed = ", ".join(c["check"] for c in gate.get("checks", []) if not c.get("passed"))
    verdict = tr(N_("failed (%(checks)s)")) % {"checks": failed} if failed else tr(N_("failed"))
    if last.get("override"):
        verdict += tr(N_(", overridden by %(who)s")) % {"who": last["by_person"]}
    return verdict
