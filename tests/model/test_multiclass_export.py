"""The export carries BTXRD's tasks and the stored lesion outlines (#20): a normal image and an
outlined osteosarcoma image in the database come out with both task columns and the outline in
the exported image's pixels (real PostgreSQL, the real export and pixel pipeline)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from bonebase.dataset.export import export
from bonebase.ingest.annotations import Shape, store_annotations
from bonebase.storage import LocalStore

ROWS, COLUMNS = 200, 100  # stored image: portrait, so the export pads left and right


def _dicom(seed: int) -> bytes:
    import io

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # DX for presentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("x", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = (
        meta.MediaStorageSOPClassUID,
        meta.MediaStorageSOPInstanceUID,
    )
    ds.Modality, ds.PhotometricInterpretation = "DX", "MONOCHROME2"
    ds.Rows, ds.Columns, ds.SamplesPerPixel = ROWS, COLUMNS, 1
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.random.default_rng(seed).integers(0, 255, (ROWS, COLUMNS), np.uint8).tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _case(db, store, site: int, n: int, diagnosis: str, behaviour: str) -> tuple[int, str]:
    patient = db.execute(
        "INSERT INTO patients (site_id, pseudonym) VALUES (%s, %s) RETURNING id", (site, f"p{n}")
    ).fetchone()["id"]
    case = db.execute(
        "INSERT INTO cases (site_id, patient_id, case_pseudonym, row_hash, diagnosis_code,"
        " behaviour, location_code, age, sex) VALUES (%s, %s, %s, %s, %s, %s, 'distal_femur',"
        " 15, 'F') RETURNING id",
        (site, patient, f"c{n}", f"h{n}", diagnosis, behaviour),
    ).fetchone()["id"]
    study = db.execute(
        "INSERT INTO studies (case_id, study_uid) VALUES (%s, %s) RETURNING id", (case, f"1.2.{n}")
    ).fetchone()["id"]
    series = db.execute(
        "INSERT INTO series (study_id, series_uid, modality) VALUES (%s, %s, 'DX') RETURNING id",
        (study, f"1.3.{n}"),
    ).fetchone()["id"]
    data = _dicom(n)
    info = store.put_bytes(f"obj/{n}", data)
    instance = db.execute(
        "INSERT INTO instances (series_id, sop_instance_uid, sha256, source_sha256, object_key,"
        " size_bytes, modality, rows, columns) VALUES (%s, %s, %s, %s, %s, %s, 'DX', %s, %s)"
        " RETURNING id",
        (series, f"1.4.{n}", info.sha256, f"src{n}", f"obj/{n}", len(data), ROWS, COLUMNS),
    ).fetchone()["id"]
    return instance, info.sha256


def test_export_has_task_columns_and_outlines_in_exported_pixels(db, tmp_path):
    store = LocalStore(tmp_path / "store")
    site = db.execute(
        "INSERT INTO sites (code, name) VALUES ('BTXRD1', 'centre 1') RETURNING id"
    ).fetchone()["id"]
    _, normal_sha = _case(db, store, site, 1, "normal", "normal")
    tumour, tumour_sha = _case(db, store, site, 2, "osteosarcoma", "malignant")
    store_annotations(
        db,
        instance_id=tumour,
        shapes=[
            Shape("polygon", "osteosarcoma", ((10.0, 20.0), (60.0, 20.0), (60.0, 80.0))),
            Shape("rectangle", "osteosarcoma", ((5.0, 15.0), (65.0, 90.0))),
        ],
    )
    db.commit()
    summary = export(db, store, tmp_path / "data", size=64, bits=8, modalities=["DX"])
    assert summary.n_images == 2 and summary.counts["outlined"] == {"images": 1}
    assert summary.counts["normal_benign_malignant"] == {"0": 1, "2": 1}
    labels = pd.read_csv(tmp_path / "data/labels.csv", dtype=str, keep_default_na=False)
    rows = labels.set_index("instance_id")
    normal, tumour_row = rows.loc[normal_sha], rows.loc[tumour_sha]
    assert (normal["tumour_vs_normal"], normal["normal_benign_malignant"]) == ("0", "0")
    assert (normal["benign_vs_malignant"], normal["lesion_outline"]) == ("", "")
    assert tumour_row["tumour_vs_normal"] == "1" and tumour_row["benign_vs_malignant"] == "1"
    assert tumour_row["normal_benign_malignant"] == "2"
    # 200 x 100 at 64 px: scale 0.32, 16 px of padding on the left.
    assert json.loads(tumour_row["lesion_outline"]) == [[[19.2, 6.4], [35.2, 6.4], [35.2, 25.6]]]
    assert tumour_row["lesion_box"] == "17.6 4.8 36.8 28.8"
