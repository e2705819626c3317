"""Prefect flow `version-dataset`: cut the next dataset version from the database.

Thin by design: the work (export, split, dvc add/commit/push, the dataset_versions row) is
:func:`bonebase.dataset.versioning.version_dataset`, which holds the workspace's file lock, so
two runs on one workspace wait for each other rather than collide on DVC's repository lock.
This entry point is where params.yaml is read.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from bonebase.config import get_settings
from bonebase.dataset.versioning import ExportParams, SplitParams, Target, default_target
from bonebase.errors import ConfigError


def load_params(path: Path | str | None) -> tuple[ExportParams, SplitParams]:
    """The export and split parameters of a params.yaml (defaults when ``path`` is None)."""
    if path is None:
        return ExportParams(), SplitParams()
    try:
        params = yaml.safe_load(Path(path).read_text()) or {}
        exp, spl = params.get("export", {}), params.get("split", {})
        export = ExportParams(
            size=int(exp.get("size", 256)),
            bits=int(exp.get("bits", 16)),
            modalities=tuple(exp.get("modalities", ("CR", "DX"))),
            intermediate_as=str(exp.get("intermediate_as", "benign")),
        )
        split = SplitParams(
            seed=int(spl.get("seed", 7)),
            val_fraction=float(spl.get("val_fraction", 0.15)),
            test_fraction=float(spl.get("test_fraction", 0.15)),
            external_sites=tuple(spl.get("external_sites") or ()),
            stratify=str(params.get("task", "benign_vs_malignant")),
        )
    except (OSError, yaml.YAMLError, AttributeError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"cannot read the export/split sections of {path} ({exc}); "
            "fix params.yaml (see the repository's params.yaml)"
        ) from None
    return export, split


# No parameter of a flow or task here is a secret or holds one (Settings, DATABASE_URL): Prefect
# stores flow-run parameters in its database, UI and API; they are read from the environment
# inside the task instead.
@task(name="cut-version", cache_policy=NO_CACHE)
def cut_version(
    target: Target,
    export: ExportParams,
    split: SplitParams,
    truth_dir: str | None,
) -> dict:
    """Export, commit, push and record one dataset version (or none when nothing changed)."""
    from bonebase.dataset.labels import load_truth_boxes
    from bonebase.dataset.versioning import version_dataset
    from bonebase.db.engine import database_url
    from bonebase.storage import open_store

    settings = get_settings()
    store = open_store(
        settings.object_store_url, endpoint_url=settings.s3_endpoint_url, region=settings.s3_region
    )
    boxes = load_truth_boxes(Path(truth_dir)) if truth_dir else None
    outcome = version_dataset(
        database_url(settings),
        store,
        target=target,
        export_params=export,
        split_params=split,
        boxes=boxes,
    )
    print(outcome.message)
    row = outcome.version
    return {
        "version": row.version if row else None,
        "message": outcome.message,
        "dvc_md5": row.dvc_md5 if row else None,
        "git_rev": row.git_rev if row else None,
        "n_images": outcome.export.n_images,
        "rendered": outcome.export.rendered,
        "removed": outcome.export.removed,
        "skipped": len(outcome.export.skipped),
    }


@flow(name="version-dataset", log_prints=True)
def version_dataset_flow(
    params_path: str | None = "params.yaml",
    *,
    target: Target | None = None,
    truth_dir: str | None = None,
) -> dict:
    """Cut the next dataset version with the export/split parameters of ``params_path``
    (database, object store and HOME from the environment: BONEBASE_*, DATABASE_URL)."""
    path = params_path if params_path and Path(params_path).is_file() else None
    if params_path and path is None and params_path != "params.yaml":
        raise ConfigError(f"params file {params_path} not found; pass an existing params.yaml")
    export, split = load_params(path)
    return cut_version(target or default_target(get_settings()), export, split, truth_dir)


if __name__ == "__main__":  # pragma: no cover
    import sys

    print(version_dataset_flow(*sys.argv[1:2]))
