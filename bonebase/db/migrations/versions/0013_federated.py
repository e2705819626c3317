"""#24: federated training (reserved; owner: federated training). A no-op until that work needs
tables of its own.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
