"""Git and DVC for the dataset workspace, through their command lines.

DVC is driven by its CLI in subprocesses: ``dvc.repo.Repo`` is not a stable API (treeverse/dvc
#5050) while the CLI is. DVC takes one lock per repository and fails a second command at once
("Unable to acquire lock", #10465), so every caller holds :func:`workspace_lock` around its
commands: two flows on one workspace wait for each other instead of failing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import yaml
from filelock import FileLock, Timeout

from bonebase.errors import BonebaseError, ConfigError

REMOTE = "storage"
BRANCH = "main"
# Git needs an identity to commit; the workspace's commits are made by the platform.
_GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "bonebase",
    "GIT_AUTHOR_EMAIL": "bonebase@localhost",
    "GIT_COMMITTER_NAME": "bonebase",
    "GIT_COMMITTER_EMAIL": "bonebase@localhost",
}


class VersioningError(BonebaseError):
    """A git or DVC step of dataset versioning failed; the message says what to do."""


def _env() -> dict[str, str]:
    env = {**os.environ, **_GIT_IDENTITY}
    # No network calls home from DVC (analytics, update checks) on air-gapped hospital servers.
    env["DVC_NO_ANALYTICS"] = "1"
    env.setdefault("GIT_TERMINAL_PROMPT", "0")
    return env


def run(args: Sequence[str], *, cwd: Path, what: str, check: bool = True) -> str:
    """Run one command in ``cwd`` and return its stdout; VersioningError (naming ``what`` and
    the tool's last error line) when it fails and ``check`` is set."""
    proc = subprocess.run(list(args), cwd=cwd, env=_env(), capture_output=True, text=True)
    if check and proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        detail = next((ln for ln in reversed(lines) if "ERROR" in ln), lines[-1] if lines else "")
        raise VersioningError(f"{what} failed in {cwd} (`{' '.join(args[:3])} …`): {detail}")
    return proc.stdout


def git(cwd: Path, *args: str, what: str | None = None, check: bool = True) -> str:
    return run(["git", *args], cwd=cwd, what=what or f"git {args[0]}", check=check)


def dvc(cwd: Path, *args: str, what: str | None = None, check: bool = True) -> str:
    # The DVC of this interpreter's environment, whatever PATH says.
    return run(
        [sys.executable, "-m", "dvc", *args], cwd=cwd, what=what or f"dvc {args[0]}", check=check
    )


def dvc_batch(cwd: Path, commands: Sequence[Sequence[str]], *, what: str) -> str:
    """Run several DVC commands in one process (see :mod:`bonebase.dataset.dvc_batch`)."""
    payload = json.dumps([list(c) for c in commands])
    return run([sys.executable, "-m", "bonebase.dataset.dvc_batch", payload], cwd=cwd, what=what)


@contextmanager
def workspace_lock(workspace: Path, *, timeout: float = 600) -> Iterator[None]:
    """Hold the workspace's file lock (next to it, so it exists before the workspace does)."""
    workspace = Path(workspace)
    workspace.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(workspace.with_name(workspace.name + ".lock")))
    try:
        lock.acquire(timeout=timeout)
    except Timeout:
        raise VersioningError(
            f"another dataset operation holds the lock of {workspace} for over {timeout:.0f} s; "
            "wait for it to finish (`bonebase dataset list`), then retry"
        ) from None
    try:
        yield
    finally:
        lock.release()


def configure_remote(workspace: Path, url: str, *, endpoint_url: str | None = None) -> None:
    """Make ``url`` the default remote (a directory or s3://…; S3 credentials from AWS_*)."""
    dvc(workspace, "remote", "add", "--force", "--default", REMOTE, url, what="dvc remote add")
    if endpoint_url:
        dvc(
            workspace,
            "remote",
            "modify",
            REMOTE,
            "endpointurl",
            endpoint_url,
            what="dvc remote modify",
        )


def init_workspace(workspace: Path, *, remote_url: str, endpoint_url: str | None = None) -> bool:
    """Create the git + DVC repository at ``workspace`` unless it exists; True when created."""
    workspace = Path(workspace)
    if (workspace / ".dvc").is_dir() and (workspace / ".git").exists():
        return False
    if workspace.exists() and any(workspace.iterdir()):
        raise ConfigError(
            f"{workspace} exists and is not a dataset workspace (no .git and .dvc); "
            "empty it or point the workspace elsewhere"
        )
    workspace.mkdir(parents=True, exist_ok=True)
    git(workspace, "init", "-q", "-b", BRANCH)
    dvc(workspace, "init")  # (-q would also hide the error message)
    dvc(workspace, "config", "core.analytics", "false")
    configure_remote(workspace, remote_url, endpoint_url=endpoint_url)
    (workspace / "README.md").write_text(
        "# bonebase dataset workspace\n\nManaged by `bonebase dataset`: each commit tagged vN is a "
        "dataset version (data.dvc + splits/assignments.csv); `bonebase dataset checkout N` "
        "restores it.\n"
    )
    git(workspace, "add", "-A")
    git(workspace, "commit", "-q", "-m", "Initialise dataset workspace")
    return True


def head(workspace: Path) -> str:
    return git(workspace, "rev-parse", "HEAD").strip()


def is_clean(workspace: Path) -> bool:
    return not git(workspace, "status", "--porcelain").strip()


def tracked_md5(dvc_file: Path) -> str:
    """The directory hash DVC recorded in a .dvc file (``<md5>.dir``)."""
    try:
        outs = yaml.safe_load(dvc_file.read_text())["outs"]
        return str(outs[0]["md5"]).removesuffix(".dir")
    except (OSError, TypeError, KeyError, IndexError, yaml.YAMLError):
        raise VersioningError(
            f"{dvc_file} is missing or not a DVC file; run `dvc add data` in the workspace"
        ) from None


__all__ = [
    "VersioningError",
    "configure_remote",
    "dvc",
    "dvc_batch",
    "git",
    "head",
    "init_workspace",
    "is_clean",
    "tracked_md5",
    "workspace_lock",
]
