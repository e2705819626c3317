"""#22: reader studies run in the web database, the reader role (owner: reader studies).

A study fixes its cases and the model's answers on them when it is created (probability,
locked threshold, Grad-CAM heat map): a later deployment, rollback or deletion of the model
changes nothing in it, so no foreign key points at ``models``. Readers are web users of the new
role ``reader``, outside the viewer < researcher < steward < admin hierarchy. Each reader has
two sessions (arms unaided and aided, crossover); a session's reading order is stored, and
answers are kept once per (session, case).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check
    CHECK (role IN ('viewer', 'researcher', 'steward', 'admin', 'reader'));

CREATE TABLE reader_studies (
    id                 serial PRIMARY KEY,
    name               text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    task               text NOT NULL,
    dataset_version    integer NOT NULL,
    split              text NOT NULL,
    model_id           bigint NOT NULL,          -- no FK: the study outlives the model's row
    model_sha256       text NOT NULL,
    threshold          double precision NOT NULL CHECK (threshold BETWEEN 0 AND 1),
    washout_days       integer NOT NULL CHECK (washout_days >= 0),
    seed               bigint NOT NULL,
    allow_corrections  boolean NOT NULL DEFAULT false,
    created_by         text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now()
);

-- The study's cases with the model's stored answer; label is what readers see ("case 7").
CREATE TABLE reader_study_cases (
    id               bigserial PRIMARY KEY,
    study_id         integer NOT NULL REFERENCES reader_studies(id) ON DELETE CASCADE,
    label            text NOT NULL,
    case_id          bigint NOT NULL REFERENCES cases(id),
    instance_id      bigint NOT NULL REFERENCES instances(id),
    truth            smallint NOT NULL CHECK (truth IN (0, 1)),
    probability      double precision NOT NULL CHECK (probability BETWEEN 0 AND 1),
    predicted_class  text NOT NULL,
    gradcam_png      bytea,
    UNIQUE (study_id, case_id),
    UNIQUE (study_id, label)
);

CREATE TABLE reader_study_readers (
    study_id   integer NOT NULL REFERENCES reader_studies(id) ON DELETE CASCADE,
    user_id    integer NOT NULL REFERENCES users(id),
    first_arm  text NOT NULL CHECK (first_arm IN ('unaided', 'aided')),
    PRIMARY KEY (study_id, user_id)
);
CREATE INDEX reader_study_readers_user_idx ON reader_study_readers (user_id);

-- Session 1 opens when the study is made; session 2 when session 1 is finished plus the
-- washout (opens_at is NULL until then).
CREATE TABLE reader_sessions (
    id           bigserial PRIMARY KEY,
    study_id     integer NOT NULL REFERENCES reader_studies(id) ON DELETE CASCADE,
    user_id      integer NOT NULL REFERENCES users(id),
    number       smallint NOT NULL CHECK (number IN (1, 2)),
    arm          text NOT NULL CHECK (arm IN ('unaided', 'aided')),
    opens_at     timestamptz,
    finished_at  timestamptz,
    UNIQUE (study_id, user_id, number),
    UNIQUE (study_id, user_id, arm)
);

CREATE TABLE reader_order (
    session_id     bigint NOT NULL REFERENCES reader_sessions(id) ON DELETE CASCADE,
    position       integer NOT NULL CHECK (position >= 1),
    study_case_id  bigint NOT NULL REFERENCES reader_study_cases(id) ON DELETE CASCADE,
    first_opened_at timestamptz,
    PRIMARY KEY (session_id, position),
    UNIQUE (session_id, study_case_id)
);

CREATE TABLE reader_answers (
    id              bigserial PRIMARY KEY,
    session_id      bigint NOT NULL REFERENCES reader_sessions(id) ON DELETE CASCADE,
    study_case_id   bigint NOT NULL REFERENCES reader_study_cases(id) ON DELETE CASCADE,
    score           smallint NOT NULL CHECK (score BETWEEN 0 AND 100),
    diagnosis_code  text,
    confidence      smallint CHECK (confidence BETWEEN 1 AND 5),
    seconds         double precision NOT NULL CHECK (seconds >= 0),
    corrections     integer NOT NULL DEFAULT 0,
    answered_at     timestamptz NOT NULL DEFAULT now(),
    corrected_at    timestamptz,
    -- Once per case and session: a second submission is refused (the first is kept).
    UNIQUE (session_id, study_case_id)
);
"""

DOWNGRADE = """
DROP TABLE reader_answers;
DROP TABLE reader_order;
DROP TABLE reader_sessions;
DROP TABLE reader_study_readers;
DROP TABLE reader_study_cases;
DROP TABLE reader_studies;
-- Readers have no place in the older schema: their accounts go with it.
DELETE FROM users WHERE role = 'reader';
ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check
    CHECK (role IN ('viewer', 'researcher', 'steward', 'admin'));
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
