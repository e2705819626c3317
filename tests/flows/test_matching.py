"""Matching a submission's images to its manifest rows with what hospitals have (#17 points 1
and 2), and who may submit at all (#18 point 5). Real Prefect flows, real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from bonebase.config import Settings
from bonebase.db.sites import add_site, update_site
from bonebase.errors import InputError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def synth_site(tmp_path_factory) -> Path:
    """One small synthetic hospital with its injected faults."""
    from bonebase.synth import generate

    out = tmp_path_factory.mktemp("synth")
    generate(out, sites=1, cases_per_site=22, seed=23, workers=2)
    return next(p for p in out.iterdir() if p.is_dir())


@pytest.fixture
def settings(tmp_path, db_url) -> Settings:
    s = Settings(home=tmp_path / "home", database_url=db_url, secret="m" * 40, env="test")
    s.ensure_home()
    return s


def test_an_inactive_site_is_refused_before_anything_is_registered(settings, synth_site, db,
                                                                   prefect_harness):
    from flows.ingest import ingest_submission

    add_site(db, code=synth_site.name, name="Hospital Z")
    update_site(db, synth_site.name, active=False)
    db.commit()
    with pytest.raises(InputError, match=f"site {synth_site.name} .* is marked inactive"):
        ingest_submission(synth_site.name, str(synth_site / "submission"), settings=settings)
    assert db.execute("SELECT count(*) AS n FROM submissions").fetchone()["n"] == 0
