"""The spool's group commit (bonebase/gateway/journal.py): what was acknowledged survives the
loss of everything not yet synced, concurrent stores share one sync, and a failed commit
acknowledges nothing."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from bonebase.gateway import journal
from bonebase.gateway.home import GatewayHome
from bonebase.gateway.spool import OUT_OF_RESOURCES, Refused, Spool


def _receive(spool: Spool, files) -> list:
    """Copies of ``files`` in the spool's incoming folder, as pynetdicom leaves them."""
    copies = []
    for i, f in enumerate(files):
        copies.append(spool.home.incoming / f"{i}.dcm")
        copies[-1].write_bytes(f.read_bytes())
    return copies


def _stored(spool: Spool) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in spool.home.studies.rglob("*.dcm")}


def test_journal_restores_acknowledged_files_lost_before_their_checkpoint(tmp_path, hospital):
    files = [f for s in hospital[:2] for f in s.files]
    spool = Spool(GatewayHome(tmp_path / "gw"), commit="journal")
    for path in _receive(spool, files):
        spool.store(path)
        path.unlink()  # pynetdicom deletes its temporary file after the answer
    expected = _stored(spool)
    assert len(expected) == len(files)
    # A power loss before the checkpoint: the linked files' contents and entries are gone.
    for path in spool.home.studies.rglob("*.dcm"):
        path.unlink()
    restarted = Spool(GatewayHome(tmp_path / "gw"))
    restarted.recover()
    assert _stored(restarted) == expected
    counts = {s["key"]: (s["instances"], s["bytes"]) for s in restarted.studies()}
    assert sum(n for n, _ in counts.values()) == len(files)
    assert sum(b for _, b in counts.values()) == sum(len(v) for v in expected.values())
    with restarted.db() as conn:  # checkpointed: the journal is empty again
        assert conn.execute("SELECT COUNT(*) FROM journal").fetchone()[0] == 0


def test_checkpoint_empties_the_journal_and_keeps_the_files(tmp_path, hospital):
    spool = Spool(GatewayHome(tmp_path / "gw"), commit="journal")
    files = hospital[0].files
    for path in _receive(spool, files):
        spool.store(path)
    before = _stored(spool)
    assert spool.checkpoint(restore_all=True) == len(files)
    assert spool.checkpoint() == 0
    assert _stored(spool) == before


@pytest.mark.parametrize("mode", ["journal", "syncfs", "each"])
def test_an_instance_sent_again_counts_once(tmp_path, hospital, mode):
    spool = Spool(GatewayHome(tmp_path / "gw"), commit=mode)
    f = hospital[0].files[0]
    for path in _receive(spool, [f, f, f]):
        assert spool.store(path).new == (path.name == "0.dcm")
    (study,) = spool.studies()
    assert (study["instances"], study["bytes"]) == (1, f.stat().st_size)


@pytest.mark.parametrize("mode", ["journal", "syncfs"])
def test_concurrent_stores_share_one_sync(tmp_path, hospital, monkeypatch, mode):
    """While one group's sync runs, the instances of the other associations wait together and
    are made durable by the next single commit."""
    files = [f for s in hospital for f in s.files][:8]
    spool = Spool(GatewayHome(tmp_path / "gw"), commit=mode)
    copies = _receive(spool, files)
    real_sync, real_commit = journal.sync_filesystem, journal.Journal._commit

    def slow_sync(root, paths):
        time.sleep(0.3)
        real_sync(root, paths)

    def slow_commit(self, conn, group):
        time.sleep(0.3)
        real_commit(self, conn, group)

    monkeypatch.setattr(journal, "sync_filesystem", slow_sync)
    monkeypatch.setattr(journal.Journal, "_commit", slow_commit)
    start = threading.Barrier(len(copies))

    def store(path):
        start.wait()
        return spool.store(path)

    with ThreadPoolExecutor(len(copies)) as pool:
        stored = list(pool.map(store, copies))
    assert len({s.sop_instance_uid for s in stored}) == len(files)
    assert spool.journal.groups < len(files) / 2  # 8 instances, at most 3 commits
    assert sum(s["instances"] for s in spool.studies()) == len(files)
    assert len(_stored(spool)) == len(files)


def test_a_failed_commit_acknowledges_nothing(tmp_path, hospital, monkeypatch):
    spool = Spool(GatewayHome(tmp_path / "gw"), commit="journal")
    (path,) = _receive(spool, hospital[0].files[:1])

    def disk_full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(journal, "_copy_in", disk_full)
    with pytest.raises(Refused) as refused:
        spool.store(path)
    assert refused.value.status == OUT_OF_RESOURCES
    assert "No space left" in refused.value.reason
    assert spool.studies() == [] and _stored(spool) == {}
    with spool.db() as conn:
        assert conn.execute("SELECT COUNT(*) FROM journal").fetchone()[0] == 0


def test_unknown_commit_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="commit mode"):
        Spool(GatewayHome(tmp_path / "gw"), commit="fast")


def test_instances_queued_behind_a_failed_group_are_still_committed(tmp_path, hospital,
                                                                    monkeypatch):
    """A failed group refuses only its own instances: those that queued behind it are
    committed by the next group. (The first group is one instance: the others are sent only
    once its commit has begun; with all sent at once a slow machine could group them all.)"""
    files = [f for s in hospital for f in s.files][:4]
    spool = Spool(GatewayHome(tmp_path / "gw"), commit="journal")
    copies = _receive(spool, files)
    sizes = []
    entered, release = threading.Event(), threading.Event()
    real = journal.Journal._commit

    def fail_first(self, conn, group):
        sizes.append(len(group))
        if len(sizes) == 1:
            entered.set()
            release.wait(10)  # the other callers queue behind this group meanwhile
            raise OSError(28, "No space left on device")
        real(self, conn, group)

    monkeypatch.setattr(journal.Journal, "_commit", fail_first)

    def store(path):
        try:
            return spool.store(path)
        except Refused as refused:
            return refused

    with ThreadPoolExecutor(len(copies)) as pool:
        first = pool.submit(store, copies[0])
        assert entered.wait(10), "the first commit did not begin"
        rest = [pool.submit(store, c) for c in copies[1:]]
        time.sleep(0.3)  # they queue behind the failing group
        release.set()
        results = [first.result(), *(f.result() for f in rest)]
    refused = [r for r in results if isinstance(r, Refused)]
    assert sizes[0] == 1 and refused == [results[0]]
    assert all(r.status == OUT_OF_RESOURCES for r in refused)
    assert len(_stored(spool)) == len(copies) - 1
