"""Putting registry models into the BentoML model store and starting ``bentoml serve``.

A deployed version is a BentoML model ``bonebase-diagnosis:<version>`` holding the checkpoint
file ``model.pt`` plus labels (task, arch, dataset version, code revision, registry id) and the
metrics as metadata. The service (``serving/service.py``) loads the tag named by
``BONEBASE_MODEL_TAG``, so a rollback is serving an older tag again.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from bonebase.errors import ConfigError, InputError

MODEL_NAME = "bonebase-diagnosis"
CHECKPOINT_FILE = "model.pt"
SERVICE = "serving.service:Diagnosis"
_VERSION_OK = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


def bento_version(model_id: int, sha256: str) -> str:
    """The BentoML version string of registry model ``model_id`` (id plus checkpoint hash)."""
    return f"m{int(model_id)}-{sha256[:12].lower()}"


def clean_metadata(value):
    """``value`` with what BentoML's metadata refuses removed: None entries (a site AUC that
    could not be computed) and NaN, recursively through dicts and lists."""
    if isinstance(value, dict):
        return {str(k): clean_metadata(v) for k, v in value.items() if _keep(v)}
    if isinstance(value, list | tuple):
        return [clean_metadata(v) for v in value if _keep(v)]
    return value


def _keep(v) -> bool:
    return v is not None and not (isinstance(v, float) and v != v)


def save_to_bentoml(
    checkpoint: str | Path,
    *,
    version: str,
    labels: dict[str, str] | None = None,
    metadata: dict | None = None,
) -> str:
    """Copy ``checkpoint`` into the BentoML model store as ``bonebase-diagnosis:<version>``
    and return the tag; an existing tag with that version is reused (same id, same hash)."""
    import bentoml
    from bentoml.exceptions import NotFound

    if not _VERSION_OK.match(version):
        raise InputError(f"version {version!r}: use lower-case letters, digits, '.', '_', '-'")
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise InputError(f"{checkpoint}: no checkpoint file to deploy")
    tag = f"{MODEL_NAME}:{version}"
    try:
        return str(bentoml.models.get(tag).tag)
    except NotFound:
        pass
    clean_labels = {k: str(v) for k, v in (labels or {}).items() if v is not None}
    meta = clean_metadata(metadata or {})
    with bentoml.models.create(tag, labels=clean_labels, metadata=meta) as model:
        shutil.copyfile(checkpoint, Path(model.path) / CHECKPOINT_FILE)
    return str(model.tag)


def serve_command(*, host: str = "127.0.0.1", port: int = 3000) -> list[str]:
    """The ``bentoml serve`` command line; the model comes from ``serve_env``'s tag."""
    return [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        SERVICE,
        "--host",
        host,
        "--port",
        str(port),
    ]


def serve_env(
    tag: str, *, token: str | None = None, base: dict[str, str] | None = None
) -> dict[str, str]:
    """Environment for a serving process: ``BONEBASE_MODEL_TAG`` (and the API token)."""
    env = dict(os.environ if base is None else base)
    env["BONEBASE_MODEL_TAG"] = tag
    if token:
        env["BONEBASE_API_TOKEN"] = token
    return env


def start_server(
    tag: str,
    *,
    cwd: str | Path,
    host: str = "127.0.0.1",
    port: int = 3000,
    token: str | None = None,
    log: str | Path | None = None,
    base_env: dict[str, str] | None = None,
) -> subprocess.Popen:
    """Start ``bentoml serve`` for ``tag`` in the background (``cwd`` holds ``serving/``).

    ``base_env`` replaces os.environ as the child's environment (e.g. another BENTOML_HOME).
    """
    if not (Path(cwd) / "serving" / "service.py").is_file():
        raise ConfigError(f"{cwd}: no serving/service.py; run from the bonebase repository root")
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 (handed to the child)
    return subprocess.Popen(
        serve_command(host=host, port=port),
        cwd=cwd,
        env=serve_env(tag, token=token, base=base_env),
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stopping it stops its workers too
    )


__all__ = [
    "CHECKPOINT_FILE",
    "MODEL_NAME",
    "bento_version",
    "clean_metadata",
    "save_to_bentoml",
    "serve_command",
    "serve_env",
    "start_server",
]
