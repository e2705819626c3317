"""A site's finishing touches after rendering: file faults, manifest.csv, truth.csv, faults.json."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from bonebase.formats import MANIFEST_COLUMNS
from bonebase.synth.casegen import ImageRecord
from bonebase.synth.clinical import CaseSpec
from bonebase.synth.faults import FAULT_KINDS, Fault, corrupt, duplicate, non_dicom_files
from bonebase.synth.sites import SiteProfile

TRUTH_COLUMNS = ("file", "case_id", "diagnosis", "x0", "y0", "x1", "y1", "modality", "view")


def _row(case: CaseSpec) -> dict[str, str]:
    row = {
        "case_id": case.case_id,
        "patient_id": case.patient_id,
        "accession_number": case.accession,
        "sex": case.sex,
        "age": str(case.age),
        "location": case.term_loc,
        "diagnosis": case.term_dx,
        "behaviour": case.behaviour,
        "modalities": case.declared,
        "pathology_confirmed": "yes",
    }
    row.update(case.extra.get("row", {}))
    return row


def _pixel_bytes(rec: ImageRecord, root: Path) -> int:
    import pydicom

    ds = pydicom.dcmread(root / rec.file, stop_before_pixels=True)
    return int(ds.Rows) * int(ds.Columns) * 2


def finish_site(
    site: SiteProfile,
    cases: list[CaseSpec],
    records: list[ImageRecord],
    *,
    site_dir: Path,
    counts: dict[str, int],
    rng: np.random.Generator,
) -> int:
    """Apply file-level faults and write the site's manifest, truth and faults; returns #faults."""
    root = site_dir / "submission"
    faults: list[Fault] = []
    truth = list(records)
    by_case: dict[str, list[ImageRecord]] = {}
    for rec in records:
        by_case.setdefault(rec.case_id, []).append(rec)
    for case in cases:
        kind = case.extra.get("fault")
        xr = [r for r in by_case.get(case.case_id, []) if r.view != "AX"]
        if kind == "corrupt_file":
            rec = xr[-1]
            detail = corrupt(root / rec.file, rng, pixel_bytes=_pixel_bytes(rec, root))
            truth.remove(rec)
            faults.append(Fault(kind, rec.file, None, case.case_id, detail))
        elif kind == "duplicate_file":
            rec = xr[0]
            copy = duplicate(root, rec.file)
            truth.append(
                ImageRecord(
                    copy, rec.case_id, rec.diagnosis, rec.modality, rec.view, rec.bbox, rec.size
                )
            )
            faults.append(
                Fault(kind, copy, None, case.case_id, f"byte-identical copy of {rec.file}")
            )
        elif kind == "blank_image":
            rec = xr[case.blank_view]
            faults.append(
                Fault(
                    kind,
                    rec.file,
                    None,
                    case.case_id,
                    f"{rec.view} radiograph with constant pixel values",
                )
            )
        elif kind == "images_without_row":
            for rec in by_case[case.case_id]:
                faults.append(
                    Fault(
                        kind,
                        rec.file,
                        None,
                        None,
                        f"PatientID {case.patient_id}, AccessionNumber "
                        f"{case.accession} match no manifest row",
                    )
                )
    parents = {Path(r.file).parent.as_posix() for r in records}
    folders = sorted("" if p == "." else p for p in parents) or [""]
    for rel, data, detail in non_dicom_files(
        rng, n=counts["non_dicom"], folders=folders, site_name=site.name
    ):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
        faults.append(Fault("non_dicom", rel, None, None, detail))
    faults += _write_manifest(root / "manifest.csv", cases, rng)
    _write_truth(site_dir / "truth.csv", truth)
    order = {k: i for i, k in enumerate(FAULT_KINDS)}
    faults.sort(key=lambda f: (order[f.kind], f.row or 0, f.file or ""))
    (site_dir / "faults.json").write_text(
        json.dumps([f.json() for f in faults], indent=2, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    return len(faults)


def _write_manifest(path: Path, cases: list[CaseSpec], rng: np.random.Generator) -> list[Fault]:
    rows: list[tuple[CaseSpec, dict[str, str], bool]] = []
    for case in cases:
        if case.in_manifest:
            rows.append((case, _row(case), False))
    # Duplicate case ids: the source row repeated verbatim somewhere after it.
    for case in [c for c in cases if c.extra.get("fault") == "duplicate_case_id"]:
        src = next(i for i, (c, _, _) in enumerate(rows) if c is case)
        at = int(rng.integers(src + 1, len(rows) + 1))
        rows.insert(at, (case, _row(case), True))
    faults = []
    row_details = {
        "row_without_images": "no image has this row's PatientID and AccessionNumber",
        "impossible_age": "age {age} is outside 0-100",
        "unknown_sex": "sex {sex!r} is not M, F or O",
        "unknown_diagnosis": "diagnosis {diagnosis!r} is not in the vocabulary",
        "label_contradicts_diagnosis": "behaviour {behaviour!r} contradicts the diagnosis",
        "wrong_modality": "declared {modalities!r} but the images are {actual}",
    }
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for n, (case, row, dup) in enumerate(rows, start=1):
            writer.writerow(row)
            kind = case.extra.get("fault")
            if dup:
                first = next(i for i, (c, _, _) in enumerate(rows, start=1) if c is case)
                faults.append(
                    Fault(
                        "duplicate_case_id",
                        None,
                        n,
                        case.case_id,
                        f"repeats the case_id of row {first}",
                    )
                )
            elif kind in row_details:
                actual = ";".join(["XR"] * bool(case.views) + ["CT"] * case.ct + ["MR"] * case.mr)
                faults.append(
                    Fault(
                        kind, None, n, case.case_id, row_details[kind].format(**row, actual=actual)
                    )
                )
    return faults


def _write_truth(path: Path, records: list[ImageRecord]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(TRUTH_COLUMNS)
        for r in sorted(records, key=lambda r: r.file):
            box = ("", "", "", "") if r.bbox is None else r.bbox
            writer.writerow((r.file, r.case_id, r.diagnosis, *box, r.modality, r.view))
