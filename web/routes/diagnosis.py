"""Ask the served model: on a stored radiograph (the answer is kept) or an uploaded one (not kept).

The web app is one more client of the service's HTTP contract (``bonebase.client``), so what it
shows is what any other client would get from the deployed model.
"""

from __future__ import annotations

import base64
import io
import threading
from functools import cache

from fastapi import APIRouter, Depends, File, HTTPException, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from psycopg import Connection

from bonebase.client import DiagnosisClient, DiagnosisError
from bonebase.db import predictions as preds
from web import queries
from web.auth import csrf_protect, get_conn, require
from web.imaging import heat_colour
from web.render import render, t

router = APIRouter()
MAX_UPLOAD = 32 * 1024 * 1024
# Decoding an upload is this process's memory peak (a limit-sized image is a few hundred MB as
# floats): two at a time, whatever the number of requests.
_DECODING = threading.BoundedSemaphore(2)


@cache
def _max_pixels() -> int:
    from bonebase.config import get_settings

    return get_settings().max_pixels


def _client(request: Request) -> DiagnosisClient:
    web = request.app.state.web
    if not web.diagnosis_url:
        raise HTTPException(503, t(request, "no diagnosis service is configured: set "
                                            "BONEBASE_DIAGNOSIS_URL to the served model's address"))
    return DiagnosisClient(web.diagnosis_url, token=web.api_token)


def _refused(request: Request, exc: DiagnosisError):
    # The service's own 4xx message says what is wrong with the image; pass it on as is.
    status = exc.status if 400 <= exc.status < 500 else 502
    return render(request, "error.html", status=status, title=t(request, "The model did not answer"),
                  message=str(exc))


@router.post("/images/{instance_id}/diagnose", dependencies=[Depends(csrf_protect)])
def ask_model(request: Request, instance_id: int, conn: Connection = Depends(get_conn, scope="function"),
              user=Depends(require("viewer"))):
    inst = queries.get_instance(conn, instance_id)
    data = request.app.state.store.get_bytes(inst["object_key"])
    try:
        with _client(request) as client:
            result = client.diagnose(data, age=inst["age"], sex=inst["sex"],
                                     location=inst["location_code"], gradcam=True,
                                     filename=f"{instance_id}.dcm")
    except DiagnosisError as exc:
        return _refused(request, exc)
    heat = base64.b64decode(result["gradcam_png"]) if result.get("gradcam_png") else None
    row = preds.add_prediction(conn, case_id=inst["case_id"], instance_id=instance_id,
                               result=result, gradcam_png=heat, requested_by=user.username)
    return RedirectResponse(f"/cases/{inst['case_id']}?prediction={row['id']}#diagnosis",
                            status_code=303)


@router.get("/predictions/{prediction_id}/heat.png")
def heat_png(prediction_id: int, conn: Connection = Depends(get_conn, scope="function"),
             user=Depends(require("viewer"))):
    _, png = preds.heat_map(conn, prediction_id)
    if png is None:
        raise HTTPException(404, f"prediction {prediction_id} has no heat map")
    return Response(heat_colour(png), media_type="image/png",
                    headers={"Cache-Control": "private, max-age=86400, immutable"})


@router.get("/diagnose")
def upload_page(request: Request, user=Depends(require("viewer"))):
    return render(request, "upload.html", result=None)


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


@router.post("/diagnose", dependencies=[Depends(csrf_protect)])
async def upload(request: Request, file: UploadFile = File(...),
                 user=Depends(require("viewer"))):
    """One outside radiograph: shown with the model's answer, stored nowhere."""
    from starlette.concurrency import run_in_threadpool

    data = await file.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        raise HTTPException(413, t(request, "the file is over 32 MB; send one radiograph"))

    def work():
        from PIL import Image

        from bonebase.dicom.pixels import resize_keep_aspect, to_uint
        from bonebase.model.inference import decode_upload

        # Decoded here first, with the service's own limits (bonebase.model.upload_limits):
        # an image bomb is refused before it reaches the service or fills this process.
        with _DECODING:
            decoded = decode_upload(data, name=file.filename or "upload",
                                    max_pixels=_max_pixels())
            buf = io.BytesIO()
            Image.fromarray(to_uint(resize_keep_aspect(decoded.image, 512))).save(buf, "PNG")
            del decoded
        with _client(request) as client:
            result = client.diagnose(data, gradcam=True, filename=file.filename or "upload")
        return result, buf.getvalue()

    from bonebase.model.upload_limits import UploadError

    try:
        result, picture = await run_in_threadpool(work)
    except DiagnosisError as exc:
        return _refused(request, exc)
    except UploadError as exc:
        status = {"too_large": 413, "not_a_radiograph": 422}.get(exc.code, 400)
        return render(request, "error.html", status=status, title=t(request, "The image was not accepted"),
                      message=str(exc))
    heat = base64.b64decode(result["gradcam_png"]) if result.get("gradcam_png") else None
    return render(request, "upload.html", result=result, image_uri=_data_uri(picture),
                  heat_uri=_data_uri(heat_colour(heat)) if heat else None,
                  filename=file.filename)
