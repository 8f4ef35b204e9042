"""Ledger lines keep the line as posted: item, quantity, unit price, accounts, ticket, base minutes.

A reversal is built from the ledger's own record of the posted line (docs/invoice-hours.md, "The diff"),
so the line must hold everything AFAS received for it. All columns are nullable: lines written before this
revision lack them (their reversal then falls back to the document's header and the line's amount).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from store.models import Money

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("registration_kind", sa.String(length=24)),
    ("ticket_id", sa.String(length=64)),
    ("ticket_number", sa.String(length=64)),
    ("item_code", sa.String(length=40)),
    ("quantity", Money()),
    ("unit_price", Money()),
    ("cost_account", sa.String(length=16)),
    ("cost_centre", sa.String(length=16)),
    ("employee_id", sa.String(length=32)),
    ("base_minutes", sa.Integer()),
    ("reverses", sa.String(length=32)),
)


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("ledger_lines") as batch:
        for name, type_ in COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("ledger_lines") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
