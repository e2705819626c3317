"""`bonebase prefect ui` shows the flow runs that bonebase's commands made in their home (#17 point
7): a plain `prefect server start` reads ~/.prefect and showed none of them."""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request

import pytest

FLOW = "bonebase-ui-probe"

RUN_A_FLOW = textwrap.dedent(f"""
    from bonebase.cli_common import prefect_env
    prefect_env()  # what submit, dataset version and retrain do before importing Prefect
    from prefect import flow

    @flow(name="{FLOW}")
    def probe():
        return 1

    probe()
""")


def _env(home):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PREFECT_") and k != "BONEBASE_HOME"}
    return {**env, "BONEBASE_HOME": str(home), "COLUMNS": "200"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _call(url, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.read()


@pytest.mark.slow  # a temporary Prefect server, then a real one: tens of seconds
def test_the_ui_lists_the_runs_of_the_home(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = _env(home)
    ran = subprocess.run([sys.executable, "-c", RUN_A_FLOW], env=env, capture_output=True,
                         text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert (home / "prefect").is_dir()

    printed = subprocess.run([sys.executable, "-m", "bonebase.cli", "prefect", "command"],
                             env=env, capture_output=True, text=True, timeout=60)
    assert printed.stdout.strip() == f"PREFECT_HOME={home / 'prefect'} prefect server start"

    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "bonebase.cli", "prefect", "ui", "--port", str(port)], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, server.stdout.read()[-3000:]
            try:
                if _call(f"{api}/health")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the Prefect server did not answer in 180 s"
            time.sleep(1)
        _, flows = _call(f"{api}/flows/filter", {})
        probe = [f for f in json.loads(flows) if f["name"] == FLOW]
        assert len(probe) == 1, flows
        _, runs = _call(f"{api}/flow_runs/filter", {})
        ours = [r for r in json.loads(runs) if r["flow_id"] == probe[0]["id"]]
        assert [r["state_type"] for r in ours] == ["COMPLETED"]
        status, page = _call(f"http://127.0.0.1:{port}/")
        assert status == 200 and b"<html" in page.lower()  # the UI itself, not only the API
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)
