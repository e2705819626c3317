"""Fixtures of the flow tests: the two small ingested hospitals of tests/flows/world.py, made once
per session (two generated submissions, two ingest flow runs) and handed to each module that
wants them as a copy (``CREATE DATABASE ... TEMPLATE`` and a copy of the home's folder), so the
retraining and reproducibility tests do not generate and ingest the same data twice."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bonebase.config import Settings
from tests.flows.world import ingested_world, settings_for, two_submissions


@pytest.fixture(scope="session")
def two_hospitals(tmp_path_factory) -> Path:
    """tests/flows/world.py's two_submissions, generated once: read, never written."""
    return two_submissions(tmp_path_factory.mktemp("two-hospitals"))


@pytest.fixture(scope="session")
def ingested_template(fresh_database, tmp_path_factory, two_hospitals,
                      prefect_harness) -> Settings:
    """HX and MUC ingested once into a database nobody connects to afterwards (a template)."""
    return ingested_world(fresh_database(), tmp_path_factory.mktemp("ingested") / "home",
                          two_hospitals)


@pytest.fixture(scope="session")
def ingested_copy(fresh_database, ingested_template):
    """A factory: ``ingested_copy(home)`` is the ingested world in a database of its own and a
    copy of the template's home at ``home`` (objects, receipts, Data Docs), as ingested_world
    would have left them."""

    def copy(home: Path) -> Settings:
        url = fresh_database(template=ingested_template.database_url)
        shutil.copytree(ingested_template.home, home, dirs_exist_ok=True)
        return settings_for(url, home)

    return copy
