"""The champion watch's forward pass on a CPU, ways of running it side by side (#23).

    python benchmarks/watch_forward.py [--arch resnet18 --size 128] [--batch 32 8]
                                       [--threads 1 2] [--repeat 9]

The network of params.yaml's ``train:`` (random weights, BatchNorm statistics away from the
identity: the speed and the agreement do not depend on training) run as:
  as_trained       the served model's way (Predictor.forward: eager, inference_mode);
  no_grad          the same under torch.no_grad instead of inference_mode;
  fused            BatchNorm folded into the convolutions (torch.fx; session 8's watch);
  channels_last    fused, with NHWC tensors;
  optimized        fused, traced, frozen, torch.jit.optimize_for_inference (oneDNN: the watch);
  onnxruntime      only when the package is importable (it is not a dependency).
For each thread count and batch size, all arms run in turn, ``--repeat`` times (interleaved: a
shared machine's load moves), and the median ms per image, its range, and the largest
difference in P(class 1) from as_trained are printed.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _network(arch: str):
    import torch

    from bonebase.model.networks import build_network

    torch.manual_seed(0)
    net = build_network(arch)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return net.eval()


def _onnx(net, size: int, threads: int):
    """An onnxruntime session of ``net`` (None when onnxruntime is not installed)."""
    import tempfile

    try:
        import onnxruntime as ort
    except ImportError:
        return None
    import torch

    path = Path(tempfile.mkdtemp(prefix="bonebase-onnx-")) / "net.onnx"
    torch.onnx.export(copy.deepcopy(net), (torch.zeros(2, 1, size, size),), str(path),
                      dynamo=False, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "n"}})
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def arms(net, size: int, threads: int) -> dict:
    """name -> function(x: float32 tensor (n, 1, S, S)) -> logits tensor."""
    import torch

    from bonebase.monitor.scoring import inference_network

    fused = inference_network(net)
    nhwc = copy.deepcopy(fused).to(memory_format=torch.channels_last)
    optimized = inference_network(net, image_size=size)

    def grad_free(x):
        with torch.no_grad():
            return net(x)

    out = {"as_trained": net, "no_grad": grad_free, "fused": fused,
           "channels_last": lambda x: nhwc(x.contiguous(memory_format=torch.channels_last)),
           "optimized": optimized}
    session = _onnx(net, size, threads)
    if session is not None:
        out["onnxruntime"] = lambda x: torch.from_numpy(session.run(None, {"x": x.numpy()})[0])
    return out


def main() -> None:
    import torch
    import yaml

    params = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default=params["train"]["arch"])
    ap.add_argument("--size", type=int, default=params["train"]["image_size"])
    ap.add_argument("--batch", type=int, nargs="+", default=[32])
    ap.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads()])
    ap.add_argument("--repeat", type=int, default=9)
    args = ap.parse_args()
    import os

    net = _network(args.arch)
    print(f"{args.arch} at {args.size} px; {os.cpu_count()} cores, load "
          f"{os.getloadavg()[0]:.1f} at the start")
    for threads in args.threads:
        torch.set_num_threads(threads)
        ways = arms(net, args.size, threads)
        for batch in args.batch:
            x = torch.rand(batch, 1, args.size, args.size,
                           generator=torch.Generator().manual_seed(batch))
            with torch.inference_mode():
                served = torch.softmax(net(x), dim=1)[:, 1]
                diff = {name: float((torch.softmax(f(x).float(), dim=1)[:, 1] - served)
                                    .abs().max()) for name, f in ways.items()}  # and warm-up
                times: dict[str, list[float]] = {name: [] for name in ways}
                for _ in range(args.repeat):
                    for name, f in ways.items():
                        t = time.perf_counter()
                        f(x)
                        times[name].append((time.perf_counter() - t) / batch * 1000)
            base = median(times["as_trained"])
            for name, ms in times.items():
                print(f"threads {threads} batch {batch:3d}  {name:<14} {median(ms):7.2f} ms/image"
                      f"  (range {min(ms):6.2f}-{max(ms):6.2f}; {base / median(ms):4.2f}x)  "
                      f"max |dP| {diff[name]:.1e}")
    print(f"load {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
