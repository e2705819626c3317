"""A site's de-identification settings (#19): keep free-text descriptions (cleaned by the
detector) or remove them, and black out burned-in identifying text ('redact') or hold the image
('quarantine'). And the study and series descriptions and body parts that earlier versions stored
as the text 'None' where de-identification had emptied them become NULL (#17 point 6: pages read
'Study 1994-10-01 None'); the downgrade keeps them NULL (they were empty).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE sites ADD COLUMN keep_descriptors boolean NOT NULL DEFAULT false;
ALTER TABLE sites ADD COLUMN burned_in text NOT NULL DEFAULT 'redact'
    CHECK (burned_in IN ('redact', 'quarantine'));
UPDATE studies SET description = NULL WHERE description = 'None';
UPDATE series SET description = NULL WHERE description = 'None';
UPDATE series SET body_part = NULL WHERE body_part = 'None';
"""

DOWNGRADE = """
ALTER TABLE sites DROP COLUMN keep_descriptors;
ALTER TABLE sites DROP COLUMN burned_in;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
