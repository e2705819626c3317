"""The diagnosis service: one BentoML 1.4 class serving the approved (champion) model.

``bentoml serve serving.service:Diagnosis`` serves the model tagged ``BONEBASE_MODEL_TAG``
(default ``bonebase-diagnosis:latest``) from the BentoML model store; ``bonebase models deploy``
puts approved models there. Routes:

- ``POST /diagnose`` (multipart: ``file`` = DICOM/PNG/JPEG, optional ``age``, ``sex``,
  ``location``, ``gradcam``) → probabilities, predicted class at the locked threshold, versions,
  and ``out_of_distribution`` (flag, score, threshold, reasons: the header's modality or body
  part, or image features unlike the validation images; see bonebase/model/ood.py);
- ``GET /healthz`` (process alive), ``GET /readyz`` (built in: model loaded), ``GET /metadata``
  (model card, not for clinical use).

Environment (read here, the entry point, never by the library): ``BONEBASE_API_TOKEN`` (when
set, every route but the health checks needs ``Authorization: Bearer <token>``),
``BONEBASE_DEVICE`` (default cuda when available), ``BONEBASE_MAX_UPLOAD_MB`` (default 32), ``BONEBASE_MAX_BATCH`` (default 16) and
``BONEBASE_MAX_LATENCY_MS`` (default 5000: BentoML answers 503 to requests it expects to
miss this bound, so on CPUs it must cover a full batch) for adaptive batching,
``BONEBASE_MAX_PIXELS`` (the platform's limit on the pixels an image may claim: larger uploads
are refused with 413 before decoding) and ``BONEBASE_DECODE_SLOTS`` (default 2: images decoded
at once, which bounds the server's memory under concurrent uploads).

The batched model call has an HTTP route (BentoML's adaptive batching dispatches through it) that
answers only the service's own in-process calls: 404 from outside, and absent from the OpenAPI
document (``/docs.json``), ``/schema.json`` and the Swagger page.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import hmac
import io
import json
import logging
import os
import threading
from pathlib import Path

import aiohttp
import bentoml
import numpy as np
import pydicom
import torch
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from bonebase.config import get_settings
from bonebase.model.explain import Explainer
from bonebase.model.inference import Predictor, UploadError, decode_upload, heat_png
from bonebase.model.networks import head_layer
from bonebase.model.ood import FeatureOOD, header_reasons
from bonebase.model.ood import answer as ood_answer
from bonebase.model.upload_limits import TOO_LARGE

MODEL_NAME = "bonebase-diagnosis"
log = logging.getLogger("bonebase.serving")
MODEL_TAG = os.environ.get("BONEBASE_MODEL_TAG") or f"{MODEL_NAME}:latest"
CHECKPOINT_FILE = "model.pt"
MAX_UPLOAD = int(float(os.environ.get("BONEBASE_MAX_UPLOAD_MB", "32")) * 1024 * 1024)
# GPU when there is one; BONEBASE_DEVICE=cpu forces the CPU.
DEVICE = os.environ.get("BONEBASE_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
MAX_BATCH = int(os.environ.get("BONEBASE_MAX_BATCH", "16"))
MAX_LATENCY_MS = int(os.environ.get("BONEBASE_MAX_LATENCY_MS", "5000"))
MAX_PIXELS = get_settings().max_pixels
# Decoding is where one upload's memory peaks (a limit-sized image takes a few hundred MB as
# floats): only this many at once, whatever the HTTP concurrency.
DECODE_SLOTS = max(1, int(os.environ.get("BONEBASE_DECODE_SLOTS", "2")))
NOTICE = (
    "Research use only. Not a medical device; not for clinical diagnosis or treatment "
    "decisions. Trained on a consortium dataset that may not represent your population."
)
# The batched model call is an API route: BentoML batches through its own HTTP dispatch, which
# the service reaches in-process (its self-proxy sends requests into this same ASGI app, in the
# calling task). The self-call cannot carry the caller's token, so instead it carries this
# context variable, which no request from outside can set: from outside the route is 404.
INTERNAL_PREFIX = "/_internal"
FORWARD_ROUTE = f"{INTERNAL_PREFIX}/forward"
FORWARD_API = "forward"  # the method's name, which BentoML prefixes to its types
_IN_PROCESS: contextvars.ContextVar[bool] = contextvars.ContextVar("in_process", default=False)
# Health checks stay open for load balancers and orchestrators: they reveal nothing but
# liveness. /metrics (route names, request counts) needs the token like everything else.
OPEN_PATHS = frozenset({"/healthz", "/livez", "/readyz"})
# BentoML's generated route listings: served without the internal route.
LISTINGS = frozenset({"/docs.json", "/schema.json"})
SEXES = frozenset({"M", "F", "O", "U"})


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status)


class GuardMiddleware:
    """ASGI middleware: bearer token (when configured) and a request body size limit."""

    def __init__(self, app, *, token: str | None = None, max_bytes: int = MAX_UPLOAD) -> None:
        self.app = app
        self.token = token
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if path.startswith(INTERNAL_PREFIX) and not _IN_PROCESS.get():
            await _error(404, "not_found", "no such route")(scope, receive, send)
            return
        if self.token and path not in OPEN_PATHS and not _IN_PROCESS.get():
            given = headers.get("authorization", "")
            expected = f"Bearer {self.token}"
            # Constant-time comparison: the token must not leak through response timing.
            if not hmac.compare_digest(given.encode(), expected.encode()):
                resp = _error(401, "unauthorized", "send the header Authorization: Bearer <token>")
                resp.headers["WWW-Authenticate"] = "Bearer"
                await resp(scope, receive, send)
                return
        if path in LISTINGS:
            await _listing(path)(scope, receive, send)
            return
        declared = headers.get("content-length")
        too_big = _error(
            413, "too_large", f"request body over {self.max_bytes} bytes; send one image at a time"
        )
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await too_big(scope, receive, send)
            return
        seen = 0

        async def limited_receive():
            # A chunked upload carries no Content-Length: count what actually arrives.
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge:
            await too_big(scope, receive, send)


class _TooLarge(Exception):
    pass


def _listing(path: str) -> JSONResponse:
    """BentoML's OpenAPI document or route schema, without the internal route and its types."""
    svc = Diagnosis  # the bentoml.Service this module defines below
    if path == "/docs.json":
        doc = svc.openapi_spec.asdict()
        schemas = doc.get("components", {}).get("schemas", {})
        for name in [n for n in schemas if n.startswith(f"{FORWARD_API}__")]:
            del schemas[name]
    else:
        doc = svc.schema()
        doc["routes"] = [r for r in doc.get("routes", []) if r.get("route") != FORWARD_ROUTE]
    doc["paths"] = {k: v for k, v in doc.get("paths", {}).items() if k != FORWARD_ROUTE}
    return JSONResponse(json.loads(json.dumps(doc, default=str)))


def _model_card(svc: Diagnosis) -> dict:
    meta = svc.predictor.metadata()
    return {
        "name": MODEL_NAME,
        "model_version": svc.model_version,
        "notice": NOTICE,
        "intended_use": "second-reader research on primary bone tumour radiographs (CR/DX)",
        "inputs": "one radiograph: DICOM (Modality CR or DX), PNG or JPEG; optional age, sex, "
        "location (accepted and echoed; the image model does not use them)",
        "labels": svc.labels,
        **meta,
        "training_metrics": {k: v for k, v in svc.metrics.items() if k != "ood"},
        "out_of_distribution": {k: v for k, v in (svc.metrics.get("ood") or {}).items()
                                if k != "detector"},
    }


async def _healthz(_request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def _metadata(_request) -> JSONResponse:
    svc = bentoml.get_current_service()
    if svc is None:
        return _error(503, "not_ready", "the model is still loading; retry shortly")
    return JSONResponse(_model_card(svc))


ops_app = Starlette(
    routes=[Route("/healthz", _healthz), Route("/metadata", _metadata, methods=["GET"])]
)


@bentoml.service(
    name="bonebase_diagnosis",
    traffic={"timeout": 120, "max_concurrency": 256},
    workers=1,
)
@bentoml.asgi_app(ops_app, path="/")
class Diagnosis:
    """Diagnosis of one radiograph per request with the champion model."""

    model_ref = bentoml.models.BentoModel(MODEL_TAG)

    def __init__(self) -> None:
        stored = self.model_ref
        info = stored.info
        self.model_version = str(stored.tag)
        self.labels = dict(info.labels)
        self.metrics = dict(info.metadata).get("metrics", {})
        self.predictor = Predictor.from_checkpoint(
            Path(stored.path_of(CHECKPOINT_FILE)), device=DEVICE
        )
        self._decoding = asyncio.Semaphore(DECODE_SLOTS)
        # The out-of-distribution detector calibrated at evaluation (metrics["ood"]): absent
        # for models evaluated before it existed, which the answer then says.
        detector = (self.metrics.get("ood") or {}).get("detector")
        self.ood = FeatureOOD.from_dict(detector) if detector else None
        self._head = head_layer(self.predictor.net, self.predictor.checkpoint.arch)
        self._scoring = threading.Lock()  # the feature hook is per call: one batch at a time
        how = self.metrics.get("explanation") or {}
        self._explainer = None
        if how.get("method"):
            self._explainer = Explainer(
                self.predictor.net, self.predictor.checkpoint.arch, method=how["method"],
                layer=how.get("layer") if how.get("method") != "occlusion" else None,
            )
        self._explaining = threading.Lock()

    @bentoml.api(
        route=FORWARD_ROUTE,
        batchable=True,
        max_batch_size=MAX_BATCH,
        max_latency_ms=MAX_LATENCY_MS,
    )
    def forward(self, inputs: np.ndarray) -> np.ndarray:
        """Probabilities (n, k) and, as a last column, the out-of-distribution score (0 without
        a detector) for preprocessed inputs (n, 1, S, S); requests are batched."""
        return self._score(inputs)

    def _score(self, inputs: np.ndarray) -> np.ndarray:
        feats: list = []
        with self._scoring:
            hook = self._head.register_forward_hook(
                lambda _m, args, _o: feats.append(args[0].detach().flatten(1).float().cpu())
            )
            try:
                probs = self.predictor.forward(inputs)
            finally:
                hook.remove()
        if self.ood is None or not feats:
            # 0, not NaN: the batched call's JSON turns NaN into null (the answer ignores the
            # column when there is no detector).
            return np.c_[probs, np.zeros(len(probs))]
        return np.c_[probs, self.ood.score(feats[0].numpy())]

    def _heat(self, x: np.ndarray, class_idx: int) -> np.ndarray:
        """The heat map by the method and layer the model was evaluated with (its metrics'
        ``explanation``), else the predictor's Grad-CAM on the last convolutional stage."""
        if self._explainer is None:
            return self.predictor.gradcam(x, [class_idx])[0]
        with self._explaining:  # CAM hooks keep state on the module: one map at a time
            return self._explainer.maps(torch.as_tensor(x), class_idx)[0]

    async def _forward(self, x: np.ndarray) -> np.ndarray:
        marker = _IN_PROCESS.set(True)
        try:
            return np.asarray(await self.to_async.forward(x))
        except aiohttp.ClientError as exc:
            # BentoML's in-process batching call can drop its connection under load
            # ("Cannot write to closing transport"); the model is still fine: score this
            # request on its own rather than fail it.
            log.warning("batched call failed (%s); scoring unbatched", exc)
            return await asyncio.to_thread(self._score, x)
        finally:
            _IN_PROCESS.reset(marker)

    def _prepare(self, file: Path) -> tuple[str, str | None, np.ndarray, list[str]]:
        """The upload's kind, modality, model input and what its header says against it; the
        full-size image is not kept, so a request waiting for its batch holds only the small
        model input."""
        data = file.read_bytes()
        decoded = decode_upload(data, name="uploaded file", max_pixels=MAX_PIXELS)
        reasons: list[str] = []
        if decoded.kind == "dicom":
            header = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)
            reasons = header_reasons(decoded.modality, str(header.get("BodyPartExamined") or ""))
        return decoded.kind, decoded.modality, self.predictor.preprocess(decoded.image)[None], reasons

    @bentoml.api(route="/diagnose")
    async def diagnose(
        self,
        file: Path,
        age: int | None = None,
        sex: str | None = None,
        location: str | None = None,
        gradcam: bool = False,
    ) -> dict:
        """Class probabilities and the predicted class for one radiograph."""
        if sex is not None and sex.upper() not in SEXES:
            return _error(422, "bad_field", f"sex={sex!r}; use one of {sorted(SEXES)} or omit")
        if age is not None and not 0 <= age <= 130:
            return _error(422, "bad_field", f"age={age}; give years between 0 and 130 or omit")
        try:
            # Decoding and resizing are CPU work: off the event loop, so requests overlap,
            # but only DECODE_SLOTS at a time, so memory stays bounded.
            async with self._decoding:
                kind, modality, x, reasons = await asyncio.to_thread(self._prepare, file)
        except UploadError as exc:
            status = {"not_a_radiograph": 422, TOO_LARGE: 413}.get(exc.code, 400)
            return _error(status, exc.code, str(exc))
        scored = await self._forward(x)
        result = self.predictor.decide(scored[:, :-1])[0]
        out = {
            **result,
            "task": self.predictor.checkpoint.task,
            "model_version": self.model_version,
            "dataset_version": self.predictor.checkpoint.dataset_version,
            "code_revision": self.predictor.checkpoint.code_revision,
            "input": {"kind": kind, "modality": modality},
            "out_of_distribution": ood_answer(self.ood, float(scored[0, -1]), reasons),
            "clinical": {"age": age, "sex": sex.upper() if sex else None, "location": location},
            "notice": NOTICE,
        }
        if gradcam:
            heat = await asyncio.to_thread(self._heat, x, result["predicted_index"])
            out["gradcam_png"] = base64.b64encode(heat_png(heat)).decode("ascii")
        return out


Diagnosis.add_asgi_middleware(GuardMiddleware, token=os.environ.get("BONEBASE_API_TOKEN") or None)
