"""#22: reader studies run in the web database, the reader role (owner: reader studies).

Reserved at the start of the session so that three pieces of work can each own one revision of
one chain; it changes nothing until its owner fills it.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

UPGRADE = "SELECT 1"

DOWNGRADE = "SELECT 1"


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
