"""A site's rule for matching its images to manifest rows (#17 point 1): NULL = the default rule
(bonebase.ingest.match.DEFAULT); a submission's own --match wins over it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE sites ADD COLUMN match_rule text
    CHECK (match_rule IN ('accession', 'patient_date', 'study_uid', 'folder'));
"""

DOWNGRADE = """
ALTER TABLE sites DROP COLUMN match_rule;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
