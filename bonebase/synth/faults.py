"""Fault injection: every quarantine reason code appears in each site's submission, recorded.

Each fault touches its own case, chosen among patients with a single case, and a faulty item is
faulty only in the recorded way: a blank or corrupt radiograph belongs to a case that keeps a
valid one, a duplicate row repeats its source row verbatim, an orphan case is otherwise clean.
Kinds are also the platform's quarantine reason codes.
"""

from __future__ import annotations

import io
import shutil
import struct
import zipfile
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bonebase.synth.clinical import CaseSpec
from bonebase.vocab import DIAGNOSES

FAULT_KINDS = (
    "corrupt_file",
    "non_dicom",
    "duplicate_file",
    "row_without_images",
    "images_without_row",
    "impossible_age",
    "unknown_sex",
    "unknown_diagnosis",
    "label_contradicts_diagnosis",
    "wrong_modality",
    "blank_image",
    "duplicate_case_id",
)
# Kinds that need a case of their own (non_dicom adds files that belong to no case).
CASE_KINDS = tuple(k for k in FAULT_KINDS if k != "non_dicom")
MIN_CASES = 2 * len(CASE_KINDS)

_BAD_AGES = (-3, 117, 142, 230, 999)
_BAD_SEX = ("X", "U", "?", "unknown")
BAD_DIAGNOSIS_TERMS = (
    "bone tumour NOS",
    "osteosarcom",
    "see pathology report",
    "lesion ?benign",
    "待病理",
)


@dataclass(frozen=True)
class Fault:
    """One faults.json entry."""

    kind: str
    file: str | None
    row: int | None
    case_id: str | None
    detail: str

    def json(self) -> dict:
        return asdict(self)


def plan_faults(
    cases: list[CaseSpec], rng: np.random.Generator
) -> tuple[list[CaseSpec], dict[str, int]]:
    """Mark cases for faults (``extra["fault"]``) and adjust what must be rendered for them.

    Returns the cases and how many faults of each kind were planned.
    """
    eligible = [
        c.index for c in cases if not c.extra.get("repeat") and not c.extra.get("repeat_of_me")
    ]
    rng.shuffle(eligible)
    many = len(cases) >= 50  # at default sizes some kinds occur twice
    counts = {k: 1 + int(many and rng.random() < 0.5) for k in FAULT_KINDS}
    if sum(counts[k] for k in CASE_KINDS) > len(eligible):
        counts = dict.fromkeys(FAULT_KINDS, 1)
    out = list(cases)
    it = iter(eligible)
    for kind in CASE_KINDS:
        for _ in range(counts[kind]):
            c = out[next(it)]
            two_views = c.views if len(c.views) >= 2 else ("AP", "LAT")
            change: dict = {}
            if kind in ("corrupt_file", "blank_image"):
                # The case keeps a valid radiograph after the faulty one is quarantined.
                change = dict(views=two_views)
                if kind == "blank_image":
                    change["blank_view"] = int(rng.integers(len(two_views)))
            elif kind == "images_without_row":
                change = dict(in_manifest=False, ct=False, mr=False)
            elif kind == "row_without_images":
                change = dict(rendered=False)
            elif kind == "wrong_modality":
                if rng.random() < 0.3:  # declared radiographs, delivered only a CT
                    change = dict(views=(), ct=True, mr=False, declared="XR")
                else:  # declared radiographs only, delivered radiographs and a CT or MR
                    ct = bool(rng.random() < 0.5)
                    change = dict(ct=ct, mr=not ct, declared="XR")
            elif kind == "impossible_age":
                change = dict(extra={"row": {"age": str(rng.choice(_BAD_AGES))}})
            elif kind == "unknown_sex":
                change = dict(extra={"row": {"sex": str(rng.choice(_BAD_SEX))}})
            elif kind == "unknown_diagnosis":
                change = dict(extra={"row": {"diagnosis": str(rng.choice(BAD_DIAGNOSIS_TERMS))}})
            elif kind == "label_contradicts_diagnosis":
                right = DIAGNOSES[c.diagnosis].behaviour
                wrong = "benign" if right == "malignant" else "malignant"
                change = dict(extra={"row": {"behaviour": wrong}})
            extra = {**c.extra, **change.pop("extra", {}), "fault": kind}
            out[c.index] = c.with_(**change, extra=extra)
    return out, counts


def corrupt(path: Path, rng: np.random.Generator, *, pixel_bytes: int) -> str:
    """Truncate a DICOM file inside its pixel data or garble its header; returns the detail."""
    data = path.read_bytes()
    if rng.random() < 0.6:
        cut = len(data) - int(pixel_bytes * rng.uniform(0.2, 0.7))
        path.write_bytes(data[:cut])
        return f"truncated inside the pixel data: {cut} of {len(data)} bytes kept"
    start = 128  # the DICM magic and the file meta group
    junk = rng.integers(0, 256, size=256, dtype=np.uint8).tobytes()
    path.write_bytes(data[:start] + junk + data[start + len(junk) :])
    return f"header garbled: bytes {start}-{start + len(junk) - 1} overwritten"


def duplicate(root: Path, rel: str) -> str:
    """Copy a file under another name next to it; returns the copy's relative path."""
    p = Path(rel)
    copy = p.with_name(f"{p.stem}_copy{p.suffix}" if p.suffix else f"{p.name}C")
    shutil.copyfile(root / rel, root / copy)
    return copy.as_posix()


def _png(rng: np.random.Generator) -> bytes:
    """A small valid greyscale PNG (a 'screenshot' someone dropped into the folder)."""
    h = w = 16
    raw = b"".join(b"\x00" + rng.integers(0, 256, w, dtype=np.uint8).tobytes() for _ in range(h))

    def chunk(tag: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + tag
            + body
            + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)
        )

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def _docx(text: str) -> bytes:
    """A minimal Word document; fixed timestamps keep the bytes reproducible."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, body in (
            (
                "[Content_Types].xml",
                '<?xml version="1.0"?><Types xmlns="http://schemas.'
                'openxmlformats.org/package/2006/content-types"/>',
            ),
            (
                "word/document.xml",
                f'<?xml version="1.0"?><document><body><p>{text}</p></body></document>',
            ),
        ):
            z.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), body)
    return buf.getvalue()


def non_dicom_files(
    rng: np.random.Generator, *, n: int, folders: list[str], site_name: str
) -> list[tuple[str, bytes, str]]:
    """``n`` stray non-DICOM files as (relative path, bytes, detail)."""
    kinds = [
        (
            "notes.txt",
            lambda: f"Scan notes - {site_name}\nPatient moved, repeat AP.\n".encode(),
            "plain-text note",
        ),
        ("screenshot.png", lambda: _png(rng), "PNG screenshot"),
        ("report.docx", lambda: _docx(f"Radiology report, {site_name}"), "Word document"),
        ("README", lambda: b"Exported by PACS. Do not edit.\n", "text file without extension"),
    ]
    out = []
    for i in range(n):
        name, make, detail = kinds[int(rng.integers(len(kinds)))]
        folder = folders[int(rng.integers(len(folders)))]
        stem, dot, ext = name.partition(".")
        rel = f"{folder}/{stem}{i + 1}{dot}{ext}" if folder else f"{stem}{i + 1}{dot}{ext}"
        out.append((rel, make(), detail))
    return out
