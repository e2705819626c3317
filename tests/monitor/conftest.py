"""The watch's world, built once for the package: a champion trained on HX, then HXC (like HX)
and HXD (re-exposed) ingested and watched through the flow, as an ingest triggers it."""

from __future__ import annotations

import pytest

from tests.monitor.world import (
    LIKE,
    SHIFTED,
    TRAINING,
    add_sites,
    generate_site,
    reexpose,
    settings_for,
    train_champion,
)


@pytest.fixture(scope="package")
def watched(fresh_database, tmp_path_factory, prefect_harness):
    """A champion trained on HX, then HXC (like HX) and HXD (re-exposed) ingested and watched
    through the flow, as `bonebase submit` triggers it."""
    from bonebase.config import get_settings
    from bonebase.db.engine import connect
    from bonebase.db.migrate import upgrade
    from bonebase.storage import open_store
    from flows.ingest import ingest_submission
    from flows.monitor import watch_after_ingest

    url = fresh_database()
    upgrade(url)
    tmp = tmp_path_factory.mktemp("watch")
    folders = {TRAINING: generate_site(tmp, TRAINING, seed=3, cases=30),
               LIKE: generate_site(tmp, LIKE, seed=5, cases=22),
               SHIFTED: generate_site(tmp, SHIFTED, seed=6, cases=22)}
    assert reexpose(folders[SHIFTED]) > 10
    settings = settings_for(url, tmp / "home")
    add_sites(url, folders)
    params = tmp / "params.yaml"
    # A tiny model's AUC is near chance on every site: its AUC floor is off here (the unit
    # tests check the performance alert); drift is what tells these two hospitals apart.
    params.write_text("monitor:\n  auc_min: 0.0\n  auc_ci_low_min: 0.0\n  batch: 16\n")
    with pytest.MonkeyPatch.context() as mp:
        for name, value in settings.environ().items():
            mp.setenv(name, value)
        get_settings.cache_clear()
        ingest_submission(TRAINING, str(folders[TRAINING]), settings=settings)
        store = open_store(settings.object_store_url)
        with connect(url) as conn:
            model_id = train_champion(conn, store, tmp / "data")
        runs = {}
        for code in (LIKE, SHIFTED):
            receipt = ingest_submission(code, str(folders[code]), settings=settings)
            runs[code] = watch_after_ingest(receipt, params_path=str(params))
        yield {"url": url, "model": model_id, "runs": runs, "params": params, "tmp": tmp,
               "home": tmp / "home",
               "store": store}
        get_settings.cache_clear()


