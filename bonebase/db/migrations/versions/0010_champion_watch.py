"""#23: the champion's predictions on ingested submissions, drift checks and alerts (owner: champion watch).

Reserved at the start of the session so that three pieces of work can each own one revision of
one chain; it changes nothing until its owner fills it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

UPGRADE = "SELECT 1"

DOWNGRADE = "SELECT 1"


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
