"""One supervised `bentoml serve` per BONEBASE_HOME: start (or restart on deploy/rollback),
status and stop.

The server runs in its own process group, outlives the command that started it, and is
described by ``HOME/serving/server.json`` (pid, tag, url, log). A deploy or rollback with
``--serve`` restarts it on the new tag and returns only when ``/readyz`` answers, so "deployed"
means "answering". In production run the containerised bento instead (docs/diagnosis-api.md).
"""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

from bonebase.errors import BonebaseError

READY_WAIT_S = 180.0


class ServeError(BonebaseError):
    """The server did not start or did not become ready; the message has its log's end."""


def state_file(home: Path) -> Path:
    return Path(home) / "serving" / "server.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_state(home: Path) -> dict | None:
    """The recorded server, or None when none was started (or its process is gone)."""
    path = state_file(home)
    if not path.is_file():
        return None
    state = json.loads(path.read_text(encoding="utf-8"))
    return state if _alive(int(state["pid"])) else None


def stop(home: Path, *, timeout: float = 20.0) -> dict | None:
    """Stop the recorded server (SIGTERM to its group, SIGKILL after ``timeout``)."""
    state = read_state(home)
    state_file(home).unlink(missing_ok=True)
    if state is None:
        return None
    pid = int(state["pid"])
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return state
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:  # reap it when it is our child; otherwise poll for its end
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    return state
            except ChildProcessError:
                if not _alive(pid):
                    return state
            time.sleep(0.2)
    return state


def _tail(log: Path, n: int = 3000) -> str:
    try:
        return log.read_text(errors="replace")[-n:]
    except OSError:
        return "(no log)"


def start(
    home: Path,
    tag: str,
    *,
    project: Path,
    host: str = "127.0.0.1",
    port: int = 3000,
    token: str | None = None,
    base_env: dict[str, str] | None = None,
    wait_s: float = READY_WAIT_S,
) -> dict:
    """(Re)start the server on ``tag`` and wait until it is ready; returns its state."""
    from bonebase.client import DiagnosisClient
    from bonebase.release.serving import start_server

    stop(home)
    log = Path(home) / "logs" / f"serve-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    proc = start_server(
        tag, cwd=project, host=host, port=port, token=token, log=log, base_env=base_env
    )
    url = f"http://{host}:{port}"
    with DiagnosisClient(url, token=token, timeout=5.0) as client:
        deadline = time.monotonic() + wait_s
        while not client.ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
                raise ServeError(
                    f"bentoml serve for {tag} did not become ready on {url} (is the port free? "
                    f"`bonebase models server stop`); the end of {log}:\n{_tail(log)}"
                )
            time.sleep(0.5)
    state = {
        "pid": proc.pid,
        "tag": tag,
        "url": url,
        "log": str(log),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    path = state_file(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=2), encoding="utf-8")
    return state


def status(home: Path, *, token: str | None = None) -> dict:
    """The recorded server and whether it answers (ready, model version it reports)."""
    import httpx

    from bonebase.client import DiagnosisClient, DiagnosisError

    state = read_state(home)
    if state is None:
        return {"running": False}
    out = {**state, "running": True, "ready": False, "serving": None}
    try:
        with DiagnosisClient(state["url"], token=token, timeout=5.0) as client:
            out["ready"] = client.ready()
            out["serving"] = client.metadata().get("model_version")
    except (DiagnosisError, httpx.HTTPError) as exc:
        out["error"] = str(exc)
    return out
