"""Embedded PostgreSQL servers that tests start, found and stopped by their data folder.

pgserver leaves a server running after the process that started it exits (bonebase relies on
that between commands), so a test that runs `bonebase init` or any command on an embedded home
leaves one behind. The session stops every server whose data folder lies under the session's
temporary folders (the ones :func:`tests.conftest.world_traversable_tmp` made, and pytest's);
servers of other sessions and of the machine are left alone.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable
from pathlib import Path

import psutil

from bonebase.db.engine import stop_embedded


def postmasters_under(roots: Iterable[Path]) -> list[tuple[int, Path]]:
    """(pid, data folder) of each postgres server whose data folder is under one of ``roots``."""
    roots = [Path(r).resolve() for r in roots]
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmd = proc.info["cmdline"] or []
        if proc.info["name"] != "postgres" or "-D" not in cmd[:-1]:
            continue  # a backend or helper process: the postmaster alone has -D
        data = Path(cmd[cmd.index("-D") + 1])
        data = data if data.is_absolute() else Path(proc.cwd()) / data
        if any(data.resolve().is_relative_to(root) for root in roots):
            found.append((proc.pid, data))
    return found


def stop_servers_under(roots: Iterable[Path]) -> list[Path]:
    """Stop every server under ``roots`` (pg_ctl; a server whose folder is gone gets the fast
    shutdown signal, then SIGKILL); the data folders of those that ran."""
    roots = list(roots)
    stopped = []
    for pid, data in postmasters_under(roots):
        if not stop_embedded(data):
            try:
                proc = psutil.Process(pid)
                os.kill(pid, signal.SIGINT)  # postgres: fast shutdown
                proc.wait(20)
            except psutil.TimeoutExpired:
                proc.kill()
            except (psutil.NoSuchProcess, ProcessLookupError):
                pass
        stopped.append(data)
    return stopped
