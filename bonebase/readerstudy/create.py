"""Making a study: its cases from a dataset version's split, the model's stored answers, its
readers and their sessions (one entry point for the CLI and the admin page)."""

from __future__ import annotations

import secrets
from pathlib import Path

from psycopg import Connection

from bonebase.db import models as model_q
from bonebase.errors import InputError, NotFoundError
from bonebase.readerstudy import store
from bonebase.readerstudy.cases import STUDY_TASKS, model_answers, select_cases
from bonebase.storage import ObjectStore

MAX_CASES = 2000  # a study's answers and heat maps stay small enough for one transaction


def parse_readers(text: str) -> list[str]:
    """``"ada, bo"`` → ``["ada", "bo"]``."""
    return [r.strip().lower() for r in text.split(",") if r.strip()]


def create_study(conn: Connection, object_store: ObjectStore, *, name: str, dataset_version: int,
                 split: str, task: str, model_id: int, readers: list[str],
                 washout_days: int = 28, seed: int | None = None, max_cases: int | None = None,
                 allow_corrections: bool = False, actor: str,
                 workspace: Path | None = None) -> dict:
    """Create study ``name``; returns its row. ``max_cases``: the first N cases of the split
    (in case id order), for a shorter study."""
    if task not in STUDY_TASKS:
        raise InputError(f"--task {task!r} is not a two-class task: use one of "
                         f"{', '.join(STUDY_TASKS)}")
    store.reader_ids(conn, readers)  # before the model runs: a typo fails fast
    if conn.execute("SELECT 1 FROM reader_studies WHERE name = %s", (name,)).fetchone():
        raise InputError(f"a reader study named {name!r} exists: choose another name")
    try:
        model = model_q.get_model(conn, model_id)
    except NotFoundError:
        raise NotFoundError(f"no model {model_id}; `bonebase models list` shows them") from None
    if model["task"] != task:
        raise InputError(f"model {model_id} was trained for {model['task']}, not {task}: "
                         "choose a model of the study's task")
    cases = select_cases(conn, version=dataset_version, split=split, task=task,
                         workspace=workspace)
    limit = min(max_cases or MAX_CASES, MAX_CASES)
    if max_cases is not None and max_cases < 2:
        raise InputError("--max-cases must be at least 2")
    cases = cases[:limit]
    if len({c.truth for c in cases}) < 2:
        raise InputError(f"the first {len(cases)} cases hold one class only: raise --max-cases")
    threshold, answers = model_answers(object_store, model, cases)
    return store.insert_study(
        conn, name=name, task=task, dataset_version=dataset_version, split=split, model=model,
        threshold=threshold, cases=cases, answers=answers, readers=readers,
        washout_days=washout_days, seed=secrets.randbits(31) if seed is None else seed,
        allow_corrections=allow_corrections, actor=actor)


__all__ = ["create_study", "parse_readers"]
