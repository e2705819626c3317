"""`bonebase prefect …`: Prefect's UI on this home's flow runs (mounted by bonebase.cli).

Without PREFECT_API_URL, `submit`, `dataset version`, `retrain` and `demo` run their flows on a
temporary Prefect server whose state lives in BONEBASE_HOME/prefect (cli_common.prefect_env). A
plain `prefect server start` reads ~/.prefect instead and shows none of those runs: `bonebase
prefect ui` starts the server on this home's state, and `bonebase prefect command` prints the
line that does the same without bonebase.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer

from bonebase.cli_common import console, prefect_env, prefect_home, settings
from bonebase.errors import ConfigError

prefect_app = typer.Typer(help="Prefect's UI and API on the flow runs of this bonebase home.",
                          no_args_is_help=True)

Host = Annotated[str, typer.Option("--host", help="Address to listen on.")]
Port = Annotated[int, typer.Option("--port", min=1, max=65535, help="Port of the UI and API.")]


def server_command_line(host: str = "127.0.0.1", port: int = 4200) -> str:
    """The shell line that starts Prefect's server on this home's flow runs."""
    line = f"PREFECT_HOME={shlex.quote(str(prefect_home()))} prefect server start"
    if (host, port) != ("127.0.0.1", 4200):
        line += f" --host {shlex.quote(host)} --port {port}"
    return line


def _on_shared_server() -> bool:
    """True (and says where the UI is) when PREFECT_API_URL names a server: runs are there.
    Else the runs are local, in a home that must exist (a new, empty one has none to show)."""
    url = os.environ.get("PREFECT_API_URL")
    if url:
        console.print("PREFECT_API_URL is set: the flow runs are on that server; its UI is at "
                      + url.rstrip("/").removesuffix("/api"))
    elif not os.environ.get("PREFECT_HOME"):
        settings().require_home()
    return bool(url)


@prefect_app.command("ui")
def ui_cmd(host: Host = "127.0.0.1", port: Port = 4200) -> None:
    """Start Prefect's server (UI and API) on this home's flow runs; Ctrl-C stops it.

    The runs of submit, dataset version, retrain and demo are kept in BONEBASE_HOME/prefect; this
    runs `prefect server start` with PREFECT_HOME set there. With PREFECT_API_URL set, the runs
    are on that server instead and its own UI shows them.
    """
    if _on_shared_server():
        return
    prefect_env()  # PREFECT_HOME (0700) and no telemetry, exactly as the flows' commands set them
    exe = shutil.which("prefect", path=str(Path(sys.executable).parent)) or shutil.which("prefect")
    if exe is None:
        raise ConfigError("the `prefect` command is missing beside this Python: reinstall bonebase")
    console.print(f"Prefect UI on the flow runs in {prefect_home()}: http://{host}:{port} "
                  "(Ctrl-C stops it)")
    console.print(f"  the same without bonebase: {server_command_line(host, port)}")
    sys.stdout.flush()
    os.execv(exe, [exe, "server", "start", "--host", host, "--port", str(port)])


@prefect_app.command("command")
def command_cmd(host: Host = "127.0.0.1", port: Port = 4200) -> None:
    """Print the `prefect server start` line whose UI shows this home's flow runs."""
    if _on_shared_server():
        return
    print(server_command_line(host, port))
