"""DVC stage `export`: the database's current training view into data/ (params: export.*).

The database is this stage's real input, which DVC cannot hash, so dvc.yaml marks the stage
always_changed; the export is incremental and byte-deterministic, so an unchanged database
leaves data/ (and every later stage) untouched.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--out", type=Path, default=Path("data"))
    parser.add_argument(
        "--truth",
        type=Path,
        default=None,
        help="synthetic consortium folder: lesion boxes from its truth.csv",
    )
    args = parser.parse_args(argv)
    params = yaml.safe_load(args.params.read_text())["export"]

    from bonebase.config import get_settings
    from bonebase.dataset.export import export
    from bonebase.dataset.labels import load_truth_boxes
    from bonebase.db.engine import connect, database_url
    from bonebase.errors import BonebaseError
    from bonebase.storage import open_store

    settings = get_settings()
    try:
        store = open_store(
            settings.object_store_url,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
        )
        boxes = load_truth_boxes(args.truth) if args.truth else None
        with connect(database_url(settings)) as conn:
            summary = export(
                conn,
                store,
                args.out,
                size=int(params["size"]),
                bits=int(params["bits"]),
                modalities=list(params["modalities"]),
                intermediate_as=str(params.get("intermediate_as", "benign")),
                boxes=boxes,
            )
    except BonebaseError as exc:
        raise SystemExit(f"export: {exc}") from None
    print(f"export: {summary.describe()}")


if __name__ == "__main__":
    main()
