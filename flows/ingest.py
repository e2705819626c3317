"""Prefect flow `ingest-submission`: a site's folder, zip or S3 prefix into the database.

Thin by design: every step is a function of ``bonebase.ingest``; tasks batch hundreds of files
(a task per file costs more than the file) and the I/O tasks retry. The file batches run on a
process pool on this machine, or with BONEBASE_TASK_RUNNER=dask as tasks of Prefect's Dask task
runner (``bonebase.ingest.runner`` chooses and sizes them); the rest of the flow is the same
either way.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.utilities.annotations import quote

from bonebase.config import Settings, get_settings
from bonebase.db import audit, quarantine
from bonebase.db import submissions as subs
from bonebase.db.engine import connect, database_url
from bonebase.db.sites import get_site, require_active
from bonebase.dicom.deid import Deidentifier
from bonebase.errors import BonebaseError, InputError
from bonebase.flow_run import in_process
from bonebase.i18n import Message
from bonebase.ingest import accept, match, named, process, receipt, runner, scan, source, store
from bonebase.ingest.clock import Clock
from bonebase.ingest.limits import Limits
from bonebase.ingest.opened import Opened
from bonebase.monitor import early
from bonebase.monitor import policy as policies
from bonebase.storage import open_store


def _quoting_nothing(body):
    """A task body whose failures name no value: our own errors pass as they are, any other
    becomes its type and place. Prefect logs (and stores) a failed task's exception, and a
    library's message can quote what it read, a header value or a file's bytes."""

    @functools.wraps(body)
    def run(*args, **kwargs):
        try:
            return body(*args, **kwargs)
        except BonebaseError:
            raise
        except Exception as exc:  # noqa: BLE001 - re-raised, without its message
            raise BonebaseError(receipt.describe_failure(exc, str),
                                code=receipt.failure_code(exc)) from None

    return run


@task(name="process-files", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
@_quoting_nothing
def process_files(entries: list[scan.FileEntry], uid_root: str, site: str, staging: str,
                  pool: int = 0, keep_descriptors: bool = False,
                  burned_in: str = "redact") -> list[process.FileResult]:
    """Read, QC and de-identify one batch of files into the staging folder (streamed)."""
    # The key comes from the settings, never as a parameter: Prefect stores parameters. On a
    # Dask worker these are the worker's environment (BONEBASE_SECRET or BONEBASE_HOME).
    settings = _settings()
    return runner.run_batch(entries, pool=pool, secret=settings.consortium_secret(),
                            uid_root=uid_root, site=site, staging=Path(staging),
                            max_pixels=settings.max_pixels, keep_descriptors=keep_descriptors,
                            burned_in=burned_in)


@task(name="validate", cache_policy=NO_CACHE)
@_quoting_nothing
def validate(manifest, headers, site: str, submission_id: int, docs_dir: str, identifiers=()):
    """Run the Great Expectations suites over the manifest and the header table; the files'
    identifying values (names, ids) are redacted wherever they show in the Data Docs."""
    from validation.runner import validate_submission

    return validate_submission(manifest, headers, site=site, submission_id=str(submission_id),
                               docs_dir=Path(docs_dir), identifiers=identifiers)


@task(name="store-cases", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
@_quoting_nothing
def store_cases(plan, site_id: int, submission_id: int):
    """Move accepted files into the object store, then commit the cases in batches."""
    settings = _settings()  # not parameters: DATABASE_URL may hold a password
    with connect(database_url(settings)) as conn:
        return store.store_cases(plan, conn=conn, store=_objects(settings), site_id=site_id,
                                 submission_id=submission_id)


def _objects(settings: Settings):
    return open_store(settings.object_store_url, endpoint_url=settings.s3_endpoint_url,
                      region=settings.s3_region)


# The settings and progress callback of the run in this context. They reach the flow beside its
# parameters, because Prefect stores parameters (in its database, UI and API) and the settings
# hold the consortium key and the database URL; Prefect's task runner copies the context into
# the threads that run tasks.
_SETTINGS: ContextVar[Settings | None] = ContextVar("bonebase_ingest_settings", default=None)
_PROGRESS: ContextVar[Callable | None] = ContextVar("bonebase_ingest_progress", default=None)
# The submission's path too: hospitals name folders after patients and accession numbers.
_SOURCE: ContextVar[str | None] = ContextVar("bonebase_ingest_source", default=None)
# Whether the champion watch runs after this ingest, in this process (its early scoring).
_WATCHED: ContextVar[bool] = ContextVar("bonebase_ingest_watched", default=False)


def _source() -> str | None:
    # A function, not the ContextVar in the flow's body: the Dask runner pickles the flow's
    # function by value, with the globals it names, and a ContextVar cannot be pickled.
    return _SOURCE.get()


def _settings() -> Settings:
    return _SETTINGS.get() or get_settings()


def ingest_submission(site: str, source_path: str, *, settings: Settings | None = None,
                      progress: Callable[[str, int, int], None] | None = None,
                      match_rule: str | None = None, watch: bool | None = None) -> dict:
    """Ingest one submission of ``site`` from a folder, zip or s3:// prefix; returns the receipt.
    Runs the flow ``ingest-submission`` with ``settings`` (default: the environment's).
    ``match_rule`` (bonebase.ingest.match.RULES) wins over the site's rule and the default.

    ``watch``: after the submission is stored (and its lock released), the champion watch
    scores its radiographs with the deployed model (#23, flows/monitor.py; nothing when no
    model is deployed, and a failed watch never fails the ingest). None: watch when the run
    uses the environment's settings, which the watch reads (`bonebase submit`, the demo)."""
    if match_rule is not None:
        match.check_rule(match_rule)
    watched = bool(watch or (watch is None and settings is None))
    tokens = (_SETTINGS.set(settings), _PROGRESS.set(progress), _SOURCE.set(source_path),
              _WATCHED.set(watched))
    try:
        with in_process():  # no heartbeat thread to wait for at the end (bonebase.flow_run)
            the_receipt = ingest_flow(site, match_rule=match_rule)
    finally:
        for var, token in zip((_SETTINGS, _PROGRESS, _SOURCE, _WATCHED), tokens, strict=True):
            var.reset(token)
    if watched:
        from flows.monitor import watch_after_ingest

        try:
            watch_after_ingest(the_receipt)
        finally:
            early.discard(the_receipt.get("submission"))
    return the_receipt


@flow(name="ingest-submission", log_prints=True)
def ingest_flow(site: str, source_path: str | None = None, match_rule: str | None = None) -> dict:
    """Ingest one submission; settings come from the environment (or ingest_submission's).
    ``source_path`` is for runs of the deployment, whose parameters Prefect stores: give it a
    path that names no patient; ingest_submission passes its path beside the parameters.
    ``match_rule`` declares how images match manifest rows (else the site's, else the default)."""
    source_path = source_path or _source()
    if not source_path:
        raise InputError("no submission to ingest: give source_path (a folder, zip or s3:// URL)")
    settings = _settings()
    clock = Clock()
    url = database_url(settings)
    with connect(url) as conn:
        site_row = require_active(get_site(conn, site))
    limits = Limits.from_settings(settings)  # this run's settings, not only the environment's
    with source.as_folder(source_path, endpoint_url=settings.s3_endpoint_url,
                          region=settings.s3_region, limits=limits) as root:
        manifest_path = scan.find_manifest(root, limits=limits)
        entries = scan.scan_files(root, manifest_path, limits=limits)
        opened = Opened.of(site_row, root, manifest_path, entries, match_rule)
        digest = scan.submission_hash(manifest_path, entries)
        clock.lap("scan")
        with connect(url) as conn:
            row, _ = subs.register(conn, site_id=site_row.id, source=source_path,
                                   content_hash=digest)
            conn.commit()
        # One run at a time per submission: this session holds the lock until the run ends
        # (PostgreSQL drops it when a killed run's connection goes), and a second run waits.
        with connect(url, autocommit=True) as guard:
            if not subs.try_lock(guard, row["id"]):
                print(f"submission {row['id']} of site {site} is being ingested by another run:"
                      " waiting for it to finish")
                subs.lock(guard, row["id"])
            row = subs.get(guard, row["id"])  # as the run before this one left it
            if row["status"] == "done":
                print(f"submission {row['id']} of site {site} was already ingested: nothing to do")
                return {**(row["receipt"] or {}), "already_ingested": True}
            subs.restart(guard, row["id"])  # finish a run that crashed: every step is idempotent
            job = _Job(settings=settings, site_id=site_row.id, submission_id=row["id"],
                       source_path=source_path, opened=opened, clock=clock)
            return job.run()


def plan_stages(opened: Opened, *, settings: Settings, staging: Path, docs_dir: Path,
                label: str, at: Callable[[str], None], in_flow: bool, clock: Clock,
                progress: Callable[[str, int, int], None] | None = None,
                processed: Callable[[list], None] | None = None):
    """Read, de-identify (into ``staging``), match, validate and plan a submission: the stages
    that `bonebase submit` and `bonebase validate` share, up to (not including) storing.

    ``in_flow``: the batches and the validation run as the flow's Prefect tasks; else here, on
    the process pool. ``at`` is told each stage as it starts; ``clock`` times them;
    ``processed`` is given the files' results once they are de-identified. Returns
    (manifest, results, report, plan).
    """
    import pandas as pd

    from validation.inputs import load_manifest

    site = opened.site
    at("reading the manifest")
    manifest = load_manifest(opened.manifest_path)
    rule, origin = opened.rule
    match.require_columns(rule, manifest.columns)
    # Files the rows name (image_file, annotation_file): JPEG/PNG get their header from the row.
    files = named.attach(manifest, opened.entries, base=opened.base)
    manifest.attrs["problems"] = [*manifest.attrs.get("problems", ()), *files.problems]
    at("de-identifying the files")
    args = {"uid_root": settings.uid_root, "site": site, "staging": str(staging),
            "keep_descriptors": opened.keep_descriptors, "burned_in": opened.burned_in}
    if in_flow:
        results = runner.run_batches(process_files, files.entries, args, settings, progress)
    else:
        results = runner.run_here(files.entries, args, settings, progress)
    clock.lap("process")
    if processed is not None:  # the de-identified files, before they are validated
        processed(results)
    at("matching images to rows")
    deid = Deidentifier(settings.consortium_secret(), uid_root=settings.uid_root)
    matching = accept.match_submission(manifest, results, site=site, deid=deid, rule=rule,
                                       origin=origin, base=opened.base, named=files.rows_of)
    at("validating")
    # Every file may have been refused (links, bombs, corrupt files): the suites still need
    # the frame's columns to report the rows that then have no image.
    headers = pd.DataFrame([r.record for r in results if r.record is not None])
    if headers.empty:
        from validation.header_suite import REQUIRED

        headers = pd.DataFrame(columns=list(REQUIRED))
    checked, headers = match.annotate(manifest, headers, matching)
    # What the Data Docs must redact: the files' and manifest's ids, dates, UIDs, folders.
    identifiers = accept.identifying_values(manifest, results, site=site, deid=deid)
    if in_flow:
        # quote(): identifying values, never walked or recorded by Prefect as inputs.
        report = validate(quote(checked), quote(headers), site, label, str(docs_dir),
                          quote(identifiers))
    else:
        report = validate.fn(checked, headers, site, label, str(docs_dir), identifiers)
    clock.lap("validate")
    at("planning the cases")
    plan = accept.plan_submission(manifest, results, report, site=site, deid=deid,
                                  matching=matching)
    named.plan_annotations(plan, files)  # each accepted image's LabelMe file, checked
    named.conversion_warnings(plan)
    return manifest, results, report, plan


class _Job:
    """One run of a registered submission: every failure ends in a final state and a receipt."""

    def __init__(self, *, settings: Settings, site_id: int, submission_id: int,
                 source_path: str, opened: Opened, clock: Clock) -> None:
        self.settings, self.site, self.site_id = settings, opened.site, site_id
        self.submission_id, self.source_path, self.opened = submission_id, source_path, opened
        self.manifest_path, self.entries, self.clock = opened.manifest_path, opened.entries, clock
        self.url = database_url(settings)
        self.stage = "opening the object store"
        self.redact: Callable[[str], str] = lambda text: text

    def run(self) -> dict:
        staging = None
        try:
            objects = _objects(self.settings)
            # A local store stages inside itself, so storing an accepted file is a rename.
            staging = (objects.staging_dir(str(self.submission_id))
                       or self.settings.home / "staging" / str(self.submission_id))
            return self._stages(objects, staging)
        except Exception as exc:  # noqa: BLE001 - any failure must end in a receipt
            raise self._fail(exc) from None
        finally:
            if staging is not None:
                remove_staging(staging)

    def _stages(self, objects, staging: Path) -> dict:
        settings, clock, sid = self.settings, self.clock, self.submission_id

        def at(stage: str) -> None:
            self.stage = stage

        manifest, results, report, plan = plan_stages(
            self.opened, settings=settings, staging=staging,
            docs_dir=settings.home / "datadocs" / str(sid), label=str(sid), at=at, in_flow=True,
            clock=clock, progress=_PROGRESS.get(), processed=self._early(objects, staging))
        self.redact = plan.redact
        self.stage = "storing the cases"
        with connect(self.url, autocommit=True) as conn, subs.storing(conn):
            held = store.hold_elsewhere(plan, conn=conn, site_id=self.site_id)
            # quote(): Prefect would walk every object of the plan (and of the batches, frames
            # above) looking for futures to wait on: seconds per submission, for nothing.
            outcome = store_cases(quote(plan), self.site_id, sid)
        runner.report_progress(_PROGRESS.get(), "cases", len(plan.cases), len(plan.cases))
        clock.lap("store")
        self.stage = "keeping the quarantined files"
        with connect(self.url) as conn:
            store.store_quarantine(plan, conn=conn, store=objects, site_id=self.site_id,
                                   submission_id=sid, entries={e.rel: e for e in self.entries},
                                   manifest_bytes=self.manifest_path.read_bytes())
            by_reason = quarantine.counts_by_reason(conn, submission_id=sid)
        clock.lap("quarantine")
        docs = str(report.data_docs_index) if report.data_docs_index else None
        the_receipt = receipt.build_receipt(
            site=self.site, submission_id=sid, source=self.source_path, plan=plan,
            outcome=outcome, n_files=len(self.entries), n_rows=len(manifest), data_docs=docs,
            quarantined_by_reason=by_reason)
        self.stage = "writing the receipt"
        # The files first: a submission is marked done only once its receipt exists.
        json_path, md_path = receipt.write_receipt(the_receipt, settings.home / "receipts",
                                                   lang=self.opened.language)
        self.stage = "recording the submission"
        with connect(self.url) as conn:
            subs.finish(conn, sid, status="done", counts=the_receipt["counts"],
                        receipt=the_receipt, source=the_receipt["source"])
            audit.record(conn, action="submission.ingest", entity="submission", entity_id=sid,
                         details=the_receipt["counts"])
            if held:  # for the data stewards: files another site holds already
                audit.record(conn, action="submission.held_for_review", entity="submission",
                             entity_id=sid, details={"files": held})
            conn.commit()
        the_receipt["paths"] = {"json": str(json_path), "markdown": str(md_path)}
        try:
            create_markdown_artifact(markdown=receipt.to_markdown(the_receipt,
                                                                  self.opened.language),
                                     key=f"receipt-{self.site.lower()}-{sid}",
                                     description=f"Receipt of submission {sid} ({self.site})")
        except Exception as exc:  # noqa: BLE001 - the receipt is stored; the copy is a courtesy
            print(f"the receipt's copy in Prefect was not made ({type(exc).__name__})")
        the_receipt["timings_s"] = clock.laps
        return the_receipt

    def _early(self, objects, staging: Path) -> Callable[[list], None] | None:
        """When the champion watch runs after this ingest in this process, what hands it the
        de-identified radiographs to score meanwhile (bonebase.monitor.early)."""
        if not _WATCHED.get():
            return None
        try:
            return early.hook(lambda: connect(self.url), objects,
                              submission_id=self.submission_id, staging=staging,
                              policy=policies.load(policies.PARAMS),
                              cache=self.settings.home / "cache" / "models")
        except Exception as exc:  # noqa: BLE001 - the watch after ingest reports its own errors
            print(f"early scoring is off for this submission ({type(exc).__name__}); the champion"
                  " watch scores it after ingest")
            return None

    def _fail(self, exc: Exception) -> BonebaseError:
        """Mark the submission failed with a receipt that says where and why; the error to raise.
        The receipt and the audit log keep the failure in English with its code; the error raised
        shows it as it was raised (the language of the run)."""
        early.discard(self.submission_id)
        error = receipt.describe_failure(exc, self.redact)
        shown = receipt.describe_failure(exc, self.redact, translated=True)
        code = receipt.failure_code(exc)
        sid = self.submission_id
        the_receipt = receipt.failure_receipt(site=self.site, submission_id=sid,
                                              source=self.redact(self.source_path),
                                              stage=self.stage, error=error, error_code=code)
        where = "its receipt could not be written"
        try:
            json_path, _ = receipt.write_receipt(the_receipt, self.settings.home / "receipts",
                                                 lang=self.opened.language)
            where = f"receipt: {json_path}"
        except OSError as write_error:
            the_receipt["error"] += f"; the receipt file could not be written ({write_error.strerror})"
        try:
            with connect(self.url) as conn:
                subs.finish(conn, sid, status="failed", counts={}, receipt=the_receipt,
                            source=the_receipt["source"])
                audit.record(conn, action="submission.failed", entity="submission",
                             entity_id=sid,
                             details={"stage": self.stage, "error": error, "error_code": code})
                conn.commit()
        except Exception as db_error:  # noqa: BLE001 - the first failure is the one to report
            where += (f"; the database could not record it ({type(db_error).__name__}), so the"
                      " submission still shows 'running'")
        head = f"submission {sid} of site {self.site} failed while {self.stage}: "
        tail = f"; it is marked failed ({where}); {the_receipt['what_to_do']}"
        return BonebaseError(Message(head + shown + tail, head + error + tail), code=code)


def remove_staging(staging: Path) -> None:
    import shutil

    shutil.rmtree(staging, ignore_errors=True)


if __name__ == "__main__":  # pragma: no cover
    import sys

    print(ingest_submission(sys.argv[1], sys.argv[2])["counts"])
