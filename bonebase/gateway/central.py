"""The consortium's side of gateway deliveries: find the batches that are ready and have no
receipt yet, and write each batch's receipt back where its gateway reads it.

Ingesting a batch is the ordinary ingest flow (``flows/ingest.py``) run on the batch's S3 prefix,
so receipts, quarantine, validation and idempotency are one code path; ``flows/gateway.py`` is
the thin Prefect flow around :func:`poll`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable

from bonebase.errors import BonebaseError, InputError, NotFoundError
from bonebase.gateway.deliver import batch_prefix, ready_key, receipt_key
from bonebase.storage import ObjectStore

_READY = re.compile(r"^([A-Za-z0-9_-]{1,16})/ready/([0-9A-Za-z_-]{1,64})\.json$")
# Receipt fields that describe the consortium's machine, not the batch.
_LOCAL_ONLY = ("paths", "data_docs")


def pending(store: ObjectStore, sites: Iterable[str]) -> list[tuple[str, str]]:
    """(site, batch) of every ready batch of ``sites`` without a receipt, oldest first.

    Only each site's ``ready/`` folder is listed: :func:`poll` removes a batch's marker once its
    receipt is written, so a poll lists the batches waiting, not the delivery store's history
    (a batch's DICOM files, every receipt). A marker written again after its receipt (a gateway
    that crashed between its marker and its own bookkeeping) is not ingested twice."""
    found = []
    for site in sorted(set(sites)):
        for key in sorted(store.list(f"{site}/ready/")):
            match = _READY.match(key)
            if match is None:
                continue
            if store.exists(receipt_key(*match.groups())):
                store.delete(key)  # answered already
                continue
            found.append(match.groups())
    return found


def poll(store: ObjectStore, store_url: str, ingest: Callable[[str, str], dict], *,
         sites: Iterable[str]) -> list[dict]:
    """Ingest each pending batch of ``sites`` with ``ingest(site, source_url)``, write its
    receipt back and remove its ``ready`` marker.

    A batch refused for what it is (an inactive or unknown site, a submission that cannot be
    read: InputError, NotFoundError) gets a receipt that says why. Any other failure (the store
    or the database unreachable, a crash) leaves the batch pending: the next poll runs it again,
    and ingest finishes a failed run without storing anything twice."""
    done = []
    for site, batch in pending(store, sites):
        source = f"{store_url.rstrip('/')}/{batch_prefix(site, batch)}"
        try:
            receipt = ingest(site, source)
        except (InputError, NotFoundError) as exc:
            # English and a stable code, as ingest's own failure receipts (the gateway reads it)
            receipt = {"site": site, "status": "refused", "error": exc.english,
                       "error_code": exc.code, "counts": {}, "cases": [], "quarantine": []}
        except BonebaseError as exc:
            print(f"batch {batch} of site {site} not ingested, tried again at the next poll: "
                  f"{exc}")
            continue
        receipt = {k: v for k, v in receipt.items() if k not in _LOCAL_ONLY}
        receipt["batch"] = batch
        store.put_bytes(receipt_key(site, batch), json.dumps(receipt, default=str).encode())
        store.delete(ready_key(site, batch))
        done.append(receipt)
    return done
