"""Model quality on the synthetic consortium (issue #6's done-when): does the image model beat
the clinical-only baseline on the held-out hospital, and does its Grad-CAM point at the lesion?

    python benchmarks/model_quality.py [--work .bonebase/model_quality] [--sites 4]
        [--cases-per-site 200] [--seed 7] [--params params.yaml] [--set train.epochs=20 ...]

Route: ``bonebase synth`` (sites × cases, seed) → the export contract straight from the
generator's output (``export_synth``, params ``export``) → split (params ``split``: the external
site is held out) → ``pipelines/train.py`` → ``pipelines/evaluate.py``, each stage as its own
process with the repository's params.yaml (``--set`` overrides a key for experiments; each run
writes its params, model and report under --work/runs/--run). The consortium and its export are
cached under --work and reused while the recipe (sizes, seed, export and split params) holds.
Prints one JSON object: internal test and external AUC with DeLong CIs, the clinical baseline,
the DeLong p of model vs baseline, the heat maps' pointing game, weighting game and IoU (by class,
with CIs and the layer's ceiling), the shortcut probe, validation AUC and wall-clock seconds.
``--evaluate-only --model-run R --run R2 --set evaluate.heatmap_layer=layer3`` re-scores run R's
model with another heat-map method or layer without training again.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _override(params: dict, assignments: list[str]) -> dict:
    for item in assignments:
        key, _, raw = item.partition("=")
        section, _, name = key.partition(".")
        if not name or section not in params:
            raise SystemExit(f"--set {item!r}: expected SECTION.KEY=VALUE with a params section")
        params[section][name] = yaml.safe_load(raw)
    return params


def build_data(work: Path, params: dict, *, sites: int, cases: int, seed: int) -> Path:
    """Synthesise, export and split once per recipe; returns the data folder."""
    from bonebase.dataset.split import assign_splits, write_assignments
    from bonebase.model.synthdata import export_synth
    from bonebase.synth import generate

    ex, sp = params["export"], params["split"]
    recipe = {"sites": sites, "cases": cases, "seed": seed, "export": ex, "split": sp}
    recipe["task"] = params["task"]
    tag = work / "recipe.json"
    data = work / "data"
    if tag.is_file() and json.loads(tag.read_text()) == recipe and (data / "split.csv").is_file():
        return data
    started = time.perf_counter()
    generate(
        work / "synth", sites=sites, cases_per_site=cases, seed=seed, workers=2, overwrite=True
    )
    labels = export_synth(
        work / "synth",
        data,
        size=int(ex["size"]),
        bits=int(ex["bits"]),
        intermediate_as=ex["intermediate_as"],
        modalities=ex["modalities"],
    )
    split = assign_splits(
        labels,
        None,
        seed=int(sp["seed"]),
        val_fraction=float(sp["val_fraction"]),
        test_fraction=float(sp["test_fraction"]),
        external_sites=sp.get("external_sites") or (),
        stratify=params["task"],
    )
    write_assignments(split, data / "split.csv", only=labels)
    tag.write_text(json.dumps(recipe))
    print(f"data: {len(labels)} images in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return data


def _stage(script: str, *args: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "pipelines" / script), *args], check=True)
    return time.perf_counter() - started


def _explanation(e: dict) -> dict:
    """Method, layer, target and, per set, the scores by class with CIs and the ceiling."""
    keys = ("n", "pointing_game", "pointing_game_lo", "pointing_game_hi", "weighting_game",
            "weighting_game_lo", "weighting_game_hi", "iou", "pointing_ceiling", "lesion_area")
    out = {k: e.get(k) for k in ("method", "layer", "cells", "target")}
    for name in ("test", "external"):
        groups = e.get(name) or {}
        out[name] = {
            g: {k: round(v, 3) if isinstance(v, float) else v for k, v in s.items() if k in keys}
            for g, s in groups.items() if g in ("all", "class0", "class1")
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--work", type=Path, default=ROOT / ".bonebase" / "model_quality")
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    ap.add_argument("--sites", type=int, default=4)
    ap.add_argument("--cases-per-site", type=int, default=200)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    ap.add_argument("--run", default="run", help="name of this run's folder under --work/runs")
    ap.add_argument("--data-only", action="store_true", help="build the cached data and stop")
    ap.add_argument(
        "--evaluate-only", action="store_true",
        help="re-run only the evaluate stage on --run's model (e.g. another heat-map method)",
    )
    ap.add_argument("--model-run", default=None, help="with --evaluate-only: the run whose model")
    args = ap.parse_args()
    params = _override(yaml.safe_load(args.params.read_text()), args.set)
    args.work.mkdir(parents=True, exist_ok=True)
    data = build_data(
        args.work, params, sites=args.sites, cases=args.cases_per_site, seed=args.seed
    )
    if args.data_only:
        return
    run_dir = args.work / "runs" / args.run
    run_dir.mkdir(parents=True, exist_ok=True)
    run_params = run_dir / "params.yaml"
    run_params.write_text(yaml.safe_dump(params, sort_keys=False))
    models, reports = run_dir / "models", run_dir / "reports"
    if args.evaluate_only:
        models = args.work / "runs" / (args.model_run or args.run) / "models"
        t_train = 0.0
    else:
        t_train = _stage(
            "train.py", "--params", str(run_params), "--data", str(data), "--out", str(models)
        )
    t_eval = _stage(
        "evaluate.py", "--params", str(run_params), "--data", str(data),
        "--model", str(models / "model.pt"), "--out", str(reports),
    )  # fmt: skip
    m = json.loads((reports / "metrics.json").read_text())
    history = json.loads((models / "train_history.json").read_text())

    def figures(name: str) -> dict:
        s = m.get(name, {})
        keys = ("n_cases", "auc", "auc_delong_lo", "auc_delong_hi", "baseline_auc")
        out = {k: s.get(k) for k in keys}
        out["delong_p_vs_baseline"] = s.get("delong_p_vs_baseline")
        return out

    externals = [k for k in m if k.startswith("external_")]
    print(
        json.dumps(
            {
                "train": params["train"],
                "val_auc_best": max(h["val_auc"] for h in history),
                "epochs_run": len(history),
                "test": figures("test"),
                **{k: figures(k) for k in externals},
                "pointing_game": m.get("pointing_game"),
                "weighting_game": m.get("weighting_game"),
                "iou": m.get("iou"),
                "pointing_game_n": m.get("pointing_game_n"),
                "explanation": _explanation(m.get("explanation") or {}),
                "shortcut_probe": m.get("shortcut_probe"),
                "train_s": round(t_train, 1),
                "evaluate_s": round(t_eval, 1),
                "report": str(reports / "report.html"),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
