"""`bonebase federated run` and `start` refuse what cannot work before Flower or Ray start, and
their options become the run config's keys."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from bonebase.errors import BonebaseError
from bonebase.federated.cli import federated_app
from bonebase.federated.config import DEFAULTS, merged


def _run(args):
    return CliRunner().invoke(federated_app, ["run", *args])


def test_run_names_a_site_without_a_home(tmp_path):
    (tmp_path / "HX").mkdir()
    result = _run(["--sites", "HX,BJ1", "--homes", str(tmp_path), "--no-register"])
    assert result.exit_code != 0
    message = str(result.exception)
    assert message.startswith(f"no home for site(s) BJ1 in {tmp_path}")
    assert "<CODE>/federated/data" in message


def test_run_needs_the_consortium_evaluation_to_register(tmp_path):
    result = _run(["--sites", "HX,BJ1", "--homes", str(tmp_path)])
    assert result.exit_code != 0
    assert "give --eval-data DIR" in str(result.exception)
    result = _run(["--sites", "HX", "--homes", str(tmp_path), "--no-register"])
    assert "needs at least two sites" in str(result.exception)


def _said(result) -> str:
    """The command's output as one line (the error box's frame and wrapping taken out)."""
    return " ".join(result.output.replace("│", " ").split())


@pytest.fixture
def asked(monkeypatch) -> dict:
    """What `run` hands the simulation and `start` the Flower App: the run config, checked as
    both check it (config.merged), without starting Flower."""
    import bonebase.federated.deploy as deploy
    import bonebase.federated.simulation as simulation

    seen: dict = {}

    def record(config: dict, *_, **__):
        seen.clear()
        seen.update(merged(None, dict(config)))
        raise typer.Exit(0)

    monkeypatch.setattr(simulation, "simulate", record)
    monkeypatch.setattr(deploy, "write_flower_app", lambda folder, config: record(config))
    return seen


SERVER_OPTIONS = ["--strategy", "fedavgm", "--server-lr", "3", "--server-momentum", "0",
                  "--bn-stats", "pooled", "--keep-round", "best", "--rounds", "8",
                  "--rounds-per-epoch", "2", "--fresh-optimizer"]  # fmt: skip
SERVER_CONFIG = {"strategy": "fedavgm", "server-lr": 3.0, "server-momentum": 0.0,
                 "bn-stats": "pooled", "keep-round": "best", "rounds": 8,
                 "rounds-per-epoch": 2, "keep-optimizer": False}  # fmt: skip


def test_run_and_start_set_the_server_options_as_run_config_keys(tmp_path, asked):
    result = _run(["--sites", "HX,BJ1", "--homes", str(tmp_path), "--no-register",
                   *SERVER_OPTIONS, "--set", "arch=resnet18-slim"])  # fmt: skip
    assert result.exit_code == 0, (result.output, result.exception)
    assert {k: asked[k] for k in SERVER_CONFIG} == SERVER_CONFIG
    assert asked["arch"] == "resnet18-slim" and asked["proximal-mu"] == 0.0
    result = CliRunner().invoke(federated_app, ["start", "--insecure", "--no-register",
                                                *SERVER_OPTIONS])  # fmt: skip
    assert result.exit_code == 0, (result.output, result.exception)
    assert {k: asked[k] for k in SERVER_CONFIG} == SERVER_CONFIG
    # every option above differs from its default, so none can be ignored unnoticed
    assert all(DEFAULTS[k] != v for k, v in SERVER_CONFIG.items())
    # without the options: the run config's defaults (FedAvg, 40 rounds of a quarter epoch,
    # optimizers kept, the last round, averaged BN)
    _run(["--sites", "HX,BJ1", "--homes", str(tmp_path), "--no-register"])
    assert {k: asked[k] for k in SERVER_CONFIG} == {k: DEFAULTS[k] for k in SERVER_CONFIG}
    assert {k: DEFAULTS[k] for k in ("rounds", "rounds-per-epoch", "keep-optimizer",
                                     "keep-round")} == {
        "rounds": 40, "rounds-per-epoch": 4, "keep-optimizer": True, "keep-round": "last"}


@pytest.mark.parametrize(("option", "value"), [
    ("--strategy", "fedsgd"), ("--keep-round", "first"), ("--bn-stats", "median"),
    ("--server-momentum", "1"), ("--server-lr", "-0.1"), ("--dp-side", "hospital"),
])  # fmt: skip
def test_bad_server_option_values_are_usage_errors(tmp_path, asked, option, value):
    for args in (["run", "--sites", "HX,BJ1", "--homes", str(tmp_path), "--no-register"],
                 ["start", "--insecure", "--no-register"]):  # fmt: skip
        result = CliRunner().invoke(federated_app, [*args, option, value])
        assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
        assert f"Invalid value for '{option}'" in _said(result)
    assert not asked


@pytest.mark.parametrize(("options", "message"), [
    (["--server-lr", "0.1"], "server-lr=0.1 but strategy fedavg has no server optimizer"),
    (["--strategy", "fedadam", "--server-momentum", "0.5"], "server-momentum=0.5 is FedAvgM's"),
    (["--bn-stats", "pooled", "--dp-clip", "1", "--dp-noise", "0.1"],
     "differential privacy works with fedavg or fedprox and bn-stats average only"),
    (["--set", "keep-round=last"], "keep-round has an option of its own; give --keep-round"),
    (["--set", "server-lr=0.02"], "give --server-lr instead"),
    # the default rounds of a quarter epoch, and 3 rounds
    (["--rounds", "3"], "rounds-per-epoch=4 splits each epoch over 4 rounds: it needs "
     "rounds a multiple of 4 (asked 3), e.g. rounds 4; or rounds-per-epoch 1 for rounds of "
     "whole epochs"),
    (["--local-epochs", "2"], "local-epochs=2 trains 2 epochs a round and rounds-per-epoch=4 1/4 "
     "of one: give rounds-per-epoch 1 with local-epochs, and rounds then counts rounds of 2 "
     "epochs (e.g. rounds 5 for 10 epochs)"),
    (["--rounds", "4", "--rounds-per-epoch", "2", "--local-epochs", "2"],
     "give rounds-per-epoch 1 with local-epochs"),
    (["--set", "keep-optimizer=true"], "give --keep-optimizer/--fresh-optimizer instead"),
])  # fmt: skip
def test_options_that_contradict_each_other_are_refused_by_name(tmp_path, asked, options, message):
    for args in (["run", "--sites", "HX,BJ1", "--homes", str(tmp_path), "--no-register"],
                 ["start", "--insecure", "--no-register"]):  # fmt: skip
        result = CliRunner().invoke(federated_app, [*args, *options])
        assert isinstance(result.exception, BonebaseError), (result.output, result.exception)
        assert message in str(result.exception)
    result = _run(["--sites", "HX,BJ1", "--homes", str(tmp_path), "--no-register",
                   "--set", "sites=HX"])  # fmt: skip
    assert "give --sites instead" in str(result.exception)
