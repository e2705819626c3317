"""#23: the champion's predictions on ingested submissions, drift checks and alerts (owner: champion watch).

``watch_scores``: one row per (model, radiograph) the watch scored: the case's class for the
model's task (from its pathology diagnosis), the model's P(class 1) and decision at the locked
threshold, and the image's features for drift (acquisition header values, intensity statistics;
never an identifying value). ``role`` says whether the image is of the model's training data
(``reference``, what drift is measured against) or arrived later (``watch``).

``watch_checks``: one row per check of a site (performance or drift) with its figures, whether
it breached a threshold of ``params.yaml`` ``monitor:`` and, for drift, the key of its HTML
report in the object store. An open alert is a breached check not yet acknowledged.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE watch_scores (
    id             bigserial PRIMARY KEY,
    model_id       bigint NOT NULL REFERENCES models (id),
    instance_id    bigint NOT NULL REFERENCES instances (id),
    case_id        bigint NOT NULL REFERENCES cases (id),
    site_id        integer NOT NULL REFERENCES sites (id),
    submission_id  bigint REFERENCES submissions (id),
    role           text NOT NULL CHECK (role IN ('reference', 'watch')),
    month          date NOT NULL,             -- first day of the month the image arrived
    label          smallint CHECK (label IN (0, 1)),  -- NULL: the case is outside the task
    probability    double precision CHECK (probability BETWEEN 0 AND 1),  -- NULL: unreadable
    predicted      smallint CHECK (predicted IN (0, 1)),
    features       jsonb NOT NULL DEFAULT '{}'::jsonb,
    error          text,                      -- why an image could not be scored
    scored_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (model_id, instance_id)
);
CREATE INDEX watch_scores_site_idx ON watch_scores (model_id, site_id, month);

CREATE TABLE watch_checks (
    id            bigserial PRIMARY KEY,
    model_id      bigint NOT NULL REFERENCES models (id),
    site_id       integer NOT NULL REFERENCES sites (id),
    kind          text NOT NULL CHECK (kind IN ('performance', 'drift')),
    result        jsonb NOT NULL,
    breached      boolean NOT NULL,
    report_key    text,
    acknowledged_by  text,
    acknowledged_at  timestamptz,
    checked_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX watch_checks_site_idx ON watch_checks (model_id, site_id, kind, id);
"""

DOWNGRADE = """
DROP TABLE watch_checks;
DROP TABLE watch_scores;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
