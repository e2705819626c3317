"""Scrub the case_ids that older versions stored: a hospital's case_id is often the patient's
record number. Quarantine items keep their row number and lose a case_ref that is not a case
pseudonym (``<SITE>-<20 hex>``, what ingest stores now); stored receipts lose their ``case_id``
keys. Where an item or receipt entry carried its case_id, that value is replaced by
``[redacted]`` in its message too. There is no downgrade of the data: the values are gone.

Receipt files written earlier under ``BONEBASE_HOME/receipts`` are not in the database: see
docs/operators.md ("Security") for removing them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

MARK = "[redacted]"

ITEMS = f"""
UPDATE quarantine_items q
SET message = CASE WHEN length(q.case_ref) >= 3 THEN replace(q.message, q.case_ref, '{MARK}')
                   ELSE q.message END,
    case_ref = NULL
FROM sites s
WHERE s.id = q.site_id AND q.case_ref IS NOT NULL
  AND q.case_ref !~ ('^' || s.code || '-[0-9a-f]{{20}}$')
"""


def _entries(key: str) -> str:
    """The receipt's array ``key`` with each entry's case_id dropped (and redacted in its
    message), in the same order."""
    e = "t.e"
    message = (f"CASE WHEN length(coalesce({e}->>'case_id', '')) >= 3"
               f" THEN to_jsonb(replace({e}->>'message', {e}->>'case_id', '{MARK}'))"
               f" ELSE {e}->'message' END")
    entry = (f"CASE WHEN NOT {e} ? 'case_id' THEN {e}"
             f" WHEN {e} ? 'message' AND jsonb_typeof({e}->'message') = 'string'"
             f" THEN ({e} - 'case_id') || jsonb_build_object('message', {message})"
             f" ELSE {e} - 'case_id' END")
    return (f"'{key}', COALESCE((SELECT jsonb_agg({entry} ORDER BY t.n)"
            f" FROM jsonb_array_elements(receipt->'{key}') WITH ORDINALITY AS t(e, n)),"
            " '[]'::jsonb)")


RECEIPTS = ", ".join(_entries(k) for k in ("quarantine", "cases", "warnings"))
RECEIPTS = f"""
UPDATE submissions SET receipt = receipt || jsonb_build_object({RECEIPTS})
WHERE jsonb_typeof(receipt) = 'object'
  AND jsonb_typeof(receipt->'quarantine') = 'array'
  AND jsonb_typeof(receipt->'cases') = 'array'
  AND jsonb_typeof(receipt->'warnings') = 'array'
"""


def upgrade() -> None:
    op.execute(ITEMS)
    op.execute(RECEIPTS)


def downgrade() -> None:
    pass  # the case_ids removed cannot be brought back, nor should they be
