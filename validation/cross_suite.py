"""Cross-record checks of one submission: manifest rows against DICOM images.

The two prepared frames are joined once in pandas (``build_cross_frames``) into a case frame (one
row per manifest row, with image counts and modalities) and an image frame (one row per file,
with the case it joined to); the suites below are plain column checks on those frames.
"""

from __future__ import annotations

import great_expectations as gx
import pandas as pd
from great_expectations.expectations.row_conditions import Column

from validation.image_qc import XRAY_MODALITIES
from validation.manifest_suite import declared_modalities, meta

CASE_SUITE = "cross_case"
IMAGE_SUITE = "cross_image"


def _study_type(modality: str) -> str:
    """DICOM modality -> manifest study type (CR/DX are both 'XR')."""
    return "XR" if modality in XRAY_MODALITIES else modality


def build_cross_frames(
    manifest: pd.DataFrame, headers: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(case frame, image frame) from the prepared manifest and header frames.

    Which rows an image belongs to comes from :mod:`bonebase.ingest.match` (the one
    implementation ingest uses too): from the ``match_rows``/``match_why`` columns that
    ``match.annotate`` adds (the submission's rule), else matched here by the default rule.
    """
    from bonebase.ingest import match

    if "match_rows" not in headers:
        matching = match.match(manifest.to_dict("records"), match.images_of_frame(headers))
        manifest, headers = match.annotate(manifest, headers, matching)
    # Rows repeating an earlier case id are rejected by the manifest suite; they count no images.
    first = manifest[~manifest["case_id_repeated"]] if "case_id_repeated" in manifest else manifest
    keys = ["patient_id", "accession_number"]
    rows = first[["row", "case_id", *keys, "modalities", "modalities_norm", "sex_code",
                  "match_why"]].astype({"row": "int64"})
    images = headers[["file", "sop_instance_uid", *keys, "modality", "match_rows",
                      "match_why"]].copy()
    images["study_type"] = images["modality"].map(_study_type)
    # One (file, row) pair per row an image matched.
    listed = images["match_rows"].fillna("").astype(str)  # an empty frame's column is float
    pairs = images.assign(row=listed.str.split(";")).explode("row")
    pairs = pairs[pairs["row"].fillna("") != ""].astype({"row": "int64"})
    case_ids = manifest[["row", "case_id"]].astype({"row": "int64"})
    matched = pairs.merge(case_ids, on="row", how="left")

    # Image frame: one row per file with its first row; n_cases counts the cases its SOP
    # Instance UID reached, through rows sharing a key or the same image filed under two cases.
    # Count case ids, not rows: two rows sharing a case id are already duplicate_case_id.
    case_key = matched["case_id"].fillna("row " + matched["row"].astype(str))
    n_cases = case_key.groupby(matched["sop_instance_uid"]).nunique()
    first_row = matched.drop_duplicates(subset="file").set_index("file")
    image_frame = images.drop_duplicates(subset="file").copy()
    image_frame["row"] = image_frame["file"].map(first_row["row"]).astype(float)
    image_frame["case_id"] = image_frame["file"].map(first_row["case_id"])
    image_frame["n_cases"] = image_frame["sop_instance_uid"].map(n_cases).fillna(0).astype(int)

    counted = matched[matched["row"].isin(rows["row"])]
    per_case = counted.groupby("row").agg(
        n_images=("file", "nunique"),
        n_xray=("study_type", lambda s: int((s == "XR").sum())),
        image_modalities=("study_type", lambda s: ";".join(sorted(set(s)))),
    )
    cases = rows.merge(per_case, left_on="row", right_index=True, how="left")
    cases["n_images"] = cases["n_images"].fillna(0).astype(int)
    cases["n_xray"] = cases["n_xray"].fillna(0).astype(int)
    cases["image_modalities"] = cases["image_modalities"].fillna("")
    cases["modalities_agree"] = [
        declared_modalities(d) == declared_modalities(o)
        for d, o in zip(cases["modalities_norm"], cases["image_modalities"], strict=True)
    ]
    # Distinct valid sexes per patient id within this submission (invalid ones are flagged by
    # the manifest suite already and would only double-report here).
    valid_sex = cases[cases["sex_code"].isin(["M", "F", "O"])]
    sexes = valid_sex.dropna(subset=["patient_id"]).groupby("patient_id")["sex_code"].nunique()
    cases["patient_sexes"] = cases["patient_id"].map(sexes).fillna(0).astype(int)
    return cases.reset_index(drop=True), image_frame.reset_index(drop=True)


def build_case_suite() -> gx.ExpectationSuite:
    """Checks per manifest row against the images that joined to it."""
    E = gx.expectations
    has_images = Column("n_images") > 0
    suite = gx.ExpectationSuite(name=CASE_SUITE)
    # Consistency: a row with no image is a case the database cannot show or train on.
    suite.add_expectation(
        E.ExpectColumnValuesToBeBetween(
            column="n_images",
            min_value=1,
            meta=meta("error", "row_without_images", "patient_id"),
        )
    )
    # Consistency: the manifest's declared study types must match what was sent, else either the
    # manifest or the upload is wrong (e.g. "XR" declared, only MR received).
    suite.add_expectation(
        E.ExpectColumnValuesToBeInSet(
            column="modalities_agree",
            value_set=[True],
            row_condition=has_images,
            meta=meta("error", "wrong_modality", "modalities"),
        )
    )
    # Schema of the database: every case needs a radiograph (the model's input); checked where
    # the declaration agrees, as a disagreement is already reported as wrong_modality.
    suite.add_expectation(
        E.ExpectColumnValuesToBeBetween(
            column="n_xray",
            min_value=1,
            row_condition=has_images & (Column("modalities_agree") == True),  # noqa: E712
            meta=meta("error", "no_radiograph", "modalities"),
        )
    )
    # Consistency: one patient has one sex; a change between cases means a typo or mixed ids.
    suite.add_expectation(
        E.ExpectColumnValuesToBeBetween(
            column="patient_sexes", max_value=1, meta=meta("error", "inconsistent_sex", "sex")
        )
    )
    return suite


def build_image_suite() -> gx.ExpectationSuite:
    """Checks per DICOM file against the manifest rows."""
    E = gx.expectations
    suite = gx.ExpectationSuite(name=IMAGE_SUITE)
    # Consistency: an image no row claims has no label and no consent trail; quarantine it.
    suite.add_expectation(
        E.ExpectColumnValuesToNotBeNull(
            column="row", meta=meta("error", "images_without_row", "patient_id")
        )
    )
    # Leak/consistency: one image in two cases would put it on both sides of a split.
    suite.add_expectation(
        E.ExpectColumnValuesToBeBetween(
            column="n_cases",
            max_value=1,
            meta=meta("error", "image_in_two_cases", "sop_instance_uid"),
        )
    )
    return suite
