"""#20: lesion outlines and boxes of imported datasets (BTXRD's LabelMe) and any submission (owner: the BTXRD import).

Reserved at the start of the session so that three pieces of work can each own one revision of
one chain; it changes nothing until its owner fills it.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

UPGRADE = "SELECT 1"

DOWNGRADE = "SELECT 1"


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
