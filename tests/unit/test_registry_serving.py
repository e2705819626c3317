"""What goes into the BentoML model store with a deployed model."""

from bonebase.release.serving import bento_version, clean_metadata


def test_bentoml_metadata_drops_none_and_nan():
    metrics = {"test": {"auc": 0.8, "sites": [{"site": "BOS", "auc": None}], "ece": float("nan")},
               "external": None}  # fmt: skip
    assert clean_metadata({"metrics": metrics}) == {
        "metrics": {"test": {"auc": 0.8, "sites": [{"site": "BOS"}]}}
    }


def test_bento_version_names_registry_id_and_hash():
    assert bento_version(7, "ABCDEF0123456789" * 4) == "m7-abcdef012345"
