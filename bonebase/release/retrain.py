"""Retraining runs: what the scheduled `retrain` flow does between "a new dataset version" and
"a candidate waiting for approval".

The flow (flows/retrain.py) is thin; the pieces are here so they can be tested on their own:

- :func:`recipe_hash` names what a run trains with besides the data: dvc.yaml, the params
  sections the train and evaluate stages read, and the code revision of the project checkout.
- :func:`skip_reason` / :func:`record_run` keep one audit event per run (entity ``retrain``), so
  "nothing changed since the last run" is a question to the database, not to Prefect's state.
- :func:`run_pipeline` runs the DVC stages in the project checkout and streams their output.
- :func:`comparison_markdown` is the Prefect artifact that puts the candidate beside the champion.

A retrain run never deploys: deployment needs a named approval (bonebase models approve).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml
from psycopg import Connection

from bonebase.db import audit
from bonebase.errors import BonebaseError, ConfigError

#: The params.yaml sections the train and evaluate stages read (dvc.yaml lists the same).
RECIPE_SECTIONS = ("task", "train", "evaluate")
#: The stages a retrain runs on a checked-out dataset version (export and split are the version).
STAGES = ("train", "evaluate")


class PipelineError(BonebaseError):
    """A DVC stage failed; the message carries the end of its output."""


def code_revision(project_dir: Path) -> str | None:
    """``git rev-parse HEAD`` of the checkout (+ ``-dirty`` with uncommitted code), or None."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=project_dir,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        # params.yaml is hashed on its own, and a run rewrites dvc.lock and .gitignore files:
        # none of them is a change of code.
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
             ":(exclude)params.yaml", ":(exclude)dvc.lock", ":(exclude,glob)**/.gitignore"],
            cwd=project_dir, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{rev}-dirty" if dirty else rev


def recipe_hash(project_dir: Path, params_path: Path) -> tuple[str, dict]:
    """A short hash of dvc.yaml + the train/evaluate params + the code revision, and its parts."""
    dvc_yaml = project_dir / "dvc.yaml"
    if not dvc_yaml.is_file():
        raise ConfigError(
            f"{project_dir}: no dvc.yaml; run the retrain flow from a bonebase checkout "
            "(or pass --project DIR)"
        )
    try:
        params = yaml.safe_load(params_path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {params_path} ({exc}); fix params.yaml") from None
    missing = [s for s in RECIPE_SECTIONS if s not in params]
    if missing:
        raise ConfigError(f"{params_path} lacks {missing}; see the repository's params.yaml")
    parts = {
        "dvc_yaml": hashlib.sha256(dvc_yaml.read_bytes()).hexdigest()[:16],
        "params": {s: params[s] for s in RECIPE_SECTIONS},
        "code_revision": code_revision(project_dir),
    }
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16], parts


def skip_reason(conn: Connection, *, dataset_version: int, recipe: str) -> str | None:
    """Why this run has nothing to do (same data version and recipe as a finished run), or None."""
    row = conn.execute(
        "SELECT details FROM audit_events WHERE entity = 'retrain' AND action = 'retrain.run'"
        " AND entity_id = %s AND details->>'recipe' = %s AND details->>'model_id' IS NOT NULL"
        " ORDER BY id DESC LIMIT 1",
        (str(dataset_version), recipe),
    ).fetchone()
    if row is None:
        return None
    return (
        f"nothing changed: dataset version {dataset_version} was already trained with this "
        f"recipe ({recipe}) as model {row['details']['model_id']}"
    )


def record_run(conn: Connection, *, dataset_version: int, recipe: str, details: dict) -> int:
    """One audit event per finished run: dataset version, recipe hash, model id, gate outcome."""
    with conn.transaction():
        return audit.record(
            conn,
            action="retrain.run",
            entity="retrain",
            entity_id=dataset_version,
            details={**details, "recipe": recipe, "dataset_version": dataset_version},
        )


def run_pipeline(
    project_dir: Path,
    *,
    stages: Sequence[str] = STAGES,
    on_line: Callable[[str], None] = print,
) -> None:
    """``dvc repro --single-item`` the ``stages`` in ``project_dir``, streaming their output.

    Single-item: data/ already holds a recorded dataset version (labels, split, images), so the
    export and split stages must not run again and overwrite it from the live database.
    """
    cmd = [sys.executable, "-m", "dvc", "repro", "--single-item", *stages]
    # dvc.yaml's commands say `python`: make it this interpreter (the venv's), not the system's.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    tail: deque[str] = deque(maxlen=20)
    try:
        proc = subprocess.Popen(
            cmd,
            cwd=project_dir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
    except OSError as exc:
        raise PipelineError(
            f"cannot start DVC ({exc}); install the project (make install)"
        ) from None
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        tail.append(line)
        on_line(line)
    if proc.wait() != 0:
        last = "\n".join(tail)
        raise PipelineError(
            f"`dvc repro --single-item {' '.join(stages)}` failed in {project_dir} "
            f"(exit {proc.returncode}); its last lines:\n{last}"
        )


def _auc(metrics: dict, part: str) -> str:
    block = (metrics or {}).get(part) or {}
    auc = block.get("auc")
    if auc is None:
        return "–"
    lo, hi = block.get("auc_delong_lo"), block.get("auc_delong_hi")
    return f"{auc:.3f} ({lo:.3f}–{hi:.3f})" if lo is not None and hi is not None else f"{auc:.3f}"


def comparison_markdown(
    *, candidate: dict, champion: dict | None, gate: dict, dataset_version: int
) -> str:
    """The run's artifact: the candidate beside the champion, and the gate's checks."""
    lines = [
        f"# Retraining on dataset version {dataset_version}",
        "",
        f"Candidate **model {candidate['id']}** ({candidate['arch']}, task `{candidate['task']}`)"
        f" — gate **{'passed' if gate.get('passed') else 'failed'}**. "
        "It is not deployed: `bonebase models approve "
        f"{candidate['id']} --by NAME` then `bonebase models deploy {candidate['id']}`.",
        "",
        "| | candidate | champion |",
        "| --- | --- | --- |",
        f"| model | {candidate['id']} | {champion['id'] if champion else 'none deployed'} |",
        f"| dataset version | {candidate.get('dataset_version')} | "
        f"{champion.get('dataset_version') if champion else '–'} |",
    ]
    for part in ("test", "external"):
        lines.append(
            f"| {part} AUC (95% CI) | {_auc(candidate.get('metrics'), part)} | "
            f"{_auc(champion.get('metrics'), part) if champion else '–'} |"
        )
    lines += [
        "",
        "## Release gate",
        "",
        "| check | value | limit | passed |",
        "| --- | --- | --- | --- |",
    ]
    for c in gate.get("checks", []):
        value = c.get("value")
        value = f"{value:.3f}" if isinstance(value, float) else value
        lines.append(
            f"| {c['check']} | {value} | {c.get('limit')} | {'yes' if c['passed'] else 'NO'} |"
        )
    delong = (gate.get("comparison") or {}).get("delong")
    if delong:
        lines += ["", f"Head to head with the champion (DeLong): {json.dumps(delong, default=str)}"]
    return "\n".join(lines) + "\n"
