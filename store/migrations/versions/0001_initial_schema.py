"""Initial schema: runs, documents, ledger, registration state, exclusions, bundles, snapshots.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from store.models import Money, UtcDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 64-bit ids on PostgreSQL; SQLite only auto-increments an INTEGER PRIMARY KEY.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "bundles",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("customer_number", sa.String(length=32), nullable=False),
        sa.Column("minutes_total", sa.Integer(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint("minutes_total > 0", name=op.f("ck_bundles_minutes_total")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bundles")),
    )
    op.create_index(op.f("ix_bundles_customer_number"), "bundles", ["customer_number"], unique=False)

    op.create_table(
        "documents",
        sa.Column("reference", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("administration", sa.Integer(), nullable=False),
        sa.Column("debtor", sa.String(length=16), nullable=True),
        sa.Column("project", sa.String(length=15), nullable=True),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("invoice_number", sa.String(length=12), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("afas_keys", sa.JSON(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("profit_log_reference", sa.String(length=64), nullable=True),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("amount", Money(), nullable=False),
        sa.Column("claimed_by_run", sa.String(length=36), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("posted_at", UtcDateTime(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('direct_invoice', 'project_realisation', 'sales_booking', 'internal_entry')",
            name=op.f("ck_documents_kind"),
        ),
        sa.CheckConstraint(
            "status IN ('claimed', 'posted', 'failed', 'uncertain', 'released')",
            name=op.f("ck_documents_status"),
        ),
        sa.PrimaryKeyConstraint("reference", name=op.f("pk_documents")),
        sa.UniqueConstraint(
            "administration", "invoice_number", name=op.f("uq_documents_administration_invoice_number")
        ),
    )
    op.create_index(op.f("ix_documents_claimed_by_run"), "documents", ["claimed_by_run"], unique=False)
    op.create_index(op.f("ix_documents_period"), "documents", ["period"], unique=False)
    op.create_index(op.f("ix_documents_status"), "documents", ["status"], unique=False)

    op.create_table(
        "exclusions",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('registration', 'ticket', 'operator', 'operator_group', 'branch', 'customer')",
            name=op.f("ck_exclusions_kind"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exclusions")),
        sa.UniqueConstraint("kind", "value", name=op.f("uq_exclusions_kind_value")),
    )
    op.create_table(
        "invoice_counters",
        sa.Column("administration", sa.Integer(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("last_number", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("administration", "year", name=op.f("pk_invoice_counters")),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("flow_name", sa.String(length=100), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("statistics", sa.JSON(), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'completed', 'failed', 'crashed', 'cancelled')",
            name=op.f("ck_runs_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    op.create_index(op.f("ix_runs_flow_name"), "runs", ["flow_name"], unique=False)
    op.create_index(op.f("ix_runs_started_at"), "runs", ["started_at"], unique=False)

    op.create_table(
        "snapshot_changes",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("entity", sa.String(length=50), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("change", sa.String(length=8), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("seen_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint(
            "change IN ('added', 'changed', 'removed')", name=op.f("ck_snapshot_changes_change")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_snapshot_changes")),
    )
    op.create_index(
        "ix_snapshot_changes_entity_seen_at", "snapshot_changes", ["entity", "seen_at"], unique=False
    )

    op.create_table(
        "snapshots",
        sa.Column("entity", sa.String(length=50), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("first_seen", UtcDateTime(), nullable=False),
        sa.Column("last_seen", UtcDateTime(), nullable=False),
        sa.Column("removed_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("entity", "key", name=op.f("pk_snapshots")),
    )
    op.create_table(
        "bundle_draws",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("registration_id", sa.String(length=64), nullable=False),
        sa.Column("bundle_id", ID, nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("drawn_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint("minutes > 0", name=op.f("ck_bundle_draws_minutes")),
        sa.ForeignKeyConstraint(
            ["bundle_id"], ["bundles.id"], name=op.f("fk_bundle_draws_bundle_id_bundles")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bundle_draws")),
        sa.UniqueConstraint(
            "registration_id", "bundle_id", name=op.f("uq_bundle_draws_registration_id_bundle_id")
        ),
    )
    op.create_index(op.f("ix_bundle_draws_bundle_id"), "bundle_draws", ["bundle_id"], unique=False)
    op.create_index(
        op.f("ix_bundle_draws_registration_id"), "bundle_draws", ["registration_id"], unique=False
    )

    op.create_table(
        "ledger_lines",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("registration_id", sa.String(length=64), nullable=False),
        sa.Column("document_reference", sa.String(length=32), nullable=False),
        sa.Column("line_kind", sa.String(length=6), nullable=False),
        sa.Column("fields_hash", sa.String(length=64), nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("amount", Money(), nullable=False),
        sa.Column("entry_date", sa.Date(), nullable=False),
        sa.Column("customer_number", sa.String(length=32), nullable=True),
        sa.Column("previous_state", sa.JSON(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint("line_kind IN ('charge', 'credit')", name=op.f("ck_ledger_lines_line_kind")),
        sa.ForeignKeyConstraint(
            ["document_reference"],
            ["documents.reference"],
            name=op.f("fk_ledger_lines_document_reference_documents"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_lines")),
        sa.UniqueConstraint(
            "document_reference",
            "registration_id",
            "line_kind",
            name=op.f("uq_ledger_lines_document_reference_registration_id_line_kind"),
        ),
    )
    op.create_index(
        op.f("ix_ledger_lines_document_reference"), "ledger_lines", ["document_reference"], unique=False
    )
    op.create_index(
        op.f("ix_ledger_lines_registration_id"), "ledger_lines", ["registration_id"], unique=False
    )

    op.create_table(
        "registration_state",
        sa.Column("registration_id", sa.String(length=64), nullable=False),
        sa.Column("fields_hash", sa.String(length=64), nullable=False),
        sa.Column("document_reference", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("amount", Money(), nullable=False),
        sa.Column("entry_date", sa.Date(), nullable=False),
        sa.Column("customer_number", sa.String(length=32), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint("status IN ('billed', 'credited')", name=op.f("ck_registration_state_status")),
        sa.CheckConstraint("version >= 1", name=op.f("ck_registration_state_version")),
        sa.ForeignKeyConstraint(
            ["document_reference"],
            ["documents.reference"],
            name=op.f("fk_registration_state_document_reference_documents"),
        ),
        sa.PrimaryKeyConstraint("registration_id", name=op.f("pk_registration_state")),
    )
    op.create_index(
        op.f("ix_registration_state_document_reference"),
        "registration_state",
        ["document_reference"],
        unique=False,
    )
    op.create_index(
        op.f("ix_registration_state_entry_date"), "registration_state", ["entry_date"], unique=False
    )


def downgrade() -> None:
    """Revert this revision (drops every table, children first; their indexes go with them)."""
    for table in (
        "registration_state",
        "ledger_lines",
        "bundle_draws",
        "snapshots",
        "snapshot_changes",
        "runs",
        "invoice_counters",
        "exclusions",
        "documents",
        "bundles",
    ):
        op.drop_table(table)
