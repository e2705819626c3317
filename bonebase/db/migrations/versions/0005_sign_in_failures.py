"""Failed web sign-ins, for throttling password guessing across every web worker.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


UPGRADE = """
-- One row per wrong password (rows older than the throttle's window are pruned as new ones come).
-- The user name typed is kept only as a keyed hash: it may be a password typed in the wrong box.
CREATE TABLE sign_in_failures (
    id           bigserial PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    account_key  text NOT NULL,   -- HMAC(server key, user name as typed, lower-cased)
    address      text NOT NULL    -- the client's address as the web server sees it
);
CREATE INDEX sign_in_failures_account_idx ON sign_in_failures (account_key, at);
CREATE INDEX sign_in_failures_address_idx ON sign_in_failures (address, at);
CREATE INDEX sign_in_failures_at_idx ON sign_in_failures (at);
"""

DOWNGRADE = """
DROP TABLE sign_in_failures;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
