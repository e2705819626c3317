"""Dataset version queries: the registry of DVC-versioned exports of the training view."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb

from bonebase.db import audit
from bonebase.errors import NotFoundError


@dataclass(frozen=True)
class DatasetVersion:
    """One recorded dataset version (a row of ``dataset_versions``)."""

    version: int
    # md5 over the version's .dvc files (path and DVC hash of each shard and table; see
    # bonebase.dataset.tracking.tree_md5); versions of the first layout hold data.dvc's hash.
    dvc_md5: str
    git_rev: str
    workspace: str
    remote_url: str
    n_images: int
    n_cases: int
    n_patients: int
    counts: dict[str, Any]
    params: dict[str, Any]
    created_by: str
    created_at: datetime


def _row(row: dict) -> DatasetVersion:
    return DatasetVersion(**{k: row[k] for k in DatasetVersion.__dataclass_fields__})


def next_version(conn: Connection) -> int:
    """The number the next version gets (1 for the first)."""
    row = conn.execute("SELECT coalesce(max(version), 0) + 1 AS v FROM dataset_versions").fetchone()
    return row["v"]


def add_version(
    conn: Connection,
    *,
    version: int,
    dvc_md5: str,
    git_rev: str,
    workspace: str,
    remote_url: str,
    n_images: int,
    n_cases: int,
    n_patients: int,
    counts: dict[str, Any],
    params: dict[str, Any],
    actor: str | None = None,
    cases: Sequence[tuple[str, str]] = (),
) -> DatasetVersion:
    """Insert a version, its cases (``(site code, case pseudonym)`` pairs of its labels, so the
    web database can filter by version) and its audit event in one transaction."""
    created_by = actor or audit.current_actor()
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO dataset_versions (version, dvc_md5, git_rev, workspace, remote_url,"
            " n_images, n_cases, n_patients, counts, params, created_by)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING *",
            (
                version,
                dvc_md5,
                git_rev,
                workspace,
                remote_url,
                n_images,
                n_cases,
                n_patients,
                Jsonb(counts),
                Jsonb(params),
                created_by,
            ),
        ).fetchone()
        if cases:
            sites, pseudonyms = zip(*cases, strict=True)
            conn.execute(
                "INSERT INTO dataset_version_cases (version, case_id)"
                " SELECT %s, c.id FROM cases c JOIN sites s ON s.id = c.site_id"
                " JOIN unnest(%s::text[], %s::text[]) AS l(site, pseudonym)"
                "   ON l.site = s.code AND l.pseudonym = c.case_pseudonym"
                " ON CONFLICT DO NOTHING",
                (version, list(sites), list(pseudonyms)),
            )
        audit.record(
            conn,
            action="dataset.version",
            entity="dataset_version",
            entity_id=version,
            actor=created_by,
            details={"dvc_md5": dvc_md5, "git_rev": git_rev, "n_images": n_images},
        )
    return _row(row)


def get_version(conn: Connection, version: int) -> DatasetVersion:
    row = conn.execute("SELECT * FROM dataset_versions WHERE version = %s", (version,)).fetchone()
    if row is None:
        raise NotFoundError(
            f"no dataset version {version}; `bonebase dataset list` shows the versions"
        )
    return _row(row)


def latest_version(conn: Connection) -> DatasetVersion | None:
    row = conn.execute("SELECT * FROM dataset_versions ORDER BY version DESC LIMIT 1").fetchone()
    return None if row is None else _row(row)


def list_versions(conn: Connection) -> list[DatasetVersion]:
    rows = conn.execute("SELECT * FROM dataset_versions ORDER BY version").fetchall()
    return [_row(r) for r in rows]


__all__ = [
    "DatasetVersion",
    "add_version",
    "get_version",
    "latest_version",
    "list_versions",
    "next_version",
]
