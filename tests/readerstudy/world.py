"""A world for reader-study tests: the seeded web database, a recorded dataset version whose
locked split lives in a real git workspace, a registered model trained here, and readers."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.web.conftest import PASSWORD

READERS = ("rina", "remo")
OUTSIDER = "otto"  # a reader of no study


def make_version(conn, workspace: Path, *, version: int = 1) -> None:
    """Dataset version ``version``: every seeded case, 70% of the patients in the test split,
    the assignment committed to ``workspace`` as the versioning code does."""
    import pandas as pd

    from bonebase.dataset.split import assign_splits, write_assignments
    from bonebase.dataset.versioning import ASSIGNMENTS
    from bonebase.db.datasets import add_version

    rows = conn.execute(
        "SELECT c.id, s.code AS site, p.pseudonym AS patient, c.diagnosis_code FROM cases c"
        " JOIN sites s ON s.id = c.site_id JOIN patients p ON p.id = c.patient_id"
        " WHERE c.is_current ORDER BY c.id").fetchall()
    labels = pd.DataFrame({"site": [r["site"] for r in rows],
                           "patient_id": [r["patient"] for r in rows],
                           "benign_vs_malignant": [_label(r["diagnosis_code"]) for r in rows]})
    split = assign_splits(labels, None, seed=11, val_fraction=0.0, test_fraction=0.7,
                          external_sites=[])
    workspace.mkdir(parents=True, exist_ok=True)
    write_assignments(split, workspace / ASSIGNMENTS)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], cwd=workspace, check=True)
    subprocess.run([*git, "add", "."], cwd=workspace, check=True)
    subprocess.run([*git, "commit", "-qm", "v1"], cwd=workspace, check=True)
    rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=workspace, check=True,
                         capture_output=True, text=True).stdout.strip()
    add_version(conn, version=version, dvc_md5="0" * 32, git_rev=rev, workspace=str(workspace),
                remote_url="none", n_images=0, n_cases=len(rows), n_patients=len(rows),
                counts={}, params={}, actor="test")
    conn.execute("INSERT INTO dataset_version_cases (version, case_id)"
                 " SELECT %s, id FROM cases WHERE is_current", (version,))


def _label(code: str | None) -> str:
    from bonebase.vocab import DIAGNOSES, task_label

    d = DIAGNOSES.get(code or "")
    return str(task_label("benign_vs_malignant", d)) if d else ""


def register_model(conn, store, checkpoint: Path) -> int:
    from bonebase.release.registry import register

    return register(conn, store, checkpoint=checkpoint, metrics={"auc": 0.5}, by="test")["id"]


def add_readers(conn) -> None:
    from bonebase.db.users import add_user

    for name in (*READERS, OUTSIDER):
        add_user(conn, username=name, role="reader", password=PASSWORD, actor="test")
