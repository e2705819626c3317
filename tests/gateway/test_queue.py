"""The delivery queue: the consortium unreachable for a while (the queue grows, waits with
backoff, then drains in order), and an upload cut midway resumes without sending twice."""

from __future__ import annotations

import time

import pytest

from bonebase.gateway import deliver
from bonebase.storage import open_store
from tests.gateway.conftest import SITE, free_port, spool_with_batches


def _batches(spool):
    with spool.db() as conn:
        return [dict(r) for r in conn.execute("SELECT * FROM batches ORDER BY created")]


def test_unreachable_consortium_queue_waits_then_drains(tmp_path, hospital, s3_bucket):
    from bonebase.storage_s3 import S3Store

    spool = spool_with_batches(tmp_path / "gw", hospital[:2])
    # Nothing listens there; one try per attempt (the gateway's queue does the backing off).
    dead = S3Store(s3_bucket.bucket, prefix="deliveries",
                   endpoint_url=f"http://127.0.0.1:{free_port()}", max_attempts=1)
    for _ in range(2):  # two failed attempts: both batches wait, backoff grows
        assert deliver.deliver_due(spool, dead, site=SITE, now=time.time() + 3600) == 0
    batches = _batches(spool)
    assert [b["state"] for b in batches] == ["queued", "queued"]
    assert batches[0]["attempts"] == 2 and batches[0]["next_try"] > time.time() + 2
    assert batches[0]["error"] and batches[1]["attempts"] == 0  # in order: the first blocks
    assert deliver.deliver_due(spool, dead, site=SITE) == 0  # not due yet: nothing tried
    assert _batches(spool)[0]["attempts"] == 2

    live = open_store(f"s3://{s3_bucket.bucket}/deliveries", endpoint_url=s3_bucket.endpoint_url)
    assert deliver.deliver_due(spool, live, site=SITE, now=time.time() + 3600) == 2
    assert [b["state"] for b in _batches(spool)] == ["sent", "sent"]
    assert {s["state"] for s in spool.studies()} == {"sent"}
    keys = set(live.list(f"{SITE}/ready/"))
    assert keys == {deliver.ready_key(SITE, b["id"]) for b in _batches(spool)}


def test_an_upload_cut_midway_resumes_without_sending_twice(tmp_path, hospital, s3_bucket,
                                                            s3_client):
    spool = spool_with_batches(tmp_path / "gw", hospital[:1])
    store = open_store(f"s3://{s3_bucket.bucket}/deliveries", endpoint_url=s3_bucket.endpoint_url)
    [batch] = _batches(spool)
    files = sorted(p for p in (spool.home.outbox / batch["id"]).rglob("*") if p.is_file())
    assert len(files) >= 2
    # As if the gateway died after the first file: that object is there, no ready marker.
    first = files[0].relative_to(spool.home.outbox / batch["id"]).as_posix()
    store.put_file(f"{deliver.batch_prefix(SITE, batch['id'])}/{first}", files[0])
    puts = []
    original = type(store).put_file

    def counting(self, key, path, **kw):
        puts.append(key)
        return original(self, key, path, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(type(store), "put_file", counting)
        assert deliver.deliver_due(spool, store, site=SITE) == 1
    assert len(puts) == len(files) - 1 and not any(k.endswith(first) for k in puts)
    assert store.exists(deliver.ready_key(SITE, batch["id"]))
