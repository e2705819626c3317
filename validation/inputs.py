"""Build the runner's input frames from a submission folder (for standalone `bonebase validate`).

The ingest flow builds the same frames as it goes; these helpers exist so a site or a steward
can validate a folder without ingesting it.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from pathlib import Path

import pandas as pd

from bonebase.errors import InputError
from bonebase.ingest.match import OPTIONAL_COLUMNS
from validation.image_qc import XRAY_MODALITIES, qc_metrics
from validation.manifest_suite import MANIFEST_COLUMNS
from validation.messages import Failure

_FORMAT_HINT = ("the header must be: " + ",".join(MANIFEST_COLUMNS) + " (and, for a match rule "
                "that needs them: " + ", ".join(OPTIONAL_COLUMNS) + ")")
_RESAVE = ("save the manifest as UTF-8 (Excel: Save As > 'CSV UTF-8'; LibreOffice: "
           "Character set 'Unicode (UTF-8)') and resubmit")
# Control characters (C0 but tab, DEL, C1) are never manifest data: a NUL broke the database
# write of the receipt. Surrogates stand for bytes that are not UTF-8 (surrogateescape) and
# U+FFFD for text already damaged by a conversion.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_NOT_TEXT = re.compile(r"[\ud800-\udfff\ufffd]")
# A header cell is named in an error only when it reads like a column name: a manifest that is
# really a key file or a patient list must not be echoed (ids carry digits or dashes).
_PLAIN_NAME = re.compile(r"[a-z][a-z_ ]{0,23}")


def _decode(data: bytes) -> tuple[str, str, int | None]:
    """(text, encoding, offset of the first byte that is not UTF-8, or None).

    UTF-8 (BOM optional) or UTF-16 with a BOM; nothing is guessed. Bytes that are not UTF-8
    become lone surrogates (surrogateescape), so the rows holding them are found and refused
    while the rest of the manifest is read as written. Guessing a legacy encoding mis-read
    whole files: GB18030 turns accented Latin into ideographs, Latin-1 turns a mostly-UTF-8
    file's Chinese into mojibake (valid rows then failed as unknown_location).
    """
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", errors="replace"), "utf-16", None
    bom = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[bom:].decode("utf-8"), "utf-8", None
    except UnicodeDecodeError as exc:  # the offset counts from the file's first byte
        return data[bom:].decode("utf-8", errors="surrogateescape"), "utf-8", bom + exc.start


def _header_problem(path: Path, header: list[str]) -> str | None:
    """What is wrong with the header row, naming columns without echoing arbitrary text."""
    missing = [c for c in MANIFEST_COLUMNS if c not in header]
    known = (*MANIFEST_COLUMNS, *OPTIONAL_COLUMNS)
    extra = [(i, c) for i, c in enumerate(header, 1) if c not in known]
    if not missing and not extra:
        return None
    if len(missing) == len(MANIFEST_COLUMNS):
        return (f"{path}: the first line is not the manifest header (no known column in it); "
                f"{_FORMAT_HINT}")
    parts = []
    if missing:
        parts.append(f"missing column(s) {', '.join(missing)}")
    if extra:
        names = [c if _PLAIN_NAME.fullmatch(c) else f"column {i} (name not shown)"
                 for i, c in extra]
        parts.append(f"unexpected column(s) {', '.join(names)}")
    return f"{path}: {'; '.join(parts)}; {_FORMAT_HINT}"


def _records(text: str, path: Path) -> list[tuple[int, list[str]]]:
    """(first line number, cells) of every non-blank CSV record, the header first."""
    reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=True)
    out = []
    start = 1
    try:
        for cells in reader:
            if len(cells) > 1 or (cells and cells[0].strip()):
                out.append((start, cells))
            start = reader.line_num + 1  # a quoted value may span lines
    except csv.Error as exc:
        # csv's messages describe the syntax ("unexpected end of data"), never the cell.
        raise InputError(f"{path}: not a valid CSV at line {reader.line_num} ({exc}); fix the "
                         "line and resubmit") from exc
    return out


def _problem(reason: str, message: str, *, row: int | None = None,
             field: str | None = None, severity: str = "error") -> Failure:
    return Failure(suite="manifest_file", expectation="readable_manifest", severity=severity,
                   reason=reason, message=message, row=row, field=field)


def _check_cells(number: int, line: int, columns: list[str], cells: list[str],
                 problems: list[Failure]) -> list[str]:
    """The row's cells with bad characters replaced by U+FFFD; one failure per bad cell."""
    clean = []
    for col, value in zip(columns, cells, strict=True):
        if _NOT_TEXT.search(value):
            problems.append(_problem(
                "not_utf8", f"row {number} (line {line}), column {col}: not UTF-8 text; "
                f"{_RESAVE}", row=number, field=col))
            value = _NOT_TEXT.sub("\ufffd", value)
        found = _CONTROL.search(value)
        if found:
            problems.append(_problem(
                "control_character", f"row {number} (line {line}), column {col}: holds a "
                f"control character (U+{ord(found.group()):04X}); remove it (retype the value) "
                "and resubmit", row=number, field=col))
            value = _CONTROL.sub("\ufffd", value)
        clean.append(value)
    return clean


def load_manifest(path: Path) -> pd.DataFrame:
    """Read manifest.csv into a frame of strings plus ``row`` (1-based data row number).

    ``frame.attrs["encoding"]`` names the encoding read; ``frame.attrs["warnings"]`` lists what
    a receipt should mention; ``frame.attrs["problems"]`` holds the row-level failures found
    while reading (``ragged_row``, ``not_utf8``, ``control_character``, plus a file-level
    ``not_utf8`` warning), which ``validate_submission`` reports first. Offending cells hold
    U+FFFD in place of the bad characters, so nothing downstream sees them. Raises InputError
    naming the file and what to fix when no row can be read (no file, empty, bad header).
    Messages name rows, lines and columns, never the file's content.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise InputError(f"{path}: manifest not found; put manifest.csv in the folder") from exc
    if not data.strip():
        raise InputError(f"{path}: the manifest is empty; {_FORMAT_HINT}")
    text, encoding, bad_offset = _decode(data)
    records = _records(text, path)
    if not records:
        raise InputError(f"{path}: the manifest is empty; {_FORMAT_HINT}")
    header = [c.strip().lower() for c in records[0][1]]
    problem = _header_problem(path, header)
    if problem is not None or len(set(header)) != len(header):
        raise InputError(problem or f"{path}: a column is named twice; {_FORMAT_HINT}")
    # The format's columns, then the optional ones (match rules) that the file has.
    columns = [*MANIFEST_COLUMNS, *(c for c in OPTIONAL_COLUMNS if c in header)]
    order = [header.index(c) for c in columns]
    problems: list[Failure] = []
    warnings: list[str] = []
    if bad_offset is not None:
        note = (f"{path.name} is not UTF-8 (first bad byte at offset {bad_offset}); the rows "
                f"holding such bytes are refused; {_RESAVE}")
        problems.append(_problem("not_utf8", note, severity="warning"))
        warnings.append(note)
    rows = []
    for number, (line, cells) in enumerate(records[1:], 1):
        if len(cells) != len(header):
            problems.append(_problem(
                "ragged_row", f"row {number} (line {line}): {len(cells)} fields where the header "
                f"has {len(header)}; put a value holding a comma in double quotes, fill empty "
                "fields with nothing between the commas, and resubmit", row=number))
            cells = (cells + [""] * len(header))[: len(header)]
        ordered = [cells[i] for i in order]
        rows.append([number, *_check_cells(number, line, columns, ordered, problems)])
    frame = pd.DataFrame(rows, columns=["row", *columns])
    frame["row"] = frame["row"].astype("int64")
    frame.attrs["encoding"] = encoding
    frame.attrs["warnings"] = warnings
    frame.attrs["problems"] = problems
    return frame


def load_headers(folder: Path, *, qc: bool = True) -> tuple[pd.DataFrame, list[Failure]]:
    """Header frame of every DICOM file under ``folder`` plus file-level faults found on the way.

    Faults carry the reader's reason codes (``non_dicom``, ``corrupt_file``,
    ``unsupported_transfer_syntax``) and ``duplicate_file`` for a byte-identical copy of an
    earlier file. ``qc`` adds the image QC columns for radiographs (decodes their pixels).
    """
    # The ingest helpers; imported here so the suites import without the DICOM reader.
    from bonebase.dicom.read import DicomReadError, header_record, read_full
    from bonebase.ingest import limits as lim
    from bonebase.ingest.scan import MANIFEST, scan_files

    folder = Path(folder)
    limits = lim.current()
    records: list[dict] = []
    faults: list[Failure] = []
    seen: dict[str, str] = {}
    # The ingest's own listing: links, special files and files over the size limit are refused
    # unread, as `bonebase submit` refuses them (a link may point at the consortium key).
    for entry in scan_files(folder, folder / MANIFEST, limits=limits):
        name = entry.rel
        if entry.refused:
            faults.append(_fault(entry.refused, name,
                                 lim.refusal_message(name, entry.refused, entry.size)))
            continue
        if entry.sha256 in seen:
            faults.append(_fault("duplicate_file", name,
                                 f"file {name}: copy of {seen[entry.sha256]}"))
            continue
        seen[entry.sha256] = name
        try:
            ds = read_full(_read_nofollow(entry.path), max_pixels=limits.max_pixels)
            record = header_record(ds, file=name)
            if qc and record.get("modality") in XRAY_MODALITIES:
                record.update(qc_metrics(ds.pixel_array, bits_stored=ds.get("BitsStored")))
        except DicomReadError as exc:
            # The reader names a source given as bytes '<bytes>': the file's name goes there.
            faults.append(_fault(exc.reason, name,
                                 f"file {name}: {str(exc).removeprefix('<bytes>: ')}"))
            continue
        except Exception as exc:  # noqa: BLE001 - any decoder error makes the pixels unusable
            # The exception's type only: a decoder's message can quote the file's bytes.
            text = (f"file {name}: pixels cannot be decoded ({type(exc).__name__}); "
                    "export the image again")
            faults.append(_fault("corrupt_file", name, text))
            continue
        records.append(record)
    return pd.DataFrame.from_records(records), faults


def _read_nofollow(path: Path) -> bytes:
    """The file's bytes; a link put in its place after the listing is refused, not followed."""
    import os

    with open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb") as f:
        return f.read()


def _fault(reason: str, name: str, message: str) -> Failure:
    return Failure(
        suite="files",
        expectation="readable_dicom",
        severity="error",
        reason=reason,
        message=message,
        file=name,
    )
