"""Flower's programs as supervised processes: started in a process group of their own with
their output in a log file, or in the foreground; stopped group and all."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bonebase.errors import BonebaseError


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on now (for tests and trials on one machine)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_for_port(host: str, port: int, *, timeout: float, process: subprocess.Popen | None = None,
                  what: str = "server") -> None:
    """Wait until something accepts TCP connections on host:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise BonebaseError(f"{what} exited (code {process.returncode}) before listening on "
                                f"{host}:{port}; its log says why.")
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise BonebaseError(f"{what} did not listen on {host}:{port} within {timeout:.0f} s.")


@dataclass
class Supervised:
    """A Flower program running in its own process group, its output in a log file."""

    name: str
    process: subprocess.Popen
    log: Path
    _handle: object = field(repr=False, default=None)

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM the whole group (Flower starts helper processes), SIGKILL after grace."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                pass
            except ProcessLookupError:
                pass
        try:  # helpers that outlived their parent
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.process.poll() is None:
            self.process.wait(timeout=5)
        if self._handle is not None:
            self._handle.close()  # type: ignore[attr-defined]

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def start(name: str, cmd: list[str], *, cwd: Path, log: Path,
          env: Mapping[str, str] | None = None) -> Supervised:
    """Start `cmd` in a new session (own process group) with stdout+stderr to `log`."""
    cwd.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    handle = open(log, "ab")  # noqa: SIM115 - closed by Supervised.stop
    process = subprocess.Popen(cmd, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT,
                               env=dict(env) if env is not None else None,
                               start_new_session=True)
    return Supervised(name=name, process=process, log=log, _handle=handle)


def serve_foreground(name: str, cmd: list[str], *, cwd: Path, env: Mapping[str, str]) -> int:
    """Run a Flower program in the foreground (its log on this terminal) until it exits or this
    process is interrupted or terminated. It stays in this process's group, so whoever stops
    the group (a terminal's Ctrl-C, systemd, a test) stops it too; on SIGTERM it is terminated,
    and killed after a grace period."""
    cwd.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(cmd, cwd=cwd, env=dict(env))

    def _terminate(signum, frame):  # noqa: ARG001 - signal handler signature
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return process.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        signal.signal(signal.SIGTERM, previous)
