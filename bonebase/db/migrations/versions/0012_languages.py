"""#25: languages. A web user's language (NULL: follow the browser's Accept-Language) and a
site's language for its receipts and quarantine reasons (default English). Stored as BCP 47
tags; bonebase.i18n.LANGUAGES lists the supported ones.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        ALTER TABLE users ADD COLUMN language text
            CHECK (language IN ('en', 'zh-Hans'));
        ALTER TABLE sites ADD COLUMN language text NOT NULL DEFAULT 'en'
            CHECK (language IN ('en', 'zh-Hans'));
    """)


def downgrade() -> None:
    op.execute("""
        ALTER TABLE sites DROP COLUMN language;
        ALTER TABLE users DROP COLUMN language;
    """)
