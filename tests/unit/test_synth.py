"""The synthetic consortium generator: determinism, faults, DICOM validity, PHI, distributions."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import statistics
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from bonebase.errors import InputError
from bonebase.synth import FAULT_KINDS, MANIFEST_COLUMNS, TRUTH_COLUMNS, generate
from bonebase.synth.clinical import BASE_MIX, LOCATION_MIX, plan_cases, weighted_choice
from bonebase.synth.faults import BAD_DIAGNOSIS_TERMS, MIN_CASES
from bonebase.synth.lesions import sample_lesion
from bonebase.synth.phantom import render_radiograph
from bonebase.synth.sites import make_sites
from bonebase.vocab import DIAGNOSES, lookup_diagnosis, lookup_location, task_label

SITES, CASES = 2, 24

ROW_KINDS = {
    "row_without_images",
    "impossible_age",
    "unknown_sex",
    "unknown_diagnosis",
    "label_contradicts_diagnosis",
    "wrong_modality",
    "duplicate_case_id",
}


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def consortium(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "a"
    generate(out, sites=SITES, cases_per_site=CASES, seed=11, workers=1)
    return out


def _faults(site_dir: Path) -> list[dict]:
    return json.loads((site_dir / "faults.json").read_text(encoding="utf-8"))


def _manifest(site_dir: Path) -> list[dict]:
    with (site_dir / "submission" / "manifest.csv").open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _truth(site_dir: Path) -> list[dict]:
    with (site_dir / "truth.csv").open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _site_dirs(root: Path) -> list[Path]:
    return [root / s["code"] for s in json.loads((root / "sites.json").read_text("utf-8"))]


def test_same_seed_same_bytes_for_any_worker_count(consortium, tmp_path):
    progressed: list[int] = []
    generate(
        tmp_path / "b",
        sites=SITES,
        cases_per_site=CASES,
        seed=11,
        workers=2,
        progress=progressed.append,
    )
    a, b = _tree(consortium), _tree(tmp_path / "b")
    assert sorted(a) == sorted(b)
    assert [k for k in a if a[k] != b[k]] == []
    assert sum(progressed) == SITES * CASES


def test_other_seed_other_data(consortium, tmp_path):
    generate(tmp_path / "c", sites=1, cases_per_site=CASES, seed=12, workers=1)
    site = _site_dirs(consortium)[0].name
    other = tmp_path / "c" / site
    assert (other / "submission" / "manifest.csv").read_bytes() != (
        consortium / site / "submission" / "manifest.csv"
    ).read_bytes()
    assert set(_tree(other / "submission")) != set(_tree(consortium / site / "submission"))


def test_sites_json_and_codes(consortium):
    sites = json.loads((consortium / "sites.json").read_text("utf-8"))
    assert len(sites) == SITES
    for s in sites:
        assert set(s) == {"code", "name", "country", "contact"}
        assert re.fullmatch(r"[A-Z0-9]{2,8}", s["code"])
        assert (consortium / s["code"] / "submission" / "manifest.csv").is_file()


def test_every_fault_kind_recorded_and_located(consortium):
    for site_dir in _site_dirs(consortium):
        faults = _faults(site_dir)
        assert {f["kind"] for f in faults} == set(FAULT_KINDS)
        rows = _manifest(site_dir)
        for f in faults:
            assert set(f) == {"kind", "file", "row", "case_id", "detail"} and f["detail"]
            if f["kind"] in ROW_KINDS:
                assert f["file"] is None
                assert rows[f["row"] - 1]["case_id"] == f["case_id"]
            else:
                assert f["row"] is None
                assert (site_dir / "submission" / f["file"]).is_file(), f
        # A handful of faults, not a flood (at this small size every kind appears once).
        assert len({(f["kind"], f["case_id"]) for f in faults if f["case_id"]}) <= 2 * len(
            FAULT_KINDS
        )


def test_dicom_files_readable_and_faulty_files_are_not(consortium):
    for site_dir in _site_dirs(consortium):
        sub = site_dir / "submission"
        faults = _faults(site_dir)
        bad = {f["file"]: f["kind"] for f in faults if f["kind"] in ("corrupt_file", "non_dicom")}
        truth_files = {r["file"] for r in _truth(site_dir)}
        seen = set()
        for path in sorted(sub.rglob("*")):
            rel = path.relative_to(sub).as_posix()
            if not path.is_file() or rel == "manifest.csv":
                continue
            if rel in bad:
                with pytest.raises(
                    (
                        InvalidDicomError,
                        ValueError,
                        EOFError,
                        OSError,
                        KeyError,
                        AttributeError,
                        TypeError,
                    )
                ):
                    ds = pydicom.dcmread(path)
                    ds.pixel_array  # noqa: B018
                continue
            ds = pydicom.dcmread(path)
            assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
            assert ds.pixel_array.shape == (ds.Rows, ds.Columns)
            assert ds.Modality in ("CR", "DX", "CT", "MR")
            seen.add(rel)
        assert seen == truth_files


def test_blank_image_is_constant_and_others_are_not(consortium):
    for site_dir in _site_dirs(consortium):
        blank = {f["file"] for f in _faults(site_dir) if f["kind"] == "blank_image"}
        for r in _truth(site_dir):
            if r["modality"] not in ("CR", "DX"):
                continue
            px = pydicom.dcmread(site_dir / "submission" / r["file"]).pixel_array
            assert (px.min() == px.max()) == (r["file"] in blank)


def test_phi_in_headers(consortium):
    for site_dir in _site_dirs(consortium):
        r = next(r for r in _truth(site_dir) if r["modality"] in ("CR", "DX"))
        ds = pydicom.dcmread(site_dir / "submission" / r["file"])
        assert str(ds.PatientName) and "^" in str(ds.PatientName)
        assert ds.InstitutionName and ds.InstitutionAddress and ds.StationName
        assert str(ds.ReferringPhysicianName) and str(ds.OperatorsName)
        assert ds.DeviceSerialNumber and ds.AccessionNumber and ds.PatientID
        birth = dt.datetime.strptime(ds.PatientBirthDate, "%Y%m%d").date()
        study = dt.datetime.strptime(ds.StudyDate, "%Y%m%d").date()
        age = study.year - birth.year - ((study.month, study.day) < (birth.month, birth.day))
        assert ds.PatientAge == f"{age:03d}Y"
        req = ds.RequestAttributesSequence[0]
        assert req.ReferencedStudySequence[0].ReferencedSOPInstanceUID
        assert req.StudyInstanceUID == ds.StudyInstanceUID
        private = [e for e in ds if e.tag.is_private and e.VR == "LO"]
        assert any(str(ds.PatientID) == str(e.value) for e in private)


def test_display_pipeline_and_site_effects(consortium):
    seen = set()
    for site_dir in _site_dirs(consortium):
        r = next(r for r in _truth(site_dir) if r["modality"] in ("CR", "DX") and r["x0"])
        ds = pydicom.dcmread(site_dir / "submission" / r["file"])
        seen.add((ds.PhotometricInterpretation, ds.Manufacturer, int(ds.BitsStored)))
        img = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds).astype(np.int64), ds)
        assert np.ptp(img) > 0
        x0, y0, x1, y1 = (int(r[k]) for k in ("x0", "y0", "x1", "y1"))
        assert 0 <= x0 <= x1 < ds.Columns and 0 <= y0 <= y1 < ds.Rows
    assert len(seen) == SITES  # vendor, bit depth and photometric differ by site


def test_manifest_columns_and_clean_rows_are_valid(consortium):
    for site_dir in _site_dirs(consortium):
        with (site_dir / "submission" / "manifest.csv").open(encoding="utf-8") as fh:
            assert next(csv.reader(fh)) == list(MANIFEST_COLUMNS)
        with (site_dir / "truth.csv").open(encoding="utf-8") as fh:
            assert next(csv.reader(fh)) == list(TRUTH_COLUMNS)
        faulted = {f["row"]: f["kind"] for f in _faults(site_dir) if f["row"]}
        images: dict[str, set[str]] = {}
        for r in _truth(site_dir):
            images.setdefault(r["case_id"], set()).add(
                "XR" if r["modality"] in ("CR", "DX") else r["modality"]
            )
        for n, row in enumerate(_manifest(site_dir), start=1):
            kind = faulted.get(n)
            dx = lookup_diagnosis(row["diagnosis"])
            checks = {
                "impossible_age": 0 <= int(row["age"]) <= 100,
                "unknown_sex": row["sex"] in ("M", "F", "O"),
                "unknown_diagnosis": dx is not None,
                "label_contradicts_diagnosis": dx is None or row["behaviour"] in ("", dx.behaviour),
                # A row without images cannot match its declared modalities: one fault, not two.
                "wrong_modality": kind == "row_without_images"
                or set(row["modalities"].split(";")) == images.get(row["case_id"], set()),
                "row_without_images": row["case_id"] in images,
            }
            for name, ok in checks.items():
                assert ok == (kind != name), (site_dir.name, n, row, kind)
            assert lookup_location(row["location"]) is not None
            assert row["pathology_confirmed"] in ("yes", "no")


def test_bad_diagnosis_terms_are_unknown():
    assert all(lookup_diagnosis(t) is None for t in BAD_DIAGNOSIS_TERMS)


def test_clinical_distributions():
    cases = []
    for site in make_sites(4, np.random.default_rng(1)):
        cases += plan_cases(
            site, 300, np.random.default_rng(len(cases)), np.random.SeedSequence(5).spawn(300)
        )
    ages = {d: [c.age for c in cases if c.diagnosis == d] for d in DIAGNOSES}
    assert statistics.median(ages["osteosarcoma"]) < statistics.median(ages["chondrosarcoma"])
    assert 10 <= statistics.median(ages["osteosarcoma"]) <= 25
    assert 20 <= statistics.median(ages["giant_cell_tumour"]) <= 40
    assert statistics.median(ages["simple_bone_cyst"]) < 18
    knee = [c for c in cases if lookup_location(c.location).region == "knee"]
    for code in ("osteosarcoma", "giant_cell_tumour"):
        assert 0.15 <= sum(c.diagnosis == code for c in knee) / len(cases) <= 0.35
    locs = sorted({c.location for c in cases})
    X = np.array(
        [[c.age, c.sex == "M", *(c.location == loc for loc in locs)] for c in cases], dtype=float
    )
    y = np.array([task_label("benign_vs_malignant", DIAGNOSES[c.diagnosis]) for c in cases])
    p = cross_val_predict(
        make_pipeline(StandardScaler(), LogisticRegression()), X, y, cv=5, method="predict_proba"
    )[:, 1]
    assert 0.55 < roc_auc_score(y, p) < 0.8  # informative but weak


def test_lesions_learnable_but_not_trivial():
    rng = np.random.default_rng(0)
    feats, labels = [], []
    for _ in range(160):
        dx = weighted_choice(rng, BASE_MIX)
        seg, bone = weighted_choice(rng, LOCATION_MIX[dx]).split("_", 1)
        img, (x0, y0, x1, y1) = render_radiograph(
            rng,
            shape=(128, 112),
            bone=bone,
            segment=seg,
            age=20,
            lesion=sample_lesion(rng, dx, seg),
            view="AP",
            noise=0.015,
            blur=0.8,
            exposure=1.0,
        )
        roi, ref = img[y0 : y1 + 1, x0 : x1 + 1], np.percentile(img, 95)
        feats.append(
            [
                roi.mean() / ref,
                roi.std() / ref,
                np.percentile(roi, 10) / ref,
                (x1 - x0 + 1) * (y1 - y0 + 1) / img.size,
                (y1 - y0 + 1) / (x1 - x0 + 1),
            ]
        )
        labels.append(task_label("benign_vs_malignant", DIAGNOSES[dx]))
    p = cross_val_predict(
        make_pipeline(StandardScaler(), LogisticRegression()),
        np.array(feats),
        np.array(labels),
        cv=5,
        method="predict_proba",
    )[:, 1]
    assert 0.6 < roc_auc_score(labels, p) < 0.99


def test_bad_arguments(tmp_path):
    with pytest.raises(InputError, match="cases_per_site"):
        generate(tmp_path / "x", cases_per_site=MIN_CASES - 1)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        generate(tmp_path / "full", sites=1, cases_per_site=MIN_CASES)
    assert (tmp_path / "full" / "keep.txt").exists()
