"""Clinical-only baseline: logistic regression on age, sex and location region, fitted on train.

An image model is worth its cost only if it beats what the request form already says; the
evaluation compares both on the same cases with the paired DeLong test.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from bonebase.errors import InputError

FEATURES = ("age", "sex", "region")


def _design(cases: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in FEATURES if c not in cases.columns]
    if missing:
        raise InputError(f"baseline needs case columns {missing}; labels.csv must carry them")
    x = pd.DataFrame(
        {
            "age": pd.to_numeric(cases["age"], errors="coerce"),
            "sex": cases["sex"].fillna("").astype(str),
            "region": cases["region"].fillna("").astype(str),
        }
    )
    return x


def fit_baseline(cases: pd.DataFrame, *, seed: int = 0) -> Pipeline:
    """Fit the baseline on case rows (columns age, sex, region, y); returns the pipeline."""
    y = np.asarray(cases["y"], dtype=int)
    if len(np.unique(y)) < 2:
        raise InputError("baseline: the training cases hold one class only; cannot fit")
    prep = ColumnTransformer(
        [
            ("age", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), ["age"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["sex", "region"]),
        ]
    )
    # Balanced weights mirror the image model's weighted loss, so both aim at the same target.
    model = LogisticRegression(max_iter=2000, class_weight="balanced", random_state=seed)
    return make_pipeline(prep, model).fit(_design(cases), y)


def baseline_scores(model: Pipeline, cases: pd.DataFrame) -> np.ndarray:
    """P(class 1) from the clinical baseline for each case row."""
    return model.predict_proba(_design(cases))[:, 1]
