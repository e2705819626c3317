"""Cases: the filtered list, the statistics page, one case, its images and DICOM download."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response
from psycopg import Connection

from bonebase.db import audit
from bonebase.db import predictions as preds
from bonebase.db.sites import list_sites
from bonebase.i18n import N_
from bonebase.vocab import DIAGNOSES
from web import queries
from web.auth import browse, get_conn, require
from web.charts import bar_chart, histogram
from web.filters import BEHAVIOURS, LOCATIONS, MODALITIES, SEXES, parse_cursor, parse_filters
from web.imaging import SIZES, frames_of, outlines, render
from web.render import gettext_for, request_language, t
from web.render import render as page
from web.terms import term

router = APIRouter()


def _choices(conn: Connection) -> dict:
    return {
        "sites": [s.code for s in list_sites(conn)],
        "diagnoses": sorted((d.code, d.name) for d in DIAGNOSES.values()),
        "behaviours": BEHAVIOURS, "locations": LOCATIONS, "sexes": SEXES, "modalities": MODALITIES,
    }


@router.get("/cases")
def case_list(request: Request, conn: Connection = Depends(get_conn, scope="function"), user=Depends(browse)):
    tr = gettext_for(request)
    filters, errors = parse_filters(request.query_params, tr)
    after, before = parse_cursor(request.query_params, errors, tr)
    context = {"filters": filters, "errors": errors, "choices": _choices(conn), "rows": [],
               "total": 0, "cap": queries.COUNT_CAP, "newer": None, "older": None}
    if errors:
        return page(request, "cases.html", status=400, **context)
    size = request.app.state.web.page_size
    rows, has_newer, has_older = queries.list_cases(conn, filters, after=after, before=before,
                                                    limit=size)
    context.update(
        rows=rows, total=queries.count_cases(conn, filters),
        newer={**filters.query(), "before": rows[0]["id"]} if rows and has_newer else None,
        older={**filters.query(), "after": rows[-1]["id"]} if rows and has_older else None,
    )
    return page(request, "cases.html", **context)


@router.get("/stats")
def stats(request: Request, conn: Connection = Depends(get_conn, scope="function"), user=Depends(browse)):
    s = queries.statistics(conn)
    lang = request_language(request)

    def named(kind: str) -> list[tuple[str, int]]:  # the vocabulary's terms in the page's language
        return [(term(k, kind, lang), n) for k, n in s[kind]]

    others = gettext_for(request)(N_("%(n)d others"))
    charts = [bar_chart(named("diagnosis"), title=t(request, "Cases by diagnosis"), others=others),
              bar_chart(named("behaviour"), title=t(request, "Cases by behaviour"), others=others),
              bar_chart(s["site"], title=t(request, "Cases by site"), others=others),
              bar_chart(named("location"), title=t(request, "Cases by location"), others=others),
              histogram(s["age"], title=t(request, "Age at diagnosis (years)"))]
    total = sum(n for _, n in s["site"])
    return page(request, "stats.html", charts=charts, stats=s, total=total)


def _with_outlines(conn: Connection, case: dict, size: int = 512) -> dict:
    """Each instance's lesion outlines and boxes (lesion_annotations), placed on its picture."""
    from bonebase.ingest.annotations import by_instance

    instances = [i for st in case["studies"] for s in st["series"] for i in s["instances"]]
    shapes = by_instance(conn, [i["id"] for i in instances])
    for i in instances:
        i["outlines"] = outlines(shapes.get(i["id"]), rows=i["rows"], columns=i["columns"],
                                 size=size)
    return case


def _with_frames(store, case: dict) -> dict:
    """Each instance's frame count; per series what its slider steps through: ``stack``, the
    [instance id, frames] of its instances in order (the page's script maps a position to an
    instance and frame, so the page grows with instances, not frames), and ``steps``."""
    for study in case["studies"]:
        for s in study["series"]:
            for i in s["instances"]:
                i["frames"] = frames_of(store, i)
            s["stack"] = [[i["id"], i["frames"]] for i in s["instances"]]
            s["steps"] = sum(i["frames"] for i in s["instances"])
            s["multiframe"] = s["steps"] > len(s["instances"])
    return case


@router.get("/cases/{case_id}")
def case_view(request: Request, case_id: int, conn: Connection = Depends(get_conn, scope="function"),
              user=Depends(browse)):
    case = _with_outlines(conn, _with_frames(request.app.state.store, queries.get_case(conn, case_id)))
    history = preds.for_case(conn, case_id) if user is not None else []
    diagnosis = DIAGNOSES.get(case["diagnosis_code"] or "")
    can_ask = user is not None and request.app.state.web.diagnosis_url is not None
    return page(request, "case.html", case=case, predictions=history,
                diagnosis_name=diagnosis.name if diagnosis else case["diagnosis_code"],
                can_ask=can_ask, shown=request.query_params.get("prediction"))


@router.get("/images/{instance_id}.png")
def image(request: Request, instance_id: int, size: int = Query(512),
          frame: int | None = Query(None, description="frame of a multi-frame image, from 1"),
          conn: Connection = Depends(get_conn, scope="function"), user=Depends(browse)):
    if size not in SIZES:
        raise HTTPException(400, t(request, "size=%(size)s is not offered; use one of %(sizes)s",
                                    size=size, sizes=SIZES))
    inst = queries.get_instance(conn, instance_id)
    png = render(request.app.state.store.get_bytes(inst["object_key"]), size, frame)
    # Stored objects are content-addressed and never change: the browser may keep the picture.
    return Response(png, media_type="image/png",
                    headers={"Cache-Control": "private, max-age=86400, immutable"})


@router.get("/images/{instance_id}.dcm")
def download(request: Request, instance_id: int, conn: Connection = Depends(get_conn, scope="function"),
             user=Depends(require("researcher"))):
    inst = queries.get_instance(conn, instance_id)
    data = request.app.state.store.get_bytes(inst["object_key"])
    audit.record(conn, action="instance.download", entity="instance", entity_id=instance_id,
                 actor=user.username)
    return Response(data, media_type="application/dicom", headers={
        "Content-Disposition": f'attachment; filename="case{inst["case_id"]}-{instance_id}.dcm"'})
