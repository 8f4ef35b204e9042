"""Write-back of the billed status into TOPdesk: one row per (posted document, billed ticket).

docs/invoice-hours.md, "Write-back to TOPdesk": the row is claimed before the TOPdesk write and confirmed
after it, so a crash in between is resolved by reading the ticket's actions back.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from store.models import UtcDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = "status IN ('pending', 'claimed', 'uncertain', 'written', 'failed')"


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "writebacks",
        sa.Column("document_reference", sa.String(length=32), nullable=False),
        sa.Column("ticket_id", sa.String(length=64), nullable=False),
        sa.Column("registration_kind", sa.String(length=24), nullable=False),
        sa.Column("ticket_number", sa.String(length=64), nullable=True),
        sa.Column("marker", sa.String(length=64), nullable=False),
        sa.Column("memo", sa.Text(), nullable=True),
        sa.Column("field_path", sa.String(length=40), nullable=True),
        sa.Column("field_value", sa.String(length=100), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_by_run", sa.String(length=36), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("written_at", UtcDateTime(), nullable=True),
        sa.CheckConstraint(STATUSES, name=op.f("ck_writebacks_status")),
        sa.ForeignKeyConstraint(
            ["document_reference"],
            ["documents.reference"],
            name=op.f("fk_writebacks_document_reference_documents"),
        ),
        sa.PrimaryKeyConstraint("document_reference", "ticket_id", name=op.f("pk_writebacks")),
    )
    op.create_index(op.f("ix_writebacks_status"), "writebacks", ["status"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index(op.f("ix_writebacks_status"), table_name="writebacks")
    op.drop_table("writebacks")
