"""Worlds built once per test session and shared by the suites that need them.

- ``serving_synth``: the small consortium (2 sites x 22 synthetic cases, seed 3) that the
  served model is trained on and that the web database holds.
- ``trained``: one tiny model trained on it (64 px, 1 epoch), saved as a checkpoint, with a few
  of its DICOM files: tests/e2e/test_serving.py serves it, the web and reader-study tests
  register it.
- ``server``: one ``bentoml serve`` of that model for the session (a private BentoML store, a
  token, a 2 MB upload limit): tests/e2e/test_serving.py, tests/security/test_serving.py and
  tests/web/test_browser.py call it; each start costs a minute on a busy machine.
- ``seeded_template``: that consortium seeded into a database with users of every role, once;
  each module that wants a seeded database gets a copy of it (``CREATE DATABASE ... TEMPLATE``)
  and of its object store, so no module sees another's changes and none seeds again.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest


@pytest.fixture(scope="session")
def serving_synth(tmp_path_factory) -> Path:
    """The consortium of the served model and of the web database (``trained["root"]/synth``)."""
    from bonebase.synth import generate

    out = tmp_path_factory.mktemp("serving-model", numbered=False) / "synth"
    generate(out, sites=2, cases_per_site=22, seed=3, workers=1)
    return out


@pytest.fixture(scope="session")
def trained(serving_synth) -> dict:
    """synth → exported data/ → tiny checkpoint; its folder (``root``: synth/, data/, model.pt,
    where a server's BentoML store goes), the checkpoint and a few of the consortium's DICOM
    files: radiographs (``xrays``) and one CT/MR slice (``others``)."""
    from bonebase.dataset.split import assign_splits, write_assignments
    from bonebase.model.checkpoint import save_checkpoint
    from bonebase.model.data import load_frame
    from bonebase.model.synthdata import export_synth
    from bonebase.model.train import train

    root = serving_synth.parent
    labels = export_synth(serving_synth, root / "data", size=64, bits=16, workers=2)
    split = assign_splits(
        labels, None, seed=3, val_fraction=0.25, test_fraction=0.25, external_sites=[]
    )
    write_assignments(split, root / "data" / "split.csv")
    frame = load_frame(root / "data", task="benign_vs_malignant")
    ckpt = train(frame=frame, data_dir=root / "data", task="benign_vs_malignant", image_size=64,
                 epochs=1, batch_size=16, patience=1, num_workers=0, seed=1,
                 dataset_version="serve-test-v1")
    xrays, others = [], []
    for site in sorted(serving_synth.glob("*/truth.csv")):
        bad = {f["file"] for f in json.loads((site.parent / "faults.json").read_text())}
        for row in csv.DictReader(site.open()):
            if row["file"] not in bad:
                target = xrays if row["modality"] in ("CR", "DX") else others
                target.append(site.parent / "submission" / row["file"])
    return {"root": root, "checkpoint": save_checkpoint(ckpt, root / "model.pt"),
            "xrays": xrays[:4], "others": others[:1]}


ROOT = Path(__file__).resolve().parents[1]
TOKEN = "test-token-123"  # the server's API token
READY_WAIT_S = 120


@pytest.fixture(scope="session")
def server(trained) -> dict:
    """``bentoml serve`` of ``trained`` on a free port, with the model in a private store and a
    token: url, client (a DiagnosisClient with the token), tag and pid."""
    from bonebase.client import DiagnosisClient

    root = trained["root"]
    env = {**os.environ, "BENTOML_HOME": str(root / "bentoml"), "BENTOML_DO_NOT_TRACK": "true",
           "BONEBASE_API_TOKEN": TOKEN, "BONEBASE_MAX_UPLOAD_MB": "2"}
    save = ("from bonebase.release.serving import save_to_bentoml as s; "
            f"print(s({str(trained['checkpoint'])!r}, version='m1-test', "
            "labels={'task': 'benign_vs_malignant'}))")
    tag = subprocess.run([sys.executable, "-c", save], env=env, cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.strip()
    assert tag == "bonebase-diagnosis:m1-test"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (root / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bentoml", "serve", "serving.service:Diagnosis",
         "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env={**env, "BONEBASE_MODEL_TAG": tag}, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    client = DiagnosisClient(url, token=TOKEN)
    try:
        deadline = time.monotonic() + READY_WAIT_S
        while not client.ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("bentoml serve did not become ready: "
                                   f"{(root / 'serve.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield {"url": url, "client": client, "tag": tag, "pid": proc.pid}
    finally:
        client.close()
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


# -- the seeded web database -------------------------------------------------------------------

PASSWORD = "correct horse battery"
USERS = {"vera": "viewer", "rhea": "researcher", "stan": "steward", "ada": "admin"}


def truncate(url: str) -> None:
    """Empty every table of the database at ``url`` but Alembic's."""
    with psycopg.connect(url, autocommit=True) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            " AND tablename <> 'alembic_version'").fetchall()]
        if tables:
            conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")


@pytest.fixture(scope="session")
def seeded_template(fresh_database, tmp_path_factory):
    """A factory: ``seeded_template(synth_root)`` is the seeded world of that consortium (its
    database is a template: nobody connects to it), built on the first call only."""
    made: dict[Path, dict] = {}

    def build(synth_root: Path) -> dict:
        if synth_root not in made:
            made[synth_root] = _seed_world(fresh_database(), synth_root,
                                           tmp_path_factory.mktemp("seeded-objects"))
        return made[synth_root]

    return build


def _seed_world(url: str, synth_root: Path, objects: Path) -> dict:
    from bonebase.db.engine import connect
    from bonebase.db.migrate import upgrade
    from bonebase.db.users import add_user
    from bonebase.storage import LocalStore
    from tests.web.seed import seed

    upgrade(url)
    store = LocalStore(objects)
    with connect(url) as conn:
        cases = seed(conn, store, synth_root)
        steward_site = sorted(cases)[0]
        for name, role in USERS.items():
            add_user(conn, username=name, role=role, password=PASSWORD,
                     site=steward_site if role == "steward" else None, actor="test")
        conn.commit()
    return {"url": url, "objects": objects, "cases": cases, "steward_site": steward_site,
            "other_site": sorted(cases)[1]}


@pytest.fixture(scope="session")
def seeded_copy(fresh_database, seeded_template, tmp_path_factory):
    """A factory: ``seeded_copy(synth_root)`` is a fresh copy of that consortium's seeded world:
    a database made from the template and a copy of its object store."""
    from bonebase.storage import LocalStore

    def copy(synth_root: Path) -> dict:
        world = seeded_template(synth_root)
        url = fresh_database(template=world["url"])
        objects = tmp_path_factory.mktemp("web-objects") / "objects"
        shutil.copytree(world["objects"], objects)
        return {"url": url, "store": LocalStore(objects),
                "cases": {site: list(ids) for site, ids in world["cases"].items()},
                "steward_site": world["steward_site"], "other_site": world["other_site"]}

    return copy
