"""Training and inference throughput (images/s) of the real input pipeline next to the bare
model on random tensors of the same shape (the ceiling), on CPU and on CUDA when available.

    python benchmarks/train.py [--data data] [--image-size 160] [--batch-size 32] [--steps 20]

Without --data, N synthetic 16-bit 256 px PNGs are written to a temporary folder. The goal on a
GPU: the pipeline keeps >= 80% of the ceiling (ratio >= 0.8).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from bonebase.model.augment import batch_augment
from bonebase.model.data import load_frame, make_dataset, make_loader
from bonebase.model.networks import build_network


def synthetic_frame(folder: Path, n: int, size: int = 256) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        img = rng.integers(0, 65535, (size, size), dtype=np.uint16)
        Image.fromarray(img).save(folder / "images" / f"{i}.png")
        rows.append({"image": f"images/{i}.png", "y": i % 2})
    return pd.DataFrame(rows)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _step(net, opt, x, y, device, amp):
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    opt.zero_grad(set_to_none=True)
    with torch.autocast("cuda", torch.bfloat16, enabled=amp and device.type == "cuda"):
        loss = torch.nn.functional.cross_entropy(net(x), y)
    loss.backward()
    opt.step()


def bench(frame, data_dir, *, device, arch, image_size, batch_size, steps, workers, amp) -> dict:
    net = build_network(arch).to(device)
    if device.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    x = torch.rand(batch_size, 1, image_size, image_size, device=device)
    y = torch.randint(0, 2, (batch_size,), device=device)
    out = {"device": str(device), "arch": arch, "image_size": image_size, "batch_size": batch_size}
    # Ceiling: the bare model on tensors already on the device.
    net.train()
    for i in range(steps + 3):
        if i == 3:
            _sync(device)
            t = time.perf_counter()
        _step(net, opt, x, y, device, amp)
    _sync(device)
    out["train_ceiling_img_s"] = steps * batch_size / (time.perf_counter() - t)
    net.eval()
    with (
        torch.inference_mode(),
        torch.autocast("cuda", torch.bfloat16, enabled=amp and device.type == "cuda"),
    ):
        for i in range(steps + 3):
            if i == 3:
                _sync(device)
                t = time.perf_counter()
            net(x)
        _sync(device)
    out["infer_ceiling_img_s"] = steps * batch_size / (time.perf_counter() - t)
    # The real pipeline: cached dataset, pinned memory, batch augmentation on the device.
    cuda = device.type == "cuda"
    gen = torch.Generator().manual_seed(0)
    for train, key in ((True, "train"), (False, "infer")):
        ds = make_dataset(frame, data_dir, image_size=image_size, cache_workers=workers or 1)
        dl = make_loader(ds, batch_size=batch_size, shuffle=train, num_workers=workers, cuda=cuda)
        net.train(train)
        done, t, it = 0, None, 0
        while it < steps + 3:
            for batch in dl:
                if it == 3:
                    _sync(device)
                    t, done = time.perf_counter(), 0
                xb = batch["image"].to(device, non_blocking=True)
                yb = batch["label"].to(device, non_blocking=True).long()
                if train:
                    _step(net, opt, batch_augment(xb, gen), yb, device, amp)
                else:
                    with (
                        torch.inference_mode(),
                        torch.autocast("cuda", torch.bfloat16, enabled=amp and cuda),
                    ):
                        net(xb.contiguous(memory_format=torch.channels_last) if cuda else xb)
                done += len(xb)
                it += 1
                if it >= steps + 3:
                    break
        _sync(device)
        out[f"{key}_pipeline_img_s"] = done / (time.perf_counter() - t)
        out[f"{key}_ratio"] = out[f"{key}_pipeline_img_s"] / out[f"{key}_ceiling_img_s"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path)
    ap.add_argument("--task", default="benign_vs_malignant")
    ap.add_argument("--n", type=int, default=512, help="synthetic images when --data is absent")
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--image-size", type=int, default=160)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-amp", action="store_true")
    ap.add_argument("--cpu-only", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.data:
            data_dir, frame = args.data, load_frame(args.data, task=args.task)
        else:
            data_dir, frame = Path(tmp), synthetic_frame(Path(tmp), args.n)
        devices = [torch.device("cpu")]
        if torch.cuda.is_available() and not args.cpu_only:
            devices = [torch.device("cuda")]  # a GPU run measures the GPU; CPU is the fallback
        for device in devices:
            res = bench(
                frame, data_dir, device=device, arch=args.arch, image_size=args.image_size,
                batch_size=args.batch_size, steps=args.steps, workers=args.workers,
                amp=not args.no_amp,
            )  # fmt: skip
            print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
