"""The watch's faster scoring paths give the served model's scores (#23).

The served model (serving/, the web database's "Ask the model") runs ``Predictor.forward`` on
the network as trained; the watch runs a copy made for the CPU (BatchNorm folded, TorchScript,
oneDNN) and reads the next batch while the network runs. Both must store what the served
model would answer, to float rounding (1e-5 on a probability, far below the 1e-4 the drift
report rounds to).
"""

from __future__ import annotations

import numpy as np
import pytest

TOLERANCE = 1e-5


def _predictor(arch: str, image_size: int):
    import torch

    from bonebase.model.checkpoint import Checkpoint
    from bonebase.model.inference import Predictor
    from bonebase.model.networks import build_network

    torch.manual_seed(0)
    net = build_network(arch)
    for m in net.modules():  # running statistics away from the identity, as after training
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    ckpt = Checkpoint(arch=arch, task="benign_vs_malignant", image_size=image_size,
                      state_dict=net.state_dict(), threshold=0.5, export_size=image_size)
    return Predictor(ckpt)


@pytest.mark.parametrize("arch", ["resnet18", "resnet10-slim", "efficientnet-b0"])
def test_optimized_network_gives_the_served_scores(arch):
    """Traced at one batch size, the optimized network scores any batch (1, an odd size, more
    than the trace's) as Predictor.forward does, and it is the optimized one that runs."""
    import torch

    from bonebase.monitor.scoring import Model, inference_network

    predictor = _predictor(arch, 64)
    network = inference_network(predictor.net, image_size=64)
    assert isinstance(network, torch.jit.ScriptModule)  # not the fallback
    model = Model(id=1, task="benign_vs_malignant", predictor=predictor, network=network)
    rng = np.random.default_rng(1)
    for n in (1, 7, 33):
        x = rng.random((n, 1, 64, 64), dtype=np.float32)
        served = predictor.forward(x)[:, 1]
        np.testing.assert_allclose(model.probabilities(x), served, atol=TOLERANCE)
    # A different side than the trace's (a checkpoint's image_size is what preprocess gives,
    # but nothing in the traced graph may depend on it)
    x = rng.random((3, 1, 96, 96), dtype=np.float32)
    np.testing.assert_allclose(model.probabilities(x), predictor.forward(x)[:, 1],
                               atol=TOLERANCE)


@pytest.mark.parametrize("branch", ["dict", "python"])
def test_network_the_tracer_cannot_copy_runs_as_fx_left_it(branch):
    """A network TorchScript refuses (a dict output), or would record wrongly (a branch on
    the data, taken one way for the trace's example), scores as it is, with its own outputs."""
    import torch

    from bonebase.monitor.scoring import inference_network

    class Odd(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 2, 3)

        def forward(self, x):
            y = self.conv(x).mean(dim=(2, 3))
            if branch == "dict":
                return {"logits": y}
            return -y if bool(x.mean() > 0.5) else y  # the trace keeps one side only

    torch.manual_seed(0)
    net = Odd().eval()
    network = inference_network(net, image_size=16)
    assert not isinstance(network, torch.jit.ScriptModule)
    with torch.inference_mode():
        for x in (torch.rand(2, 1, 16, 16) * 0.4, torch.rand(2, 1, 16, 16) * 0.4 + 0.6):
            got, expected = network(x), net(x)
            if branch == "dict":
                got, expected = got["logits"], expected["logits"]
            torch.testing.assert_close(got, expected, atol=TOLERANCE, rtol=0)


def test_pipelined_batches_store_what_one_batch_at_a_time_stores(watched):
    """The watch reads the next batch while the network runs on this one: the same rows, in
    the same order, with the same scores and features as batch after batch."""
    from bonebase.db.engine import connect
    from bonebase.db.models import get_model
    from bonebase.monitor import db, watch
    from bonebase.monitor.scoring import score_batches, score_rows

    store = watched["store"]
    with connect(watched["url"]) as conn:
        model = watch.load(store, get_model(conn, watched["model"]))
        # every radiograph (a model id that scored none), the first 23: five batches of 5
        todo = db.unscored(conn, model_id=-1, modalities=["CR", "DX"])[:23]
    assert len(todo) == 23
    import torch

    one_by_one = score_rows(store, model, todo, batch=5)
    threads = torch.get_num_threads()
    pipelined = [r for rows in score_batches(store, model, todo, batch=5) for r in rows]
    assert torch.get_num_threads() == threads  # the reader's core is given back
    assert [r["instance_id"] for r in pipelined] == [r["instance_id"] for r in todo]
    assert pipelined == one_by_one
    assert sum(r["probability"] is not None for r in pipelined) >= 20
