"""Throughput and latency of the diagnosis service (a real `bentoml serve` on loopback) at
concurrency 1, 8 and 32, next to the same model in-process on the same radiographs.

    python benchmarks/serve.py [--model models/model.pt] [--requests 200] [--concurrency 1 8 32]

Without --model an untrained checkpoint of --arch at --image-size (export size 256) is used:
throughput does not depend on the weights. Inputs are synthetic CR/DX DICOM files from
``bonebase.synth``. Reported per concurrency: requests/s, p50/p99 latency (ms), and ratios to
the in-process figures: ``bare`` = network forward only (batch 1, preprocessed input),
``pipeline`` = decode + preprocess + forward (what one request does, minus HTTP).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import torch

from bonebase.model.checkpoint import Checkpoint, save_checkpoint
from bonebase.model.inference import Predictor, decode_upload
from bonebase.model.networks import build_network
from bonebase.release.serving import start_server

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def radiographs(folder: Path, n: int) -> list[bytes]:
    from bonebase.synth import generate

    generate(folder, sites=2, cases_per_site=22, seed=5, workers=1)
    files = []
    for truth in sorted(folder.glob("*/truth.csv")):
        bad = {f["file"] for f in json.loads((truth.parent / "faults.json").read_text())}
        for row in csv.DictReader(truth.open()):
            if row["modality"] in ("CR", "DX") and row["file"] not in bad:
                files.append((truth.parent / "submission" / row["file"]).read_bytes())
    return files[:n]


def untrained(path: Path, *, arch: str, image_size: int) -> Path:
    net = build_network(arch)
    ckpt = Checkpoint(
        arch=arch,
        task="benign_vs_malignant",
        image_size=image_size,
        state_dict=net.state_dict(),
        threshold=0.5,
        export_size=256,
        dataset_version="benchmark",
    )
    return save_checkpoint(ckpt, path)


def in_process(predictor: Predictor, files: list[bytes], repeats: int) -> dict:
    inputs = [predictor.preprocess(decode_upload(f).image)[None] for f in files]
    predictor.forward(inputs[0])  # warm-up
    t = time.perf_counter()
    for i in range(repeats):
        predictor.forward(inputs[i % len(inputs)])
    bare = repeats / (time.perf_counter() - t)
    t = time.perf_counter()
    for i in range(repeats):
        x = predictor.preprocess(decode_upload(files[i % len(files)]).image)[None]
        predictor.forward(x)
    pipe = repeats / (time.perf_counter() - t)
    return {"bare_per_s": bare, "pipeline_per_s": pipe}


def load(url: str, files: list[bytes], *, concurrency: int, requests: int) -> dict:
    latencies: list[float] = []

    def one(i: int, client: httpx.Client) -> None:
        t = time.perf_counter()
        r = client.post("/diagnose", files={"file": ("x.dcm", files[i % len(files)])})
        r.raise_for_status()
        latencies.append(time.perf_counter() - t)

    limits = httpx.Limits(max_connections=concurrency)
    with httpx.Client(base_url=url, timeout=120, limits=limits) as client:
        for i in range(min(concurrency, 8)):  # warm-up connections and the model
            one(i, client)
        latencies.clear()
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            list(pool.map(lambda i: one(i, client), range(requests)))
        wall = time.perf_counter() - started
    lat = np.array(latencies) * 1000
    return {
        "concurrency": concurrency,
        "requests": requests,
        "req_per_s": requests / wall,
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", type=Path)
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--image-size", type=int, default=160)
    ap.add_argument("--requests", type=int, default=200, help="per concurrency level")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--images", type=int, default=32, help="distinct radiographs to cycle")
    ap.add_argument("--ready-timeout", type=float, default=120)
    args = ap.parse_args()
    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
    with tempfile.TemporaryDirectory(prefix="bonebase-bench-serve-") as tmp_s:
        tmp = Path(tmp_s)
        model = args.model or untrained(
            tmp / "model.pt", arch=args.arch, image_size=args.image_size
        )
        files = radiographs(tmp / "synth", args.images)
        env = {**os.environ, "BENTOML_HOME": str(tmp / "bentoml"), "BENTOML_DO_NOT_TRACK": "true"}
        env.pop("BONEBASE_API_TOKEN", None)
        save = (
            "from bonebase.release.serving import save_to_bentoml as s; "
            f"print(s({str(model)!r}, version='bench'))"
        )
        tag = subprocess.run(
            [sys.executable, "-c", save],
            env=env,
            cwd=REPO,
            check=True,
            text=True,
            capture_output=True,
        ).stdout.strip()
        port = _free_port()
        proc = start_server(tag, cwd=REPO, port=port, log=tmp / "serve.log", base_env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + args.ready_timeout
            while True:
                try:
                    if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    print((tmp / "serve.log").read_text()[-2000:], file=sys.stderr)
                    return 1
                time.sleep(0.5)
            served = [
                load(url, files, concurrency=c, requests=args.requests) for c in args.concurrency
            ]
        except httpx.HTTPError:
            text = (tmp / "serve.log").read_text()
            print(text[text.find("Traceback") :][:6000] or text[-3000:], file=sys.stderr)
            raise
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        local = in_process(Predictor.from_checkpoint(model), files, repeats=args.requests)
    for row in served:
        row["ratio_to_bare"] = row["req_per_s"] / local["bare_per_s"]
        row["ratio_to_pipeline"] = row["req_per_s"] / local["pipeline_per_s"]
    out = {
        "device": "cpu",
        "torch_threads": torch.get_num_threads(),
        "arch": args.arch if args.model is None else "from checkpoint",
        "in_process": local,
        "served": served,
    }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
