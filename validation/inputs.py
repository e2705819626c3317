"""Build the runner's input frames from a submission folder (for standalone `bonebase validate`).

The ingest flow builds the same frames as it goes; these helpers exist so a site or a steward
can validate a folder without ingesting it.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
from pathlib import Path

import pandas as pd

from bonebase.errors import InputError
from validation.image_qc import XRAY_MODALITIES, qc_metrics
from validation.manifest_suite import MANIFEST_COLUMNS
from validation.messages import Failure

log = logging.getLogger(__name__)
_FORMAT_HINT = "the header must be: " + ",".join(MANIFEST_COLUMNS)


# Fallbacks after UTF-8, in order: Excel's "CSV" in Chinese Windows locales, then Western
# Windows, then Latin-1 (decodes any bytes). Written out rather than detected: charset-normalizer
# read short GB18030 manifests as cp949 or gave up, and the consortium's prior is Chinese sites.
_FALLBACK_ENCODINGS = ("gb18030", "cp1252", "latin-1")
_LATIN_IN_GB = re.compile(r"[A-Za-z][^\x00-\x7f][A-Za-z]")


def _decode(data: bytes, path: Path) -> tuple[str, str]:
    """(text, encoding): UTF-8 (with or without BOM) first, then the fallbacks, with a warning."""
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    for encoding in _FALLBACK_ENCODINGS:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if encoding == "gb18030" and _LATIN_IN_GB.search(text):
            # Accented Latin text often decodes as GB18030 too ("fémur" -> "f" + one ideograph
            # + "ur"); a lone ideograph inside a Latin word means that happened.
            continue
        log.warning("%s: not UTF-8, read as %s; please save manifests as UTF-8", path, encoding)
        return text, encoding
    raise AssertionError("latin-1 decodes any bytes")  # pragma: no cover


def load_manifest(path: Path) -> pd.DataFrame:
    """Read manifest.csv into a frame of strings plus ``row`` (1-based data row number).

    ``frame.attrs["encoding"]`` names the encoding used and ``frame.attrs["warnings"]`` lists
    what a receipt should mention. Raises InputError naming the file and what to fix.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise InputError(f"{path}: manifest not found; put manifest.csv in the folder") from exc
    if not data.strip():
        raise InputError(f"{path}: the manifest is empty; {_FORMAT_HINT}")
    text, encoding = _decode(data, path)
    try:
        frame = pd.read_csv(
            io.StringIO(text), dtype=str, keep_default_na=False, skipinitialspace=True
        )
    except pd.errors.ParserError as exc:
        raise InputError(f"{path}: not a valid CSV ({exc}); fix the line and resubmit") from exc
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    missing = [c for c in MANIFEST_COLUMNS if c not in frame.columns]
    extra = [c for c in frame.columns if c not in MANIFEST_COLUMNS]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(missing)}")
        if extra:
            parts.append(f"unexpected column(s) {', '.join(extra)}")
        raise InputError(f"{path}: {'; '.join(parts)}; {_FORMAT_HINT}")
    frame = frame[list(MANIFEST_COLUMNS)].copy()
    frame.insert(0, "row", range(1, len(frame) + 1))
    frame.attrs["encoding"] = encoding
    frame.attrs["warnings"] = (
        [] if encoding == "utf-8" else [f"{path.name} read as {encoding}; please use UTF-8"]
    )
    return frame


def load_headers(folder: Path, *, qc: bool = True) -> tuple[pd.DataFrame, list[Failure]]:
    """Header frame of every DICOM file under ``folder`` plus file-level faults found on the way.

    Faults carry the reader's reason codes (``non_dicom``, ``corrupt_file``,
    ``unsupported_transfer_syntax``) and ``duplicate_file`` for a byte-identical copy of an
    earlier file. ``qc`` adds the image QC columns for radiographs (decodes their pixels).
    """
    # The ingest helper; imported here so the suites import without the DICOM reader.
    from bonebase.dicom.read import DicomReadError, header_record, read_full

    folder = Path(folder)
    records: list[dict] = []
    faults: list[Failure] = []
    seen: dict[str, str] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = path.relative_to(folder).as_posix()
        if name == "manifest.csv":
            continue
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest in seen:
            faults.append(_fault("duplicate_file", name, f"file {name}: copy of {seen[digest]}"))
            continue
        seen[digest] = name
        try:
            ds = read_full(data)
            record = header_record(ds, file=name)
            if qc and record.get("modality") in XRAY_MODALITIES:
                record.update(qc_metrics(ds.pixel_array, bits_stored=ds.get("BitsStored")))
        except DicomReadError as exc:
            faults.append(_fault(exc.reason, name, f"file {name}: {exc}"))
            continue
        except Exception as exc:  # noqa: BLE001 - any decoder error makes the pixels unusable
            text = f"file {name}: pixels cannot be decoded ({exc}); export the image again"
            faults.append(_fault("corrupt_file", name, text))
            continue
        records.append(record)
    return pd.DataFrame.from_records(records), faults


def _fault(reason: str, name: str, message: str) -> Failure:
    return Failure(
        suite="files",
        expectation="readable_dicom",
        severity="error",
        reason=reason,
        message=message,
        file=name,
    )
