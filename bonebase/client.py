"""A small Python client of the diagnosis service (used by tests and the web database)."""

from __future__ import annotations

from pathlib import Path

import httpx

from bonebase.errors import BonebaseError, InputError


class DiagnosisError(BonebaseError):
    """The service answered with an error; ``status`` and ``code`` say which."""

    def __init__(self, message: str, *, status: int, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class DiagnosisClient:
    """``DiagnosisClient(url, token=None).diagnose(path_or_bytes, ...) -> dict``."""

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 60.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    def __enter__(self) -> DiagnosisClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _check(self, resp: httpx.Response) -> dict:
        if resp.status_code >= 400:
            try:
                body = resp.json()
            except ValueError:
                body = {}
            if isinstance(body, list) and body:  # BentoML's own errors come as [{"error": ...}]
                body = body[0]
            code = str(body.get("error", "http_error")) if isinstance(body, dict) else "http_error"
            msg = body.get("message", code) if isinstance(body, dict) else resp.text[:200]
            raise DiagnosisError(
                f"diagnosis service answered {resp.status_code} ({code}): {msg}",
                status=resp.status_code,
                code=code,
            )
        return resp.json()

    def diagnose(
        self,
        image: str | Path | bytes,
        *,
        age: int | None = None,
        sex: str | None = None,
        location: str | None = None,
        gradcam: bool = False,
        filename: str | None = None,
    ) -> dict:
        """POST one radiograph (a path or the file's bytes) to ``/diagnose``."""
        if isinstance(image, bytes | bytearray):
            data, name = bytes(image), filename or "upload"
        else:
            path = Path(image)
            if not path.is_file():
                raise InputError(f"{path}: no such image file")
            data, name = path.read_bytes(), filename or path.name
        fields = {"age": age, "sex": sex, "location": location, "gradcam": gradcam}
        form = {
            k: str(v).lower() if isinstance(v, bool) else str(v)
            for k, v in fields.items()
            if v is not None
        }
        files = {"file": (name, data, "application/octet-stream")}
        return self._check(self._http.post("/diagnose", data=form, files=files))

    def metadata(self) -> dict:
        """The model card (``GET /metadata``)."""
        return self._check(self._http.get("/metadata"))

    def ready(self) -> bool:
        """Whether ``/readyz`` answers 200 (model loaded)."""
        try:
            return self._http.get("/readyz").status_code == 200
        except httpx.HTTPError:
            return False


__all__ = ["DiagnosisClient", "DiagnosisError"]
