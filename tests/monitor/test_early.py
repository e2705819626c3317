"""Early scoring (bonebase.monitor.early): a watched ingest's radiographs are scored while the
submission is validated and stored, and the watch stores exactly what it would have scored itself.

The watched world's database is copied (its champion deployed, its reference scored) so that a
new hospital can be ingested without changing what the package's other tests see."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from tests.monitor.world import add_sites, generate_site

NEW = "HXE"


def _scores(conn, model_id: int, sid: int) -> dict[int, dict]:
    return {r["instance_id"]: r for r in conn.execute(
        "SELECT instance_id, case_id, label, probability, predicted, features, error"
        " FROM watch_scores WHERE model_id = %s AND submission_id = %s",
        (model_id, sid)).fetchall()}


@pytest.fixture
def copied(watched, fresh_database, tmp_path, monkeypatch):
    """The watched world's database copied, its store shared, a fresh home, the environment
    pointing at them, and the working folder holding the world's params.yaml."""
    from bonebase.config import Settings, get_settings

    url = fresh_database(template=watched["url"])
    settings = Settings(home=tmp_path / "home", database_url=url, secret="t" * 40, env="test",
                        storage_url=str(watched["home"] / "objects"))
    settings.ensure_home()
    for name, value in settings.environ().items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    # params.yaml: the policy of the hook and the watch, early scoring on.
    (tmp_path / "params.yaml").write_text(watched["params"].read_text() + "  early: true\n")
    monkeypatch.chdir(tmp_path)
    yield {"url": url, "settings": settings}
    get_settings.cache_clear()


def test_a_watched_ingest_is_scored_early_and_as_the_watch_would(watched, copied, tmp_path,
                                                                  monkeypatch):
    from bonebase.db.engine import connect
    from bonebase.flow_run import in_process
    from bonebase.monitor import early
    from flows.ingest import ingest_submission
    from flows.monitor import watch_flow

    folder = generate_site(tmp_path, NEW, seed=8, cases=22)
    add_sites(copied["url"], [NEW])
    taken: list[dict] = []
    folders: list[Path] = []

    def spy(submission_id, model_id):
        # Let the scoring process finish first (else the watch stops it and scores the rest
        # itself, as tests/monitor/test_early.py's stop test shows): every file scored early.
        pending = early._PENDING.get(submission_id)
        if pending is not None:
            folders.append(pending.folder)
            pending.future.result(timeout=300)
        taken.append(real(submission_id, model_id))
        return taken[-1]

    real = early.take
    monkeypatch.setattr(early, "take", spy)
    receipt = ingest_submission(NEW, str(folder), watch=True)  # as `bonebase submit` runs it
    sid = receipt["submission"]
    with connect(copied["url"]) as conn:
        first = _scores(conn, watched["model"], sid)
        stored = {r["sha256"] for r in conn.execute(
            "SELECT sha256 FROM instances WHERE submission_id = %s AND modality IN ('CR', 'DX')",
            (sid,)).fetchall()}
    assert len(first) >= 10 and len(stored) == len(first)
    # Every stored radiograph was scored early (and so were files quarantined later on).
    assert len(taken) == 1 and stored <= set(taken[0])
    assert early._PENDING == {}  # taken once, then forgotten
    # Its hard links (beside the staging folder, in the store) are gone.
    assert len(folders) == 1 and folders[0].is_relative_to(watched["home"] / "objects")
    assert folders[0].name == f"{sid}.early" and not folders[0].exists()

    # The same submission scored by the watch alone (nothing early): the same rows.
    with connect(copied["url"]) as conn:
        conn.execute("DELETE FROM watch_scores WHERE submission_id = %s", (sid,))
        conn.commit()
    with in_process():
        late = watch_flow(submission_id=sid)
    assert late["scored"]["watch"] == len(first) and late["scored"]["early"] == 0
    with connect(copied["url"]) as conn:
        second = _scores(conn, watched["model"], sid)
    assert second.keys() == first.keys()
    for key, a in first.items():
        b = second[key]
        assert abs(a["probability"] - b["probability"]) < 1e-5
        assert (a["label"], a["predicted"], a["error"], a["case_id"]) == (
            b["label"], b["predicted"], b["error"], b["case_id"])
        fa, fb = dict(a["features"]), dict(b["features"])
        assert abs(fa.pop("probability") - fb.pop("probability")) < 2e-4  # rounded to 4 places
        assert fa == fb


def _scorer_input(watched, tmp_path, n: int) -> tuple[dict, Path, list[tuple[str, str]]]:
    """The champion as the scoring process gets it, and ``n`` stored radiographs copied into a
    scoring folder with their hashes."""
    from bonebase.db.engine import connect
    from bonebase.db.models import get_model

    with connect(watched["url"]) as conn:
        model = get_model(conn, watched["model"])
        keys = [r["object_key"] for r in conn.execute(
            "SELECT object_key FROM instances WHERE modality IN ('CR', 'DX') ORDER BY id"
            " LIMIT %s", (n,)).fetchall()]
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(watched["store"].get_bytes(model["checkpoint_key"]))
    folder = tmp_path / "links"
    folder.mkdir()
    files = []
    for i, key in enumerate(keys):
        data = watched["store"].get_bytes(key)
        path = folder / f"{i}.dcm"
        path.write_bytes(data)
        files.append((str(path), hashlib.sha256(data).hexdigest()))
    row = {"id": model["id"], "task": model["task"],
           "checkpoint_sha256": model["checkpoint_sha256"], "path": str(ckpt)}
    return row, folder, files


def test_files_that_are_not_the_stored_bytes_are_left_to_the_watch(watched, tmp_path):
    """The scorer checks each file's hash: a file changed after hashing, or unreadable, gets no
    early score (the watch then reads the stored copy), and its folder is removed."""
    from bonebase.monitor import early

    row, folder, (good, changed, broken) = _scorer_input(watched, tmp_path, 3)
    with open(changed[0], "r+b") as fh:  # one byte of its pixels changed after hashing
        fh.seek(-1, 2)
        last = fh.read(1)
        fh.seek(-1, 2)
        fh.write(bytes([last[0] ^ 1]))
    (folder / "2.dcm").write_bytes(b"not DICOM")
    broken = (broken[0], hashlib.sha256(b"not DICOM").hexdigest())
    out = early.score_files([good, changed, broken], [row], batch=2, folder=str(folder))
    assert list(out) == [row["id"]]
    assert list(out[row["id"]]) == [good[1]]
    scored = out[row["id"]][good[1]]
    assert 0.0 <= scored["probability"] <= 1.0 and scored["features"]["rows"] > 0
    assert not folder.exists()


def test_a_scorer_told_to_stop_returns_what_it_has(watched, tmp_path):
    """The watch tells a scoring process still at work to stop (the rest is the watch's): it
    returns the batches it finished and removes its folder."""
    from bonebase.monitor import early

    row, folder, files = _scorer_input(watched, tmp_path, 3)
    (folder / early.STOP).touch()
    assert early.score_files(files, [row], batch=2, folder=str(folder)) == {row["id"]: {}}
    assert not folder.exists()


def test_nothing_is_started_when_off_or_deferred_or_nothing_is_deployed(watched, db_url):
    from bonebase.db.engine import connect
    from bonebase.monitor import early
    from bonebase.monitor.policy import Policy

    # ``db_url`` is an empty migrated database: no model deployed there.
    assert early.hook(lambda: connect(db_url), watched["store"], submission_id=1,
                      staging=watched["tmp"], policy=Policy(early=True),
                      cache=watched["tmp"] / "cache") is None
    with connect(db_url) as conn:
        assert early.prepare(conn, watched["store"], cache=watched["tmp"] / "cache") is None

    def unopened():
        raise AssertionError("early scoring is off: the database need not be opened")

    # A model is deployed in the world's database, but early scoring is off, or deferred.
    for off in (Policy(), Policy(early=True, defer=True)):
        assert early.hook(unopened, watched["store"], submission_id=1, staging=watched["tmp"],
                          policy=off, cache=watched["tmp"] / "cache") is None
    assert early.take(1, watched["model"]) == {}  # nothing pending: the watch scores itself


def test_a_discarded_scoring_stops_and_leaves_no_links(watched, tmp_path):
    """An ingest that fails after handing its files over: the scoring process is told to stop,
    and the folder of hard links is removed once it has."""
    from types import SimpleNamespace

    from bonebase.monitor import early

    row, folder, files = _scorer_input(watched, tmp_path, 3)
    staging = tmp_path / "staging" / "991"
    staging.mkdir(parents=True)
    results = [SimpleNamespace(record={"modality": "CR"}, sha256=sha, staged=Path(path))
               for path, sha in files]
    assert early.start(991, results, staging, [row], modalities=("CR", "DX"), batch=8) == 3
    pending = early._PENDING[991]
    links = staging.with_name("991.early")
    assert pending.folder == links and sorted(p.name for p in links.iterdir()) == [
        "0.dcm", "1.dcm", "2.dcm"]
    early.discard(991)
    assert 991 not in early._PENDING
    try:
        pending.future.result(timeout=300)  # it ran, saw the stop, returned what it had
    except Exception:  # noqa: BLE001 - or it was cancelled before it started
        pass
    for _ in range(100):  # the done callback runs in the pool's thread
        if not links.exists():
            break
        time.sleep(0.05)
    assert not links.exists()
    assert all(Path(p).exists() for p, _ in files)  # the staged files themselves are untouched
