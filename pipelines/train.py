"""DVC stage `train`: params `task` + `train`; data/labels.csv + data/split.csv + data/images →
models/model.pt (checkpoint with provenance) and models/train_history.json.

With ``train.nproc_per_node`` > 1 the script starts itself again under torchrun, one process per
GPU (DistributedDataParallel; gloo on a CPU-only machine, for tests). Rank 0 writes the outputs.
With ``BONEBASE_DDP_DEBUG_DIR`` set, every rank also writes ``rank<N>.json`` there with the digest
of the weights in its checkpoint, so a test can check that the ranks trained in step."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch
import yaml

from bonebase.dataset.marker import dataset_identity
from bonebase.errors import BonebaseError, ConfigError
from bonebase.model import distributed as ddp
from bonebase.model.checkpoint import save_checkpoint
from bonebase.model.data import load_frame
from bonebase.model.train import train

TRAIN_KEYS = (
    "arch", "image_size", "epochs", "batch_size", "lr", "weight_decay", "patience", "seed",
    "num_workers", "amp", "pretrained", "lesion_loss_weight", "precise_bn", "nproc_per_node",
)  # fmt: skip
DEBUG_DIR_ENV = "BONEBASE_DDP_DEBUG_DIR"


def dataset_version(data: Path) -> str:
    """Names the data a model was trained on: ``v<N>:<hash>`` for a checked-out dataset version
    (its marker still matching labels.csv and split.csv), else the content hash of those tables."""
    return dataset_identity(data)


def check_nproc(value, params_path: Path) -> int:
    """``train.nproc_per_node`` as a positive int, refused when CUDA has fewer GPUs."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(
            f"{params_path}: train.nproc_per_node is {value!r}; it must be an integer >= 1 "
            "(the number of training processes, one per GPU; 1 trains in this process)"
        )
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus and value > gpus:
        raise ConfigError(
            f"{params_path}: train.nproc_per_node is {value} but this machine has {gpus} GPU(s); "
            f"set it to at most {gpus}"
        )
    return value


def check_batch(section: dict, nproc: int, params_path: Path) -> None:
    """``train.batch_size`` is the global batch: it must split evenly over the processes."""
    batch = section.get("batch_size")
    if isinstance(batch, int) and batch % nproc:
        raise ConfigError(
            f"{params_path}: train.batch_size {batch} is the global batch and must split evenly "
            f"over {nproc} processes: make it a multiple of train.nproc_per_node"
        )


def relaunch(nproc: int, argv: list[str]) -> int:
    """This script under torchrun with ``nproc`` workers; their output streams through."""
    if not torch.cuda.is_available():
        print(
            f"note: no CUDA: {nproc} training processes share the CPU (gloo); this tests the "
            "multi-GPU path and is slower than nproc_per_node: 1",
            file=sys.stderr,
            flush=True,
        )
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc_per_node={nproc}", str(Path(__file__).resolve()), *argv,
    ]  # fmt: skip
    return subprocess.run(cmd, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--data", type=Path, default=Path("data"))
    ap.add_argument("--out", type=Path, default=Path("models"))
    argv = sys.argv[1:] if argv is None else list(argv)
    args = ap.parse_args(argv)
    try:
        params = yaml.safe_load(args.params.read_text())
        task, section = params["task"], dict(params["train"])
        unknown = set(section) - set(TRAIN_KEYS)
        if unknown:
            raise ConfigError(f"{args.params}: unknown train keys {sorted(unknown)}")
        nproc = check_nproc(section.pop("nproc_per_node", 1), args.params)
        check_batch(section, nproc, args.params)
        if nproc > 1 and not ddp.launched():
            return relaunch(nproc, argv)
        frame = load_frame(args.data, task=task)
        with ddp.process_group() as device:
            ckpt = train(
                frame=frame,
                data_dir=args.data,
                task=task,
                dataset_version=dataset_version(args.data),
                log=lambda e: print(json.dumps(e), flush=True),
                device=device,
                **section,
            )
            rank = ddp.rank()
    except KeyError as exc:
        print(
            f"error: {args.params} lacks {exc}; see params.yaml in the repository", file=sys.stderr
        )
        return 2
    except BonebaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    if os.environ.get(DEBUG_DIR_ENV):
        debug = Path(os.environ[DEBUG_DIR_ENV])
        debug.mkdir(parents=True, exist_ok=True)
        digest = ddp.state_digest(ckpt.state_dict)
        (debug / f"rank{rank}.json").write_text(json.dumps({"rank": rank, "digest": digest}))
    if rank != 0:
        return 0
    save_checkpoint(ckpt, args.out / "model.pt")
    (args.out / "train_history.json").write_text(json.dumps(ckpt.history, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
