"""Dataset export and DVC versions end to end: real PostgreSQL, Prefect, git, DVC, moto S3.

One module database holds one ingested hospital (HX); the versioning scenario ingests a second
(MUC) half-way. Both submissions are synthetic HX-layout folders of different seeds (the MUC
one ingested under the code MUC): any site's folder would do, and HX's is the one whose
submissions the ingest accepts in bulk today. Tests run in file order; each resets the
dataset_versions it relies on.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from bonebase.config import Settings
from bonebase.dataset import dvc as dv
from bonebase.dataset.export import MARKER_FILE, export
from bonebase.dataset.labels import LABEL_COLUMNS, load_truth_boxes
from bonebase.dataset.versioning import (
    ExportParams,
    SplitParams,
    Target,
    checkout,
    checkout_rev,
    version_dataset,
)
from bonebase.db import datasets
from bonebase.db.engine import connect
from bonebase.db.sites import add_site
from bonebase.storage import open_store

pytestmark = pytest.mark.slow

SIZE = 64
EXPORT = ExportParams(size=SIZE, bits=16, modalities=("CR", "DX"))
SPLIT = SplitParams(seed=7, val_fraction=0.2, test_fraction=0.2, external_sites=("MUC",))


@pytest.fixture(scope="module")
def consortium(tmp_path_factory) -> Path:
    """Two submissions: ``HX/`` (seed 3) and ``MUC/`` (another hospital's, seed 5)."""
    from bonebase.synth import generate

    out = tmp_path_factory.mktemp("synth")
    for code, seed in (("HX", 3), ("MUC", 5)):
        generate(out / f"gen-{code}", sites=1, cases_per_site=22, seed=seed, workers=2)
        (out / f"gen-{code}" / "HX").rename(out / code)
    return out


@pytest.fixture(scope="module")
def world(consortium, fresh_database, tmp_path_factory, prefect_harness):
    """A database with HX ingested, its settings and object store."""
    from bonebase.db.migrate import upgrade
    from flows.ingest import ingest_submission

    url = fresh_database()
    upgrade(url)
    home = tmp_path_factory.mktemp("home")
    settings = Settings(home=home, database_url=url, secret="t" * 40, env="test")
    settings.ensure_home()
    with connect(url) as conn:
        for code in ("HX", "MUC"):
            add_site(conn, code=code, name=f"Hospital {code}")
    ingest_submission("HX", str(consortium / "HX" / "submission"), settings=settings)
    return settings, open_store(settings.object_store_url)


def _files(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _content(files: dict[str, str]) -> dict[str, str]:
    """A data/ listing without DVC's and git's bookkeeping and the checkout marker."""
    return {
        k: v
        for k, v in files.items()
        if not k.endswith((".dvc", ".gitignore")) and k != MARKER_FILE
    }


def _by_name(folder: Path) -> dict[str, str]:
    """Image file name → content hash, whatever shard holds it."""
    return {Path(k).name: v for k, v in _files(folder / "images").items() if k.endswith(".png")}


def _labels(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "labels.csv", dtype=str, keep_default_na=False)


def _set_current(url: str, case: str, current: bool) -> None:
    with connect(url) as conn:
        conn.execute("UPDATE cases SET is_current = %s WHERE case_pseudonym = %s", (current, case))
        conn.commit()


def _reset_versions(url: str) -> None:
    with connect(url) as conn:
        conn.execute("TRUNCATE dataset_versions CASCADE")  # and tables that point at it
        conn.commit()


def test_export_is_deterministic_incremental_and_labelled(world, consortium, tmp_path):
    settings, store = world
    boxes = load_truth_boxes(consortium)
    with connect(settings.database_url) as conn:
        a = export(
            conn, store, tmp_path / "a", size=SIZE, bits=16, modalities=["CR", "DX"], boxes=boxes
        )
        export(
            conn,
            store,
            tmp_path / "b",
            size=SIZE,
            bits=16,
            modalities=["CR", "DX"],
            boxes=boxes,
            workers=3,
        )
        n_xray = conn.execute(
            "SELECT count(*) AS n FROM instances WHERE modality IN ('CR','DX')"
        ).fetchone()["n"]
    assert a.n_images == a.rendered == n_xray > 20 and not a.skipped
    assert _files(tmp_path / "a") == _files(tmp_path / "b")  # byte-identical, threads or not

    labels = _labels(tmp_path / "a")
    assert tuple(labels.columns) == LABEL_COLUMNS
    assert list(labels["instance_id"]) == sorted(labels["instance_id"])
    assert set(labels["site"]) == {"HX"}
    assert set(labels["benign_vs_malignant"]) == {"0", "1"}
    assert (labels.loc[labels["behaviour"] == "malignant", "benign_vs_malignant"] == "1").all()
    assert (
        labels.loc[labels["diagnosis"] == "giant_cell_tumour", "benign_vs_malignant"] == "0"
    ).all()  # intermediate counts as benign
    assert set(labels["os_vs_gct"]) <= {"", "0", "1"}
    manifest = pd.read_csv(consortium / "HX" / "submission" / "manifest.csv", dtype=str)
    assert not set(labels["case_id"]) & set(manifest["case_id"])  # pseudonyms only
    assert not set(labels["patient_id"]) & set(manifest["patient_id"])
    boxed = labels.loc[labels["lesion_box"] != "", "lesion_box"]
    assert len(boxed) > 10
    for box in boxed:
        x0, y0, x1, y1 = map(float, box.split())
        assert 0 <= x0 < x1 <= SIZE and 0 <= y0 < y1 <= SIZE
    png = Image.open(tmp_path / "a" / labels["image"].iloc[0])
    assert png.size == (SIZE, SIZE) and png.mode in ("I;16", "I")

    # Unchanged: nothing rendered. A withdrawn case leaves; restored, it comes back.
    with connect(settings.database_url) as conn:
        again = export(
            conn, store, tmp_path / "a", size=SIZE, bits=16, modalities=["CR", "DX"], boxes=boxes
        )
        assert (again.rendered, again.reused, again.removed) == (0, a.n_images, 0)
        case = labels["case_id"].iloc[0]
        n_case = int((labels["case_id"] == case).sum())
        conn.execute("UPDATE cases SET is_current = false WHERE case_pseudonym = %s", (case,))
        try:
            gone = export(
                conn,
                store,
                tmp_path / "a",
                size=SIZE,
                bits=16,
                modalities=["CR", "DX"],
                boxes=boxes,
            )
        finally:
            conn.rollback()
        assert gone.removed == n_case and gone.n_images == a.n_images - n_case
        assert case not in set(_labels(tmp_path / "a")["case_id"])
        back = export(
            conn, store, tmp_path / "a", size=SIZE, bits=16, modalities=["CR", "DX"], boxes=boxes
        )
        assert back.rendered == n_case
        # The same images, the returning ones in a new shard (sharded by arrival).
        assert _by_name(tmp_path / "a") == _by_name(tmp_path / "b")
        again_labels = _labels(tmp_path / "a")
        moved = again_labels["case_id"] == case
        assert set(again_labels.loc[moved, "image"].str[:13]) == {"images/b0002/"}
        assert set(again_labels.loc[~moved, "image"].str[:13]) == {"images/b0001/"}
        pd.testing.assert_frame_equal(
            again_labels.drop(columns="image"), _labels(tmp_path / "b").drop(columns="image")
        )
        # Other parameters re-render everything, into one new shard; the old ones go.
        eight = export(conn, store, tmp_path / "a", size=SIZE, bits=8, modalities=["CR", "DX"])
    assert eight.rendered == a.n_images
    assert sorted(p.name for p in (tmp_path / "a" / "images").iterdir()) == ["b0003"]
    eight_labels = _labels(tmp_path / "a")
    assert Image.open(tmp_path / "a" / eight_labels["image"].iloc[0]).mode == "L"


def test_versions_lock_splits_and_restore_in_a_fresh_clone(world, consortium, tmp_path):
    from flows.ingest import ingest_submission

    settings, store = world
    url = settings.database_url
    _reset_versions(url)
    target = Target(tmp_path / "ws", str(tmp_path / "remote"))
    v1 = version_dataset(url, store, target=target, export_params=EXPORT, split_params=SPLIT)
    assert v1.version is not None and v1.version.version == 1
    ws = target.workspace
    v1_files = _files(ws / "data")
    labels1 = _labels(ws / "data")
    v1_split = pd.read_csv(ws / "data" / "split.csv", dtype=str)
    assert set(v1_split["site"]) == {"HX"}
    assert set(v1_split["split"]) == {"train", "val", "test"}
    assert v1.version.counts["site"] == labels1["site"].value_counts().sort_index().to_dict()
    assert dv.git(ws, "tag", "--list").split() == ["v1"]

    # Nothing changed: no version.
    same = version_dataset(url, store, target=target, export_params=EXPORT, split_params=SPLIT)
    assert same.version is None and "no new data" in same.message
    assert same.export.rendered == 0

    # A new hospital: version 2 differs from 1 by exactly the new cases' images and rows.
    ingest_submission("MUC", str(consortium / "MUC" / "submission"), settings=settings)
    v2 = version_dataset(url, store, target=target, export_params=EXPORT, split_params=SPLIT)
    assert v2.version is not None and v2.version.version == 2
    v2_files = _files(ws / "data")
    labels2 = _labels(ws / "data")
    new_rows = labels2[~labels2["instance_id"].isin(labels1["instance_id"])]
    assert set(new_rows["site"]) == {"MUC"} and v2.export.rendered == len(new_rows) > 0
    old_rows = labels2[labels2["instance_id"].isin(labels1["instance_id"])]
    pd.testing.assert_frame_equal(old_rows.reset_index(drop=True), labels1)
    changed = {k for k in v2_files.keys() | v1_files.keys() if v1_files.get(k) != v2_files.get(k)}
    expected = {f"images/b0002/{i}.png" for i in new_rows["instance_id"]}
    assert set(new_rows["image"]) == expected  # the contract: path under data/
    tables = {"labels.csv", "split.csv", "labels.csv.dvc", "split.csv.dvc"}
    assert changed - tables == expected | {"images/b0002.dvc", "images/.gitignore"}
    # Only the new shard and the tables changed in git: version 1's shard is untouched.
    diff = dv.git(ws, "diff", "--name-only", "v1", "v2").split()
    assert sorted(diff) == sorted(
        f"data/{f}"
        for f in ("images/.gitignore", "images/b0002.dvc", "labels.csv.dvc", "split.csv.dvc")
    ) + ["splits/assignments.csv"]
    # Locked split: every v1 patient keeps its split; MUC patients are spread.
    v2_split = pd.read_csv(ws / "data" / "split.csv", dtype=str)
    merged = v1_split.merge(v2_split, on=["site", "patient_id"], suffixes=("_1", "_2"))
    assert len(merged) == len(v1_split) and (merged["split_1"] == merged["split_2"]).all()
    assert set(v2_split.loc[v2_split["site"] == "MUC", "split"]) == {"external"}  # held out
    assert dv.is_clean(ws)
    assert "MUC" in (ws / "splits" / "assignments.csv").read_text()

    # Version 1 in a fresh clone, data only from the remote (a clone has no cache): identical.
    row, restored = checkout(url, 1, workspace=tmp_path / "clone")
    assert row.git_rev == v1.version.git_rev
    assert _files(restored) == v1_files
    # and version 2 copied out of the main workspace (left as it is), from its cache
    _, path = checkout(url, 2, workspace=ws, dest=tmp_path / "copy")
    assert _content(_files(path)) == _content(v2_files)
    assert json.loads((path / MARKER_FILE).read_text())["version"] == 2
    assert _files(ws / "data") == v2_files

    # Version 1 in place: version 2's shard leaves data/ ...
    checkout(url, 1, workspace=ws)
    assert _files(ws / "data") == v1_files
    # ... and the next version returns to the tip from the cache (nothing re-rendered).
    # A withdrawn case: version 3 rewrites only the shard that held it.
    case = labels1["case_id"].iloc[0]
    gone = set(labels1.loc[labels1["case_id"] == case, "instance_id"])
    _set_current(url, case, False)
    try:
        v3 = version_dataset(url, store, target=target, export_params=EXPORT, split_params=SPLIT)
        assert v3.version is not None and v3.export.removed == len(gone)
        assert v3.export.rendered == 0
        assert not gone & set(_labels(ws / "data")["instance_id"])
        diff = dv.git(ws, "diff", "--name-only", "v2", "v3").split()
        assert {d for d in diff if "images" in d} == {"data/images/b0001.dvc"}
        # New preprocessing parameters: a new full export in one new shard; old shards go.
        eight = replace(EXPORT, bits=8)
        v4 = version_dataset(url, store, target=target, export_params=eight, split_params=SPLIT)
        assert v4.version is not None and v4.export.rendered == v4.export.n_images
        assert [p.name for p in (ws / "data" / "images").glob("b*.dvc")] == ["b0003.dvc"]
        _, old = checkout(url, 2, workspace=ws, dest=tmp_path / "v2-again")
        assert _content(_files(old)) == _content(v2_files)
    finally:
        _set_current(url, case, True)


def test_s3_remote_and_fresh_clone(world, tmp_path, s3_bucket, monkeypatch):
    settings, store = world
    # The moto fixture points AWS_CONFIG_FILE at os.devnull, which aiobotocore (dvc-s3) refuses
    # as "not found"; an empty real file keeps the same isolation.
    empty = tmp_path / "aws-empty"
    empty.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    url = settings.database_url
    _reset_versions(url)
    remote = f"s3://{s3_bucket.bucket}/dvc"
    target = Target(tmp_path / "ws", remote, s3_bucket.endpoint_url)
    v1 = version_dataset(url, store, target=target, export_params=EXPORT)
    assert v1.version is not None and v1.version.remote_url == remote
    from bonebase.storage import open_store as store_at

    pushed = list(
        store_at(f"s3://{s3_bucket.bucket}/dvc", endpoint_url=s3_bucket.endpoint_url).list("")
    )
    assert len(pushed) >= v1.version.n_images  # one object per file (+ the .dir listing)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(target.workspace), str(clone)], check=True)
    restored = checkout_rev(clone, v1.version.git_rev)
    assert _files(restored) == _files(target.workspace / "data")


def test_failed_push_rolls_back_and_retry_succeeds(world, tmp_path):
    settings, store = world
    url = settings.database_url
    _reset_versions(url)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the remote's parent should be")
    target = Target(tmp_path / "ws", str(blocker / "remote"))
    with pytest.raises(dv.VersioningError, match="rolled back") as info:
        version_dataset(url, store, target=target, export_params=EXPORT)
    assert "bonebase dataset version" in str(info.value)
    ws = target.workspace
    assert dv.git(ws, "log", "--format=%s").strip().splitlines() == ["Initialise dataset workspace"]
    assert dv.git(ws, "tag", "--list").strip() == ""
    with connect(url) as conn:
        assert datasets.latest_version(conn) is None
    good = Target(ws, str(tmp_path / "remote"))
    retry = version_dataset(url, store, target=good, export_params=EXPORT)
    assert retry.version is not None and retry.version.version == 1
    assert retry.export.rendered == 0  # the export of the failed try is reused


def test_flow_and_cli(world, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from bonebase.config import get_settings
    from bonebase.dataset.cli import dataset_app
    from flows.version_dataset import version_dataset_flow

    settings, _ = world
    _reset_versions(settings.database_url)
    params = tmp_path / "params.yaml"
    params.write_text(
        "task: benign_vs_malignant\nexport: {size: 32, bits: 8, modalities: [CR, DX]}"
        "\nsplit: {seed: 1, val_fraction: 0.2, test_fraction: 0.2, "
        "external_sites: [MUC]}\n"
    )
    # The flow reads its settings from the environment (no Settings parameter: Prefect would
    # store the secret and DATABASE_URL in the flow run's parameters).
    for name, value in settings.environ().items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    result = version_dataset_flow(str(params))
    assert result["version"] == 1 and result["n_images"] > 0
    ws = settings.home / "workspace"
    assert Image.open(next((ws / "data" / "images").glob("b*/*.png"))).size == (32, 32)

    try:
        runner = CliRunner()
        listed = runner.invoke(dataset_app, ["list", "--json"])
        assert listed.exit_code == 0, listed.output
        assert '"version": 1' in listed.output
        shown = runner.invoke(dataset_app, ["show", "1"])
        assert shown.exit_code == 0 and '"split"' in shown.output
        missing = runner.invoke(dataset_app, ["show", "9"])
        assert missing.exit_code != 0
        assert "bonebase dataset list" in str(missing.exception)
        dest = tmp_path / "out"
        out = runner.invoke(dataset_app, ["checkout", "1", "--to", str(dest)])
        assert out.exit_code == 0, out.output
        assert _content(_files(dest)) == _content(_files(ws / "data"))
        assert json.loads((dest / MARKER_FILE).read_text())["version"] == 1
        with (dest / "labels.csv").open() as fh:
            assert next(csv.reader(fh)) == list(LABEL_COLUMNS)
    finally:
        get_settings.cache_clear()
    shutil.rmtree(ws, ignore_errors=True)


def test_workspace_lock_serialises_runs(tmp_path):
    ws = tmp_path / "ws"
    with dv.workspace_lock(ws):
        with pytest.raises(dv.VersioningError, match="holds the lock"):
            with dv.workspace_lock(ws, timeout=0.2):
                pass
    with dv.workspace_lock(ws, timeout=0.2):  # free again once released
        pass
