"""Core schema: sites, submissions, patients, cases, studies, series, instances, quarantine, audit.

Keys follow the domain rules: a patient is (site, pseudonym) because a PatientID is only unique
within its hospital; an instance is unique by its remapped SOP Instance UID and by the content hash
of the stored (de-identified) file; the same original file submitted twice is one instance.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


UPGRADE = """
CREATE TABLE sites (
    id          serial PRIMARY KEY,
    code        text NOT NULL UNIQUE CHECK (code ~ '^[A-Z0-9]{2,8}$'),
    name        text NOT NULL,
    country     text NOT NULL DEFAULT '',
    contact     text NOT NULL DEFAULT '',
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE submissions (
    id            bigserial PRIMARY KEY,
    site_id       integer NOT NULL REFERENCES sites(id),
    source        text NOT NULL,
    -- sha256 over the manifest and the sorted (path, size, sha256) file list: a re-run of the
    -- same submission finds its row and does nothing.
    content_hash  text NOT NULL,
    status        text NOT NULL DEFAULT 'running'
                  CHECK (status IN ('running', 'done', 'failed')),
    counts        jsonb NOT NULL DEFAULT '{}'::jsonb,
    receipt       jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    UNIQUE (site_id, content_hash)
);

CREATE TABLE patients (
    id          bigserial PRIMARY KEY,
    site_id     integer NOT NULL REFERENCES sites(id),
    pseudonym   text NOT NULL,
    sex         text CHECK (sex IN ('M', 'F', 'O')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (site_id, pseudonym)
);

-- One row per case with its current clinical values; every version (the first included) is
-- kept in case_versions, so a corrected manifest row never silently overwrites history.
CREATE TABLE cases (
    id                   bigserial PRIMARY KEY,
    site_id              integer NOT NULL REFERENCES sites(id),
    patient_id           bigint NOT NULL REFERENCES patients(id),
    case_pseudonym       text NOT NULL,
    version              integer NOT NULL DEFAULT 1,
    is_current           boolean NOT NULL DEFAULT true,  -- false once withdrawn
    age                  integer CHECK (age BETWEEN 0 AND 120),
    sex                  text CHECK (sex IN ('M', 'F', 'O')),
    location_code        text,
    diagnosis_code       text,
    behaviour            text CHECK (behaviour IN ('benign', 'intermediate', 'malignant')),
    modalities           text NOT NULL DEFAULT '',
    pathology_confirmed  boolean,
    row_hash             text NOT NULL,
    submission_id        bigint REFERENCES submissions(id),
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (site_id, case_pseudonym)
);
CREATE INDEX cases_patient_idx ON cases (patient_id);
CREATE INDEX cases_diagnosis_idx ON cases (diagnosis_code);

CREATE TABLE case_versions (
    case_id        bigint NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
    version        integer NOT NULL,
    data           jsonb NOT NULL,
    row_hash       text NOT NULL,
    submission_id  bigint REFERENCES submissions(id),
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (case_id, version)
);

CREATE TABLE studies (
    id           bigserial PRIMARY KEY,
    case_id      bigint NOT NULL REFERENCES cases(id),
    study_uid    text NOT NULL UNIQUE,
    study_date   date,          -- shifted by the patient's date offset
    description  text,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX studies_case_idx ON studies (case_id);

CREATE TABLE series (
    id           bigserial PRIMARY KEY,
    study_id     bigint NOT NULL REFERENCES studies(id),
    series_uid   text NOT NULL UNIQUE,
    modality     text NOT NULL,
    body_part    text,
    description  text,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX series_study_idx ON series (study_id);

CREATE TABLE instances (
    id                bigserial PRIMARY KEY,
    series_id         bigint NOT NULL REFERENCES series(id),
    sop_instance_uid  text NOT NULL UNIQUE,
    sop_class_uid     text,
    sha256            text NOT NULL UNIQUE,  -- of the stored, de-identified file
    source_sha256     text NOT NULL UNIQUE,  -- of the file as submitted: same file twice = one row
    object_key        text NOT NULL,
    size_bytes        bigint NOT NULL,
    modality          text NOT NULL,
    rows              integer,
    columns           integer,
    bits_stored       integer,
    photometric       text,
    instance_number   integer,
    submission_id     bigint REFERENCES submissions(id),
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX instances_series_idx ON instances (series_id);

CREATE TABLE quarantine_items (
    id             bigserial PRIMARY KEY,
    submission_id  bigint REFERENCES submissions(id),
    site_id        integer NOT NULL REFERENCES sites(id),
    reason         text NOT NULL,
    severity       text NOT NULL DEFAULT 'error',
    message        text NOT NULL,
    file           text,          -- path inside the submission
    row_number     integer,       -- manifest data row, 1-based
    case_ref       text,          -- the site's case id as written in the manifest
    object_key     text,          -- original bytes in the quarantine area of the object store
    status         text NOT NULL DEFAULT 'open'
                   CHECK (status IN ('open', 'released', 'discarded')),
    resolution     text,
    resolved_by    text,
    resolved_at    timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX quarantine_site_status_idx ON quarantine_items (site_id, status);

CREATE TABLE audit_events (
    id         bigserial PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    actor      text NOT NULL,
    action     text NOT NULL,
    entity     text NOT NULL,
    entity_id  text,
    details    jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_entity_idx ON audit_events (entity, entity_id);
"""

DOWNGRADE = """
DROP TABLE audit_events;
DROP TABLE quarantine_items;
DROP TABLE instances;
DROP TABLE series;
DROP TABLE studies;
DROP TABLE case_versions;
DROP TABLE cases;
DROP TABLE patients;
DROP TABLE submissions;
DROP TABLE sites;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
