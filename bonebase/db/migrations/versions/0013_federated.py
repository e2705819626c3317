"""#24: federated training. ``federated_runs``: the lineage of a model trained with Flower across
hospitals that keep their images: the sites that took part, rounds, strategy, privacy parameters
(differential privacy, secure aggregation), each site's dataset version, and the rest (excluded
and dropped sites, local epochs, the framework's version) in ``details``. One row per registered
federated model; the model itself is an ordinary ``models`` row.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE federated_runs (
    id             bigserial PRIMARY KEY,
    model_id       bigint NOT NULL UNIQUE REFERENCES models (id),
    sites          text[] NOT NULL CHECK (cardinality(sites) > 0),
    rounds         integer NOT NULL CHECK (rounds > 0),
    strategy       text NOT NULL,
    privacy        jsonb NOT NULL DEFAULT '{}'::jsonb,
    site_datasets  jsonb NOT NULL DEFAULT '{}'::jsonb,   -- site code → dataset version
    details        jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_by     text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute("DROP TABLE federated_runs")
