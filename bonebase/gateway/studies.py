"""Complete studies into de-identified submission folders in the outbox.

A study is complete after its quiet period (no instance for ``timeout`` seconds) or a flush. It
is then joined with its clinical row (none: it waits as "needs clinical data"), de-identified
file by file with the consortium's engine and key and central ingest's own step
(:func:`bonebase.ingest.process.deidentify_parts`: the same pseudonyms, UID remapping, date
shifts, burned-in text step and residue scan), and marked (:mod:`bonebase.dicom.deid_mark`). A study
with any residue or file held for review stays on site ("held on site"). Complete studies are
batched into one submission folder (``manifest.csv`` + DICOM), whose manifest names patient,
case and accession by their pseudonyms only. While complete studies wait for their batch to be
cut, they are de-identified ahead (:mod:`bonebase.gateway.prepared`), so that the cut itself only
moves their folders into the batch.
"""

from __future__ import annotations

import csv
import hashlib
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from bonebase.dicom.deid import Deidentifier
from bonebase.dicom.deid_mark import gateway_mark
from bonebase.dicom.read import DicomReadError
from bonebase.dicom.stream import open_parts
from bonebase.errors import InputError
from bonebase.gateway import clinical
from bonebase.gateway.journal import fsync_path, fsync_tree
from bonebase.gateway.prepared import PreparedStudies, fingerprint
from bonebase.gateway.spool import HELD, NEEDS_CLINICAL, QUEUED, RECEIVING, SENT, Spool
from bonebase.ingest.process import FileResult, deidentify_parts

MANIFEST_COLUMNS = ("case_id", "patient_id", "accession_number", "sex", "age", "location",
                    "diagnosis", "behaviour", "modalities", "pathology_confirmed")
_MODALITY = {"CR": "XR", "DX": "XR", "RG": "XR", "CT": "CT", "MR": "MR"}
MAX_BATCH_STUDIES = 500
MAX_BATCH_BYTES = 2 * 2**30  # of received (identified) files


@dataclass
class Prepared:
    key: str
    row: dict  # the manifest row, pseudonymous
    files: list[Path]  # de-identified, in the batch's staging folder


def due(spool: Spool, timeout: float, now: float | None = None) -> list:
    """Studies whose quiet period is over (or flushed), and waiting ones to try again."""
    now = time.time() if now is None else now
    return [s for s in spool.studies()
            if (s["state"] == RECEIVING and (s["flush"] or s["last_seen"] <= now - timeout))
            or s["state"] == NEEDS_CLINICAL]


@dataclass(frozen=True)
class BatchPolicy:
    """When complete studies leave, and how many at once.

    A submission costs central ingest seconds whatever its size (a Prefect flow run, the Great
    Expectations suites, Data Docs), so a gateway that sent every radiograph study alone would
    spend the consortium more time on that than on the files. Complete studies gather
    ``batch_wait`` seconds; with ``receipt_wait``, they also wait while an earlier batch of this
    gateway has no receipt yet, at most that many seconds: the batches are clocked by the
    consortium's receipts, so a lone study leaves at once and, while the consortium ingests one
    batch, everything that becomes complete goes in the next (batches grow with the central
    latency). A flush, or ``max_studies`` / ``max_bytes`` of complete studies, leaves at once."""

    batch_wait: float = 0.0
    receipt_wait: float = 0.0
    max_studies: int = MAX_BATCH_STUDIES
    max_bytes: int = MAX_BATCH_BYTES

    def hold(self, spool: Spool, ready: list, *, timeout: float, now: float) -> bool:
        """Whether the complete studies ``ready`` wait for more."""
        if not ready or any(s["flush"] for s in ready) or len(ready) >= self.max_studies \
                or sum(s["bytes"] for s in ready) >= self.max_bytes:
            return False
        complete = min(s["last_seen"] for s in ready) + timeout  # the first one's completion
        if now < complete + self.batch_wait:
            return True
        return now < complete + self.receipt_wait and _in_flight(spool)


def _in_flight(spool: Spool) -> bool:
    """Whether a batch of this gateway waits to be sent or for its receipt."""
    with spool.db() as conn:
        return conn.execute("SELECT 1 FROM batches WHERE state IN (?, ?) LIMIT 1",
                            (QUEUED, SENT)).fetchone() is not None


# While a batch is held, one pass prepares studies ahead for at most this long, so that the loop
# still reads the receipt that ends the wait (and cuts the batch) promptly.
PREPARE_BUDGET_S = 1.0


def batch_due(spool: Spool, *, site: str, secret: bytes, uid_root: str, timeout: float,
              max_pixels: int | None = None, max_studies: int | None = None,
              policy: BatchPolicy = BatchPolicy()) -> str | None:
    """Turn the complete studies (at most ``max_studies``, default the policy's) into one
    submission folder in the outbox; its id, or None (nothing due, or held by ``policy``: the
    complete studies are then de-identified ahead, :mod:`bonebase.gateway.prepared`)."""
    max_studies = policy.max_studies if max_studies is None else max_studies
    studies = due(spool, timeout)
    cache = PreparedStudies(spool.home.prepared)
    cache.tidy({s["key"] for s in studies})
    for stale in spool.home.outbox.glob(".*.part"):  # a batch cut short by a kill: not queued
        shutil.rmtree(stale, ignore_errors=True)
    if not studies:
        return None
    now = time.time()
    table = clinical.load(spool.home.clinical)
    deid = Deidentifier(secret, uid_root=uid_root)
    keyed = dict(site=site, secret=secret, uid_root=uid_root, max_pixels=max_pixels)
    if policy.hold(spool, [s for s in studies if s["state"] == RECEIVING], timeout=timeout,
                   now=now):
        prepare_ahead(spool, studies, table, deid, cache, limit=max_studies, **keyed)
        return None
    batch = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + secrets.token_hex(4)
    staging = spool.home.outbox / f".{batch}.part"
    staging.mkdir(parents=True)
    prepared: list[Prepared] = []
    cases: set[str] = set()
    size = 0
    try:
        for study in studies:
            row = table.find(study["patient_id"] or "", study["accession"] or "")
            if row is None:
                spool.set_state(study["key"], NEEDS_CLINICAL,
                                detail="add its row to a CSV in the gateway's clinical/ folder")
                continue
            case_ref = deid.pseudonym(site, f"case\x1f{_case_id(row, study)}")
            # A batch holds a case once: central ingest matches a row's images by accession.
            if case_ref in cases or len(prepared) >= max_studies or (
                    prepared and size + study["bytes"] > policy.max_bytes):
                continue
            out = staging / f"study-{len(prepared) + 1}"
            ready = cache.take(study["key"], fingerprint(study, row, **keyed), out)
            if ready is not None:  # de-identified while the batch was held
                done = Prepared(study["key"], ready, sorted(out.glob("*.dcm")))
            else:
                done = _deidentify_study(spool, study, row, deid=deid, site=site,
                                         secret=secret, out=out, max_pixels=max_pixels)
                if done is not None:
                    fsync_tree(out)
            if done is not None:
                size += study["bytes"]
                cases.add(case_ref)
                prepared.append(done)
        if not prepared:
            shutil.rmtree(staging)
            return None
        _write_manifest(staging / "manifest.csv", [p.row for p in prepared])
        fsync_path(staging / "manifest.csv")
        fsync_path(staging)
        fsync_path(cache.root)  # the prepared folders moved out of it
        final = spool.home.outbox / batch
        with spool.db() as conn:  # the folder and its queue entry appear together
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO batches (id, state, created) VALUES (?, ?, ?)",
                         (batch, QUEUED, time.time()))
            os.replace(staging, final)
            seen = {s["key"]: s for s in studies}
            for p in prepared:
                # Only as the cut saw it: an instance acknowledged while the study was being
                # cut is not in this batch, so its study stays receiving and is cut again
                # whole after its quiet period (central ingest keeps each instance once).
                conn.execute("UPDATE studies SET state = ?, detail = NULL, batch = ?, "
                             "case_ref = ?, flush = 0 WHERE key = ? AND instances = ? "
                             "AND last_seen = ?",
                             (QUEUED, batch, p.row["case_id"], p.key,
                              seen[p.key]["instances"], seen[p.key]["last_seen"]))
            conn.execute("COMMIT")
        return batch
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def prepare_ahead(spool: Spool, studies: list, table, deid: Deidentifier,
                  cache: PreparedStudies, *, limit: int, site: str, secret: bytes,
                  uid_root: str, max_pixels: int | None) -> int:
    """De-identify complete studies that wait for their batch (at most ``limit``, for at most
    :data:`PREPARE_BUDGET_S`); the number prepared now. A study without its clinical row is
    left for the batch cut to report; one with residue is held on site now, as it would be."""
    started, count = time.monotonic(), 0
    for study in studies[:limit]:
        if time.monotonic() - started > PREPARE_BUDGET_S:
            break
        row = table.find(study["patient_id"] or "", study["accession"] or "")
        if row is None:
            continue
        fp = fingerprint(study, row, site=site, secret=secret, uid_root=uid_root,
                         max_pixels=max_pixels)
        if cache.valid(study["key"], fp) is not None:
            continue
        tmp = cache.staging(study["key"])
        done = _deidentify_study(spool, study, row, deid=deid, site=site, secret=secret,
                                 out=tmp, max_pixels=max_pixels)
        if done is None:
            shutil.rmtree(tmp, ignore_errors=True)
            continue
        cache.keep(study["key"], tmp, fp=fp, row=done.row)
        count += 1
    return count


def _deidentify_study(spool: Spool, study, row: dict, *, deid: Deidentifier, site: str,
                      secret: bytes, out: Path, max_pixels: int | None) -> Prepared | None:
    out.mkdir()
    files: list[Path] = []
    pseudonym = accession_ref = None
    # A study without an accession number is keyed by its Study Instance UID instead.
    accession = study["accession"] or f"study\x1f{study['study_uid']}"
    for path in sorted((spool.home.studies / study["key"]).glob("*.dcm")):
        try:
            result = _deidentify_file(path, out, deid=deid, site=site, secret=secret,
                                      accession=accession, max_pixels=max_pixels)
        except (DicomReadError, InputError) as exc:
            problem = getattr(exc, "reason", None) or "deidentification_failed"
            spool.set_state(study["key"], HELD, detail=f"{problem}: a file could not be "
                            "de-identified; a data steward reviews it (it stays on site)")
            return None
        if isinstance(result, str):
            spool.set_state(study["key"], HELD, detail=result)
            return None
        files.append(result[0])
        pseudonym, accession_ref = result[1], result[2]
    if not files:
        return None
    modalities = row.get("modalities") or ";".join(sorted(
        {_MODALITY.get(m, m) for m in (study["modalities"] or "").split()}))
    manifest_row = {
        "case_id": deid.pseudonym(site, f"case\x1f{_case_id(row, study)}"),
        "patient_id": pseudonym,  # as the files' PatientID: central ingest matches on it
        "accession_number": accession_ref,
        **{c: row.get(c, "") for c in clinical.CLINICAL_COLUMNS if c != "case_id"},
        "modalities": modalities,
    }
    return Prepared(study["key"], manifest_row, files)


def _case_id(row: dict, study) -> str:
    """The hospital's case id: the clinical row's, else the study's accession number."""
    return row.get("case_id") or study["accession"] or f"study\x1f{study['study_uid']}"


def accession_pseudonym(deid: Deidentifier, site: str, accession: str) -> str:
    """16 hex characters keyed like the pseudonyms (AccessionNumber is SH: 16 at most)."""
    return deid.pseudonym(site, f"accession\x1f{accession}")[-16:]


def _deidentify_file(path: Path, out: Path, *, deid: Deidentifier, site: str, secret: bytes,
                     accession: str, max_pixels: int | None):
    """Write the de-identified, marked file into ``out``; (path, pseudonym, accession ref), or
    the reason the study is held on site. De-identification, the burned-in text step (identified
    pixels must not leave either), the residue scan and the reasons to hold a file are central
    ingest's own (:func:`bonebase.ingest.process.deidentify_parts`)."""
    accession_ref = accession_pseudonym(deid, site, accession)

    def amend(result) -> None:  # before the data set is encoded and scanned
        ds = result.dataset
        ds.AccessionNumber = accession_ref
        methods = ds.get("DeidentificationMethod") or []
        methods = [methods] if isinstance(methods, str) else list(methods)
        ds.DeidentificationMethod = [*methods, gateway_mark(
            secret, site, result.pseudonym, str(ds.SOPInstanceUID))]

    with open_parts(path, path.name, max_pixels=max_pixels) as parts:
        result = FileResult(rel=path.name, source_sha256="", size=parts.size)
        staged = deidentify_parts(parts, result, deid=deid, site=site, burned_in="redact",
                                  amend=amend)
        if staged is None:
            message = (result.message or "").removeprefix(f"{path.name}: ")
            return f"{result.reason}: {message}; it stays on site"
        head, tail = staged
        redacted = bool((result.extra.get("burned_in") or {}).get("redacted"))
        tmp = out / "file.part"
        with open(tmp, "wb") as fh:
            fh.write(head)
            if parts.pixels is not None and not redacted:
                parts.copy_pixels(fh, hashlib.sha256())
            fh.write(tail)
        final = out / f"{hashlib.sha256(result.sop_instance_uid.encode()).hexdigest()[:24]}.dcm"
        os.replace(tmp, final)
    return final, result.pseudonym, accession_ref


def _write_manifest(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
