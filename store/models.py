"""The tables of Koppel's state database (SQLAlchemy 2 Core metadata; Alembic owns the schema).

The migration in ``store/migrations/versions`` creates exactly these tables; a test compares the two.
Two column types keep the invariants at the database edge: ``UtcDateTime`` refuses naive datetimes and
always hands back UTC-aware ones, ``Money`` stores exact cents (``Numeric(18, 2)`` on PostgreSQL, integer
cents on SQLite, which has no exact decimal type) and refuses floats.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator, TypeEngine

from schemas.kinds import DOCUMENT_KINDS
from schemas.kinds import STORED_EXCLUSION_KINDS as EXCLUSION_KINDS
from tasks.invoice_hours.money import CENT

# Numeric(18, 2): 16 digits before the decimal point.
MONEY_LIMIT = Decimal("1e16")

DOCUMENT_STATUSES = ("claimed", "posted", "failed", "uncertain", "released")
LINE_KINDS = ("charge", "credit")
REGISTRATION_STATUSES = ("billed", "credited")
SNAPSHOT_CHANGES = ("added", "changed", "removed")
RUN_STATUSES = ("running", "completed", "failed", "crashed", "cancelled")
WRITEBACK_STATUSES = ("pending", "claimed", "uncertain", "written", "failed")

# Stable constraint names, so that later migrations can address them on both dialects.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that must be time-zone aware; stored in UTC, returned UTC-aware on every dialect."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert to UTC; SQLite gets the naive UTC wall time because it cannot store an offset."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"naive datetime {value.isoformat()} refused: timestamps must be time-zone aware"
            )
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Attach UTC to what SQLite returns; normalise PostgreSQL's session-zone values to UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def to_cents(value: Any) -> int:
    """Return ``value`` (a Decimal or int amount) as whole cents; floats and sub-cent amounts are refused."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise TypeError(f"amount {value!r} refused: money must be a Decimal (got {type(value).__name__})")
    amount = Decimal(value)
    if not amount.is_finite():
        raise ValueError(f"amount {value!r} is not a finite number")
    cents = amount.scaleb(2)
    if cents != cents.to_integral_value():
        raise ValueError(f"amount {value} has more than 2 decimals; round it before storing")
    if abs(amount) >= MONEY_LIMIT:
        raise ValueError(f"amount {value} exceeds Numeric(18, 2)")
    return int(cents)


class Money(TypeDecorator[Decimal]):
    """An exact amount with two decimals: ``Numeric(18, 2)`` on PostgreSQL, integer cents on SQLite."""

    impl = Numeric(18, 2, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """SQLite's NUMERIC is a float underneath, so it stores cents in an integer column."""
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(18, 2, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        """Validate the amount and convert it to the dialect's storage form."""
        if value is None:
            return None
        cents = to_cents(value)
        return cents if dialect.name == "sqlite" else Decimal(cents).scaleb(-2)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        """Return a Decimal with exactly two decimals."""
        if value is None:
            return None
        if dialect.name == "sqlite":
            return (Decimal(int(value)) / 100).quantize(CENT)
        return Decimal(value).quantize(CENT)


def _one_of(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({quoted})"


# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
IdType = BigInteger().with_variant(Integer(), "sqlite")

runs = Table(
    "runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("flow_name", String(100), nullable=False, index=True),
    Column("started_at", UtcDateTime(), nullable=False, index=True),
    Column("finished_at", UtcDateTime()),
    Column("parameters", JSON(), nullable=False),
    Column("status", String(20), nullable=False),
    Column("statistics", JSON()),
    CheckConstraint(_one_of("status", RUN_STATUSES), name="status"),
)

documents = Table(
    "documents",
    metadata,
    Column("reference", String(32), primary_key=True),
    Column("kind", String(24), nullable=False),
    Column("administration", Integer(), nullable=False),
    Column("debtor", String(16)),
    Column("project", String(15)),
    Column("period", String(7), nullable=False, index=True),
    Column("status", String(12), nullable=False, index=True),
    Column("invoice_number", String(12)),
    Column("payload", JSON(), nullable=False),
    Column("afas_keys", JSON()),
    Column("error_message", Text()),
    Column("profit_log_reference", String(64)),
    Column("minutes", Integer(), nullable=False),
    Column("amount", Money(), nullable=False),
    Column("claimed_by_run", String(36), nullable=False, index=True),
    Column("attempts", Integer(), nullable=False, default=0),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("posted_at", UtcDateTime()),
    UniqueConstraint("administration", "invoice_number"),
    CheckConstraint(_one_of("kind", DOCUMENT_KINDS), name="kind"),
    CheckConstraint(_one_of("status", DOCUMENT_STATUSES), name="status"),
)

ledger_lines = Table(
    "ledger_lines",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("registration_id", String(64), nullable=False, index=True),
    Column("document_reference", ForeignKey("documents.reference"), nullable=False, index=True),
    Column("line_kind", String(6), nullable=False),
    Column("fields_hash", String(64), nullable=False),
    Column("minutes", Integer(), nullable=False),
    Column("amount", Money(), nullable=False),
    Column("entry_date", Date(), nullable=False),
    Column("customer_number", String(32)),
    # What registration_state held before this document claimed the registration (None = nothing):
    # ``release`` restores it, so a failed document's registrations are billed again.
    Column("previous_state", JSON()),
    Column("created_at", UtcDateTime(), nullable=False),
    # The line as posted (revision 0002), so that a reversal negates exactly this line and nothing comes
    # from defaults; NULL on lines written before 0002. Administration, kind, debtor, project and period
    # are the document's.
    Column("registration_kind", String(24)),
    Column("ticket_id", String(64)),
    Column("ticket_number", String(64)),
    Column("item_code", String(40)),
    Column("quantity", Money()),  # hours as posted (0.01 h; 0.05 h for realisations)
    Column("unit_price", Money()),
    Column("cost_account", String(16)),
    Column("cost_centre", String(16)),
    Column("employee_id", String(32)),
    Column("base_minutes", Integer()),  # minutes after rounding, before the per-ticket minimum top-up
    Column("reverses", String(32)),  # a credit: the reference of the document whose charge it negates
    UniqueConstraint("document_reference", "registration_id", "line_kind"),
    CheckConstraint(_one_of("line_kind", LINE_KINDS), name="line_kind"),
)

registration_state = Table(
    "registration_state",
    metadata,
    Column("registration_id", String(64), primary_key=True),
    Column("fields_hash", String(64), nullable=False),
    Column("document_reference", ForeignKey("documents.reference"), nullable=False, index=True),
    Column("status", String(10), nullable=False),
    Column("version", Integer(), nullable=False),
    Column("minutes", Integer(), nullable=False),
    Column("amount", Money(), nullable=False),
    Column("entry_date", Date(), nullable=False, index=True),
    Column("customer_number", String(32)),
    Column("updated_at", UtcDateTime(), nullable=False),
    CheckConstraint(_one_of("status", REGISTRATION_STATUSES), name="status"),
    CheckConstraint("version >= 1", name="version"),
)

invoice_counters = Table(
    "invoice_counters",
    metadata,
    Column("administration", Integer(), primary_key=True),
    Column("year", Integer(), primary_key=True),
    Column("last_number", Integer(), nullable=False),
)

EXCLUSION_VALUE_LENGTH = 200  # store/exclusions.py refuses longer values with a message

exclusions = Table(
    "exclusions",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("kind", String(20), nullable=False),
    Column("value", String(EXCLUSION_VALUE_LENGTH), nullable=False),
    Column("reason", Text(), nullable=False),
    Column("created_by", String(100), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    UniqueConstraint("kind", "value"),
    CheckConstraint(_one_of("kind", EXCLUSION_KINDS), name="kind"),
)

bundles = Table(
    "bundles",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("customer_number", String(32), nullable=False, index=True),
    Column("minutes_total", Integer(), nullable=False),
    Column("valid_from", Date(), nullable=False),
    Column("valid_to", Date()),
    Column("description", Text(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    CheckConstraint("minutes_total > 0", name="minutes_total"),
)

bundle_draws = Table(
    "bundle_draws",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("registration_id", String(64), nullable=False, index=True),
    Column("bundle_id", ForeignKey("bundles.id"), nullable=False, index=True),
    Column("minutes", Integer(), nullable=False),
    Column("drawn_at", UtcDateTime(), nullable=False),
    UniqueConstraint("registration_id", "bundle_id"),
    CheckConstraint("minutes > 0", name="minutes"),
)

snapshots = Table(
    "snapshots",
    metadata,
    Column("entity", String(50), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("content_hash", String(64), nullable=False),
    Column("payload", JSON(), nullable=False),
    Column("first_seen", UtcDateTime(), nullable=False),
    Column("last_seen", UtcDateTime(), nullable=False),
    Column("removed_at", UtcDateTime()),
)

snapshot_changes = Table(
    "snapshot_changes",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("entity", String(50), nullable=False),
    Column("key", String(200), nullable=False),
    Column("change", String(8), nullable=False),
    Column("before", JSON()),
    Column("after", JSON()),
    Column("seen_at", UtcDateTime(), nullable=False),
    CheckConstraint(_one_of("change", SNAPSHOT_CHANGES), name="change"),
    Index("ix_snapshot_changes_entity_seen_at", "entity", "seen_at"),
)

# Revision 0003: the note Koppel writes onto a billed TOPdesk ticket per posted document (store/writeback.py).
# ``claimed`` = a write may be under way; ``uncertain`` = sent without an answer: both are read back from
# TOPdesk (the ``marker`` in the ticket's actions) before anything is written again.
writebacks = Table(
    "writebacks",
    metadata,
    Column("document_reference", ForeignKey("documents.reference"), primary_key=True),
    Column("ticket_id", String(64), primary_key=True),
    Column("registration_kind", String(24), nullable=False),
    Column("ticket_number", String(64)),
    Column("marker", String(64), nullable=False),
    Column("memo", Text()),  # None: no memo for this kind
    Column("field_path", String(40)),  # e.g. optionalFields1.text1; None: no optional field
    Column("field_value", String(100)),
    Column("status", String(10), nullable=False, index=True),
    Column("attempts", Integer(), nullable=False),
    Column("claimed_by_run", String(36)),
    Column("error_message", Text()),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("written_at", UtcDateTime()),
    CheckConstraint(_one_of("status", WRITEBACK_STATUSES), name="status"),
)
