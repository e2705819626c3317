"""Dataset versions: export → ``dvc add`` → git commit → ``dvc push`` → a dataset_versions row.

The versions live in a *dataset workspace*, by default ``BONEBASE_HOME/workspace``: a git + DVC
repository of its own, created on first use, holding the ``.dvc`` files of the exported view
(one per image shard and table, see :mod:`bonebase.dataset.tracking`), ``splits/assignments.csv`` (the locked split, in git so that it survives every version and every
clone) and nothing else. Not the project's checkout, because (1) a service or a steward's
installed ``bonebase`` has no checkout to write to, (2) data commits would interleave with code
commits and reviews, and a developer's uncommitted work would block or leak into a version, and
(3) the workspace is owned by one process at a time (a file lock), which no shared checkout can
promise. Training reads a version by its number (:func:`checkout`, into any folder).

Each step is all or nothing: the data are pushed before the workspace commit (objects only,
named by content), and if the database write fails the commit is rolled back, so the latest
version stays the last complete one.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from bonebase.config import Settings
from bonebase.dataset import dvc as dv
from bonebase.dataset import tracking
from bonebase.dataset.export import ExportSummary, export, next_shard
from bonebase.dataset.labels import Box
from bonebase.dataset.marker import write_marker
from bonebase.dataset.split import assign_splits, read_assignments, write_assignments
from bonebase.db import datasets
from bonebase.db.engine import connect
from bonebase.errors import BonebaseError
from bonebase.storage import ObjectStore

log = logging.getLogger(__name__)

DATA = tracking.DATA
ASSIGNMENTS = "splits/assignments.csv"


@dataclass(frozen=True)
class ExportParams:
    """The ``export`` section of params.yaml."""

    size: int = 256
    bits: int = 16
    modalities: tuple[str, ...] = ("CR", "DX")
    intermediate_as: str = "benign"


@dataclass(frozen=True)
class SplitParams:
    """The ``split`` section of params.yaml (plus the task whose class stratifies)."""

    seed: int = 7
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    external_sites: tuple[str, ...] = ()
    stratify: str = "benign_vs_malignant"


@dataclass(frozen=True)
class Target:
    """Where versions go: the workspace repository and its DVC remote."""

    workspace: Path
    remote_url: str
    endpoint_url: str | None = None


@dataclass
class VersionOutcome:
    """What :func:`version_dataset` did: the new version, or None with the reason."""

    version: datasets.DatasetVersion | None
    export: ExportSummary
    message: str
    params: dict = field(default_factory=dict)


def default_target(settings: Settings) -> Target:
    """Workspace ``HOME/workspace``; remote ``HOME/dvc-remote``, or ``<storage_url>/dvc`` when
    the object store is S3 (same bucket and endpoint, credentials from AWS_*)."""
    storage = settings.storage_url or ""
    if storage.startswith("s3://"):
        return Target(
            settings.home / "workspace", storage.rstrip("/") + "/dvc", settings.s3_endpoint_url
        )
    return Target(settings.home / "workspace", str(settings.home / "dvc-remote"))


def _version_cases(data: Path) -> list[tuple[str, str]]:
    """The (site, case pseudonym) pairs a version's labels hold."""
    labels = pd.read_csv(data / "labels.csv", dtype=str, keep_default_na=False)
    return sorted(set(zip(labels["site"], labels["case_id"], strict=True)))


def _split(data: Path, workspace: Path, params: SplitParams) -> dict[str, int]:
    labels = pd.read_csv(data / "labels.csv", dtype=str, keep_default_na=False)
    previous = read_assignments(workspace / ASSIGNMENTS)
    assigned = assign_splits(
        labels,
        previous,
        seed=params.seed,
        val_fraction=params.val_fraction,
        test_fraction=params.test_fraction,
        external_sites=params.external_sites,
        stratify=params.stratify,
    )
    write_assignments(assigned, workspace / ASSIGNMENTS)
    write_assignments(assigned, data / "split.csv", only=labels)
    current = pd.read_csv(data / "split.csv", dtype=str)
    return dict(sorted(current["split"].value_counts().items()))


def _rollback(workspace: Path, rev: str, tag: str) -> None:
    dv.git(workspace, "tag", "-d", tag, check=False)
    dv.git(workspace, "reset", "-q", "--hard", rev)
    # data/ keeps the new export on purpose: it is the export's working area (the next run
    # finds the new shard untracked, or an old one's listing changed, and adds it again).


def _not_recorded(number: int, exc: Exception) -> dv.VersioningError:
    reason = str(exc) if isinstance(exc, BonebaseError) else repr(exc)
    return dv.VersioningError(
        f"dataset version {number} was not recorded and the workspace is rolled back to the "
        f"previous version ({reason}); fix the cause (remote reachable and writable, database "
        "up) and run `bonebase dataset version` again"
    )


def _back_to_tip(ws: Path) -> None:
    """Put the workspace on its branch tip, with the tip's data after an in-place checkout."""
    detached = not dv.git(ws, "symbolic-ref", "-q", "HEAD", check=False).strip()
    dv.git(ws, "checkout", "-q", "-f", dv.BRANCH)
    if detached:
        # `checkout N` left an old version's shards: restore the tip's from the cache, so the
        # export re-renders nothing and no stale shard is taken for a new one.
        tracking.prune_untracked_shards(ws)
        dv.dvc(ws, "checkout", "--force", what="dvc checkout of the branch tip", check=False)


def version_dataset(
    db_url: str,
    store: ObjectStore,
    *,
    target: Target,
    export_params: ExportParams,
    split_params: SplitParams | None = None,
    boxes: dict[str, Box] | None = None,
    actor: str | None = None,
    workers: int = 1,
) -> VersionOutcome:
    """Export the current view into the workspace and record it as the next version.

    Returns the outcome; ``outcome.version`` is None when the data equal the latest version's.
    Raises VersioningError (workspace rolled back) when the push or the database write fails.
    """
    ws = Path(target.workspace)
    with dv.workspace_lock(ws):
        dv.init_workspace(ws, remote_url=target.remote_url, endpoint_url=target.endpoint_url)
        _back_to_tip(ws)
        dv.configure_remote(ws, target.remote_url, endpoint_url=target.endpoint_url)
        with connect(db_url) as conn:
            summary = export(
                conn,
                store,
                ws / DATA,
                size=export_params.size,
                bits=export_params.bits,
                modalities=export_params.modalities,
                intermediate_as=export_params.intermediate_as,
                boxes=boxes,
                workers=workers,
                # numbered past every shard the branch tracks, even one whose folder is gone
                shard=next_shard(ws / DATA / "images", list(tracking.tracked_shards(ws))),
            )
        params = {"export": asdict(export_params)}
        counts = {**summary.counts}
        if split_params is not None:
            counts["split"] = _split(ws / DATA, ws, split_params)
            params["split"] = asdict(split_params)
        with connect(db_url) as conn:
            number = datasets.next_version(conn)
        try:
            tracking.add_and_push(ws, remote=target.remote_url)
        except dv.VersioningError as exc:
            tracking.discard_uncommitted(ws)
            raise _not_recorded(number, exc) from exc
        md5 = tracking.tree_md5(ws)
        with connect(db_url) as conn:
            latest = datasets.latest_version(conn)
        if latest is not None and latest.dvc_md5 == md5:
            dv.git(ws, "checkout", "-q", "-f", dv.BRANCH)
            message = f"no new data since dataset version {latest.version}: no new version"
            return VersionOutcome(None, summary, message, params)
        previous = dv.head(ws)
        tag = f"v{number}"
        dv.git(ws, "add", "-A")
        dv.git(
            ws,
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            f"Dataset version {number}: {summary.describe()}",
        )
        dv.git(ws, "tag", tag)
        rev = dv.head(ws)
        try:
            with connect(db_url) as conn:
                row = datasets.add_version(
                    conn,
                    version=number,
                    dvc_md5=md5,
                    git_rev=rev,
                    workspace=str(ws),
                    remote_url=target.remote_url,
                    n_images=summary.n_images,
                    n_cases=summary.n_cases,
                    n_patients=summary.n_patients,
                    counts=counts,
                    params=params,
                    actor=actor,
                    cases=_version_cases(ws / DATA),
                )
        except Exception as exc:
            _rollback(ws, previous, tag)
            raise _not_recorded(number, exc) from exc
        return VersionOutcome(
            row, summary, f"dataset version {number}: {summary.describe()}", params
        )


def checkout_rev(workspace: Path, rev: str, *, dest: Path | None = None) -> Path:
    """Restore ``data/`` as committed at ``rev`` (pulling from the remote what the cache lacks).

    Without ``dest`` the workspace itself is checked out at ``rev`` (detached; the next
    ``version`` returns it to the tip). With ``dest`` the workspace is left as it is: a
    throw-away clone sharing its cache restores ``rev`` and its data are copied to ``dest``
    (without DVC's bookkeeping files). Returns the folder holding the data.
    """
    ws = Path(workspace)
    with dv.workspace_lock(ws):
        if dest is None:
            dv.git(ws, "checkout", "-q", "-f", "--detach", rev, what=f"git checkout of {rev}")
            tracking.prune_untracked_shards(ws)
            dv.dvc(ws, "pull", "--force", what="dvc pull")
            return ws / DATA
        with tempfile.TemporaryDirectory(prefix=".checkout-", dir=ws.parent) as tmp:
            clone = Path(tmp) / "clone"
            dv.run(["git", "clone", "-q", "--no-checkout", str(ws), str(clone)], cwd=Path(tmp),
                   what=f"git clone of {ws}")  # fmt: skip
            dv.git(clone, "checkout", "-q", rev, what=f"git checkout of {rev}")
            cache = (ws / ".dvc" / "cache").absolute()
            dv.dvc(clone, "cache", "dir", "--local", str(cache), what="dvc cache dir")
            dv.dvc(clone, "pull", what="dvc pull")
            return tracking.copy_data(clone / DATA, Path(dest))


def checkout(
    db_url: str,
    version: int,
    *,
    workspace: Path,
    dest: Path | None = None,
    lock_to: Path | None = None,
) -> tuple[datasets.DatasetVersion, Path]:
    """Restore dataset ``version`` (in ``workspace``, or copied to ``dest``, which then gets a
    ``dataset-version.json`` marker); a missing workspace is cloned first from the repository
    the version was made in (its data then come from the DVC remote). ``lock_to``: also write
    the version's split lock there (``splits/assignments.csv`` of a training checkout), so
    that the pipeline's split stage reproduces the version's split."""
    with connect(db_url) as conn:
        row = datasets.get_version(conn, version)
    ws = Path(workspace)
    if not (ws / ".git").exists():
        ws.parent.mkdir(parents=True, exist_ok=True)
        dv.run(
            ["git", "clone", "-q", row.workspace, str(ws)],
            cwd=ws.parent,
            what=f"git clone of {row.workspace}",
        )
    path = checkout_rev(ws, row.git_rev, dest=dest)
    if dest is not None:
        write_marker(path, version=row.version, dvc_md5=row.dvc_md5, git_rev=row.git_rev)
    if lock_to is not None:
        lock = dv.git(ws, "show", f"{row.git_rev}:{ASSIGNMENTS}", what="git show of the lock")
        Path(lock_to).parent.mkdir(parents=True, exist_ok=True)
        Path(lock_to).write_text(lock)
    return row, path


__all__ = [
    "ExportParams",
    "SplitParams",
    "Target",
    "VersionOutcome",
    "checkout",
    "checkout_rev",
    "default_target",
    "version_dataset",
]
