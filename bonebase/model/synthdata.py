"""The exported training view made straight from ``bonebase synth`` output, without a database.

For tests, benchmarks and model experiments: ``export_synth`` reads each site's manifest.csv,
truth.csv and faults.json, leaves out every faulty row and file, and writes ``images/*.png`` and
``labels.csv`` exactly as the export stage does (same pixel pipeline, same columns), with lesion
boxes from the generator's truth. Ids are pseudonymised with a sha256 of (site, id).
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pydicom

from bonebase.dataset.export import render_png
from bonebase.dataset.labels import LABEL_COLUMNS, box_after_resize, task_fields, write_labels
from bonebase.errors import InputError, NotFoundError
from bonebase.vocab import Behaviour, lookup_diagnosis, lookup_location

RADIOGRAPH_MODALITIES = ("CR", "DX")


def pseudonym(site: str, value: str) -> str:
    """A stable 16-hex pseudonym for an id that is unique only within its site."""
    return hashlib.sha256(f"{site}\x00{value}".encode()).hexdigest()[:16]


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise NotFoundError(f"{path}: missing; is this the output folder of `bonebase synth`?")
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _faulty(site_dir: Path) -> tuple[set[str], set[int]]:
    """Files and manifest row numbers (1 = first data row) that faults.json lists."""
    faults = json.loads((site_dir / "faults.json").read_text(encoding="utf-8"))
    files = {f["file"] for f in faults if f.get("file")}
    rows = {int(f["row"]) for f in faults if f.get("row")}
    return files, rows


def _case_fields(site: str, row: dict[str, str], inter: Behaviour) -> dict[str, str] | None:
    diagnosis = lookup_diagnosis(row["diagnosis"])
    location = lookup_location(row["location"])
    if diagnosis is None or location is None:
        return None
    return {
        "case_id": pseudonym(site, row["case_id"]),
        "patient_id": pseudonym(site, row["patient_id"]),
        "site": site,
        "age": row["age"],
        "sex": row["sex"],
        "location": location.code,
        "region": location.region,
        "diagnosis": diagnosis.code,
        "behaviour": diagnosis.behaviour.value,
        **task_fields(diagnosis, location, intermediate_as=inter),
    }


def _site_jobs(
    site_dir: Path, inter: Behaviour, modalities: Sequence[str]
) -> list[tuple[Path, dict[str, str], tuple[float, ...] | None]]:
    site = site_dir.name
    bad_files, bad_rows = _faulty(site_dir)
    cases: dict[str, dict[str, str]] = {}
    manifest = site_dir / "submission" / "manifest.csv"
    for n, row in enumerate(_read_csv(manifest), start=1):
        if n in bad_rows or row["case_id"] in cases:
            continue
        fields = _case_fields(site, row, inter)
        if fields is not None:
            cases[row["case_id"]] = fields
    jobs = []
    for t in _read_csv(site_dir / "truth.csv"):
        if t["modality"] not in modalities or t["file"] in bad_files or t["case_id"] not in cases:
            continue
        box = tuple(float(t[k]) for k in ("x0", "y0", "x1", "y1")) if t["x0"] else None
        jobs.append((site_dir / "submission" / t["file"], cases[t["case_id"]], box))
    return jobs


def export_synth(
    synth_dir: str | Path,
    out_dir: str | Path,
    *,
    size: int,
    bits: int,
    intermediate_as: str = "benign",
    modalities: Sequence[str] = RADIOGRAPH_MODALITIES,
    workers: int = 2,
) -> pd.DataFrame:
    """Write ``out_dir/images/<sha256>.png`` and ``out_dir/labels.csv`` from a synthetic
    consortium; returns the labels as a DataFrame (one row per radiograph, sorted by id)."""
    synth_dir, out_dir = Path(synth_dir), Path(out_dir)
    try:
        inter = Behaviour(intermediate_as)
    except ValueError:
        raise InputError(
            f"intermediate_as={intermediate_as!r}; use 'benign' or 'malignant'"
        ) from None
    site_dirs = sorted(p.parent for p in synth_dir.glob("*/faults.json"))
    if not site_dirs:
        raise NotFoundError(f"{synth_dir}: no <SITE>/faults.json; run `bonebase synth` first")
    jobs = [j for d in site_dirs for j in _site_jobs(d, inter, modalities)]
    (out_dir / "images").mkdir(parents=True, exist_ok=True)

    def render(job: tuple[Path, dict[str, str], tuple[float, ...] | None]) -> dict[str, str]:
        path, fields, box = job
        data = path.read_bytes()
        instance_id = hashlib.sha256(data).hexdigest()
        (out_dir / "images" / f"{instance_id}.png").write_bytes(
            render_png(data, size=size, bits=bits)
        )
        lesion_box = ""
        if box is not None:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            lesion_box = box_after_resize(
                box, rows=int(ds.Rows), columns=int(ds.Columns), size=size
            )
        return {
            "instance_id": instance_id,
            "image": f"images/{instance_id}.png",
            **fields,
            "lesion_box": lesion_box,
            "lesion_outline": "",
        }

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        rows = list(pool.map(render, jobs))
    # A byte-identical file twice is one instance (as in ingestion).
    unique = {r["instance_id"]: r for r in rows}
    ordered = [unique[k] for k in sorted(unique)]
    write_labels(out_dir / "labels.csv", ordered)
    return pd.DataFrame(ordered, columns=list(LABEL_COLUMNS))


__all__ = ["RADIOGRAPH_MODALITIES", "export_synth", "pseudonym"]
