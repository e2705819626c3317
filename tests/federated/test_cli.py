"""`bonebase federated run` refuses what cannot work before Flower or Ray start."""

from __future__ import annotations

from typer.testing import CliRunner

from bonebase.federated.cli import federated_app


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
    result = _run(["--sites", "HX,BJ1", "--homes", str(tmp_path), "--no-register",
                   "--strategy", "fedsgd"])  # fmt: skip
    assert "strategy='fedsgd'; choose one of fedavg, fedprox" in str(result.exception)
