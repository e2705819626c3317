"""BTXRD's table read and checked, without the flow (#20): columns, 0/1 groups, pseudo-patients,
the CSV as Excel saves it and dataset.xlsx."""

from pathlib import Path

import pytest

from bonebase.errors import InputError
from bonebase.importers import btxrd
from bonebase.importers import btxrd_import as imp
from bonebase.importers.btxrd_sample import COLUMNS, generate


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("btxrd") / "BTXRD"
    return out, generate(out, images=24, seed=20, size=(200, 240))


def _summary(root: Path):
    centres, loose = imp.plan(root, imp.DEFAULT_SITES)
    return ({c.code: ([(r.stem, r.patient, r.location.code, r.diagnosis.code) for r in c.rows],
                      sorted((f.reason, f.row) for f in c.findings)) for c in centres},
            sorted(f.reason for f in loose))


def test_every_bad_input_is_a_finding_with_its_reason(sample):
    root, truth = sample
    centres, loose = imp.plan(root, imp.DEFAULT_SITES)
    findings = [f for c in centres for f in c.findings] + loose
    by_reason = {f.reason: f for f in findings}
    assert sorted(by_reason) == ["annotation_outside_image", "image_file_missing",
                                 "one_hot_group", "unlisted_annotation", "unlisted_image"]
    assert len(findings) == 6  # two one-hot rows: two subtypes, and no view
    messages = " ".join(f.message for f in findings)
    assert "'osteochondroma' and" in messages or "are 1; exactly one is expected" in messages
    assert "view columns (frontal, lateral, oblique): none is 1" in messages
    assert truth.bad["unlisted_image"] in by_reason["unlisted_image"].message
    assert truth.bad["orphan_annotation"] in by_reason["unlisted_annotation"].message
    assert by_reason["annotation_outside_image"].file == f"Annotations/{truth.bad['annotation_outside']}.json"
    # The rest is usable: every row but the three refused ones (the truncated JPEG is the flow's).
    rows = [r for c in centres for r in c.rows]
    assert len(rows) == truth.rows - 3
    assert {r.stem for r in rows} >= {truth.bad["truncated_jpeg"], truth.bad["annotation_outside"]}
    shaped = {s for c in centres for s in c.shapes}
    assert shaped == set(truth.annotated) - {truth.bad["two_subtypes"]}
    normal = [r for r in rows if r.diagnosis.code == "normal"]
    assert normal and all(str(r.diagnosis.behaviour) == "normal" for r in normal)


def test_pseudo_patients_are_consecutive_rows_of_same_centre_age_sex_and_site(sample):
    root, truth = sample
    centres, _ = imp.plan(root, imp.DEFAULT_SITES)
    got: dict[str, set[str]] = {}
    for r in (r for c in centres for r in c.rows):
        got.setdefault(r.patient, set()).add(r.stem)
    usable = {r.stem for c in centres for r in c.rows}
    expected = [set(g) & usable for g in truth.patients.values()]
    # Each generated patient's usable views are one pseudo-patient, named after its first image.
    assert sorted(map(sorted, got.values())) == sorted(sorted(g) for g in expected if g)
    assert all(p == f"BTXRD{p[5]}-{min(stems)}" for p, stems in got.items())


def test_grouping_rule_splits_on_any_difference():
    def row(n, centre=1, age=30, sex="F", sites=("femur",)):
        return btxrd.ImageRow(row=n, image=f"IMG{n:06d}.jpeg", centre=centre, age=age, sex=sex,
                              marked_sites=sites, location=None, diagnosis=None, view="frontal")

    rows = [row(1), row(2), row(3, age=31), row(4, sex="M", age=31), row(5, sex="M", age=31),
            row(6, sites=("tibia",)), row(7, centre=2, sites=("tibia",)), row(8)]
    patients = [r.patient for r in btxrd.group_patients(rows)]
    assert patients == ["BTXRD1-IMG000001", "BTXRD1-IMG000001", "BTXRD1-IMG000003",
                        "BTXRD1-IMG000004", "BTXRD1-IMG000004", "BTXRD1-IMG000006",
                        "BTXRD2-IMG000007", "BTXRD1-IMG000008"]  # not consecutive: new patient


def test_excel_csv_and_xlsx_read_as_the_plain_csv(sample, tmp_path):
    root, _ = sample
    plain = _summary(root)
    for name, kwargs in {"excel": dict(bom=True, delimiter=";", crlf=True),
                         "xlsx": dict(fmt="xlsx")}.items():
        other = tmp_path / name
        generate(other, images=24, seed=20, size=(200, 240), **kwargs)
        table = "dataset.xlsx" if name == "xlsx" else "dataset.csv"
        assert _summary(other) == plain, name
        if name == "excel":
            raw = (other / table).read_bytes()
            assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw and b";" in raw[:200]


def test_header_must_hold_btxrd_columns(tmp_path):
    (tmp_path / "dataset.csv").write_text(",".join(c for c in COLUMNS if c != "oblique") + "\n")
    with pytest.raises(InputError, match="missing column.*oblique"):
        btxrd.read_table(tmp_path / "dataset.csv")
    with pytest.raises(InputError, match="no dataset.csv or dataset.xlsx"):
        btxrd.find_table(tmp_path / "nothing")


@pytest.mark.parametrize(("change", "reason", "says"), [
    ({"benign": "0", "malignant": "1"}, "one_hot_group", "contradicts 'malignant' = 1"),
    ({"femur": "2"}, "bad_value", "'femur' is not 0 or 1"),
    ({"age": "abc"}, "impossible_age", "age"),
    ({"gender": "X"}, "unknown_sex", "gender"),
    ({"lower limb": "0"}, "one_hot_group", "limb region"),
    ({"femur": "0", "knee-joint": "0"}, "one_hot_group", "no anatomical site"),
    ({"tumor": "0"}, "one_hot_group", "tumor is 0"),
])
def test_row_checks(change, reason, says):
    row = {c: "0" for c in COLUMNS}
    row.update({"image_id": "IMG000001.jpeg", "center": "1", "age": "14", "gender": "M",
                "femur": "1", "knee-joint": "1", "tumor": "1", "benign": "1",
                "giant cell tumor": "1", "lower limb": "1", "frontal": "1"})
    good = btxrd.parse_row(1, row, table="dataset.csv")
    assert (good.location.code, good.diagnosis.code) == ("distal_femur", "giant_cell_tumour")
    bad = btxrd.parse_row(1, {**row, **change}, table="dataset.csv")
    assert isinstance(bad, btxrd.Finding) and bad.reason == reason and says in bad.message
    assert bad.message.startswith("dataset.csv row 1 (IMG000001.jpeg)")


def test_sites_option():
    assert imp.parse_sites("1=HOSP1:A hospital,3=MEDPIX")[3] == ("MEDPIX", "BTXRD centre 3 (MedPix)")
    with pytest.raises(InputError, match="CENTRE=CODE"):
        imp.parse_sites("HOSP1")
    with pytest.raises(InputError, match="share a site code"):
        imp.parse_sites("1=BTXRD2")
    with pytest.raises(InputError, match="invalid"):
        imp.parse_sites("1=lower")


def test_unusable_paths_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="no such file or folder"):
        with imp.opened(tmp_path / "nope", tmp_path):
            pass
    (tmp_path / "BTXRD.zip").write_bytes(b"not a zip at all")
    with pytest.raises(InputError, match="not a readable zip file"):
        with imp.opened(tmp_path / "BTXRD.zip", tmp_path):
            pass
    (tmp_path / "dataset.csv").write_bytes(b"image_id,center\n\xff\xfe,1\n")
    with pytest.raises(InputError, match="not UTF-8"):
        btxrd.read_table(tmp_path / "dataset.csv")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "dataset.xlsx").write_bytes(b"PK broken")
    with pytest.raises(InputError, match="not a readable Excel workbook"):
        btxrd.read_table(tmp_path / "x" / "dataset.xlsx")


def test_as_submission_writes_manifests_the_flow_reads(sample, tmp_path):
    import pandas as pd

    from bonebase.importers.btxrd_run import write_submissions

    root, truth = sample
    written = write_submissions(root, tmp_path / "check", sites=imp.DEFAULT_SITES)
    assert [c.code for c, _ in written] == ["BTXRD1", "BTXRD2", "BTXRD3"]
    for centre, folder in written:
        manifest = pd.read_csv(folder / "manifest.csv", dtype=str, keep_default_na=False)
        assert tuple(manifest.columns) == imp.MANIFEST_COLUMNS
        assert len(manifest) == len(centre.rows)
        assert all((folder / f).is_file() for f in manifest["image_file"])
        assert all((folder / f).is_file() for f in manifest["annotation_file"] if f)
        assert (manifest["modalities"] == "XR").all() and (manifest["accession_number"] == "").all()
        assert (tmp_path / "check" / f"{centre.code}-findings.json").is_file()


def test_sample_refuses_a_used_folder_in_one_line(sample):
    root, _ = sample
    with pytest.raises(InputError, match="not empty; give a new folder"):
        generate(root)
