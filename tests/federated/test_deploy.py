"""The real deployment of federated training (#24): Flower's SuperLink and two SuperNodes as
separate processes on 127.0.0.1, over TLS with a CA made by `bonebase federated certs`'s code,
running bonebase's ServerApp and ClientApp; the model is registered in the consortium's registry.
Every process is started in its own group and stopped in `finally`, and each has a time limit."""

from __future__ import annotations

import json
import os
import socket
import ssl
import stat
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner

from bonebase.errors import BonebaseError
from bonebase.federated import deploy, processes
from bonebase.federated.tls import certificates_in, make_certificates
from tests.federated.conftest import TINY, optimizer_steps

SITES = ("HX", "BJ1")  # two of the session consortium's hospitals (tests/federated/conftest.py)


def test_certificates_chain_to_the_ca_and_keys_stay_private(tmp_path):
    certs = make_certificates(tmp_path / "certs", hosts=["127.0.0.1", "fl.example.org"])
    ca = x509.load_pem_x509_certificate(certs.ca.read_bytes())
    server = x509.load_pem_x509_certificate(certs.server_cert.read_bytes())
    server.verify_directly_issued_by(ca)  # raises when the chain is wrong
    ca.public_key().verify(server.signature, server.tbs_certificate_bytes,
                           ec.ECDSA(server.signature_hash_algorithm))
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert sans.get_values_for_type(x509.DNSName) == ["fl.example.org"]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for key in (certs.server_key, tmp_path / "certs" / "ca.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    with pytest.raises(BonebaseError, match="lock out every hospital"):
        make_certificates(tmp_path / "certs", hosts=["127.0.0.1"])
    with pytest.raises(BonebaseError, match="bonebase federated certs"):
        certificates_in(tmp_path / "empty")


def test_commands_refuse_a_missing_ca_or_certificates(tmp_path):
    import typer

    from bonebase.federated.deploy_cli import add_deploy_commands

    app = typer.Typer()
    add_deploy_commands(app)
    runner = CliRunner()
    result = runner.invoke(app, ["client", "--site", "HX", "--server", "fl.example.org:9092"])
    assert result.exit_code != 0 and "--ca" in str(result.exception or result.output)
    result = runner.invoke(app, ["server", "--certs", str(tmp_path)])
    assert result.exit_code != 0 and "server.pem" in str(result.exception or result.output)
    result = runner.invoke(app, ["start", "--insecure", "--no-register", "--set", "colour=blue"])
    assert result.exit_code != 0 and "colour" in str(result.exception or result.output)


def _group_alive(pgid: int, wait_s: float = 10.0) -> bool:
    """Whether any process of the group is still there (after `wait_s` for it to go)."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        time.sleep(0.2)
    return True


def _tls_handshake(port: int, ca) -> str:
    """The subject the server presents, verified against our CA for 127.0.0.1."""
    context = ssl.create_default_context(cafile=str(ca))
    context.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        with context.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
            return dict(x[0] for x in tls.getpeercert()["subject"])["commonName"]


def _bonebase(*args: str) -> list[str]:
    """The `bonebase` command of this environment (a separate process)."""
    return [str(Path(sys.executable).parent / "bonebase"), *args]


def test_superlink_and_two_supernodes_over_tls_train_and_register(consortium, bonebase_env,
                                                                  db_url, tmp_path):
    """`bonebase federated certs|server|client|start` as the guide gives them: the SuperLink
    is restarted once the hospitals are connected, and the run reaches both anyway. Two rounds
    of half an epoch with each hospital keeping its optimizer: the deployed SuperNodes keep it
    from one round to the next (Flower's Context.state, in the node's memory)."""
    ports = {name: processes.free_port() for name in ("fleet", "control", "serverappio", *SITES)}
    certs = tmp_path / "certs"
    done = subprocess.run(_bonebase("federated", "certs", "--out", str(certs), "--host",
                                    "127.0.0.1"), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    env = dict(os.environ)  # the consortium's home and database (bonebase_env)
    server_cmd = ["timeout", "600", *_bonebase(
        "federated", "server", "--certs", str(certs),
        "--fleet", f"127.0.0.1:{ports['fleet']}", "--control", f"127.0.0.1:{ports['control']}",
        "--serverappio", f"127.0.0.1:{ports['serverappio']}", "--state", str(tmp_path / "link"),
    )]  # fmt: skip

    def start_server():
        proc = processes.start("server", server_cmd, cwd=tmp_path, log=tmp_path / "server.log",
                            env=env)
        for port in ("fleet", "control"):
            processes.wait_for_port("127.0.0.1", ports[port], timeout=120, process=proc.process,
                                 what="bonebase federated server")
        return proc

    running: list[processes.Supervised] = []
    try:
        server = start_server()
        running.append(server)
        assert _tls_handshake(ports["fleet"], certs / "ca.crt") == "127.0.0.1"
        for site in SITES:
            # each hospital: its own home, only the CA certificate, no secret of the consortium
            site_env = {k: v for k, v in env.items() if k != "DATABASE_URL"}
            site_env["BONEBASE_HOME"] = str(consortium / "homes" / site)
            running.append(processes.start(site, ["timeout", "600", *_bonebase(
                "federated", "client", "--site", site,
                "--server", f"127.0.0.1:{ports['fleet']}", "--ca", str(certs / "ca.crt"),
                "--clientappio", f"127.0.0.1:{ports[site]}", "--max-wait", "300",
            )], cwd=tmp_path / site, log=tmp_path / f"{site}.log", env=site_env))  # fmt: skip
        # The consortium restarts its SuperLink: the SuperNodes reconnect by themselves.
        server.stop()
        running.remove(server)
        running.append(start_server())

        out = tmp_path / "out"
        settings = [f"{k}={v}" for k, v in TINY.items() if k != "task"]
        start = subprocess.run(["timeout", "480", *_bonebase(
            "federated", "start", "--control", f"127.0.0.1:{ports['control']}",
            "--ca", str(certs / "ca.crt"), "--rounds", "2", "--rounds-per-epoch", "2",
            "--keep-optimizer", "--min-sites", "2",
            "--eval-data", str(consortium / "data"), "--register", "--by", "test-deploy",
            "--out", str(out), "--params", str(consortium / "params.yaml"),
            *[arg for item in settings for arg in ("--set", item)],
        )], capture_output=True, text=True, env=env, cwd=tmp_path)  # fmt: skip
        logs = "\n".join(p.log_tail() for p in running)
        assert start.returncode == 0, f"{start.stdout[-5000:]}\n{start.stderr}\n{logs[-5000:]}"
        assert ": finished:completed" in start.stdout
    finally:
        for proc in running:
            proc.stop()
    for proc in running:
        assert proc.process.poll() is not None
        assert not _group_alive(proc.process.pid), f"{proc.name} left processes behind"
    assert (out / "model.pt").is_file() and (out / "metrics.json").is_file()
    with psycopg.connect(db_url) as conn:
        run = conn.execute("SELECT model_id, sites, rounds, strategy, site_datasets, created_by"
                           " FROM federated_runs").fetchall()
        models = conn.execute("SELECT id, status FROM models").fetchall()
    assert len(run) == 1 and len(models) == 1
    model_id, sites, rounds, strategy, site_datasets, by = run[0]
    assert model_id == models[0][0] and models[0][1] == "candidate"
    assert sorted(sites) == sorted(SITES) and rounds == 2 and strategy == "fedavg"
    assert sorted(site_datasets) == sorted(SITES) and by == "test-deploy"
    # each node's optimizer had stepped in round 1 when round 2 began: its state was kept
    lineage = json.loads((out / "federated.json").read_text())
    steps = optimizer_steps(lineage)
    assert steps[0] == dict.fromkeys(SITES, 0), steps
    assert sorted(steps[1]) == sorted(SITES) and min(steps[1].values()) > 0, steps
    assert lineage["keep_optimizer"] is True and lineage["optimizer_resets"] == []
    assert "fresh optimizer" not in start.stdout


def test_flower_app_passes_flowers_own_checks(tmp_path):
    """The generated Flower App is what `flwr run` accepts: Flower's validator passes it, the
    FAB it builds holds no code of ours, and the run config is the one given."""
    import io
    import tomllib
    import zipfile

    from flwr.cli.build import build_fab_from_disk
    from flwr.cli.config_utils import load_and_validate

    from bonebase.federated.config import DEFAULTS

    app = deploy.write_flower_app(tmp_path / "app", {"rounds": 8, "dp-clip": 1.5,
                                                     "dp-noise": 0.5, "by": 'Dr "Q"'})
    config, warnings = load_and_validate(app / "pyproject.toml")
    assert config is not None and not warnings
    components = config["tool"]["flwr"]["app"]["components"]
    assert components == {"serverapp": "bonebase.federated.server:app",
                          "clientapp": "bonebase.federated.client:app"}
    pyproject = tomllib.loads((app / "pyproject.toml").read_text())
    run_config = pyproject["tool"]["flwr"]["app"]["config"]
    assert set(run_config) == set(DEFAULTS)
    assert run_config["rounds"] == 8 and run_config["dp-clip"] == 1.5
    assert run_config["by"] == 'Dr "Q"'
    names = zipfile.ZipFile(io.BytesIO(build_fab_from_disk(app))).namelist()
    assert not [n for n in names if n.endswith(".py")], names
    with pytest.raises(BonebaseError, match="colour"):
        deploy.write_flower_app(tmp_path / "bad", {"colour": "blue"})
    with pytest.raises(BonebaseError, match="--server"):
        deploy.parse_address("fl.example.org:http", default_port=9092, what="--server")
    assert deploy.parse_address("fl.example.org", default_port=9092, what="x") == (
        "fl.example.org", 9092)
