"""Run the suites with GX and turn its results into plain ``Failure`` records.

One ephemeral GX context per process holds every suite, data asset and ValidationDefinition
(built on first use, ~0.1 s); each submission runs one Checkpoint per frame, with an
``UpdateDataDocsAction`` writing that submission's Data Docs when a folder is given: pages that
load nothing from other hosts, and ``validation.json``, the summary the web database shows.
"""

from __future__ import annotations

import hashlib
import re
import threading
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import great_expectations as gx
import pandas as pd
from great_expectations.core.run_identifier import RunIdentifier
from great_expectations.data_context.types.base import ProgressBarsConfig
from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

from validation import (
    cross_suite,
    db_suite,
    docs_offline,
    docs_view,
    header_suite,
    image_qc,
    manifest_suite,
)
from validation.gx_view import Masker
from validation.messages import Failure, ValidationReport, render, where

# frame name -> (suite builders, columns naming a failing record)
_SUBMISSION_FRAMES: dict[str, tuple[dict[str, Callable[[], gx.ExpectationSuite]], list[str]]] = {
    "manifest": ({manifest_suite.SUITE: manifest_suite.build_manifest_suite}, ["row", "case_id"]),
    "headers": (
        {
            header_suite.SUITE: header_suite.build_header_suite,
            header_suite.DEID_SUITE: header_suite.build_deid_suite,
            image_qc.SUITE: image_qc.build_image_qc_suite,
        },
        ["file"],
    ),
    "cross_cases": ({cross_suite.CASE_SUITE: cross_suite.build_case_suite}, ["row", "case_id"]),
    "cross_images": ({cross_suite.IMAGE_SUITE: cross_suite.build_image_suite}, ["file"]),
}
_LOCK = threading.RLock()  # a GX context is not thread-safe; ingest may validate from threads


@dataclass
class _Gx:
    context: Any
    definitions: dict[str, gx.ValidationDefinition] = field(default_factory=dict)
    databases: dict[tuple[str, str], list[gx.ValidationDefinition]] = field(default_factory=dict)


_STATE: _Gx | None = None


def gx_context() -> _Gx:
    """The process-wide GX context with the submission suites registered (built once)."""
    global _STATE
    with _LOCK:
        if _STATE is None:
            context = gx.get_context(mode="ephemeral")
            # tqdm bars per expectation cost time and flood worker logs.
            context.variables.progress_bars = ProgressBarsConfig(globally=False)
            source = context.data_sources.add_pandas("submission")
            state = _Gx(context=context)
            for frame, (builders, _) in _SUBMISSION_FRAMES.items():
                batch = source.add_dataframe_asset(frame).add_batch_definition_whole_dataframe(
                    frame
                )
                for name, build in builders.items():
                    suite = context.suites.add(build())
                    state.definitions[name] = context.validation_definitions.add(
                        gx.ValidationDefinition(name=name, data=batch, suite=suite)
                    )
            _STATE = state
        return _STATE


def _result_format(index_columns: list[str] | None) -> dict[str, Any]:
    # COMPLETE is needed to learn every failing record (SUMMARY lists 20); the cost is paid
    # only for failing values, and the index query/rows copies are switched off.
    fmt: dict[str, Any] = {
        "result_format": "COMPLETE",
        "return_unexpected_index_query": False,
        "include_unexpected_rows": False,
    }
    if index_columns:
        fmt["unexpected_index_column_names"] = index_columns
    return fmt


class _DocsSite:
    """A Data Docs site in ``docs_dir`` registered for the duration of one run."""

    def __init__(self, context: Any, docs_dir: Path | None, title: str) -> None:
        self.context, self.docs_dir, self.title = context, docs_dir, title
        self.name = None
        if docs_dir is not None:
            self.name = "docs_" + hashlib.sha1(str(docs_dir).encode()).hexdigest()[:16]

    def build(self, results: dict[Any, Any]) -> None:
        """Render the pages of ``results`` (validation result id -> suite result) and the index
        in one build; GX's UpdateDataDocsAction rebuilds the index once per suite result."""
        if self.name is None or not results:
            return
        ids: list[Any] = []
        for key, result in results.items():
            ids += [key, ExpectationSuiteIdentifier(name=result.suite_name)]
        self.context.build_data_docs(site_names=[self.name], resource_identifiers=ids,
                                     build_index=True)
        # Pages that work offline (GX links CDNs), and the summary bonebase's own page shows.
        docs_offline.make_offline(self.docs_dir)
        docs_offline.write_summary(self.docs_dir, results)

    def __enter__(self) -> _DocsSite:
        if self.docs_dir is not None:
            self.docs_dir.mkdir(parents=True, exist_ok=True)
            config = docs_view.site_config(str(self.docs_dir), self.title)
            if self.name in (self.context.variables.data_docs_sites or {}):
                self.context.update_data_docs_site(self.name, config)
            else:
                self.context.add_data_docs_site(self.name, config)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.name is not None:
            self.context.delete_data_docs_site(self.name)

    @property
    def index(self) -> Path | None:
        return None if self.docs_dir is None else self.docs_dir / "index.html"


def _run_checkpoint(
    state: _Gx,
    definitions: list[gx.ValidationDefinition],
    *,
    name: str,
    run_name: str,
    index_columns: list[str] | None,
    batch_parameters: dict[str, Any] | None,
) -> dict[Any, Any]:
    """Run one checkpoint; its suite results by validation result id (kept in the results
    store for the run's Data Docs build)."""
    checkpoint = gx.Checkpoint(
        name=name,
        validation_definitions=definitions,
        actions=[],
        result_format=_result_format(index_columns),
    )
    try:
        result = checkpoint.run(
            batch_parameters=batch_parameters, run_id=RunIdentifier(run_name=run_name)
        )
    finally:
        # run() stores an unsaved checkpoint under its name; drop it so the next submission
        # (or a retry of this one) can reuse the name.
        if name in {c.name for c in state.context.checkpoints.all()}:
            state.context.checkpoints.delete(name)
    return dict(result.run_results)


def _forget_results(state: _Gx) -> None:
    """Empty the in-memory results store once a run's Data Docs are written.

    The ephemeral store would otherwise keep every submission's results for the process
    lifetime; it must not be emptied between checkpoints of one run, as each Data Docs build
    drops pages whose results are no longer in the store.
    """
    store = state.context.validation_results_store
    for key in store.list_keys():
        store.remove_key(key)


def _failures(
    suite_result: Any,
    frame: pd.DataFrame | None,
    index_columns: list[str] | None,
    view: pd.DataFrame | None = None,
) -> list[Failure]:
    """Plain failures of one suite result; one per failing record for column expectations.

    ``view`` is the masked copy GX validated (same row order as ``frame``): its index values
    locate the failing record, whose raw values ``frame`` gives.
    """
    out: list[Failure] = []
    suite = suite_result.suite_name
    lookup: dict[Any, int] | None = None
    for res in suite_result.results:
        if res.success:
            continue
        config = res.expectation_config
        info = config.meta or {}
        severity, reason, fld = info.get("severity", "error"), info.get("reason"), info.get("field")
        common = {"suite": suite, "expectation": config.type, "severity": severity, "field": fld}
        detail = _exception_message(res.exception_info)
        if detail is not None:
            msg = render("validation_error", {"detail": detail}, place=suite)
            out.append(Failure(**common, reason="validation_error", message=msg))
            continue
        reason = reason or config.type
        result = res.result or {}
        entries = result.get("unexpected_index_list")
        rows = (result.get("details") or {}).get("unexpected_rows")
        if entries and frame is not None and index_columns:
            key = index_columns[0]
            if lookup is None:
                keys = (frame if view is None else view)[key].tolist()
                lookup = {v: i for i, v in enumerate(keys)}
            for entry in entries:
                record = frame.iloc[lookup[entry[key]]].to_dict()
                out.append(_record_failure(common, reason, record))
        elif rows is not None:
            for row in rows:
                record = dict(row._mapping) if hasattr(row, "_mapping") else dict(row)
                case = record.get("case_pseudonym")
                place = "database" + (f", case {case}" if case else "")
                msg = render(reason, record, place=place, fallback=str(record))
                out.append(Failure(**common, reason=reason, message=msg, case_id=case))
        else:
            observed = result.get("observed_value")
            msg = render(reason, {"field": fld}, place=suite, fallback=f"observed {observed}")
            out.append(Failure(**common, reason=reason, message=msg))
    return out


def _exception_message(info: dict | None) -> str | None:
    """The error message when an expectation could not run (GX nests it per metric)."""
    if not info:
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message"))
    for value in info.values():
        if isinstance(value, dict) and value.get("raised_exception"):
            # The first line names the problem; the rest is SQL and traceback.
            return str(value.get("exception_message")).splitlines()[0]
    return None


def _record_failure(common: dict[str, Any], reason: str, record: dict[str, Any]) -> Failure:
    row = record.get("row")
    row = None if row is None or pd.isna(row) else int(row)
    case_id = record.get("case_id")
    case_id = None if case_id is None or pd.isna(case_id) else str(case_id)
    file = record.get("file")
    place = where(row=row, case_id=case_id, file=file)
    msg = render(reason, record, place=place)
    return Failure(**common, reason=reason, message=msg, row=row, case_id=case_id, file=file)


def _stats(suite_results: Iterable[Any], failures: list[Failure], records: int) -> dict:
    out = {}
    for sr in suite_results:
        out[sr.suite_name] = {
            "evaluated": len(sr.results),
            "failed": sum(not r.success for r in sr.results),
            "failures": sum(f.suite == sr.suite_name for f in failures),
            "records": records,
        }
    return out


def validate_submission(
    manifest: pd.DataFrame,
    headers: pd.DataFrame,
    *,
    site: str,
    submission_id: str,
    docs_dir: Path | None = None,
    identifiers: Iterable[str] = (),
) -> ValidationReport:
    """Validate one submission's manifest and header frames with every applicable suite.

    The de-identification suite runs when ``headers`` has ``patient_identity_removed``; image QC
    when it has the ``image_qc.qc_metrics`` columns. Data Docs go to ``docs_dir`` when given.
    GX sees copies with ids tokenised and ``identifiers`` (and the frames' own ids) redacted
    from paths and text, so its results and Data Docs hold none of them. Problems found while
    reading the manifest (``frame.attrs["problems"]``) come first in the report.
    """
    m = manifest_suite.prepare_manifest(manifest)
    h = header_suite.prepare_headers(headers)
    if "patient_identity_removed" in h.columns:
        # A missing value would be skipped by GX's set check; make it an explicit "".
        h["patient_identity_removed"] = h["patient_identity_removed"].fillna("").astype(str)
    cases, images = cross_suite.build_cross_frames(m, h)
    frames = {"manifest": m, "headers": h, "cross_cases": cases, "cross_images": images}
    masker = Masker(frames.values(), identifiers)
    views = {name: masker.mask(frame) for name, frame in frames.items()}
    header_suites = [header_suite.SUITE]
    if "patient_identity_removed" in h.columns:
        header_suites.append(header_suite.DEID_SUITE)
    if {"pixel_std", "saturated_fraction"} <= set(h.columns):
        header_suites.append(image_qc.SUITE)

    # Data Docs keys are path parts: no slashes or odd characters in the run name.
    run_name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{site}-{submission_id}")
    report = ValidationReport(failures=list(manifest.attrs.get("problems", ())))
    with _LOCK:
        state = gx_context()
        _forget_results(state)  # leftovers of a run that raised
        title = f"Submission {submission_id} from site {site}"
        with _DocsSite(state.context, docs_dir, title) as docs:
            everything: dict[Any, Any] = {}
            for frame_name, (builders, index_columns) in _SUBMISSION_FRAMES.items():
                names = header_suites if frame_name == "headers" else list(builders)
                frame = frames[frame_name]
                results = _run_checkpoint(
                    state,
                    [state.definitions[n] for n in names],
                    name=f"{run_name}-{frame_name}",
                    run_name=run_name,
                    index_columns=index_columns,
                    batch_parameters={"dataframe": views[frame_name]},
                )
                everything.update(results)
                found = [f for r in results.values()
                         for f in _failures(r, frame, index_columns, views[frame_name])]
                report.failures.extend(found)
                report.stats.update(_stats(results.values(), found, len(frame)))
            docs.build(everything)
            report.data_docs_index = docs.index
        _forget_results(state)
    matched = images.dropna(subset=["row"])
    report.file_rows = dict(zip(matched["file"], matched["row"].astype(int), strict=True))
    return report


def _database_definitions(state: _Gx, database_url: str, schema: str) -> list:
    key = (database_url, schema)
    if key not in state.databases:
        context = state.context
        name = "db_" + hashlib.sha1(f"{database_url}|{schema}".encode()).hexdigest()[:16]
        # The generic SQL source: the Postgres one validates its URL as a host-based DSN and
        # refuses a socket-directory host (the embedded pgserver); the engine is the same.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*more specific PostgresDatasource.*")
            source = context.data_sources.add_sql(
                name, connection_string=db_suite.sqlalchemy_url(database_url)
            )
        defs = []
        for table, suite in (
            ("instances", db_suite.build_instances_suite()),
            ("cases", db_suite.build_cases_suite(schema)),
        ):
            asset = source.add_table_asset(f"{name}_{table}", table_name=table, schema_name=schema)
            batch = asset.add_batch_definition_whole_table(table)
            suite.name = f"{suite.name}_{name}"
            suite = context.suites.add(suite)
            defs.append(
                context.validation_definitions.add(
                    gx.ValidationDefinition(name=suite.name, data=batch, suite=suite)
                )
            )
        state.databases[key] = defs
    return state.databases[key]


def validate_database(
    database_url: str, *, docs_dir: Path | None = None, schema: str = "public"
) -> ValidationReport:
    """Whole-database invariants (duplicate SOP UIDs, sex consistency, an X-ray per case), in SQL."""
    db_suite.check_schema_name(schema)
    report = ValidationReport()
    with _LOCK:
        state = gx_context()
        definitions = _database_definitions(state, database_url, schema)
        with _DocsSite(state.context, docs_dir, "Database invariants") as docs:
            by_id = _run_checkpoint(
                state,
                definitions,
                name="database",
                run_name="database",
                index_columns=None,
                batch_parameters=None,
            )
            docs.build(by_id)
            report.data_docs_index = docs.index
        results = list(by_id.values())
        _forget_results(state)
    for r in results:
        found = _failures(r, None, None)
        # Report under the plain suite name, not the per-database registration name.
        plain = r.suite_name.rsplit("_db_", 1)[0]
        found = [Failure(**{**f.as_dict(), "suite": plain}) for f in found]
        report.failures.extend(found)
        report.stats[plain] = {
            "evaluated": len(r.results),
            "failed": sum(not x.success for x in r.results),
            "failures": len(found),
        }
    return report
