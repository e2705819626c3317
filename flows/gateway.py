"""Prefect flow `gateway-deliveries`: ingest the batches hospital gateways delivered.

Polls the consortium's delivery store (``s3://bucket/prefix``; each gateway writes under
``<SITE>/``) for batches that are ready and have no receipt, runs the ordinary ingest flow on
each (a subflow: one code path for receipts, quarantine, validation and idempotency) and writes
the receipt back under ``<SITE>/receipts/`` for the gateway. Run it on a schedule or in a loop
(`bonebase gateway ingest-deliveries URL --every 10`).
"""

from __future__ import annotations

from prefect import flow

from bonebase.config import get_settings
from bonebase.db.engine import connect, database_url
from bonebase.db.sites import list_sites
from bonebase.gateway import central
from bonebase.storage import open_store
from flows.ingest import ingest_submission


@flow(name="gateway-deliveries", log_prints=True)
def gateway_deliveries(deliveries_url: str) -> int:
    """Ingest every ready batch under ``deliveries_url``; the number of batches ingested."""
    settings = get_settings()
    store = open_store(deliveries_url, endpoint_url=settings.s3_endpoint_url,
                       region=settings.s3_region)
    with connect(database_url(settings)) as conn:  # every registered site: an inactive one's
        sites = [s.code for s in list_sites(conn)]  # batches get a receipt that refuses them
    receipts = central.poll(store, deliveries_url,
                            lambda site, source: ingest_submission(site, source, settings=settings),
                            sites=sites)
    for r in receipts:
        print(f"batch {r['batch']} of site {r['site']}: {r['status']}")
    return len(receipts)
