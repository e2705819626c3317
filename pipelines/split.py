"""DVC stage `split`: data/labels.csv → data/split.csv, locked (params: task, split.*).

splits/assignments.csv is the lock: every patient ever assigned, kept in git (a persistent,
uncached output), read back here so that no patient ever changes split.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--labels", type=Path, default=Path("data/labels.csv"))
    parser.add_argument("--out", type=Path, default=Path("data/split.csv"))
    parser.add_argument("--lock", type=Path, default=Path("splits/assignments.csv"))
    args = parser.parse_args(argv)
    params = yaml.safe_load(args.params.read_text())
    split = params["split"]

    import pandas as pd

    from bonebase.dataset.split import assign_splits, read_assignments, write_assignments
    from bonebase.errors import BonebaseError

    labels = pd.read_csv(args.labels, dtype=str, keep_default_na=False)
    try:
        assigned = assign_splits(
            labels,
            read_assignments(args.lock),
            seed=int(split["seed"]),
            val_fraction=float(split["val_fraction"]),
            test_fraction=float(split["test_fraction"]),
            external_sites=split.get("external_sites") or (),
            stratify=str(params.get("task", "benign_vs_malignant")),
        )
    except BonebaseError as exc:
        raise SystemExit(f"split: {exc}") from None
    write_assignments(assigned, args.lock)
    write_assignments(assigned, args.out, only=labels)
    print("split:", pd.read_csv(args.out)["split"].value_counts().to_dict())


if __name__ == "__main__":
    main()
