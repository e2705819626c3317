"""The real deployment of federated training: Flower's SuperLink at the consortium, a SuperNode
at each hospital, runs submitted with `flwr run` (docs/federated.md, 'Deployment').

This module builds the command lines of Flower's own programs (:mod:`bonebase.federated.processes`
runs them); the training code is bonebase's ServerApp and ClientApp (`bonebase.federated`),
packaged here as a Flower App.

Ports (Flower 1.32, gRPC; all take TLS):
- Fleet API, 9092: SuperNodes → SuperLink. The only port the consortium opens to hospitals.
- Control API, 9093: `flwr run` → SuperLink. Open to the MLOps engineers' machines at most.
- ServerAppIo API, 9091: SuperLink ↔ its ServerApp process, on the same machine (loopback).
- ClientAppIo API, 9094: SuperNode ↔ its ClientApp process, on the hospital's machine
  (loopback). Hospitals open no inbound port: their SuperNode dials out.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from bonebase.errors import BonebaseError, InputError
from bonebase.federated.tls import Certificates

FLEET_PORT = 9092
CONTROL_PORT = 9093
SERVERAPPIO_PORT = 9091
CLIENTAPPIO_PORT = 9094
APP_NAME = "bonebase-federated"
# The connection name `flwr run` reads from the Flower configuration we write.
CONNECTION = "bonebase"


def flower_program(name: str) -> str:
    """The path of one of Flower's programs, installed beside this Python (a venv's bin/)."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise BonebaseError(f"Flower's `{name}` is not installed in this environment: "
                            "reinstall bonebase (`make install`), which brings `flwr`.")
    return found


def parse_address(value: str, *, default_port: int, what: str) -> tuple[str, int]:
    """`HOST:PORT` (or `HOST`) → (host, port), with an error that names the option."""
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = value, str(default_port)
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"{what}: {value!r} is not HOST:PORT (e.g. fl.consortium.org:"
                         f"{default_port}).")
    return host, int(port)


def joined(address: tuple[str, int]) -> str:
    """(host, port) → `host:port` (`[host]:port` for IPv6), as Flower's programs take it."""
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class SuperLinkSpec:
    """What the consortium's SuperLink listens on and where it keeps its state."""

    state_dir: Path
    certificates: Certificates | None  # None: --insecure (local trials only)
    fleet: tuple[str, int] = ("0.0.0.0", FLEET_PORT)
    control: tuple[str, int] = ("127.0.0.1", CONTROL_PORT)
    serverappio: tuple[str, int] = ("127.0.0.1", SERVERAPPIO_PORT)

    def command(self) -> list[str]:
        cmd = [
            flower_program("flower-superlink"),
            "--fleet-api-address", joined(self.fleet),
            "--control-api-address", joined(self.control),
            "--serverappio-api-address", joined(self.serverappio),
            # Runs, nodes and messages survive a restart of the SuperLink (clients reconnect).
            "--database", str(self.state_dir / "superlink.db"),
            # The ServerApp runs with the environment installed here, never one fetched at
            # run time (hospitals' and the consortium's machines may be offline).
            "--disable-runtime-dependency-installation",
        ]
        if self.certificates is None:
            return [*cmd, "--insecure"]
        return [*cmd, "--ssl-ca-certfile", str(self.certificates.ca),
                "--ssl-certfile", str(self.certificates.server_cert),
                "--ssl-keyfile", str(self.certificates.server_key)]


@dataclass(frozen=True)
class SuperNodeSpec:
    """One hospital's SuperNode: which SuperLink it dials and which bonebase home it trains on."""

    site: str
    home: Path
    server: tuple[str, int]
    ca: Path | None  # None: --insecure (local trials only)
    clientappio: tuple[str, int] = ("127.0.0.1", CLIENTAPPIO_PORT)
    max_wait_s: float | None = None  # None: keep trying to reconnect for ever

    def __post_init__(self) -> None:
        from bonebase.db.sites import check_code

        check_code(self.site)  # 2-8 upper-case letters/digits: nothing to break out of quotes
        if any(c in str(self.home) for c in '"\\\n'):
            raise InputError(f"the bonebase home {str(self.home)!r} holds a quote, a backslash "
                             "or a line break, which Flower's node config cannot carry; use a "
                             "plain path")

    def node_config(self) -> str:
        # Only a site code and a path: no secret ever travels in node configuration.
        return f'site="{self.site}" bonebase-home="{self.home}"'

    def command(self) -> list[str]:
        cmd = [
            flower_program("flower-supernode"),
            "--superlink", joined(self.server),
            "--clientappio-api-address", joined(self.clientappio),
            "--node-config", self.node_config(),
        ]
        if self.max_wait_s is not None:
            cmd += ["--max-wait-time", str(self.max_wait_s)]
        if self.ca is None:
            return [*cmd, "--insecure"]
        return [*cmd, "--root-certificates", str(self.ca)]


def flower_env(flwr_home: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a Flower program: its own FLWR_HOME (apps, config), no telemetry."""
    env = dict(os.environ if base is None else base)
    env["FLWR_HOME"] = str(flwr_home)
    env["FLWR_TELEMETRY_ENABLED"] = "0"  # nothing leaves the machine but what we send
    # Flower starts its helpers (flower-superexec, flwr-serverapp, flwr-clientapp) by name:
    # they must be found beside this Python even when the venv is not activated.
    bindir = str(Path(sys.executable).parent)
    if bindir not in env.get("PATH", "").split(os.pathsep):
        env["PATH"] = os.pathsep.join([bindir, env.get("PATH", "")])
    return env


def write_flower_config(flwr_home: Path, *, control: tuple[str, int], ca: Path | None) -> Path:
    """The Flower configuration `flwr run` reads: one SuperLink connection named 'bonebase'."""
    flwr_home.mkdir(parents=True, exist_ok=True)
    lines = ["[superlink]", f'default = "{CONNECTION}"', "", f"[superlink.{CONNECTION}]",
             f'address = "{joined(control)}"']
    lines.append(f'root-certificates = "{ca}"' if ca is not None else "insecure = true")
    path = flwr_home / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _toml_value(value: bool | int | float | str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_flower_app(folder: Path, run_config: Mapping[str, bool | int | float | str]) -> Path:
    """A Flower App (what `flwr run` packages and sends to the SuperLink and, from there, to
    every SuperNode): a pyproject.toml naming bonebase's ServerApp and ClientApp, and the run
    configuration. No code of its own: both ends import the installed bonebase, so a hospital
    runs only the bonebase release its IT installed."""
    from importlib.metadata import version

    from bonebase.federated.config import DEFAULTS, merged

    cfg = merged(None, dict(run_config))  # refuses unknown keys and impossible values
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        "[build-system]",
        'requires = ["hatchling"]',
        'build-backend = "hatchling.build"',
        "",
        "[project]",
        f'name = "{APP_NAME}"',
        f'version = "{_fab_version(version("bonebase"))}"',
        'description = "bonebase federated training: the consortium\'s network, trained at '
        'each hospital on its own data"',
        'license = "Apache-2.0"',
        "dependencies = []",
        "",
        "[tool.flwr.app]",
        'publisher = "bonebase"',
        "",
        "[tool.flwr.app.components]",
        'serverapp = "bonebase.federated.server:app"',
        'clientapp = "bonebase.federated.client:app"',
        "",
        "[tool.flwr.app.config]",
        *(f'{key} = {_toml_value(cfg[key])}' for key in DEFAULTS),
    ]
    (folder / "pyproject.toml").write_text("\n".join(lines) + "\n")
    return folder


def _fab_version(version: str) -> str:
    """Flower wants a plain X.Y.Z version for the App."""
    parts = [p for p in version.split(".")[:3] if p.isdigit()]
    return ".".join((parts + ["0", "0", "0"])[:3])


@dataclass(frozen=True)
class RunOutcome:
    """How a submitted run ended: Flower's run id and status (`finished:completed`, ...)."""

    run_id: int | None
    status: str
    details: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "finished:completed"


def run_status(run_id: int, *, flwr_home: Path) -> tuple[str, str]:
    """(status, details) of a run, from `flwr ls --run-id ID --format json`."""
    done = subprocess.run(
        [flower_program("flwr"), "ls", CONNECTION, "--run-id", str(run_id), "--format", "json"],
        env=flower_env(flwr_home), capture_output=True, text=True, timeout=120)
    try:
        runs = json.loads(done.stdout)["runs"]
        return str(runs[0]["status"]), str(runs[0].get("status-details") or "")
    except (ValueError, KeyError, IndexError):
        return "unknown", (done.stdout + done.stderr).strip()[-500:]


_STARTED = re.compile(r"Successfully started run (\d+)")


def run_app(app: Path, *, flwr_home: Path, log: Path | None = None,
            timeout_s: float | None = None, echo=None) -> RunOutcome:
    """`flwr run APP bonebase --stream`: submit the run to the SuperLink named in FLWR_HOME's
    configuration, follow its log to the end, and ask the SuperLink how it ended (`flwr run`
    exits 0 whether the ServerApp succeeded or not)."""
    cmd = [flower_program("flwr"), "run", str(app), CONNECTION, "--stream"]
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env=flower_env(flwr_home), text=True, start_new_session=True)
    expired = threading.Event()

    def _expire() -> None:
        expired.set()
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)

    timer = threading.Timer(timeout_s, _expire) if timeout_s else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    sink = open(log, "a") if log is not None else None  # noqa: SIM115
    try:
        assert process.stdout is not None
        run_id = None
        for line in process.stdout:
            if run_id is None and (found := _STARTED.search(line)):
                run_id = int(found.group(1))
            if sink is not None:
                sink.write(line)
                sink.flush()
            if echo is not None:
                echo(line.rstrip("\n"))
        code = process.wait()
    finally:
        if timer is not None:
            timer.cancel()
        if process.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=10)
        if sink is not None:
            sink.close()
    if expired.is_set():
        raise BonebaseError(f"the federated run took longer than {timeout_s:.0f} s; stopped "
                            "following it (the SuperLink may still be running it: `flwr stop`).")
    if run_id is None:
        return RunOutcome(None, "not-started", f"flwr run exited with code {code}")
    status, details = run_status(run_id, flwr_home=flwr_home)
    return RunOutcome(run_id, status, details)
