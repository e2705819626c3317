"""The gateway's DICOMweb STOW-RS endpoint: ``POST /dicomweb/studies`` (PS3.18 10.5).

A multipart/related body of application/dicom parts, behind a bearer token
(BONEBASE_GATEWAY_TOKEN). The body is streamed part by part into files in the spool's
``incoming`` folder (python-multipart's streaming parser: memory does not grow with the body),
each part is taken by :meth:`Spool.store` as a C-STORE is, and the answer is the standard
response: Referenced SOP Sequence and Failed SOP Sequence with a Failure Reason per instance.
200 when every instance is stored, 202 when some are, 409 when none is; 400 for a body that is
not multipart/related, 401 without the token, 415 for parts that are not application/dicom.

``POST /clinical`` (same token) takes a clinical CSV (as dropped into ``clinical/``): 201, or
400 with what to fix.
"""

from __future__ import annotations

import hmac
import logging
import threading
from pathlib import Path

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bonebase.errors import ConfigError, InputError
from bonebase.gateway import clinical
from bonebase.gateway.spool import Refused, Spool, read_header

LOG = logging.getLogger("bonebase.gateway")
DICOM_JSON = "application/dicom+json"
MAX_PARTS = 10_000
MAX_CLINICAL_BYTES = 20 * 2**20


class _Parts:
    """Callbacks of the streaming parser: each part's bytes go to a file of its own."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self.files: list[tuple[Path, str]] = []  # (path, content type)
        self._fh = None
        self._field = b""
        self._value = b""
        self._type = ""

    def callbacks(self) -> dict:
        return {"on_part_begin": self._begin, "on_part_data": self._data,
                "on_part_end": self._end, "on_header_field": self._hfield,
                "on_header_value": self._hvalue, "on_header_end": self._hend}

    def _begin(self) -> None:
        if len(self.files) >= MAX_PARTS:
            raise MultipartParseError(f"more than {MAX_PARTS} parts")
        path = self.spool.incoming_file()
        self._fh = open(path, "wb")
        self.files.append((path, ""))
        self._type = ""

    def _hfield(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _hvalue(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _hend(self) -> None:
        if self._field.strip().lower() == b"content-type":
            self._type = self._value.decode("latin-1").split(";")[0].strip().lower()
        self._field = self._value = b""

    def _data(self, data: bytes, start: int, end: int) -> None:
        self._fh.write(data[start:end])

    def _end(self) -> None:
        self._fh.close()
        self._fh = None
        path, _ = self.files[-1]
        self.files[-1] = (path, self._type)

    def cleanup(self) -> None:
        if self._fh is not None:
            self._fh.close()
        for path, _ in self.files:
            path.unlink(missing_ok=True)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _item(head: dict | None, reason: int | None = None) -> dict:
    item = {}
    if head:
        item["00081150"] = {"vr": "UI", "Value": [head["sop_class"]]}
        item["00081155"] = {"vr": "UI", "Value": [head["sop_uid"]]}
    if reason is not None:
        item["00081197"] = {"vr": "US", "Value": [reason]}
    return item


def make_app(spool: Spool, token: str) -> Starlette:
    if not token or len(token) < 16:
        raise ConfigError("STOW-RS needs a bearer token of at least 16 characters: set "
                          "BONEBASE_GATEWAY_TOKEN (e.g. `python -c 'import secrets; "
                          "print(secrets.token_urlsafe(32))'`) and give it to the sender")
    expected = f"Bearer {token}".encode()

    async def store(request: Request) -> Response:
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            return _error(401, "a bearer token is required (Authorization: Bearer ...)")
        kind, options = parse_options_header(request.headers.get("content-type", ""))
        boundary = options.get(b"boundary")
        if kind != b"multipart/related" or not boundary:
            return _error(400, "the body must be multipart/related; type=\"application/dicom\" "
                          "with a boundary")
        parts = _Parts(spool)
        try:
            parser = MultipartParser(boundary, parts.callbacks())
            async for chunk in request.stream():
                parser.write(chunk)
            parser.finalize()
            if not parts.files or parts._fh is not None:
                return _error(400, "the multipart body holds no complete part")
            if any(t not in ("application/dicom", "") for _, t in parts.files):
                return _error(415, "every part must be application/dicom")
            referenced, failed = await run_in_threadpool(_store_all, spool, parts.files)
        except (MultipartParseError, ValueError) as exc:
            return _error(400, f"malformed multipart body ({type(exc).__name__})")
        finally:
            parts.cleanup()
        body: dict = {}
        if referenced:
            body["00081199"] = {"vr": "SQ", "Value": referenced}
        if failed:
            body["00081198"] = {"vr": "SQ", "Value": failed}
        status = 200 if not failed else 202 if referenced else 409
        return JSONResponse(body, status_code=status, media_type=DICOM_JSON)

    async def clinical_csv(request: Request) -> Response:
        """A hospital system posts clinical rows (text/csv) instead of dropping a file."""
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            return _error(401, "a bearer token is required (Authorization: Bearer ...)")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_CLINICAL_BYTES:
                return _error(413, f"a clinical CSV may hold at most {MAX_CLINICAL_BYTES} bytes;"
                              " post it in parts")
        try:
            saved = await run_in_threadpool(clinical.save_posted, spool.home.clinical,
                                            bytes(body))
        except InputError as exc:
            return _error(400, str(exc))
        return JSONResponse({"saved": saved.name}, status_code=201)

    return Starlette(routes=[Route("/dicomweb/studies", store, methods=["POST"]),
                             Route("/clinical", clinical_csv, methods=["POST"])])


def _store_all(spool: Spool, files: list[tuple[Path, str]]) -> tuple[list, list]:
    referenced, failed = [], []
    for path, _ in files:
        try:
            head = read_header(path)
        except Refused as refused:
            failed.append(_item(None, refused.status))
            continue
        try:
            spool.store(path)
            referenced.append(_item(head))
        except Refused as refused:
            LOG.warning("STOW-RS instance refused (0x%04X): %s", refused.status, refused.reason)
            failed.append(_item(head, refused.status))
    return referenced, failed


class StowServer:
    """uvicorn serving the app in a thread; :meth:`shutdown` stops it."""

    def __init__(self, app: Starlette, host: str, port: int) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port,
                                                    log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()

    def shutdown(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_stow(spool: Spool, *, host: str, port: int, token: str) -> StowServer:
    return StowServer(make_app(spool, token), host, port)
