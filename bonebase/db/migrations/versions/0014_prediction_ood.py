"""#21: a stored "Ask the model" answer keeps the served answer's out-of-distribution part
(flag, score, threshold, reasons), so the case page warns on a stored answer as the upload page
does on a fresh one. NULL: an answer stored before, or a model served without an OOD detector.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE predictions ADD COLUMN out_of_distribution jsonb")


def downgrade() -> None:
    op.execute("ALTER TABLE predictions DROP COLUMN out_of_distribution")
