"""`bonebase dataset …`: cut, list, show and check out dataset versions (mounted by bonebase.cli)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

dataset_app = typer.Typer(help="Dataset versions (DVC) of the training view.", no_args_is_help=True)
console = Console()


def _settings_and_url():
    from bonebase.cli_common import db_url, settings

    return settings(), db_url()  # the schema at head, in a home that exists (else: run init)


def _target(settings, workspace: Path | None, remote: str | None):
    from dataclasses import replace

    from bonebase.dataset.versioning import default_target

    target = default_target(settings)
    if workspace is not None:
        target = replace(target, workspace=workspace.absolute())
    if remote is not None:
        target = replace(target, remote_url=remote)
    return target


@dataset_app.command("version")
def version_cmd(
    params: Annotated[Path, typer.Option("--params", help="params.yaml with export/split.")] = Path(
        "params.yaml"
    ),
    truth: Annotated[
        Path | None,
        typer.Option(
            "--truth", help="Synthetic consortium folder: lesion boxes from its truth.csv."
        ),
    ] = None,
    workspace: Annotated[
        Path | None, typer.Option("--workspace", help="Dataset workspace (default HOME/workspace).")
    ] = None,
    remote: Annotated[
        str | None, typer.Option("--remote", help="DVC remote: a folder or s3://bucket/prefix.")
    ] = None,
) -> None:
    """Export the current cases and record them as the next dataset version (if anything changed)."""
    settings, _ = _settings_and_url()
    from bonebase.cli_common import prefect_env

    prefect_env()  # Prefect's state under BONEBASE_HOME, as `submit` and `retrain` do
    from flows.version_dataset import version_dataset_flow

    result = version_dataset_flow(
        str(params),
        target=_target(settings, workspace, remote),
        truth_dir=str(truth) if truth else None,
    )
    console.print(result["message"], markup=False)


@dataset_app.command("list")
def list_cmd(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the dataset versions."""
    from bonebase.db.datasets import list_versions
    from bonebase.db.engine import connect

    _, url = _settings_and_url()
    with connect(url) as conn:
        rows = list_versions(conn)
    if as_json:
        print(
            json.dumps(
                [
                    {
                        "version": r.version,
                        "dvc_md5": r.dvc_md5,
                        "git_rev": r.git_rev,
                        "n_images": r.n_images,
                        "created_at": r.created_at.isoformat(),
                    }
                    for r in rows
                ],
                indent=2,
            )
        )
        return
    table = Table("version", "images", "cases", "patients", "md5", "git", "by", "created")
    for r in rows:
        table.add_row(
            str(r.version),
            str(r.n_images),
            str(r.n_cases),
            str(r.n_patients),
            r.dvc_md5[:12],
            r.git_rev[:10],
            r.created_by,
            f"{r.created_at:%Y-%m-%d %H:%M}",
        )
    console.print(table if rows else "no dataset versions yet: `bonebase dataset version`")


@dataset_app.command("show")
def show_cmd(version: Annotated[int, typer.Argument(help="Version number.")]) -> None:
    """Show one version: hashes, remote, counts per site/class/split, parameters."""
    from dataclasses import asdict

    from bonebase.db.datasets import get_version
    from bonebase.db.engine import connect

    _, url = _settings_and_url()
    with connect(url) as conn:
        row = get_version(conn, version)
    print(json.dumps(asdict(row), indent=2, default=str))


@dataset_app.command("checkout")
def checkout_cmd(
    version: Annotated[int, typer.Argument(help="Version number.")],
    to: Annotated[
        Path | None,
        typer.Option("--to", help="Restore into this folder (replaced), not in the workspace."),
    ] = None,
    lock_to: Annotated[
        Path | None,
        typer.Option(
            "--lock-to",
            help="Also write the version's split lock here (splits/assignments.csv), so that "
            "`dvc repro --downstream split` reproduces the version's split.",
        ),
    ] = None,
    workspace: Annotated[
        Path | None,
        typer.Option("--workspace", help="Workspace to restore from (cloned when missing)."),
    ] = None,
) -> None:
    """Restore data/ of a version (from the DVC remote where the local cache lacks it)."""
    from bonebase.dataset.versioning import checkout

    settings, url = _settings_and_url()
    ws = (workspace or settings.home / "workspace").absolute()
    row, path = checkout(url, version, workspace=ws, dest=to, lock_to=lock_to)
    console.print(f"dataset version {row.version} ({row.n_images} images) restored in {path}")
    if lock_to is not None:
        console.print(f"its split lock written to {lock_to}")
