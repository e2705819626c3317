"""DVC stage `train`: params `task` + `train`; data/labels.csv + data/split.csv + data/images →
models/model.pt (checkpoint with provenance) and models/train_history.json."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from bonebase.dataset.marker import dataset_identity
from bonebase.errors import BonebaseError, ConfigError
from bonebase.model.checkpoint import save_checkpoint
from bonebase.model.data import load_frame
from bonebase.model.train import train

TRAIN_KEYS = (
    "arch", "image_size", "epochs", "batch_size", "lr", "weight_decay", "patience", "seed",
    "num_workers", "amp", "pretrained", "lesion_loss_weight",
)  # fmt: skip


def dataset_version(data: Path) -> str:
    """Names the data a model was trained on: ``v<N>:<hash>`` for a checked-out dataset version
    (its marker still matching labels.csv and split.csv), else the content hash of those tables."""
    return dataset_identity(data)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--data", type=Path, default=Path("data"))
    ap.add_argument("--out", type=Path, default=Path("models"))
    args = ap.parse_args(argv)
    try:
        params = yaml.safe_load(args.params.read_text())
        task, section = params["task"], params["train"]
        unknown = set(section) - set(TRAIN_KEYS)
        if unknown:
            raise ConfigError(f"{args.params}: unknown train keys {sorted(unknown)}")
        frame = load_frame(args.data, task=task)
        ckpt = train(
            frame=frame,
            data_dir=args.data,
            task=task,
            dataset_version=dataset_version(args.data),
            log=lambda e: print(json.dumps(e), flush=True),
            **section,
        )
    except KeyError as exc:
        print(
            f"error: {args.params} lacks {exc}; see params.yaml in the repository", file=sys.stderr
        )
        return 2
    except BonebaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    save_checkpoint(ckpt, args.out / "model.pt")
    (args.out / "train_history.json").write_text(json.dumps(ckpt.history, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
