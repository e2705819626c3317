"""A study's cases: a dataset version's locked split, and the model's answers on them.

The split is read from the version's own commit of the dataset workspace
(``splits/assignments.csv`` at the version's ``git_rev``), so a study made today of version 3's
test split holds exactly the patients that version's models were tested on. Each case is read
from its first radiograph (CR/DX) by the registered model's checkpoint, run here as the served
model runs it (``decode_upload`` then ``Predictor.predict``), and the answer is returned to be
stored with the study.
"""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from psycopg import Connection

from bonebase.db import datasets
from bonebase.errors import InputError, NotFoundError
from bonebase.storage import ObjectStore
from bonebase.vocab import DIAGNOSES, TASKS, Behaviour, lookup_location, task_label

RADIOGRAPHS = ("CR", "DX")
# Two-class tasks only: a reader's 0-100 score is the probability of the positive class.
STUDY_TASKS = tuple(t for t in TASKS if t != "normal_benign_malignant")
SPLITS = ("test", "external", "val", "train")


@dataclass(frozen=True)
class StudyCase:
    case_id: int
    instance_id: int
    object_key: str
    truth: int


def split_patients(version: datasets.DatasetVersion, split: str,
                   workspace: Path | None = None) -> set[tuple[str, str]]:
    """(site code, patient pseudonym) of ``split`` in the version's locked assignment."""
    from bonebase.dataset import dvc as dv
    from bonebase.dataset.versioning import ASSIGNMENTS

    ws = Path(workspace or version.workspace)
    if not (ws / ".git").exists():
        raise NotFoundError(
            f"dataset version {version.version}: its workspace {ws} is not a git repository here; "
            "pass --workspace with a clone of it")
    text = dv.git(ws, "show", f"{version.git_rev}:{ASSIGNMENTS}",
                  what=f"git show of the split of dataset version {version.version}")
    frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    chosen = frame[frame["split"] == split]
    return set(zip(chosen["site"], chosen["patient_id"], strict=True))


def select_cases(conn: Connection, *, version: int, split: str, task: str,
                 workspace: Path | None = None) -> list[StudyCase]:
    """The version's cases in ``split`` that belong to ``task`` and have a radiograph, with
    their truth (1 = the task's positive class), in case id order."""
    if split not in SPLITS:
        raise InputError(f"--split {split!r} is unknown: use one of {', '.join(SPLITS)}")
    if task not in STUDY_TASKS:
        raise InputError(f"--task {task!r} is not a two-class task: use one of "
                         f"{', '.join(STUDY_TASKS)}")
    row = datasets.get_version(conn, version)
    patients = split_patients(row, split, workspace)
    inter = Behaviour(row.params.get("export", {}).get("intermediate_as", "benign"))
    rows = conn.execute(
        "SELECT DISTINCT ON (c.id) c.id AS case_id, i.id AS instance_id, i.object_key,"
        " s.code AS site, p.pseudonym AS patient, c.diagnosis_code, c.location_code"
        " FROM dataset_version_cases v JOIN cases c ON c.id = v.case_id AND c.is_current"
        " JOIN sites s ON s.id = c.site_id JOIN patients p ON p.id = c.patient_id"
        " JOIN studies st ON st.case_id = c.id JOIN series se ON se.study_id = st.id"
        " JOIN instances i ON i.series_id = se.id"
        " WHERE v.version = %s AND i.modality = ANY(%s) ORDER BY c.id, i.id",
        (version, list(RADIOGRAPHS)),
    ).fetchall()
    out = []
    for r in rows:
        if (r["site"], r["patient"]) not in patients:
            continue
        diagnosis = DIAGNOSES.get(r["diagnosis_code"] or "")
        truth = task_label(task, diagnosis, lookup_location(r["location_code"]),
                           intermediate_as=inter)
        if truth is not None:
            out.append(StudyCase(r["case_id"], r["instance_id"], r["object_key"], truth))
    if not out:
        raise InputError(
            f"dataset version {version} has no {task} case with a radiograph in its {split} "
            "split: choose another split, task or version")
    if len({c.truth for c in out}) < 2:
        raise InputError(
            f"the {split} split of dataset version {version} holds only one class of {task}: "
            "a reader study needs cases of both classes to measure an AUC")
    return out


@dataclass(frozen=True)
class ModelAnswer:
    probability: float  # of the task's positive class
    predicted_class: str
    gradcam_png: bytes | None


def model_answers(store: ObjectStore, model: dict, cases: list[StudyCase]
                  ) -> tuple[float, list[ModelAnswer]]:
    """(locked threshold, one answer per case) of a registered model, with Grad-CAM maps."""
    from bonebase.model.inference import Predictor, decode_upload, heat_png
    from bonebase.release.registry import fetch_checkpoint

    with tempfile.TemporaryDirectory(prefix="bonebase-study-") as tmp:
        predictor = Predictor.from_checkpoint(fetch_checkpoint(store, model, tmp))
    if len(predictor.classes) != 2 or predictor.threshold is None:
        # A reader's 0-100 score and the OR analysis are for two classes and one threshold.
        raise InputError(f"model {model['id']} has {len(predictor.classes)} classes and no single "
                         "locked threshold: a reader study needs a two-class model")
    answers = []
    for case in cases:
        image = decode_upload(store.get_bytes(case.object_key), name=f"case {case.case_id}").image
        result = predictor.predict([image], gradcam=True)[0]
        positive = predictor.classes[1]
        answers.append(ModelAnswer(result["probabilities"][positive], result["predicted_class"],
                                   heat_png(result["gradcam"])))
    return float(predictor.threshold), answers


__all__ = ["ModelAnswer", "StudyCase", "model_answers", "select_cases", "split_patients"]
