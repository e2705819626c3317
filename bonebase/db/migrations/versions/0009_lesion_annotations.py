"""#20: lesion outlines and boxes of imported datasets (BTXRD's LabelMe) and any submission, and
normal radiographs (no tumour) as cases.

``lesion_annotations`` holds one row per shape drawn on a stored image (an instance): a polygon
(the outline) or a rectangle (two corners), in the pixel coordinates of the stored image
(x = column, y = row, from the top-left corner). A shape's label is a vocabulary diagnosis code
or ``lesion``: annotators' free text is never stored. Rows go with their instance.

``cases.behaviour`` also takes ``normal``: a radiograph without tumour (diagnosis ``normal``,
bonebase/vocab.py), so normal images are cases for the database, the statistics and the tasks.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE cases DROP CONSTRAINT IF EXISTS cases_behaviour_check;
ALTER TABLE cases ADD CONSTRAINT cases_behaviour_check
    CHECK (behaviour IN ('benign', 'intermediate', 'malignant', 'normal'));

CREATE TABLE lesion_annotations (
    id           bigserial PRIMARY KEY,
    instance_id  bigint NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    shape_index  integer NOT NULL CHECK (shape_index >= 0),
    kind         text NOT NULL CHECK (kind IN ('polygon', 'rectangle')),
    label        text NOT NULL DEFAULT 'lesion',
    -- [[x, y], ...] in the stored image's pixels; a rectangle is its two opposite corners.
    points       jsonb NOT NULL CHECK (jsonb_typeof(points) = 'array'),
    source       text NOT NULL DEFAULT 'labelme',
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (instance_id, shape_index)
);
"""

# Going back: normal images lose their behaviour (the old schema has no value for "no tumour").
DOWNGRADE = """
DROP TABLE lesion_annotations;
UPDATE cases SET behaviour = NULL WHERE behaviour = 'normal';
ALTER TABLE cases DROP CONSTRAINT IF EXISTS cases_behaviour_check;
ALTER TABLE cases ADD CONSTRAINT cases_behaviour_check
    CHECK (behaviour IN ('benign', 'intermediate', 'malignant'));
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
