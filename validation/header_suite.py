"""DICOM header suite: modality, geometry, pixel format, decodability, de-identification.

Runs on the header frame (one row per instance, from ``bonebase.dicom.read.header_record``).
``prepare_headers`` adds the derived columns (spacing present, decodable transfer syntax, ...)
computed once per distinct value, so GX checks plain columns.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import great_expectations as gx
import pandas as pd
from great_expectations.expectations.row_conditions import Column
from pydicom.uid import UID, ImplicitVRLittleEndian

from bonebase.errors import InputError
from validation.image_qc import XRAY_MODALITIES
from validation.manifest_suite import meta

SUITE = "dicom_header"
DEID_SUITE = "deidentification"
MODALITIES = ("CR", "DX", "CT", "MR")
PHOTOMETRIC = ("MONOCHROME1", "MONOCHROME2", "RGB", "YBR_FULL", "YBR_FULL_422", "PALETTE COLOR")
MIN_PIXELS, MAX_PIXELS = 64, 8192
INDEX_COLUMNS = ["file"]
REQUIRED = (
    "file",
    "sop_instance_uid",
    "patient_id",
    "accession_number",
    "modality",
    "rows",
    "columns",
    "bits_allocated",
    "bits_stored",
    "photometric_interpretation",
    "pixel_spacing",
    "imager_pixel_spacing",
    "transfer_syntax_uid",
)


@cache
def transfer_syntax_decodable(uid: str | None) -> bool:
    """Whether the installed pydicom pixel handlers can decode this transfer syntax."""
    from pydicom.pixels import get_decoder

    # A file without a meta header is read as Implicit VR Little Endian by pydicom.
    uid = UID(uid or ImplicitVRLittleEndian)
    try:
        return bool(get_decoder(uid).is_available)
    except NotImplementedError:
        return False


def _present(value: Any) -> bool:
    """A spacing value counts when it has content: '0.1\\0.1', [0.1, 0.1], MultiValue."""
    if value is None or (isinstance(value, float) and value != value):
        return False
    if isinstance(value, str):
        return value.strip() != ""
    try:
        return len(value) > 0
    except TypeError:
        return True


def prepare_headers(headers: pd.DataFrame) -> pd.DataFrame:
    """Copy of the header frame with normalised text and the derived columns the suites check."""
    missing = [c for c in REQUIRED if c not in headers.columns]
    if missing:
        raise InputError(
            f"header frame lacks column(s) {', '.join(missing)}; build it with "
            "bonebase.dicom.read.header_record for every file"
        )
    df = headers.copy()
    for col in ("modality", "photometric_interpretation"):
        df[col] = df[col].astype("string").fillna("").str.strip().str.upper().astype(object)
    for col in ("patient_id", "accession_number", "sop_instance_uid"):
        text = df[col].astype("string").str.strip()
        df[col] = text.where(text != "", None).astype(object)
    for col in ("rows", "columns", "bits_allocated", "bits_stored"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    df["has_spacing"] = df["pixel_spacing"].map(_present) | df["imager_pixel_spacing"].map(_present)
    uids = df["transfer_syntax_uid"].astype("string").str.strip()
    df["transfer_syntax_uid"] = uids.where(uids != "", None).astype(object)
    df["ts_decodable"] = df["transfer_syntax_uid"].map(transfer_syntax_decodable)
    df["min_side"] = df[["rows", "columns"]].min(axis=1)
    if "aspect_ratio" not in df.columns:
        df["aspect_ratio"] = df[["rows", "columns"]].max(axis=1) / df["min_side"].clip(lower=1)
    if "saturated_fraction" in df.columns:
        df["saturated_pct"] = pd.to_numeric(df["saturated_fraction"], errors="coerce") * 100
    # Names the empty key in the missing_value message (the runner passes the record only).
    df["empty_fields"] = df["sop_instance_uid"].map(
        lambda v: "SOPInstanceUID (0008,0018)" if v is None or v != v or str(v).strip() == ""
        else None)
    return df


def build_header_suite() -> gx.ExpectationSuite:
    """The DICOM header suite (not yet added to a context)."""
    E = gx.expectations
    suite = gx.ExpectationSuite(name=SUITE)
    add = suite.add_expectation
    # Schema: the platform stores and models radiographs, CT and MR only.
    add(
        E.ExpectColumnValuesToBeInSet(
            column="modality",
            value_set=list(MODALITIES),
            meta=meta("error", "unsupported_modality", "modality"),
        )
    )
    # Consistency: the SOP Instance UID keys the instance (idempotent ingest, dedup).
    add(
        E.ExpectColumnValuesToNotBeNull(
            column="sop_instance_uid", meta=meta("error", "missing_value", "sop_instance_uid")
        )
    )
    # Measurement (warning): without spacing lesion sizes cannot be given in millimetres.
    add(
        E.ExpectColumnValuesToBeInSet(
            column="has_spacing",
            value_set=[True],
            row_condition=Column("modality").is_in(list(XRAY_MODALITIES)),
            meta=meta("warning", "missing_pixel_spacing", "pixel_spacing"),
        )
    )
    # Schema: sizes outside this range are thumbnails, broken headers or not images at all.
    for col in ("rows", "columns"):
        add(
            E.ExpectColumnValuesToBeBetween(
                column=col,
                min_value=MIN_PIXELS,
                max_value=MAX_PIXELS,
                meta=meta("error", "image_dimensions", col),
            )
        )
        add(
            E.ExpectColumnValuesToNotBeNull(column=col, meta=meta("error", "image_dimensions", col))
        )
    # Schema: the pixel pipeline handles 8/16-bit storage only, with BitsStored within it.
    add(
        E.ExpectColumnValuesToBeInSet(
            column="bits_allocated",
            value_set=[8, 16],
            meta=meta("error", "bad_pixel_format", "bits_allocated"),
        )
    )
    add(
        E.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="bits_allocated",
            column_B="bits_stored",
            or_equal=True,
            ignore_row_if="either_value_is_missing",
            meta=meta("error", "bad_pixel_format", "bits_stored"),
        )
    )
    # Schema: an unknown photometric interpretation cannot be normalised to greyscale.
    add(
        E.ExpectColumnValuesToBeInSet(
            column="photometric_interpretation",
            value_set=list(PHOTOMETRIC),
            meta=meta("error", "bad_pixel_format", "photometric_interpretation"),
        )
    )
    # Decodability: a file whose pixels cannot be decoded here cannot be QC'd or trained on.
    add(
        E.ExpectColumnValuesToBeInSet(
            column="ts_decodable",
            value_set=[True],
            meta=meta("error", "undecodable_transfer_syntax", "transfer_syntax_uid"),
        )
    )
    return suite


def build_deid_suite() -> gx.ExpectationSuite:
    """Leak check run after de-identification (needs ``patient_identity_removed``)."""
    suite = gx.ExpectationSuite(name=DEID_SUITE)
    # Leak: PS3.15 requires PatientIdentityRemoved=YES once the profile ran; anything else means
    # the file skipped de-identification and must not reach storage.
    suite.add_expectation(
        gx.expectations.ExpectColumnValuesToBeInSet(
            column="patient_identity_removed",
            value_set=["YES"],
            meta=meta("error", "identity_not_removed", "patient_identity_removed"),
        )
    )
    return suite
