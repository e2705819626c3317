"""Render one case to DICOM files: the unit of work of the generator's process pool.

A case's output depends only on its site profile and its own seed, never on which worker ran
it or in which order, which keeps the consortium identical for any number of workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from bonebase.synth.burned import burn
from bonebase.synth.clinical import CaseSpec
from bonebase.synth.dicomgen import radiograph, volume_slices
from bonebase.synth.lesions import sample_lesion
from bonebase.synth.phantom import render_radiograph
from bonebase.synth.sites import SiteProfile
from bonebase.synth.volumes import render_volume


@dataclass(frozen=True)
class ImageRecord:
    """One written DICOM file and its ground truth."""

    file: str  # relative to the submission folder, POSIX separators
    case_id: str
    diagnosis: str
    modality: str  # CR, DX, CT or MR
    view: str  # AP, LAT, OBL, or AX for slices
    bbox: tuple[int, int, int, int] | None
    size: int
    burned: tuple = ()  # synth.burned.BurnedText drawn on the image (burned_in share > 0)


def relpath(site: SiteProfile, case: CaseSpec, ds: Dataset) -> str:
    """Where a site's PACS export puts a file (each site has its own layout)."""
    series, instance = int(ds.SeriesNumber), int(ds.InstanceNumber)
    if site.layout == "flat":
        return f"{ds.SOPInstanceUID}.dcm"
    if site.layout == "numbered":
        # DICOMDIR-style export: numbered folders, 8-character names, no extension.
        return f"DICOM/PA{case.index + 1:06d}/ST000001/SE{series:06d}/IM{instance:06d}"
    return (
        f"{case.patient_id}/{case.study_date}_{case.accession}/SE{series:03d}/IMG{instance:04d}.dcm"
    )


def _write(root: Path, rel: str, ds: Dataset) -> int:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path.stat().st_size


def render_case(site: SiteProfile, case: CaseSpec, root: Path,
                burned_in: float = 0.0) -> list[ImageRecord]:
    """Write the case's radiographs and CT/MR slices under ``root``; returns their records.

    ``burned_in`` is the share of radiographs with text burned in (:mod:`.burned`); its own
    random stream leaves everything else as it is without it."""
    rng = np.random.default_rng(np.random.SeedSequence(case.seed))
    text_rng = np.random.default_rng(np.random.SeedSequence([*case.seed, 19]))
    seg, bone = case.location.split("_", 1)
    lesion = sample_lesion(rng, case.diagnosis, seg)
    records: list[ImageRecord] = []
    H = int(rng.integers(site.size[0], site.size[1] + 1)) // 2 * 2
    for i, view in enumerate(case.views):
        W = int(H * rng.uniform(0.75, 1.0)) // 2 * 2
        if case.blank_view == i:
            image, bbox = None, None
        else:
            image, bbox = render_radiograph(
                rng,
                shape=(H, W),
                bone=bone,
                segment=seg,
                age=case.age,
                lesion=lesion,
                view=view,
                noise=site.noise,
                blur=site.blur,
                exposure=site.exposure,
            )
            if case.side == "L":  # the patient's left is on the viewer's right
                image = image[:, ::-1]
                bbox = (
                    None if bbox is None else (W - 1 - bbox[2], bbox[1], W - 1 - bbox[0], bbox[3])
                )
        ds = radiograph(
            site, case, image=image, shape=(H, W), view=view, series=i + 1, instance=1, rng=rng
        )
        burned: tuple = ()
        if burned_in and image is not None and text_rng.random() < burned_in:
            burned = tuple(burn(ds, side=case.side, view=view, rng=text_rng))
        rel = relpath(site, case, ds)
        records.append(
            ImageRecord(
                rel, case.case_id, case.diagnosis, site.modality, view, bbox, _write(root, rel, ds),
                burned,
            )
        )
    for kind, series, wanted in (("CT", 10, case.ct), ("MR", 20, case.mr)):
        if not wanted:
            continue
        seq = "CT" if kind == "CT" else ("T1", "STIR")[int(rng.integers(2))]
        size = int(rng.choice([64, 96, 128]))
        vol, boxes = render_volume(
            rng, kind=seq, size=size, slices=int(rng.integers(8, 17)), lesion=lesion, age=case.age
        )
        for ds, bbox in zip(
            volume_slices(site, case, kind=seq, vol=vol, series=series, rng=rng), boxes, strict=True
        ):
            rel = relpath(site, case, ds)
            records.append(
                ImageRecord(
                    rel, case.case_id, case.diagnosis, kind, "AX", bbox, _write(root, rel, ds)
                )
            )
    return records


def render_chunk(site: SiteProfile, cases: list[CaseSpec], root: Path,
                 burned_in: float = 0.0) -> list[ImageRecord]:
    """Render several cases (one pool task, to amortise inter-process overhead)."""
    return [rec for case in cases for rec in render_case(site, case, root, burned_in)]
