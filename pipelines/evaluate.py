"""DVC stage `evaluate`: params `task` + `evaluate`; models/model.pt + data/ →
reports/metrics.json, reports/roc.csv, reports/report.html."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from bonebase.errors import BonebaseError, ConfigError
from bonebase.model.checkpoint import load_checkpoint
from bonebase.model.data import load_frame
from bonebase.model.evaluate import evaluate, write_outputs

EVALUATE_KEYS = (
    "bootstrap",
    "fixed_sensitivity",
    "temperature_scaling",
    "gradcam_per_class",
    "tsne",
    "seed",
    "heatmap_method",  # gradcam | gradcam++ | hirescam | occlusion (bonebase/model/explain.py)
    "heatmap_layer",  # null: the last convolutional stage; layer3 for a finer ResNet map
    "heatmap_target",  # label | positive | predicted: whose class map is scored
    "heatmap_threshold",
    "shortcut_probe_on",
    "ood_quantile",  # out-of-distribution threshold: quantile of validation scores (null: off)
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--data", type=Path, default=Path("data"))
    ap.add_argument("--model", type=Path, default=Path("models/model.pt"))
    ap.add_argument("--out", type=Path, default=Path("reports"))
    args = ap.parse_args(argv)
    try:
        params = yaml.safe_load(args.params.read_text())
        task, section = params["task"], params["evaluate"]
        unknown = set(section) - set(EVALUATE_KEYS)
        if unknown:
            raise ConfigError(f"{args.params}: unknown evaluate keys {sorted(unknown)}")
        ckpt = load_checkpoint(args.model)
        if ckpt.task != task:
            raise ConfigError(
                f"{args.model} was trained for task {ckpt.task!r} but params say {task!r}; "
                "re-run the train stage"
            )
        ev = evaluate(
            checkpoint=ckpt, frame=load_frame(args.data, task=task), data_dir=args.data, **section
        )
    except KeyError as exc:
        print(
            f"error: {args.params} lacks {exc}; see params.yaml in the repository", file=sys.stderr
        )
        return 2
    except BonebaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    write_outputs(
        ev,
        metrics_json=args.out / "metrics.json",
        roc_csv=args.out / "roc.csv",
        report_html=args.out / "report.html",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
