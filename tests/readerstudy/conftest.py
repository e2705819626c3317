"""Fixtures of the reader-study tests: one seeded web database for the whole package (the
consortium the session's tiny served model was trained on, tests/worlds.py), a dataset
version, the registered model and readers.

The model's answers on a case are computed once per test session (``model_answers`` runs for
real, on the cases no earlier study of the session asked about): every study of these tests
draws from the same dozen cases, and Grad-CAM on a CPU costs about a second per case.
"""

from __future__ import annotations

import pytest

from tests.readerstudy.world import add_readers, make_version, register_model
from tests.web.conftest import app_client  # noqa: F401  (fixture)

_ANSWERS: dict[tuple[int, int], tuple[float, object]] = {}


@pytest.fixture(scope="package")
def seeded(seeded_copy, trained) -> dict:
    """The web tests' seeded database (a copy of the session's template), once for this
    package."""
    return seeded_copy(trained["root"] / "synth")


@pytest.fixture(scope="package")
def world(seeded, trained, tmp_path_factory) -> dict:
    from bonebase.db.engine import connect
    from bonebase.readerstudy import create

    with connect(seeded["url"]) as conn:
        make_version(conn, tmp_path_factory.mktemp("rs-workspace"))
        model_id = register_model(conn, seeded["store"], trained["checkpoint"])
        add_readers(conn)
        conn.commit()
    real = create.model_answers

    def remembered(store, model, cases):
        missing = [c for c in cases if (model["id"], c.case_id) not in _ANSWERS]
        if missing:
            threshold, answers = real(store, model, missing)
            for c, a in zip(missing, answers, strict=True):
                _ANSWERS[model["id"], c.case_id] = (threshold, a)
        got = [_ANSWERS[model["id"], c.case_id] for c in cases]
        return got[0][0], [a for _, a in got]

    mp = pytest.MonkeyPatch()
    mp.setattr(create, "model_answers", remembered)
    yield {**seeded, "model_id": model_id}
    mp.undo()
