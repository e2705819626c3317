"""Federated training against centralised and single-site training on the synthetic consortium
(issue #24's measure): same network, input size, hyper-parameters, lr schedule and total epochs.

    python benchmarks/federated.py [--work .bonebase/federated_bench] [--sites 4]
        [--cases-per-site 200] [--seed 7] [--train-seeds 7,8,9] [--arch resnet10-slim]
        [--image-size 128] [--rounds 10] [--local-epochs 1] [--rounds-per-epoch 1]
        [--keep-optimizer] [--keep-round best|last]
        [--strategy fedavg|fedprox|fedavgm|fedadam|fedyogi] [--proximal-mu 0.01]
        [--server-lr 0] [--server-momentum 0.9] [--bn-stats average|pooled]
        [--lr 0.001] [--parallel-sites 1] [--threads 1]

The defaults are the smallest size at which the centralised model learns on this consortium
(external AUC 0.62-0.67; at 60 cases, 64 px and lr 0.0002 no arm does, and one seed's figures
are noise): about 30 minutes on a loaded 2-core machine.

The consortium comes from ``bonebase synth`` with its site effects (each hospital's scanner,
exposure and case mix differ: non-IID sites); its export and split follow params.yaml
(``export``, ``split``: the external hospital, BOS with 4 sites, is held out of all training).
Every other hospital gets a home of its own holding only its cases (``partition_export``).
Then, on those hospitals' train and validation cases, for each training seed (``--train-seeds``;
the data stay those of ``--seed``):

(a) centralised: one network trained on all of them together for E = rounds × local-epochs
    epochs (rounds / rounds-per-epoch with ``--rounds-per-epoch``);
(b) federated: Flower's simulation runtime, each hospital a client reading its own home,
    ``rounds`` rounds of ``local-epochs`` epochs, or of 1/rounds-per-epoch of an epoch
    (``bonebase.federated.simulation.simulate``; the strategy and local-training options go
    through ``bonebase.federated.options.federation_config``, as the CLI's do);
(c) each hospital alone: one network per hospital for E epochs.

Every arm runs one cosine lr schedule over the total epochs (a federated round trains its share
of it) and keeps its best-validated model: (a) and (c) their best epoch by validation AUC, as
`pipelines/train.py` does, (b) its best round by the sites' weighted validation AUC. All are
scored the same way on the external hospital's cases: case-level AUC (mean logits over a case's
images) with its DeLong 95% CI, and the paired DeLong test of federated vs centralised. The
federated run also gives the bytes each client sent per round (its model update, as Flower
serialises it) and the wall time of each round (median and range). ``with_pooled_bn_pass`` is a
diagnosis, not a federated method: the kept federated model with its BatchNorm statistics
re-estimated on the training hospitals' train images pooled (is BN the gap?).
Prints one JSON object: per seed, and the mean and range over seeds; the goal: (b) within 0.03
AUC of (a) and above every (c), per seed and on the means. Each arm's figures are kept in
--work/results.json while the setup holds, so an interrupted run resumes where it stopped
(delete the file to measure again); the federated arm is kept per federated configuration
(strategy, its server lr and momentum, bn-stats, the rounds and their length, keep-optimizer),
so trying another strategy, or 40 rounds of a quarter epoch against 10 of one, trains only (b).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.model_quality import build_data  # noqa: E402
from bonebase.federated.config import BN_STATS, SERVER_LR, STRATEGIES  # noqa: E402
from bonebase.federated.options import federation_config  # noqa: E402


def external_scores(ckpt, data: Path):
    """Case-level labels and scores (logit margin, mean over a case's images) on the external
    hospital."""
    import numpy as np
    import torch

    from bonebase.model.data import load_frame
    from bonebase.model.infer import predict

    frame = load_frame(data, task=ckpt.task)
    ext = frame[frame["split"] == "external"].reset_index(drop=True)
    with torch.no_grad():
        logits, _ = predict(ckpt.network(), ext, data, image_size=ckpt.image_size)
    ext = ext.assign(margin=logits[:, 1] - logits[:, 0])
    cases = ext.groupby("case_id").agg(y=("y", "first"), score=("margin", "mean"))
    return cases.index.to_numpy(), cases["y"].to_numpy(dtype=int), cases["score"].to_numpy(
        dtype=np.float64)


def _auc(y, score) -> dict:
    from bonebase.stats.roc import delong_ci

    ci = delong_ci(y, score)
    return {"auc": round(float(ci.auc), 3),
            "ci95": [round(float(ci.lo), 3), round(float(ci.hi), 3)]}


def train_central(frame, data: Path, hp: dict, epochs: int):
    from bonebase.model.train import train

    return train(frame=frame, data_dir=data, epochs=epochs, patience=epochs, **hp)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=ROOT / ".bonebase" / "federated_bench")
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    ap.add_argument("--sites", type=int, default=4, help="hospitals generated (one external)")
    ap.add_argument("--cases-per-site", type=int, default=200)
    ap.add_argument("--seed", type=int, default=7, help="the synthetic data's seed")
    ap.add_argument("--train-seeds", default="7,8,9", help="training seeds, comma-separated")
    ap.add_argument("--arch", default="resnet10-slim")
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=0.001,
                    help="params.yaml's 0.0002 (set for resnet18) barely moves resnet10-slim "
                    "in 10 epochs here")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--local-epochs", type=int, default=1)
    ap.add_argument("--rounds-per-epoch", type=int, default=1,
                    help="each round trains 1/N of an epoch (rounds a multiple of N): the run "
                    "and the other arms train rounds/N epochs")
    ap.add_argument("--keep-optimizer", action="store_true",
                    help="each federated site keeps its AdamW state across rounds")
    ap.add_argument("--strategy", choices=STRATEGIES, default="fedavg")
    ap.add_argument("--proximal-mu", type=float, default=0.01)
    ap.add_argument("--server-lr", type=float, default=0.0,
                    help="server learning rate of fedavgm, fedadam, fedyogi (0: bonebase's "
                    "default for the strategy)")
    ap.add_argument("--server-momentum", type=float, default=0.9, help="FedAvgM's momentum")
    ap.add_argument("--keep-round", choices=("best", "last"), default="best",
                    help="the federated model kept: the best-validated round's or the last")
    ap.add_argument("--bn-stats", choices=BN_STATS, default="average",
                    help="the global model's BatchNorm statistics: the sites' average, or their "
                    "data pooled")
    ap.add_argument("--parallel-sites", type=int, default=1,
                    help="simulated sites training at once (1 is about twice as fast on 2 "
                    "cores); changes wall time, not the figures")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads of the centralised and single-site arms (the simulated "
                    "sites run one each); changes wall time, not the figures")
    args = ap.parse_args()
    import torch

    # On a shared, loaded machine torch's default (one thread per core) spins in OpenMP: a
    # training step of resnet10-slim at 96 px took 3.9 s with 2 threads against 0.39 s with 1
    # (load 9, 2 cores); the simulated sites (Ray workers) already train with one thread.
    torch.set_num_threads(args.threads)

    from bonebase.federated.homes import partition_export
    from bonebase.federated.simulation import simulate
    from bonebase.model.checkpoint import load_checkpoint
    from bonebase.model.data import load_frame
    from bonebase.stats.roc import delong_test

    params = yaml.safe_load(args.params.read_text())
    params["export"]["size"] = args.image_size
    args.work.mkdir(parents=True, exist_ok=True)
    data = build_data(args.work, params, sites=args.sites, cases=args.cases_per_site,
                      seed=args.seed)
    task = params["task"]
    frame = load_frame(data, task=task)
    external = sorted(set(frame.loc[frame["split"] == "external", "site"]))
    sites = sorted(set(frame["site"]) - set(external))
    if not external or len(sites) < 2:
        raise SystemExit(f"need an external site and two training sites; have external "
                         f"{external}, training {sites} (raise --sites)")
    # cut once per data recipe: runs of other strategies share the homes (re-cutting them
    # would pull the images from under a run in progress)
    marker, recipe = args.work / "homes" / ".recipe.json", (args.work / "recipe.json").read_text()
    if marker.is_file() and marker.read_text() == recipe:
        homes = {site: args.work / "homes" / site for site in sites}
    else:
        homes = partition_export(data, args.work / "homes", sites)
        marker.write_text(recipe)
    if args.rounds_per_epoch > 1 and (args.local_epochs != 1
                                      or args.rounds % args.rounds_per_epoch):  # fmt: skip
        raise SystemExit("--rounds-per-epoch N needs --local-epochs 1 and --rounds a multiple "
                         "of N")
    epochs = args.rounds * args.local_epochs // args.rounds_per_epoch
    lr = args.lr
    seeds = [int(x) for x in str(args.train_seeds).split(",") if x.strip()]
    hp = {"task": task, "arch": args.arch, "image_size": args.image_size,
          "batch_size": args.batch_size, "lr": lr, "weight_decay": 1e-4,
          "num_workers": 0, "amp": False, "precise_bn": True}
    out: dict = {"setup": {**hp, "data_seed": args.seed, "train_seeds": seeds, "sites": sites,
                           "external": external, "rounds": args.rounds,
                           "local_epochs": args.local_epochs,
                           "rounds_per_epoch": args.rounds_per_epoch,
                           "keep_optimizer": args.keep_optimizer, "total_epochs": epochs,
                           "lr_schedule": f"cosine over {epochs} epochs",
                           "strategy": args.strategy, "cases_per_site": args.cases_per_site,
                           "proximal_mu": args.proximal_mu if args.strategy == "fedprox" else 0,
                           "server_lr": (args.server_lr or SERVER_LR[args.strategy]
                                         if args.strategy in SERVER_LR else None),
                           "server_momentum": (args.server_momentum
                                               if args.strategy == "fedavgm" else None),
                           "bn_stats": args.bn_stats,
                           "keep_round": None if args.keep_round == "best" else "last",
                           "external_cases": int(frame.loc[frame["split"] == "external",
                                                           "case_id"].nunique())}}
    seconds: dict = {}
    cache = args.work / "results.json"  # each arm's figures, kept while the setup holds
    done_before = json.loads(cache.read_text()) if cache.is_file() else {}
    federated_keys = ("strategy", "proximal_mu", "server_lr", "server_momentum", "bn_stats",
                      "keep_round")
    # how the federated arm cuts the E epochs into rounds: (a) and (c) depend on E only
    rounds_keys = ("rounds", "local_epochs", "rounds_per_epoch", "keep_optimizer")
    setup_key = {k: v for k, v in out["setup"].items()
                 if k != "train_seeds" and k not in federated_keys + rounds_keys}  # fmt: skip
    fed_tag = ",".join(f"{k}={out['setup'][k]}" for k in federated_keys
                       if out["setup"][k] is not None)  # fmt: skip
    if (args.local_epochs, args.rounds_per_epoch, args.keep_optimizer) != (1, 1, False):
        # E rounds of one epoch, fresh optimizers: the tag of the runs before these options
        fed_tag += "," + ",".join(f"{k}={out['setup'][k]}" for k in rounds_keys)
    old = done_before.get("setup") or {}
    if old.get("local_epochs") == 1 and old.get("rounds") == old.get("total_epochs"):
        # a cache of before the rounds left the setup: its federated arms are E rounds of one
        # epoch, the tag above gives them
        done_before["setup"] = {k: v for k, v in old.items() if k not in rounds_keys}
    if done_before.get("setup") != setup_key:
        done_before = {"setup": setup_key}

    def arm(name: str, run) -> dict:
        """One arm's figures: from the cache, or run (its seconds recorded) and cached."""
        now = json.loads(cache.read_text()) if cache.is_file() else {}
        if name not in done_before and now.get("setup") == done_before["setup"] and name in now:
            done_before[name] = now[name]  # another run (another strategy) measured it meanwhile
        if name not in done_before:
            started = time.perf_counter()
            figures = run()
            done_before[name] = {**figures, "seconds": round(time.perf_counter() - started, 1)}
            # another run (another strategy) may have added arms meanwhile: keep them
            now = json.loads(cache.read_text()) if cache.is_file() else {}
            if now.get("setup") == done_before["setup"]:
                done_before.update({k: v for k, v in now.items() if k not in done_before})
            cache.write_text(json.dumps(done_before, indent=1))
        result = dict(done_before[name])
        seconds[name] = result.pop("seconds")
        shown = {k: v for k, v in result.items() if k not in ("y", "score")}
        print(f"{name}: {shown} ({seconds[name]:.0f} s)", file=sys.stderr)
        return result

    def fed_dir(seed: int) -> Path:
        return args.work / (f"federated-{seed}-{args.strategy}-{args.bn_stats}-{args.keep_round}-"
                            f"{hashlib.sha1(fed_tag.encode()).hexdigest()[:8]}")  # fmt: skip

    def one_seed(seed: int) -> dict:
        """The three arms trained with ``seed`` (initial weights, shuffling, augmentation)."""
        hps = {**hp, "seed": seed}

        def centralised() -> dict:
            ckpt = train_central(frame[frame["site"].isin(sites)], data, hps, epochs)
            _, y, score = external_scores(ckpt, data)
            return {**_auc(y, score), "best_epoch": ckpt.train_params["best_epoch"],
                    "y": y.tolist(), "score": score.tolist()}

        def federated() -> dict:
            fed_out = fed_dir(seed)
            done = simulate({
                "sites": ",".join(sites), "homes": str(args.work / "homes"), "task": task,
                "arch": args.arch, "image-size": args.image_size, "batch-size": args.batch_size,
                "lr": lr, "seed": seed, "amp": False, "precise-bn": True, "num-workers": 0,
                "rounds": args.rounds, "local-epochs": args.local_epochs,
                **federation_config(
                    strategy=args.strategy, proximal_mu=args.proximal_mu,
                    server_lr=args.server_lr, server_momentum=args.server_momentum,
                    bn_stats=args.bn_stats, keep_round=args.keep_round,
                    rounds_per_epoch=args.rounds_per_epoch, keep_optimizer=args.keep_optimizer),
                "min-sites": len(sites), "out-dir": str(fed_out),
            }, say=lambda line: print(line, file=sys.stderr),
               actors=args.parallel_sites)  # fmt: skip
            _, y, score = external_scores(load_checkpoint(Path(done["model"])), data)
            record = json.loads((fed_out / "federated.json").read_text())
            sent: list[int] = []
            for entry in record.get("rounds_detail") or record["history"]:
                per_client = entry.get("bytes_per_client", {})
                sent += list(per_client.values()) if isinstance(per_client, dict) else [per_client]
            per_round = [float(entry["seconds"]) for entry in record["history"]]
            return {
                **_auc(y, score), "y": y.tolist(), "score": score.tolist(),
                "best_round": record.get("selected_round"),
                "val_auc_per_round": [round(float(e["val_auc"]), 3) for e in record["history"]],
                "bytes_per_round_per_client": {"median": statistics.median(sent),
                                               "min": min(sent), "max": max(sent)},
                "seconds_per_round": {"median": round(statistics.median(per_round), 1),
                                      "min": round(min(per_round), 1),
                                      "max": round(max(per_round), 1)},
            }  # fmt: skip

        def alone(site: str):
            def run() -> dict:
                home_data = Path(homes[site]) / "federated" / "data"
                ckpt = train_central(load_frame(home_data, task=task), home_data, hps, epochs)
                return {**_auc(*external_scores(ckpt, data)[1:]),
                        "best_epoch": ckpt.train_params["best_epoch"]}
            return run

        def bn_pass() -> dict:
            """Diagnosis, not a federated method: the kept federated model with its BatchNorm
            statistics re-estimated under its own weights on the training sites' train images
            pooled (the pass centralised training makes after every epoch; federated, each
            site's statistics come from its local weights before averaging)."""
            from bonebase.model.data import make_dataset, make_loader
            from bonebase.model.train import recompute_bn_stats

            ckpt = load_checkpoint(fed_dir(seed) / "model.pt")
            pooled = frame[frame["site"].isin(sites) & (frame["split"] == "train")]
            net = ckpt.network()
            torch.manual_seed(seed)
            loader = make_loader(make_dataset(pooled.reset_index(drop=True), data,
                                              image_size=args.image_size, cache_workers=1),
                                 batch_size=args.batch_size, shuffle=True, num_workers=0,
                                 cuda=False)  # fmt: skip
            recompute_bn_stats(net, loader, device=torch.device("cpu"), cuda=False)
            ckpt.state_dict = {k: v.detach().clone() for k, v in net.state_dict().items()}
            return _auc(*external_scores(ckpt, data)[1:])

        central = arm(f"seed{seed}/centralised", centralised)
        fed = arm(f"seed{seed}/federated/{fed_tag}", federated)
        res_bn = arm(f"seed{seed}/federated/{fed_tag}/bn_pass", bn_pass)
        test = delong_test(central["y"], fed["score"], central["score"])
        res: dict = {"centralised": {k: central[k] for k in ("auc", "ci95", "best_epoch")}}
        res["federated"] = {k: v for k, v in fed.items() if k not in ("y", "score")}
        res["federated"]["minus_centralised"] = round(float(test.diff), 3)
        res["federated"]["delong_p_vs_centralised"] = round(float(test.p), 3)
        res["federated"]["with_pooled_bn_pass"] = res_bn  # a diagnosis (see bn_pass)
        res["single_site"] = {site: arm(f"seed{seed}/site_{site}", alone(site))
                              for site in sites}  # fmt: skip
        res["goal"] = goal(res["centralised"]["auc"], res["federated"]["auc"],
                           [v["auc"] for v in res["single_site"].values()])
        return res

    out["seeds"] = {str(seed): one_seed(seed) for seed in seeds}
    runs = list(out["seeds"].values())

    def over_seeds(values: list[float]) -> dict:
        return {"mean": round(statistics.mean(values), 3),
                "range": [round(min(values), 3), round(max(values), 3)]}

    out["over_seeds"] = {
        "centralised": over_seeds([r["centralised"]["auc"] for r in runs]),
        "federated": over_seeds([r["federated"]["auc"] for r in runs]),
        "single_site": {site: over_seeds([r["single_site"][site]["auc"] for r in runs])
                        for site in sites},
    }  # fmt: skip
    means = out["over_seeds"]
    out["goal"] = goal(means["centralised"]["mean"], means["federated"]["mean"],
                       [v["mean"] for v in means["single_site"].values()])  # fmt: skip
    out["seconds"] = {k: round(v, 1) for k, v in seconds.items()}
    print(json.dumps(out, indent=1))


def goal(central: float, federated: float, single: list[float]) -> dict:
    """Issue #24's goal: federated within 0.03 AUC of centralised and above every single site."""
    return {"within_0.03_of_centralised": bool(central - federated <= 0.03),
            "above_every_single_site": all(federated > s for s in single)}


if __name__ == "__main__":
    main()
