"""The web database: users and their sessions, stored predictions, dataset-version membership,
and the indexes behind the case list's filters.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


UPGRADE = """
CREATE TABLE users (
    id             serial PRIMARY KEY,
    username       text NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9][a-z0-9._-]{1,39}$'),
    role           text NOT NULL CHECK (role IN ('viewer', 'researcher', 'steward', 'admin')),
    site_id        integer REFERENCES sites(id),   -- a steward's hospital
    password_hash  text NOT NULL,                  -- argon2id, PHC string format
    active         boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    -- A steward acts for one hospital: without a site there is nothing they may see.
    CHECK (role <> 'steward' OR site_id IS NOT NULL)
);

-- Only a hash of the cookie's token is stored: a read of this table gives no usable session.
CREATE TABLE web_sessions (
    token_sha256  text PRIMARY KEY,
    user_id       integer NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX web_sessions_user_idx ON web_sessions (user_id);

-- "Ask the model" answers on stored radiographs, with the model version that gave them.
CREATE TABLE predictions (
    id               bigserial PRIMARY KEY,
    case_id          bigint NOT NULL REFERENCES cases(id),
    instance_id      bigint NOT NULL REFERENCES instances(id),
    model_version    text NOT NULL,
    task             text,
    dataset_version  text,
    predicted_class  text NOT NULL,
    probabilities    jsonb NOT NULL,
    threshold        double precision,
    gradcam_png      bytea,             -- the heat map as served (model input geometry)
    requested_by     text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX predictions_case_idx ON predictions (case_id, id);

-- Which cases a dataset version holds (written when a version is cut), for the case filter.
CREATE TABLE dataset_version_cases (
    version  integer NOT NULL REFERENCES dataset_versions(version) ON DELETE CASCADE,
    case_id  bigint NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
    PRIMARY KEY (version, case_id)
);

-- The case list pages by id (keyset): an equality filter with id second lets PostgreSQL walk
-- one index in page order and stop after a page instead of sorting every match.
CREATE INDEX cases_site_page_idx ON cases (site_id, id) WHERE is_current;
CREATE INDEX cases_diagnosis_page_idx ON cases (diagnosis_code, id) WHERE is_current;
CREATE INDEX cases_behaviour_page_idx ON cases (behaviour, id) WHERE is_current;
CREATE INDEX cases_location_page_idx ON cases (location_code, id) WHERE is_current;
CREATE INDEX cases_sex_page_idx ON cases (sex, id) WHERE is_current;
CREATE INDEX cases_age_idx ON cases (age) WHERE is_current;
CREATE INDEX cases_modalities_idx ON cases USING gin (string_to_array(modalities, ';'));
"""

DOWNGRADE = """
DROP INDEX cases_modalities_idx;
DROP INDEX cases_age_idx;
DROP INDEX cases_sex_page_idx;
DROP INDEX cases_location_page_idx;
DROP INDEX cases_behaviour_page_idx;
DROP INDEX cases_diagnosis_page_idx;
DROP INDEX cases_site_page_idx;
DROP TABLE dataset_version_cases;
DROP TABLE predictions;
DROP TABLE web_sessions;
DROP TABLE users;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
