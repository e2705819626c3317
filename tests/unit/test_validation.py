"""Validation suites on pandas frames: each data fault is caught by the right suite and severity.

One GX context is shared by the whole process (``validation.runner.gx_context``), so only the
first test pays for building it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pydicom
import pytest

from bonebase.errors import InputError
from validation import load_manifest, qc_metrics, validate_submission
from validation.manifest_suite import MANIFEST_COLUMNS

# (diagnosis, behaviour, age): typical ages so that no plausibility warning fires.
_DIAGNOSES = [
    ("osteosarcoma", "malignant", 15),
    ("giant cell tumour", "", 32),
    ("骨软骨瘤", "benign", 12),
]


def clean_frames(n_cases: int = 6) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A valid manifest and header frame: three images per case, an MR for every third case."""
    rows, heads = [], []
    for i in range(n_cases):
        diagnosis, behaviour, age = _DIAGNOSES[i % 3]
        modalities = "XR;MR" if i % 3 == 0 else "XR"
        rows.append(
            {
                "row": i + 1,
                "case_id": f"HX-{i:04d}",
                "patient_id": f"P{i:03d}",
                "accession_number": f"A{i:03d}",
                "sex": "MF"[i % 2],
                "age": str(age),
                "location": ["distal femur", "proximal_tibia", "股骨远端"][i % 3],
                "diagnosis": diagnosis,
                "behaviour": behaviour,
                "modalities": modalities,
                "pathology_confirmed": "yes",
            }
        )
        for j in range(3):
            mr = modalities == "XR;MR" and j == 2
            heads.append(
                {
                    "file": f"HX/{i:04d}/{j}.dcm",
                    "sop_instance_uid": f"2.25.{i}.{j}",
                    "study_instance_uid": f"2.25.{i}",
                    "series_instance_uid": f"2.25.{i}.{j}.0",
                    "patient_id": f"P{i:03d}",
                    "accession_number": f"A{i:03d}",
                    "modality": "MR" if mr else ("DX", "CR")[j % 2],
                    "rows": 256 if mr else 2048,
                    "columns": 256 if mr else 1680,
                    "bits_allocated": 16,
                    "bits_stored": 12,
                    "photometric_interpretation": "MONOCHROME2",
                    "pixel_spacing": None if not mr else [0.9, 0.9],
                    "imager_pixel_spacing": None if mr else "0.139\\0.139",
                    "transfer_syntax_uid": "1.2.840.10008.1.2.1",
                    "number_of_frames": 1,
                    "burned_in_annotation": "NO",
                    "sop_class_uid": "1.2.840.10008.5.1.4.1.1.1.1",
                    "patient_sex": "MF"[i % 2],
                    "patient_age": f"{age:03d}Y",
                    "body_part_examined": "KNEE",
                    "pixel_std": 350.0,
                    "distinct_values": 2900,
                    "saturated_fraction": 0.02,
                    "aspect_ratio": 1.22,
                    "patient_identity_removed": "YES",
                }
            )
    return pd.DataFrame(rows), pd.DataFrame(heads)


def run(manifest: pd.DataFrame, headers: pd.DataFrame, **kwargs):
    return validate_submission(manifest, headers, site="HX", submission_id="sub-1", **kwargs)


def test_clean_submission_passes_every_suite():
    report = run(*clean_frames())
    assert report.failures == []
    assert report.success
    assert set(report.stats) == {
        "manifest",
        "dicom_header",
        "deidentification",
        "image_qc",
        "cross_case",
        "cross_image",
    }
    assert all(s["failed"] == 0 and s["evaluated"] > 0 for s in report.stats.values())
    assert report.file_rows["HX/0002/1.dcm"] == 3


def _file(h: pd.DataFrame, name: str) -> pd.Series:
    return h["file"] == name


def inject_faults(m: pd.DataFrame, h: pd.DataFrame) -> pd.DataFrame:
    """Put one fault in each case (case i = manifest row i + 1); returns the new header frame."""
    m.at[1, "age"] = "214"  # impossible_age
    m.at[2, "age"] = "12y"  # impossible_age (not a number)
    m.at[3, "sex"] = "X"  # unknown_sex
    m.at[4, "diagnosis"] = "bone tumour"  # unknown_diagnosis
    m.at[5, "location"] = "elbow-ish"  # unknown_location
    m.at[6, "behaviour"] = "benign"  # label_contradicts_diagnosis (osteosarcoma)
    m.at[7, "modalities"] = "XR;PET"  # unknown_modality
    m.at[8, "case_id"] = "HX-0009"  # duplicate_case_id: row 10 repeats row 9's id
    h = h[h["patient_id"] != "P010"].reset_index(drop=True)  # row_without_images (row 11)
    h.loc[_file(h, "HX/0011/1.dcm"), "accession_number"] = "A999"  # images_without_row
    h.loc[h["patient_id"] == "P013", "modality"] = "MR"  # wrong_modality (declared XR)
    m.at[14, "modalities"] = "MR"  # no_radiograph (row 15)
    h.loc[h["patient_id"] == "P014", "modality"] = "MR"
    # image_in_two_cases: case 15's first image filed again under case 16.
    copy = h[_file(h, "HX/0015/0.dcm")].iloc[0].copy()
    copy[["file", "patient_id", "accession_number"]] = ["HX/0016/9.dcm", "P016", "A016"]
    h = pd.concat([h, copy.to_frame().T], ignore_index=True)
    m.at[17, "patient_id"] = "P018"  # inconsistent_sex: row 18 says M, row 19 (P018) says F
    h.loc[h["patient_id"] == "P017", "patient_id"] = "P018"
    h.loc[_file(h, "HX/0019/1.dcm"), "modality"] = "US"  # unsupported_modality
    h.loc[_file(h, "HX/0020/0.dcm"), "rows"] = 20000  # image_dimensions
    h.loc[_file(h, "HX/0020/1.dcm"), "bits_stored"] = 20  # bad_pixel_format
    h.loc[_file(h, "HX/0021/0.dcm"), "transfer_syntax_uid"] = "1.2.3.4.5"  # undecodable
    h.loc[_file(h, "HX/0021/1.dcm"), "patient_identity_removed"] = None  # identity_not_removed
    h.loc[_file(h, "HX/0022/1.dcm"), "pixel_std"] = 0.0  # blank_image
    h.loc[_file(h, "HX/0023/1.dcm"), "rows"] = 100  # tiny_image
    return h


# fault -> (suite, severity, row or None, file or None)
FAULTS = {
    "impossible_age": ("manifest", "error", 2, None),
    "impossible_age_text": ("manifest", "error", 3, None),
    "unknown_sex": ("manifest", "error", 4, None),
    "unknown_diagnosis": ("manifest", "error", 5, None),
    "unknown_location": ("manifest", "error", 6, None),
    "label_contradicts_diagnosis": ("manifest", "error", 7, None),
    "unknown_modality": ("manifest", "error", 8, None),
    "duplicate_case_id": ("manifest", "error", 10, None),
    "row_without_images": ("cross_case", "error", 11, None),
    "images_without_row": ("cross_image", "error", None, "HX/0011/1.dcm"),
    "wrong_modality": ("cross_case", "error", 14, None),
    "no_radiograph": ("cross_case", "error", 15, None),
    "image_in_two_cases": ("cross_image", "error", None, "HX/0015/0.dcm"),
    "image_in_two_cases_2": ("cross_image", "error", None, "HX/0016/9.dcm"),
    "inconsistent_sex": ("cross_case", "error", 18, None),
    "unsupported_modality": ("dicom_header", "error", None, "HX/0019/1.dcm"),
    "image_dimensions": ("dicom_header", "error", None, "HX/0020/0.dcm"),
    "bad_pixel_format": ("dicom_header", "error", None, "HX/0020/1.dcm"),
    "undecodable_transfer_syntax": ("dicom_header", "error", None, "HX/0021/0.dcm"),
    "identity_not_removed": ("deidentification", "error", None, "HX/0021/1.dcm"),
    "blank_image": ("image_qc", "error", None, "HX/0022/1.dcm"),
    "tiny_image": ("image_qc", "error", None, "HX/0023/1.dcm"),
}


@pytest.fixture(scope="module")
def faulty_report():
    """One validation of a 24-case submission carrying every fault (one GX run, not 20)."""
    m, h = clean_frames(24)
    h = inject_faults(m, h)
    return run(m, h)


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_is_caught_by_its_suite(faulty_report, fault):
    suite, severity, row, file = FAULTS[fault]
    reason = fault.removesuffix("_text").removesuffix("_2")
    report = faulty_report
    hits = [
        f
        for f in report.failures
        if f.reason == reason and (row is None or f.row == row) and (file is None or f.file == file)
    ]
    assert hits, f"{reason} not reported at {row or file}"
    assert {(f.suite, f.severity) for f in hits} == {(suite, severity)}
    hit = hits[0]
    if row is not None:
        assert hit.case_id and f"row {row}, case {hit.case_id}" in hit.message
        assert hit in report.errors_for_row(row)
    if file is not None:
        assert f"file {file}" in hit.message
        assert hit in report.errors_for_file(file)


def test_faults_do_not_spill_over(faulty_report):
    assert not faulty_report.success
    # Row 1 and the images of cases 0 and 12 are untouched.
    assert faulty_report.errors_for_row(1) == []
    assert faulty_report.errors_for_row(13) == []
    assert faulty_report.errors_for_file("HX/0000/0.dcm") == []
    assert faulty_report.warnings == []
    assert faulty_report.stats["manifest"]["records"] == 24


def test_age_message_names_value_and_fix(faulty_report):
    (failure,) = [f for f in faulty_report.errors if f.row == 2]
    assert failure.message == (
        "row 2, case HX-0001: age '214' is not a whole number of years within 0–100; "
        "correct the manifest and resubmit"
    )
    assert failure.field == "age" and failure.expectation == "expect_column_values_to_be_between"


def test_plausibility_and_qc_warnings_do_not_fail():
    m, h = clean_frames()
    m.at[0, "age"] = "71"  # osteosarcoma at 71
    m.at[1, "age"] = "8"  # giant cell tumour at 8
    m.at[2, "pathology_confirmed"] = "no"
    h.at[3, "saturated_fraction"] = 0.8
    h.at[4, "aspect_ratio"] = 6.0
    h.at[5, "imager_pixel_spacing"] = ""
    report = run(m, h)
    assert report.success, [f.message for f in report.errors]
    got = {(f.reason, f.row or f.file) for f in report.warnings}
    assert got == {
        ("implausible_age_for_diagnosis", 1),
        ("implausible_age_for_diagnosis", 2),
        ("pathology_unconfirmed", 3),
        ("saturated_image", "HX/0001/0.dcm"),
        ("extreme_aspect_ratio", "HX/0001/1.dcm"),
        ("missing_pixel_spacing", "HX/0001/2.dcm"),
    }


def test_optional_suites_are_skipped_without_their_columns():
    m, h = clean_frames()
    h = h.drop(columns=["patient_identity_removed", "pixel_std", "saturated_fraction"])
    report = run(m, h)
    assert report.success
    assert "deidentification" not in report.stats and "image_qc" not in report.stats


def test_missing_manifest_column_is_an_input_error():
    m, h = clean_frames()
    with pytest.raises(InputError, match="diagnosis"):
        run(m.drop(columns=["diagnosis"]), h)


def test_data_docs_index_is_written(tmp_path):
    m, h = clean_frames()
    m.at[1, "age"] = "214"
    report = run(m, h, docs_dir=tmp_path / "docs")
    assert report.data_docs_index == tmp_path / "docs" / "index.html"
    assert report.data_docs_index.is_file()
    pages = list((tmp_path / "docs" / "validations" / "manifest").rglob("*.html"))
    assert pages and "214" in pages[0].read_text(encoding="utf-8")
    # One page per suite that ran, every one linked from the index (built once per run).
    suites = set(report.stats)
    pages = list((tmp_path / "docs" / "validations").rglob("*.html"))
    assert {p.relative_to(tmp_path / "docs" / "validations").parts[0] for p in pages} == suites
    index = report.data_docs_index.read_text(encoding="utf-8")
    assert all(p.relative_to(tmp_path / "docs").as_posix() in index for p in pages)


def test_data_docs_mask_ids_and_paths_but_failures_name_the_real_record(tmp_path):
    # Hospitals name folders after the patient (ids, names) and use MRNs as case ids: GX must
    # not see them; the report still names the real file and case for the receipt.
    m, h = clean_frames(3)
    m["case_id"] = [f"MRN2024{i:04d}" for i in range(3)]
    m.at[1, "age"] = "214"
    h["file"] = [f"Doe_Jane_{i}/{p}/{a}/img{i}.dcm" for i, (p, a)
                 in enumerate(zip(h["patient_id"], h["accession_number"], strict=True))]
    h.at[4, "modality"] = "US"  # a failing file: its path is rendered
    names = {f"Doe_Jane_{i}" for i in range(len(h))}
    report = validate_submission(m, h, site="HX", submission_id="5", docs_dir=tmp_path / "d",
                                 identifiers=names)
    assert {(f.reason, f.row, f.case_id) for f in report.errors if f.row} >= {
        ("impossible_age", 2, "MRN20240001")}
    assert [f.file for f in report.errors if f.reason == "unsupported_modality"] == [h.at[4, "file"]]
    text = b"".join(p.read_bytes() for p in (tmp_path / "d").rglob("*.html")).decode()
    assert "214" in text and "[redacted]" in text
    values = {*m["case_id"], *h["patient_id"], *h["accession_number"], *h["sop_instance_uid"],
              *names}
    assert not [v for v in values if v in text]


def test_messages_do_not_quote_long_pasted_text():
    m, h = clean_frames(3)
    key = "dev-" + "3f9a0c" * 10  # a key file's line pasted into a cell
    m.at[1, "location"] = key
    report = validate_submission(m, h, site="HX", submission_id="8")
    [failure] = [f for f in report.errors if f.reason == "unknown_location"]
    assert failure.row == 2 and "64 characters, not shown" in failure.message
    assert "3f9a0c" not in " ".join(f.message for f in report.failures)


# --- image QC metrics ---------------------------------------------------------------------


def test_qc_metrics_on_blank_and_real_images():
    blank = qc_metrics(np.full((512, 400), 1000, dtype=np.uint16), bits_stored=12)
    assert blank["pixel_std"] == 0.0 and blank["distinct_values"] == 1
    rng = np.random.default_rng(0)
    image = rng.integers(0, 4096, size=(1024, 512), dtype=np.uint16)
    real = qc_metrics(image, bits_stored=12)
    assert real["pixel_std"] > 1000 and real["distinct_values"] > 1000
    assert real["aspect_ratio"] == 2.0 and real["saturated_fraction"] < 0.01
    clipped = image.copy()
    clipped[:700] = 4095
    assert qc_metrics(clipped, bits_stored=12)["saturated_fraction"] > 0.6
    # Multi-frame input uses its first frame.
    assert qc_metrics(np.stack([image, image]))["aspect_ratio"] == 2.0


# --- load_manifest ------------------------------------------------------------------------


def _write(tmp_path, text: str, encoding: str = "utf-8"):
    path = tmp_path / "manifest.csv"
    path.write_bytes(text.encode(encoding))
    return path


HEADER = ",".join(MANIFEST_COLUMNS)
LINE = "HX-0001,P1,A1,F,15,股骨远端,骨肉瘤,malignant,XR,yes"


def test_load_manifest_reads_utf8_with_bom_and_numbers_rows(tmp_path):
    path = _write(tmp_path, f"{HEADER}\n{LINE}\n{LINE.replace('0001', '0002')}\n", "utf-8-sig")
    frame = load_manifest(path)
    assert list(frame.columns) == ["row", *MANIFEST_COLUMNS]
    assert frame["row"].tolist() == [1, 2]
    assert frame.at[0, "location"] == "股骨远端" and frame.attrs["warnings"] == []


def _problems(frame, reason: str | None = None) -> list:
    return [p for p in frame.attrs["problems"] if reason is None or p.reason == reason]


def test_a_non_utf8_row_is_refused_and_the_utf8_rows_read_as_written(tmp_path):
    # The fault of #15: one row typed in a Western Windows encoding made the whole file read as
    # Latin-1, turning every Chinese row into mojibake (then unknown_location).
    utf8 = f"{HEADER}\n{LINE}\n".encode("utf-8-sig")  # offsets count the BOM's 3 bytes
    western = "HX-0002,P2,A2,F,15,fémur distal,osteosarcoma,,XR,yes\n".encode("cp1252")
    path = tmp_path / "manifest.csv"
    path.write_bytes(utf8 + western + LINE.replace("0001", "0003").encode() + b"\n")
    frame = load_manifest(path)
    assert frame["location"].tolist()[::2] == ["股骨远端", "股骨远端"]
    assert frame.at[0, "diagnosis"] == "骨肉瘤" and frame.attrs["encoding"] == "utf-8"
    [row] = [p for p in _problems(frame, "not_utf8") if p.row is not None]
    assert (row.row, row.field, row.severity) == (2, "location", "error")
    assert "row 2" in row.message and "location" in row.message and "UTF-8" in row.message
    assert "\ufffd" in frame.at[1, "location"]  # no guessed text goes downstream
    [note] = [p for p in _problems(frame, "not_utf8") if p.row is None]
    assert note.severity == "warning" and f"offset {len(utf8) + 20}" in note.message
    assert frame.attrs["warnings"] == [note.message]


def test_a_gb18030_manifest_is_refused_row_by_row_not_guessed(tmp_path):
    lines = [LINE.replace("0001", f"{i:04d}") for i in range(1, 4)]
    path = _write(tmp_path, HEADER + "\n" + "\n".join(lines) + "\nHX-0009,P9,A9,F,15,pelvis,"
                  "osteosarcoma,,XR,yes\n", "gb18030")
    frame = load_manifest(path)
    refused = {p.row for p in _problems(frame, "not_utf8") if p.row is not None}
    assert refused == {1, 2, 3}  # the ASCII row 4 is read
    assert "骨" not in "".join(frame["diagnosis"]) and frame.at[3, "location"] == "pelvis"
    assert all("Save As" in p.message for p in _problems(frame, "not_utf8"))


def test_load_manifest_reads_utf16_with_bom(tmp_path):
    path = _write(tmp_path, f"{HEADER}\n{LINE}\n", "utf-16")
    frame = load_manifest(path)
    assert frame.at[0, "location"] == "股骨远端" and not _problems(frame)


@pytest.mark.parametrize("cut", [1, -1])
def test_a_ragged_row_is_refused_with_its_number_and_does_not_shift_others(tmp_path, cut):
    bad = LINE.replace("0001", "0002") + ",extra" if cut > 0 else LINE.rsplit(",", 1)[0]
    path = _write(tmp_path, f"{HEADER}\n{LINE}\n{bad}\n{LINE.replace('0001', '0003')}\n")
    frame = load_manifest(path)
    [problem] = _problems(frame)
    assert (problem.reason, problem.row) == ("ragged_row", 2)
    assert "row 2 (line 3)" in problem.message and "header has 10" in problem.message
    assert frame.at[2, "case_id"] == "HX-0003" and frame.at[2, "pathology_confirmed"] == "yes"


def test_control_characters_are_refused_per_cell(tmp_path):
    rows = [LINE.replace("P1", "P\x001"), LINE.replace("0001", "0002").replace("XR", "X\x1bR"),
            LINE.replace("0001", "0003").replace("yes", "yes\t"),
            LINE.replace("0001", "0004").replace("股骨远端", '"distal\nfemur"'), LINE]
    frame = load_manifest(_write(tmp_path, HEADER + "\n" + "\n".join(rows) + "\n"))
    found = [(p.reason, p.row, p.field) for p in _problems(frame)]
    assert found == [("control_character", 1, "patient_id"), ("control_character", 2, "modalities"),
                     ("control_character", 4, "location")]
    assert "row 4 (line 5)" in frame.attrs["problems"][2].message  # where the record starts
    assert frame["row"].tolist() == [1, 2, 3, 4, 5]
    assert "U+0000" in frame.attrs["problems"][0].message
    assert "\x00" not in "".join(frame["patient_id"])  # tab (row 3) is allowed


def test_manifest_errors_never_echo_the_file(tmp_path):
    # A "manifest" that is a copy of the consortium key, and one that lost its header row.
    key = "dev-" + "3f9a0c" * 10
    for text in (key + "\n", "HX-0001,MRN-20240001,ACC777001,F,15,pelvis,x,,XR,yes\n"):
        with pytest.raises(InputError) as info:
            load_manifest(_write(tmp_path, text))
        message = str(info.value)
        assert "manifest.csv" in message and "header must be" in message
        assert not any(v in message for v in (key, "3f9a0c", "MRN-20240001", "ACC777001"))


def test_validate_submission_reports_manifest_problems_first(tmp_path):
    manifest, headers = clean_frames(3)
    path = _write(tmp_path, HEADER + "\n" + "\n".join(
        ",".join(str(r[c]) for c in MANIFEST_COLUMNS) for r in manifest.to_dict("records"))
        .replace("P001", "P0\x0001") + "\n")
    report = validate_submission(load_manifest(path), headers, site="HX", submission_id="7")
    assert report.errors[0].reason == "control_character" and report.errors[0].row == 2
    # Its images then match no row (images_without_row); no other row is touched.
    assert {f.row for f in report.errors if f.row is not None} == {2}


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (HEADER.replace(",diagnosis", ""), "missing column\\(s\\) diagnosis"),
        (HEADER + ",mrn", "unexpected column\\(s\\) mrn"),
    ],
)
def test_load_manifest_column_errors_name_file_and_columns(tmp_path, header, expected):
    path = _write(tmp_path, header + "\n")
    with pytest.raises(InputError, match=expected) as info:
        load_manifest(path)
    assert str(path) in str(info.value) and "header must be" in str(info.value)


def test_load_manifest_empty_and_missing_files(tmp_path):
    with pytest.raises(InputError, match="empty"):
        load_manifest(_write(tmp_path, "  \n"))
    with pytest.raises(InputError, match="not found"):
        load_manifest(tmp_path / "nope.csv")


# --- load_headers (standalone `bonebase validate` on a folder) -----------------------------


def _write_dx(path, *, pixels: np.ndarray) -> None:
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
    meta.MediaStorageSOPInstanceUID = "2.25.77"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, "2.25.77"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "2.25.7", "2.25.7.1"
    ds.PatientID, ds.AccessionNumber, ds.Modality = "P1", "A1", "DX"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.ImagerPixelSpacing = [0.14, 0.14]
    ds.PixelData = pixels.astype("<u2").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def test_load_headers_reads_files_and_reports_file_faults(tmp_path):
    from validation import load_headers

    rng = np.random.default_rng(1)
    _write_dx(tmp_path / "P1" / "img1.dcm", pixels=rng.integers(0, 4096, (300, 260)))
    (tmp_path / "P1" / "z_copy.dcm").write_bytes((tmp_path / "P1" / "img1.dcm").read_bytes())
    data = (tmp_path / "P1" / "img1.dcm").read_bytes()
    (tmp_path / "P1" / "cut.dcm").write_bytes(data[: len(data) // 2])
    (tmp_path / "notes.txt").write_text("scan notes")
    (tmp_path / "manifest.csv").write_text(HEADER + "\n")

    headers, faults = load_headers(tmp_path)
    assert headers["file"].tolist() == ["P1/img1.dcm"]
    assert headers.at[0, "pixel_std"] > 500 and headers.at[0, "aspect_ratio"] > 1.1
    got = {(f.reason, f.file) for f in faults}
    assert got == {
        ("corrupt_file", "P1/cut.dcm"),
        ("duplicate_file", "P1/z_copy.dcm"),
        ("non_dicom", "notes.txt"),
    }
    assert all(f.severity == "error" and f.file in f.message for f in faults)
    # #17 point 11: the reader named a file given as bytes '<bytes>', which led the messages.
    assert not [f.message for f in faults if "<bytes>" in f.message]
    assert all(f.message.startswith(f"file {f.file}: ") for f in faults)


def test_first_row_of_a_repeated_case_id_stands(faulty_report):
    """Only the later row repeating a case id is rejected; the first row keeps its images."""
    rows = {f.row for f in faulty_report.failures if f.reason == "duplicate_case_id"}
    assert rows == {10}


def test_an_empty_id_is_named_by_its_column(tmp_path):
    # #17 point 1: the receipt said "row 2, case HX-0002: ? is empty".
    from pathlib import Path

    from validation.header_suite import REQUIRED

    root = Path(__file__).resolve().parents[2]
    template = (root / "docs" / "manifest-template.csv").read_text().splitlines()
    template[2] = template[2].replace("23456789", "")  # row 2 loses its patient_id
    (tmp_path / "manifest.csv").write_text("\n".join(template) + "\n")
    report = validate_submission(load_manifest(tmp_path / "manifest.csv"),
                                 pd.DataFrame(columns=list(REQUIRED)), site="HX", submission_id="e")
    empty = [f.message for f in report.failures if f.reason == "missing_value"]
    assert empty == ["row 2, case HX-0002: patient_id is empty; fill it in and resubmit"]
