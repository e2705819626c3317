"""Studies de-identified ahead while their batch is held: the cut moves the prepared folders
into the batch (the same bytes a cut without them writes), and a prepared study that no longer
matches its study (a new instance, a changed clinical row) or that a kill left half moved is
de-identified again, never sent stale or twice."""

from __future__ import annotations

import csv
import shutil

from bonebase.gateway.home import GatewayHome
from bonebase.gateway.spool import Spool
from bonebase.gateway.studies import BatchPolicy
from bonebase.gateway.work import WorkConfig, work_once
from tests.gateway.conftest import SECRET, SITE, write_clinical

HELD_BACK = BatchPolicy(batch_wait=3600)  # complete studies wait: they are prepared ahead


def _spool(root, studies) -> Spool:
    spool = Spool(GatewayHome(root))
    write_clinical(spool.home.clinical / "c.csv", studies)
    for study in studies:
        _receive(spool, study.files)
    return spool


def _receive(spool: Spool, files) -> None:
    for f in files:
        incoming = spool.home.incoming / "in.dcm"
        shutil.copy(f, incoming)
        spool.store(incoming)
        incoming.unlink()


def _cfg(policy=HELD_BACK) -> WorkConfig:
    return WorkConfig(site=SITE, secret=SECRET.encode(), study_timeout=0, batch=policy)


def _batch_files(spool: Spool) -> dict[str, bytes]:
    """Every file of the outbox's batches, by its path inside its batch."""
    return {p.relative_to(p.parents[1]).as_posix() if p.parent.name.startswith("study-")
            else p.name: p.read_bytes()
            for p in sorted(spool.home.outbox.glob("*/**/*")) if p.is_file()}


def _prepared(spool: Spool) -> list:
    return sorted(spool.home.prepared.glob("*.json"))


def test_held_studies_are_prepared_and_the_cut_moves_them(tmp_path, hospital):
    spool = _spool(tmp_path / "gw", hospital[:3])
    done = work_once(spool, _cfg(), None)
    assert done["batches"] == 0 and len(_prepared(spool)) == 3  # held, prepared ahead
    assert {s["state"] for s in spool.studies()} == {"receiving"}  # the record is unchanged
    assert not list(spool.home.outbox.rglob("*.dcm"))  # nothing ready to leave yet
    inodes = {p.stat().st_ino for p in spool.home.prepared.rglob("*.dcm")}
    spool.flush()
    assert work_once(spool, _cfg(), None)["batches"] == 1
    batch = {p.stat().st_ino for p in spool.home.outbox.rglob("*.dcm")}
    assert batch == inodes  # moved, not de-identified again
    assert not any(spool.home.prepared.iterdir())
    assert {s["state"] for s in spool.studies()} == {"queued"}
    # The same bytes as a gateway that de-identifies at the cut.
    plain = _spool(tmp_path / "plain", hospital[:3])
    plain.flush()
    assert work_once(plain, _cfg(BatchPolicy()), None)["batches"] == 1
    assert _batch_files(spool) == _batch_files(plain) != {}


def test_a_stale_or_half_moved_preparation_is_made_again(tmp_path, hospital):
    first = next(s for s in hospital if len(s.files) >= 2)
    second, third = [s for s in hospital if s is not first][:2]
    spool = Spool(GatewayHome(tmp_path / "gw"))
    write_clinical(spool.home.clinical / "c.csv", [first, second, third])
    _receive(spool, first.files[:-1])
    _receive(spool, [*second.files, *third.files])
    work_once(spool, _cfg(), None)
    assert len(_prepared(spool)) == 3
    key_of = {s["patient_id"]: s["key"] for s in spool.studies()}
    # The first study's last instance arrives late: its preparation lacks it.
    _receive(spool, first.files[-1:])
    # The second one's clinical row is corrected.
    rows = [dict(s.row) for s in (first, second, third)]
    rows[1]["age"] = str(int(rows[1]["age"] or 0) + 1)
    with open(spool.home.clinical / "c.csv", "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    # The third one's folder had moved into a batch being cut when the gateway was killed.
    killed = spool.home.outbox / ".20260101T000000-dead.part"
    killed.mkdir()
    shutil.move(spool.home.prepared / key_of[third.row["patient_id"]], killed / "study-1")
    spool.flush()
    assert work_once(spool, _cfg(), None)["batches"] == 1
    assert not killed.exists() and not any(spool.home.prepared.iterdir())
    [batch] = list(spool.home.outbox.iterdir())
    with open(batch / "manifest.csv", encoding="utf-8", newline="") as fh:
        manifest = list(csv.DictReader(fh))
    assert sorted(r["age"] for r in manifest) == sorted(r["age"] for r in rows)
    counts = sorted(len(list(p.glob("*.dcm"))) for p in batch.glob("study-*"))
    assert counts == sorted(len(s.files) for s in (first, second, third))


def test_an_instance_acknowledged_during_the_cut_is_sent_in_a_later_batch(tmp_path, hospital,
                                                                          monkeypatch):
    """The cut marks a study queued only as it read it: an instance stored between the cut's
    reading and its commit (acknowledged to the PACS) is not marked sent with the others: the
    study is cut again whole (here at once: the study timeout is 0)."""
    from bonebase.gateway import studies as studies_module

    study = hospital[0]
    assert len(study.files) >= 2
    spool = Spool(GatewayHome(tmp_path / "gw"))
    write_clinical(spool.home.clinical / "c.csv", [study])
    _receive(spool, study.files[:-1])
    write_manifest, late = studies_module._write_manifest, list(study.files[-1:])

    def late_instance_then_manifest(path, rows):
        if late:  # arrives while the first batch is being cut
            _receive(spool, [late.pop()])
        return write_manifest(path, rows)

    monkeypatch.setattr(studies_module, "_write_manifest", late_instance_then_manifest)
    assert work_once(spool, _cfg(BatchPolicy()), None)["batches"] == 2
    [row] = spool.studies()
    assert row["state"] == "queued" and row["instances"] == len(study.files)
    first, second = sorted((p for p in spool.home.outbox.iterdir() if p.is_dir()),
                           key=lambda p: p.stat().st_mtime_ns)
    assert len(list(first.rglob("*.dcm"))) == len(study.files) - 1
    assert len(list(second.rglob("*.dcm"))) == len(study.files)
    assert row["batch"] == second.name
