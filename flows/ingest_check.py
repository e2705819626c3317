"""What `bonebase validate` shows: what `bonebase submit` would do with a submission, without
storing anything and without a Prefect flow run (flows/ingest.py's stages up to storing)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bonebase.config import Settings, get_settings
from bonebase.db.engine import connect, database_url
from bonebase.db.sites import get_site, require_active
from bonebase.ingest import match, receipt, scan, source, store
from bonebase.ingest.clock import Clock
from bonebase.ingest.limits import Limits
from flows.ingest import Opened, plan_stages, remove_staging


def predict_submission(site: str, source_path: str, *, settings: Settings | None = None,
                       match_rule: str | None = None, database: Callable[[], str] | None = None,
                       progress: Callable[[str, int, int], None] | None = None) -> dict:
    """What `bonebase submit` would do with a submission, without storing anything: the same
    stages up to storing (de-identified into a scratch folder, deleted after), then the check of
    what other sites hold (read only). No Prefect flow runs. ``database`` gives the database
    URL (default: the settings'); it is asked only once the manifest has been found."""
    import tempfile

    settings = settings or get_settings()
    if match_rule is not None:
        match.check_rule(match_rule)
    limits = Limits.from_settings(settings)
    with source.as_folder(source_path, endpoint_url=settings.s3_endpoint_url,
                          region=settings.s3_region, limits=limits) as root:
        manifest_path = scan.find_manifest(root, limits=limits)
        url = database() if database else database_url(settings)
        with connect(url) as conn:
            site_row = require_active(get_site(conn, site))
        entries = scan.scan_files(root, manifest_path, limits=limits)
        opened = Opened.of(site_row, root, manifest_path, entries, match_rule)
        (settings.home / "staging").mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="check-", dir=settings.home / "staging"))
        try:
            manifest, _, report, plan = plan_stages(
                opened, settings=settings, staging=staging,
                docs_dir=settings.home / "datadocs" / f"check-{site}", label="check",
                at=lambda stage: None, in_flow=False, clock=Clock(), progress=progress)
            with connect(url) as conn:
                store.hold_elsewhere(plan, conn=conn, site_id=site_row.id)
        finally:
            remove_staging(staging)
    return receipt.prediction(site=site, source=source_path, plan=plan, n_files=len(entries),
                              n_rows=len(manifest), data_docs=report.data_docs_index)
