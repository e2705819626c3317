"""The consortium's poll of gateway deliveries lists each site's waiting markers only, not the
delivery store's history (batch files, receipts), and never ingests an answered batch again."""

from __future__ import annotations

import json

from bonebase.gateway import central, deliver
from bonebase.storage import open_store

SITE = "HX"


def test_pending_lists_ready_markers_only_and_drops_answered_ones(tmp_path):
    store = open_store(str(tmp_path / "deliveries"))
    for batch in ("b1", "b2"):
        store.put_bytes(f"{deliver.batch_prefix(SITE, batch)}/manifest.csv", b"case_id\n")
        store.put_bytes(f"{deliver.batch_prefix(SITE, batch)}/study-1/x.dcm", b"DICM")
        store.put_bytes(deliver.ready_key(SITE, batch), b"{}")
    store.put_bytes(deliver.receipt_key(SITE, "b1"), json.dumps({"status": "done"}).encode())
    listed = []
    real_list = store.list
    store.list = lambda prefix="": listed.append(prefix) or real_list(prefix)

    assert central.pending(store, [SITE, "OTHER"]) == [(SITE, "b2")]
    assert sorted(listed) == ["HX/ready/", "OTHER/ready/"]
    assert not store.exists(deliver.ready_key(SITE, "b1"))  # answered: its marker is gone

    ingested = []
    receipts = central.poll(store, str(tmp_path / "deliveries"), lambda site, src: (
        ingested.append(src) or {"site": site, "status": "done", "counts": {}, "cases": []}),
        sites=[SITE])
    assert [r["batch"] for r in receipts] == ["b2"] and ingested[0].endswith("HX/batches/b2")
    assert not store.exists(deliver.ready_key(SITE, "b2"))
    assert json.loads(store.get_bytes(deliver.receipt_key(SITE, "b2")))["batch"] == "b2"
    # a gateway that re-sends an answered batch's marker (it crashed before its bookkeeping)
    store.put_bytes(deliver.ready_key(SITE, "b2"), b"{}")
    assert central.pending(store, [SITE]) == [] and len(ingested) == 1
