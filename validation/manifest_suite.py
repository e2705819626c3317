"""Clinical manifest suite: schema, vocabulary and plausibility checks on manifest.csv rows.

Vocabulary checks run on derived columns (``diagnosis_code``, ``location_code``, ...) computed by
``prepare_manifest`` from ``bonebase.vocab`` — one lookup per distinct term, not per row — so the
vocabulary lives in one place and GX only checks "is it null / in the set".
"""

from __future__ import annotations

from typing import Any

import great_expectations as gx
import pandas as pd
from great_expectations.expectations.row_conditions import Column

from bonebase import vocab
from bonebase.errors import InputError
from bonebase.formats import MANIFEST_COLUMNS, SEXES

SUITE = "manifest"

MODALITIES = ("XR", "CT", "MR")
_SEX_WORDS = {"MALE": "M", "FEMALE": "F", "OTHER": "O", "男": "M", "女": "F"}
# Only missing ids are null; an empty sex or age stays "" so vocabulary checks flag it.
_ID_COLUMNS = ("case_id", "patient_id", "accession_number")
_REQUIRED_IDS = ("case_id", "patient_id")
INDEX_COLUMNS = ["row", "case_id"]


def meta(severity: str, reason: str, field: str | None) -> dict[str, Any]:
    """Expectation meta read back by the runner: how bad, which reason code, which column."""
    return {"severity": severity, "reason": reason, "field": field}


def _text(series: pd.Series) -> pd.Series:
    """Column as stripped strings; NaN/None become ""."""
    return series.astype("string").fillna("").str.strip().astype(object)


def _lookup(series: pd.Series, fn) -> pd.Series:
    """Apply a vocabulary lookup once per distinct value (manifests repeat terms a lot)."""
    table = {v: fn(v) for v in series.unique()}
    return series.map(table)


def prepare_manifest(manifest: pd.DataFrame) -> pd.DataFrame:
    """Copy of the manifest with stripped text and the derived columns the suite checks.

    Raises InputError when a required column is missing (the frame does not follow the format).
    """
    missing = [c for c in (*MANIFEST_COLUMNS, "row") if c not in manifest.columns]
    if missing:
        raise InputError(
            f"manifest frame lacks column(s) {', '.join(missing)}; build it with "
            "validation.load_manifest or give every column of the submission format"
        )
    df = manifest.copy()
    for col in MANIFEST_COLUMNS:
        df[col] = _text(df[col])
    for col in _ID_COLUMNS:
        df[col] = df[col].where(df[col] != "", None)
    df["row"] = pd.to_numeric(df["row"], errors="coerce").astype("Int64")
    # Names the empty id in the missing_value message, which the runner renders from the row's
    # values alone (it said "? is empty").
    df["empty_fields"] = [", ".join(c for c in _REQUIRED_IDS if pd.isna(values[c])) or None
                          for values in df[list(_REQUIRED_IDS)].to_dict("records")]
    # The first row with a case id stands; a later one repeating it is the error (a site that
    # corrects a case resubmits it, it does not add a second row).
    df["case_id_repeated"] = df["case_id"].notna() & df["case_id"].duplicated(keep="first")

    sex = df["sex"].str.upper()
    df["sex_code"] = sex.map(lambda s: _SEX_WORDS.get(s, s))

    age = pd.to_numeric(df["age"], errors="coerce")
    # Only whole years count: "12.5" or "12y" is a data-entry problem the site must fix.
    df["age_years"] = age.where(age.notna() & (age == age.round()))

    location = _lookup(df["location"], vocab.lookup_location)
    df["location_code"] = location.map(lambda loc: loc.code if loc else None)

    diagnosis = _lookup(df["diagnosis"], vocab.lookup_diagnosis)
    df["diagnosis_code"] = diagnosis.map(lambda d: d.code if d else None)
    df["diagnosis_behaviour"] = diagnosis.map(lambda d: str(d.behaviour) if d else None)
    behaviour = df["behaviour"].str.lower()
    df["behaviour_norm"] = behaviour.where(behaviour != "", None)

    df["modalities_norm"] = _lookup(df["modalities"], _norm_modalities)
    df["pathology_norm"] = df["pathology_confirmed"].str.lower()
    return df


def _norm_modalities(text: str) -> str:
    """'xr; MR' -> 'MR;XR' (sorted, de-duplicated) so sets compare as strings."""
    tokens = {t.strip().upper() for t in str(text).replace(",", ";").split(";") if t.strip()}
    return ";".join(sorted(tokens))


def declared_modalities(normed: str) -> frozenset[str]:
    return frozenset(t for t in normed.split(";") if t)


def build_manifest_suite() -> gx.ExpectationSuite:
    """The manifest suite (not yet added to a context)."""
    E = gx.expectations
    suite = gx.ExpectationSuite(name=SUITE)
    add = suite.add_expectation

    # Schema: the runner and ingest rely on every column of the submission format.
    add(
        E.ExpectTableColumnsToMatchSet(
            column_set=[*MANIFEST_COLUMNS, "row"],
            exact_match=False,
            meta=meta("error", "missing_column", None),
        )
    )
    # Schema/consistency: ids key the case and the patient; an empty one orphans the row. An
    # empty accession_number is allowed: the row then matches its patient's images that have no
    # AccessionNumber, and other match rules do not use it (bonebase.ingest.match).
    for col in _REQUIRED_IDS:
        add(E.ExpectColumnValuesToNotBeNull(column=col, meta=meta("error", "missing_value", col)))
    # Consistency: a case id names one case within a site; two rows with it cannot both be right.
    add(
        E.ExpectColumnValuesToBeInSet(
            column="case_id_repeated",
            value_set=[False],
            meta=meta("error", "duplicate_case_id", "case_id"),
        )
    )
    # Vocabulary: sex is a model input and a consistency key; controlled set M/F/O.
    add(
        E.ExpectColumnValuesToBeInSet(
            column="sex_code", value_set=list(SEXES), meta=meta("error", "unknown_sex", "sex")
        )
    )
    # Schema: age must parse as whole years (null = did not parse)...
    add(
        E.ExpectColumnValuesToNotBeNull(
            column="age_years", meta=meta("error", "impossible_age", "age")
        )
    )
    # ...and be humanly possible; 214 or -3 is a typo, not a patient.
    add(
        E.ExpectColumnValuesToBeBetween(
            column="age_years",
            min_value=0,
            max_value=100,
            meta=meta("error", "impossible_age", "age"),
        )
    )
    # Vocabulary: location decides the os_vs_gct population (knee) and is a stratum.
    add(
        E.ExpectColumnValuesToNotBeNull(
            column="location_code", meta=meta("error", "unknown_location", "location")
        )
    )
    # Vocabulary: the diagnosis is the label; an unknown term cannot be mapped to a class.
    add(
        E.ExpectColumnValuesToNotBeNull(
            column="diagnosis_code", meta=meta("error", "unknown_diagnosis", "diagnosis")
        )
    )
    # Consistency: a site's own benign/malignant label must agree with the WHO behaviour of the
    # diagnosis, else one of the two is wrong and the label cannot be trusted.
    add(
        E.ExpectColumnPairValuesToBeEqual(
            column_A="behaviour_norm",
            column_B="diagnosis_behaviour",
            ignore_row_if="either_value_is_missing",
            meta=meta("error", "label_contradicts_diagnosis", "behaviour"),
        )
    )
    # Vocabulary: declared study types drive the modality cross-check.
    add(
        E.ExpectColumnValuesToMatchRegex(
            column="modalities_norm",
            regex=r"^(?:CT|MR|XR)(?:;(?:CT|MR|XR))*$",
            meta=meta("error", "unknown_modality", "modalities"),
        )
    )
    # Label quality: unconfirmed diagnoses are accepted but flagged (excluded from training).
    add(
        E.ExpectColumnValuesToBeInSet(
            column="pathology_norm",
            value_set=["yes"],
            meta=meta("warning", "pathology_unconfirmed", "pathology_confirmed"),
        )
    )
    # Plausibility (warning): conventional osteosarcoma peaks in adolescence; at 60+ it is rare
    # (secondary/Paget) and more often an age or diagnosis typo.
    add(
        E.ExpectColumnValuesToBeBetween(
            column="age_years",
            max_value=59,
            row_condition=Column("diagnosis_code").is_in(sorted(vocab.OSTEOSARCOMA_CODES)),
            meta=meta("warning", "implausible_age_for_diagnosis", "age"),
        )
    )
    # Plausibility (warning): giant cell tumour arises after skeletal maturity; under 10 is rare.
    add(
        E.ExpectColumnValuesToBeBetween(
            column="age_years",
            min_value=10,
            row_condition=Column("diagnosis_code").is_in(sorted(vocab.GCT_CODES)),
            meta=meta("warning", "implausible_age_for_diagnosis", "age"),
        )
    )
    return suite
