"""Fixtures of the reader-study tests: the seeded web database (tests/web/conftest.py) over the
consortium the tiny served model was trained on, plus a dataset version, the model and readers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_serving import trained  # noqa: F401  (fixture)
from tests.readerstudy.world import add_readers, make_version, register_model
from tests.web.conftest import app_client, seeded  # noqa: F401  (fixtures)


@pytest.fixture(scope="module")
def synth_root(trained) -> Path:  # noqa: F811
    return trained["root"] / "synth"


@pytest.fixture(scope="module")
def world(seeded, trained, tmp_path_factory) -> dict:  # noqa: F811
    from bonebase.db.engine import connect

    with connect(seeded["url"]) as conn:
        make_version(conn, tmp_path_factory.mktemp("rs-workspace"))
        model_id = register_model(conn, seeded["store"], trained["checkpoint"])
        add_readers(conn)
        conn.commit()
    return {**seeded, "model_id": model_id}
