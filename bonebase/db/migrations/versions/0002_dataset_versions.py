"""Dataset versions: one row per DVC-versioned export of the curated training view.

A row is written only after the workspace commit and the ``dvc push`` succeeded, so every
version listed here can be restored from its remote (see bonebase.dataset.versioning).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


UPGRADE = """
CREATE TABLE dataset_versions (
    id           bigserial PRIMARY KEY,
    version      integer NOT NULL UNIQUE CHECK (version > 0),
    -- md5 of the tracked data/ directory as recorded in data.dvc (DVC's ".dir" hash): two
    -- versions with the same hash hold byte-identical data.
    dvc_md5      text NOT NULL,
    git_rev      text NOT NULL,           -- commit of the dataset workspace holding data.dvc
    workspace    text NOT NULL,           -- path (or URL) of that workspace's git repository
    remote_url   text NOT NULL,           -- DVC remote the data was pushed to
    n_images     integer NOT NULL CHECK (n_images >= 0),
    n_cases      integer NOT NULL CHECK (n_cases >= 0),
    n_patients   integer NOT NULL CHECK (n_patients >= 0),
    counts       jsonb NOT NULL DEFAULT '{}'::jsonb,  -- per site, per class, per split
    params       jsonb NOT NULL DEFAULT '{}'::jsonb,  -- export (and split) parameters used
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dataset_versions_md5_idx ON dataset_versions (dvc_md5);
"""

DOWNGRADE = """
DROP TABLE dataset_versions;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
