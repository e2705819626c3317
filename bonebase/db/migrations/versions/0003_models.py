"""Model releases: candidates, approvals (with the release gate's result) and deployments.

A model row is a trained checkpoint registered from ``models/model.pt`` with its metrics; its
``status`` moves candidate → approved/rejected → deployed → retired. Every approval and every
deployment (or rollback) is a row of its own: nothing is overwritten.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


UPGRADE = """
CREATE TABLE models (
    id                bigserial PRIMARY KEY,
    task              text NOT NULL,
    arch              text NOT NULL,
    status            text NOT NULL DEFAULT 'candidate'
                      CHECK (status IN ('candidate', 'approved', 'rejected', 'deployed', 'retired')),
    checkpoint_key    text NOT NULL,           -- object-store key of model.pt
    checkpoint_sha256 text NOT NULL CHECK (checkpoint_sha256 ~ '^[0-9a-f]{64}$'),
    metrics           jsonb NOT NULL DEFAULT '{}'::jsonb,
    report_key        text,                    -- object-store key of the evaluation report
    dataset_version   text,
    code_revision     text,
    params_hash       text,
    threshold         double precision,
    created_by        text NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    -- The same checkpoint registered twice is one model.
    UNIQUE (checkpoint_sha256)
);
CREATE INDEX models_task_status_idx ON models (task, status);

CREATE TABLE approvals (
    id          bigserial PRIMARY KEY,
    model_id    bigint NOT NULL REFERENCES models (id),
    decision    text NOT NULL CHECK (decision IN ('approved', 'rejected')),
    by_person   text NOT NULL CHECK (length(btrim(by_person)) > 0),
    reason      text NOT NULL DEFAULT '',
    gate        jsonb NOT NULL DEFAULT '{}'::jsonb,   -- the release gate's checks and verdict
    override    boolean NOT NULL DEFAULT false,
    at          timestamptz NOT NULL DEFAULT now(),
    -- Overriding a failed gate needs a written reason.
    CHECK (NOT override OR length(btrim(reason)) > 0)
);
CREATE INDEX approvals_model_idx ON approvals (model_id);

CREATE TABLE deployments (
    id          bigserial PRIMARY KEY,
    model_id    bigint NOT NULL REFERENCES models (id),
    action      text NOT NULL CHECK (action IN ('deploy', 'rollback')),
    by_person   text NOT NULL CHECK (length(btrim(by_person)) > 0),
    bento_tag   text NOT NULL,
    url         text,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deployments_model_idx ON deployments (model_id);
"""

DOWNGRADE = """
DROP TABLE deployments;
DROP TABLE approvals;
DROP TABLE models;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
