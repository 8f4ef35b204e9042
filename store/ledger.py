"""The ledger: which TOPdesk registration went into which AFAS document, and the claim that makes it once.

Protocol (docs/store.md has the long version): the flow reads ``billed_state``, plans documents, and
``claim``s each one BEFORE posting it. A claim writes the document row, its ledger lines and the
``registration_state`` rows in ONE transaction. A registration never billed is claimed by inserting its
state row (a primary-key clash means another claim got there first); one billed before is claimed by
updating its row ``WHERE version = expected`` (no row means someone changed it since it was read). Any
clash rolls the whole claim back and raises ``ClaimConflict``. After posting, the flow records the outcome
with ``mark_posted``, ``mark_uncertain`` or ``mark_failed``; ``release`` frees a failed document's
registrations for a resend; ``unfinished`` lists what a crash left between claim and outcome.

Locks are always taken in the same order (document row, existing state rows by id, new state rows by id,
invoice counter), so concurrent claims on PostgreSQL wait for each other but never deadlock; SQLite runs
write transactions one at a time (``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from itertools import repeat
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, Row, and_, bindparam, delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError

from store.db import chunked, to_frame, utcnow, write_transaction
from store.models import (
    DOCUMENT_KINDS,
    LINE_KINDS,
    invoice_counters,
    ledger_lines,
    registration_state,
    runs,
    to_cents,
)
from store.models import documents as documents_table

INVOICE_PREFIX = "KPL"
INVOICE_DIGITS = 6
# Deadlocks cannot happen with the lock order above; a serialisation failure or a deadlock caused by
# something outside Koppel is retried a few times before it surfaces.
RETRYABLE_SQLSTATES = {"40001", "40P01"}
CLAIM_ATTEMPTS = 3
DEFAULT_STALE_AFTER = timedelta(hours=6)
_PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_REFERENCE = re.compile(r"^[\x21-\x7e]{1,32}$")
# Bound variables per statement at most: SQLite allows 32,766 (since 3.32), psycopg 65,535.
BOUND_VARIABLES = 32_766

# Which states each outcome may follow.
_ALLOWED_FROM = {
    "posted": ("claimed", "uncertain"),
    "uncertain": ("claimed", "uncertain"),
    "failed": ("claimed", "uncertain"),
    "released": ("failed",),
}


class LedgerError(Exception):
    """Base class of the ledger's own errors."""


class ClaimConflict(LedgerError):
    """Registrations of a claim were claimed elsewhere since they were read; nothing was written."""

    def __init__(self, reference: str, registration_ids: Iterable[str]) -> None:
        self.reference = reference
        self.registration_ids = tuple(sorted(set(registration_ids)))
        shown = ", ".join(self.registration_ids[:5]) + (" ..." if len(self.registration_ids) > 5 else "")
        super().__init__(
            f"claim of {reference} conflicts on {len(self.registration_ids)} registration(s): {shown}; "
            "re-plan without them"
        )


class UnknownDocument(LedgerError, LookupError):
    """No document with this reference exists."""


class InvalidTransition(LedgerError):
    """The document's current status does not allow the requested change."""


def _whole(value: Any, name: str) -> int:
    """``value`` as a plain int; any integral number (numpy too) is accepted, floats and bools are not."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class LineClaim:
    """One registration on a document: a ``charge`` bills it, a ``credit`` takes an earlier charge back."""

    registration_id: str
    line_kind: str
    fields_hash: str
    minutes: int
    amount: Decimal
    entry_date: date
    customer_number: str | None
    expected_version: int | None = None  # None: never billed; else the version read in billed_state
    # The line as posted (optional; ``LINE_DETAILS``): what a later reversal negates, field by field.
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.registration_id:
            raise ValueError("registration_id is empty")
        if self.line_kind not in LINE_KINDS:
            raise ValueError(f"line_kind {self.line_kind!r} is not one of {LINE_KINDS}")
        # numpy integers from a frame are welcome, but stored as plain ints (drivers refuse numpy types).
        object.__setattr__(self, "minutes", _whole(self.minutes, f"minutes of {self.registration_id}"))
        if self.expected_version is not None:
            object.__setattr__(self, "expected_version", _whole(self.expected_version, "expected_version"))
        if isinstance(self.entry_date, datetime) or not isinstance(self.entry_date, date):
            raise TypeError(f"entry_date of {self.registration_id} must be a date, got {self.entry_date!r}")
        if self.expected_version is not None and self.expected_version < 1:
            raise ValueError(f"expected_version of {self.registration_id} must be >= 1 or None")
        to_cents(self.amount)
        unknown = sorted(set(self.details) - set(LINE_DETAILS))
        if unknown:
            raise ValueError(f"details of {self.registration_id} has unknown keys {unknown}")


# Optional per-line record of what was posted (ledger_lines columns of revision 0002).
LINE_DETAILS = (
    "registration_kind",
    "ticket_id",
    "ticket_number",
    "item_code",
    "quantity",
    "unit_price",
    "cost_account",
    "cost_centre",
    "employee_id",
    "base_minutes",
    "reverses",
)


@dataclass(frozen=True)
class DocumentClaim:
    """A planned AFAS document and the registrations it bills, as handed to ``claim``."""

    reference: str
    kind: str
    administration: int
    debtor: str | None
    project: str | None
    period: str
    payload: Mapping[str, Any]
    minutes: int
    amount: Decimal
    needs_invoice_number: bool
    lines: tuple[LineClaim, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "administration", _whole(self.administration, "administration"))
        object.__setattr__(self, "minutes", _whole(self.minutes, f"minutes of {self.reference}"))
        if not _REFERENCE.match(self.reference):
            raise ValueError(f"reference {self.reference!r} must be 1-32 printable ASCII characters")
        if self.kind not in DOCUMENT_KINDS:
            raise ValueError(f"kind {self.kind!r} is not one of {DOCUMENT_KINDS}")
        if not _PERIOD.match(self.period):
            raise ValueError(f"period {self.period!r} is not YYYY-MM")
        if not self.lines:
            raise ValueError(f"document {self.reference} has no lines")
        to_cents(self.amount)
        _planned_states(self)  # validates the lines against each other


@dataclass(frozen=True)
class ClaimResult:
    """The outcome of ``claim``: a fresh claim (``existing=False``) or the state of an earlier one."""

    reference: str
    status: str
    existing: bool
    invoice_number: str | None = None
    claimed_by_run: str | None = None
    afas_keys: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class DocumentRecord:
    """A row of the documents table."""

    reference: str
    kind: str
    administration: int
    debtor: str | None
    project: str | None
    period: str
    status: str
    invoice_number: str | None
    payload: Mapping[str, Any]
    afas_keys: Mapping[str, Any] | None
    error_message: str | None
    profit_log_reference: str | None
    minutes: int
    amount: Decimal
    claimed_by_run: str
    attempts: int
    created_at: datetime
    updated_at: datetime
    posted_at: datetime | None = field(default=None)


@dataclass(frozen=True)
class _PlannedState:
    line: LineClaim  # the line that decides the new state (the charge when a credit + charge correct it)
    expected_version: int | None


def _planned_states(document: DocumentClaim) -> dict[str, _PlannedState]:
    """The registration_state each registration gets; checks one charge/credit per registration."""
    seen: set[tuple[str, str]] = set()
    planned: dict[str, _PlannedState] = {}
    for line in document.lines:
        key = (line.registration_id, line.line_kind)
        if key in seen:
            raise ValueError(f"{line.registration_id} has two {line.line_kind} lines in {document.reference}")
        seen.add(key)
        earlier = planned.get(line.registration_id)
        if earlier and earlier.expected_version != line.expected_version:
            raise ValueError(f"{line.registration_id}: credit and charge expect different versions")
        if earlier is None or line.line_kind == "charge":
            planned[line.registration_id] = _PlannedState(line, line.expected_version)
    return planned


def _insert(connection: Connection, table: Any) -> Any:
    """The dialect's INSERT (both support ON CONFLICT DO NOTHING ... RETURNING)."""
    if connection.dialect.name == "postgresql":
        return postgresql_insert(table)
    return sqlite_insert(table)


def _retryable(error: DBAPIError) -> bool:
    return getattr(error.orig, "sqlstate", None) in RETRYABLE_SQLSTATES


def claim(engine: Engine, run_id: str, document: DocumentClaim) -> ClaimResult:
    """Claim ``document`` and its registrations for ``run_id`` in one transaction (see the module doc).

    Returns the existing document's state when the reference was claimed before (a ``released`` one is
    claimed afresh under the same reference). Raises ``ClaimConflict`` when any registration was claimed
    by someone else since it was read; then nothing at all was written, not even an invoice number.
    """
    for attempt in range(1, CLAIM_ATTEMPTS + 1):
        try:
            with write_transaction(engine) as connection:
                return _claim_in(connection, run_id, document)
        except DBAPIError as error:
            if attempt == CLAIM_ATTEMPTS or not _retryable(error):
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _claim_in(connection: Connection, run_id: str, document: DocumentClaim) -> ClaimResult:
    now = utcnow()
    existing = _insert_or_lock_document(connection, run_id, document, now)
    if existing is not None and existing.status != "released":
        return ClaimResult(
            existing.reference,
            existing.status,
            existing=True,
            invoice_number=existing.invoice_number,
            claimed_by_run=existing.claimed_by_run,
            afas_keys=existing.afas_keys,
        )
    if existing is not None:
        _reopen_document(connection, run_id, document, now)
    previous = _claim_states(connection, document, now)
    _insert_lines(connection, document, previous, now)
    number = existing.invoice_number if existing is not None else None
    if document.needs_invoice_number and number is None:
        number = _next_invoice_number(connection, document.administration, int(document.period[:4]))
        connection.execute(
            update(documents_table)
            .where(documents_table.c.reference == document.reference)
            .values(invoice_number=number)
        )
    return ClaimResult(document.reference, "claimed", False, invoice_number=number, claimed_by_run=run_id)


def _document_values(run_id: str, document: DocumentClaim) -> dict[str, Any]:
    """The document row's values but its key and time stamps."""
    return {
        "kind": document.kind,
        "administration": document.administration,
        "debtor": document.debtor,
        "project": document.project,
        "period": document.period,
        "status": "claimed",
        "payload": dict(document.payload),
        "minutes": document.minutes,
        "amount": document.amount,
        "claimed_by_run": run_id,
        "attempts": 0,
    }


def _insert_or_lock_document(
    connection: Connection, run_id: str, document: DocumentClaim, now: datetime
) -> Row[Any] | None:
    """Insert the document row; if the reference exists, lock and return that row instead."""
    values = {
        "reference": document.reference,
        "created_at": now,
        "updated_at": now,
        **_document_values(run_id, document),
    }
    statement = (
        _insert(connection, documents_table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["reference"])
        .returning(documents_table.c.reference)
    )
    if connection.execute(statement).first() is not None:
        return None
    locked = (
        select(documents_table).where(documents_table.c.reference == document.reference).with_for_update()
    )
    return connection.execute(locked).one()


def _reopen_document(connection: Connection, run_id: str, document: DocumentClaim, now: datetime) -> None:
    """Claim a released document again under its reference; its old lines are replaced by the new ones."""
    connection.execute(delete(ledger_lines).where(ledger_lines.c.document_reference == document.reference))
    values = _document_values(run_id, document) | {
        "updated_at": now,
        "afas_keys": None,
        "posted_at": None,
        "error_message": None,
        "profit_log_reference": None,
    }
    connection.execute(
        update(documents_table).where(documents_table.c.reference == document.reference).values(**values)
    )


def _claim_states(connection: Connection, document: DocumentClaim, now: datetime) -> dict[str, Row[Any]]:
    """Write the new registration_state rows; return what existed before, or raise ClaimConflict."""
    planned = _planned_states(document)
    expected = {
        rid: state.expected_version for rid, state in planned.items() if state.expected_version is not None
    }
    previous = _lock_states(connection, sorted(expected))
    conflicts = [
        rid for rid, version in expected.items() if getattr(previous.get(rid), "version", 0) != version
    ]
    fresh = [planned[rid].line for rid in sorted(planned) if rid not in expected]
    conflicts += _insert_states(connection, fresh, document.reference, now)
    if conflicts:
        raise ClaimConflict(document.reference, conflicts)
    _update_states(connection, [planned[rid].line for rid in sorted(expected)], previous, document, now)
    return previous


def _lock_states(connection: Connection, registration_ids: Sequence[str]) -> dict[str, Row[Any]]:
    """Read and lock (PostgreSQL: FOR UPDATE, in id order) the current state rows of these registrations."""
    found: dict[str, Row[Any]] = {}
    for chunk in chunked(registration_ids):
        statement = (
            select(registration_state)
            .where(registration_state.c.registration_id.in_(chunk))
            .order_by(registration_state.c.registration_id)
            .with_for_update()
        )
        found.update((row.registration_id, row) for row in connection.execute(statement))
    return found


def _state_values(line: LineClaim, reference: str) -> dict[str, Any]:
    """The registration_state row's values but its key, version and time stamp."""
    return {
        "fields_hash": line.fields_hash,
        "document_reference": reference,
        "status": "billed" if line.line_kind == "charge" else "credited",
        "minutes": line.minutes,
        "amount": line.amount,
        "entry_date": line.entry_date,
        "customer_number": line.customer_number,
    }


def _insert_states(
    connection: Connection, lines: list[LineClaim], reference: str, now: datetime
) -> list[str]:
    """Insert state rows for never-billed registrations; return the ids whose row already existed."""
    if not lines:
        return []
    statement = (
        _insert(connection, registration_state)
        .on_conflict_do_nothing(index_elements=["registration_id"])
        .returning(registration_state.c.registration_id)
    )
    rows = [
        {
            "registration_id": line.registration_id,
            "version": 1,
            "updated_at": now,
            **_state_values(line, reference),
        }
        for line in lines
    ]
    inserted = set(connection.execute(statement, rows).scalars())
    return [line.registration_id for line in lines if line.registration_id not in inserted]


def _execute_state_updates(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """One executemany UPDATE of registration states; ``rows`` carry ``b_``-prefixed values.

    bindparam names may not equal column names in an UPDATE's SET clause, hence the prefix.
    """
    statement = (
        update(registration_state)
        .where(registration_state.c.registration_id == bindparam("b_registration_id"))
        .values({name[2:]: bindparam(name) for name in rows[0] if name != "b_registration_id"})
    )
    connection.execute(statement, rows)


def _update_states(
    connection: Connection,
    lines: list[LineClaim],
    previous: Mapping[str, Row[Any]],
    document: DocumentClaim,
    now: datetime,
) -> None:
    if not lines:
        return
    rows = []
    for line in lines:
        values = _state_values(line, document.reference) | {"updated_at": now}
        values["version"] = previous[line.registration_id].version + 1
        values["registration_id"] = line.registration_id
        rows.append({f"b_{name}": value for name, value in values.items()})
    _execute_state_updates(connection, rows)


def _state_snapshot(row: Row[Any] | None) -> dict[str, Any] | None:
    """The state row as JSON for ``previous_state`` (amount as text: JSON numbers are not exact)."""
    if row is None:
        return None
    return {
        "fields_hash": row.fields_hash,
        "document_reference": row.document_reference,
        "status": row.status,
        "version": row.version,
        "minutes": row.minutes,
        "amount": str(row.amount),
        "entry_date": row.entry_date.isoformat(),
        "customer_number": row.customer_number,
    }


def _insert_lines(
    connection: Connection, document: DocumentClaim, previous: Mapping[str, Row[Any]], now: datetime
) -> None:
    rows = [_line_values(line, document.reference, previous) | {"created_at": now} for line in document.lines]
    connection.execute(ledger_lines.insert(), rows)


def _line_values(line: LineClaim, reference: str, previous: Mapping[str, Row[Any]]) -> dict[str, Any]:
    """The ledger line's values but its time stamp."""
    return {
        "registration_id": line.registration_id,
        "document_reference": reference,
        "line_kind": line.line_kind,
        "fields_hash": line.fields_hash,
        "minutes": line.minutes,
        "amount": line.amount,
        "entry_date": line.entry_date,
        "customer_number": line.customer_number,
        "previous_state": _state_snapshot(previous.get(line.registration_id)),
        **{name: line.details.get(name) for name in LINE_DETAILS},
    }


def _next_invoice_number(connection: Connection, administration: int, year: int) -> str:
    """Take the next number of this administration and year; it rolls back with the claim (no gaps)."""
    number = _bump_counter(connection, administration, year, 1)
    if number >= 10**INVOICE_DIGITS:
        raise LedgerError(f"invoice numbers of administration {administration} in {year} are exhausted")
    return f"{INVOICE_PREFIX}{year % 100:02d}{number:0{INVOICE_DIGITS}d}"


def _bump_counter(connection: Connection, administration: int, year: int, count: int) -> int:
    """Add ``count`` to the invoice counter of this administration and year; return its new last number."""
    key = and_(invoice_counters.c.administration == administration, invoice_counters.c.year == year)
    connection.execute(
        _insert(connection, invoice_counters)
        .values(administration=administration, year=year, last_number=0)
        .on_conflict_do_nothing(index_elements=["administration", "year"])
    )
    bump = (
        update(invoice_counters)
        .where(key)
        .values(last_number=invoice_counters.c.last_number + count)
        .returning(invoice_counters.c.last_number)
    )
    return int(connection.execute(bump).scalar_one())


def _transition(connection: Connection, reference: str, target: str, values: Mapping[str, Any]) -> None:
    """Move a document to ``target`` if its current status allows it, else raise a clear error."""
    statement = (
        update(documents_table)
        .where(documents_table.c.reference == reference, documents_table.c.status.in_(_ALLOWED_FROM[target]))
        .values(status=target, updated_at=utcnow(), **values)
    )
    if connection.execute(statement).rowcount == 1:
        return
    current = connection.execute(
        select(documents_table.c.status).where(documents_table.c.reference == reference)
    )
    status = current.scalar_one_or_none()
    if status is None:
        raise UnknownDocument(f"no document with reference {reference!r}")
    raise InvalidTransition(f"document {reference} is {status}; it cannot become {target}")


def mark_posted(engine: Engine, reference: str, afas_keys: Mapping[str, Any]) -> None:
    """Record that AFAS accepted the document (``afas_keys``: what AFAS returned, e.g. ``{"OrNu": ...}``).

    Marking an already posted document again changes nothing.
    """
    with write_transaction(engine) as connection:
        _posted_in(connection, reference, afas_keys)


def _posted_in(connection: Connection, reference: str, afas_keys: Mapping[str, Any]) -> None:
    status = connection.execute(
        select(documents_table.c.status).where(documents_table.c.reference == reference)
    )
    if status.scalar_one_or_none() == "posted":
        return
    values = {"afas_keys": dict(afas_keys), "posted_at": utcnow(), "attempts": documents_table.c.attempts + 1}
    _transition(connection, reference, "posted", values)


def mark_uncertain(engine: Engine, reference: str, message: str) -> None:
    """Record that a post may have landed or not (time-out, lost response): look it up before reposting."""
    with write_transaction(engine) as connection:
        _uncertain_in(connection, reference, message)


def _uncertain_in(connection: Connection, reference: str, message: str) -> None:
    values = {"error_message": message, "attempts": documents_table.c.attempts + 1}
    _transition(connection, reference, "uncertain", values)


def mark_failed(
    engine: Engine, reference: str, message: str, profit_log_reference: str | None = None
) -> None:
    """Record that AFAS rejected the document (its registrations stay claimed until ``release``)."""
    with write_transaction(engine) as connection:
        _failed_in(connection, reference, message, profit_log_reference)


def _failed_in(
    connection: Connection, reference: str, message: str, profit_log_reference: str | None
) -> None:
    values = {
        "error_message": message,
        "profit_log_reference": profit_log_reference,
        "attempts": documents_table.c.attempts + 1,
    }
    _transition(connection, reference, "failed", values)


# ---------------------------------------------------------------------------- batches
# A batch is the unit of claim, post and confirm when documents go to AFAS as one Element list: ONE
# transaction claims all its documents and ONE records all their outcomes. The rows stay per document
# (documents, ledger_lines, registration_state), so everything that reads the ledger is unchanged.


def claim_batch(
    engine: Engine, run_id: str, documents: Sequence[DocumentClaim]
) -> list[ClaimResult | ClaimConflict]:
    """Claim several documents in one transaction; each document's claim is all or nothing on its own.

    Every document is claimed exactly as ``claim`` would, inside its own savepoint: a document whose
    registrations were claimed elsewhere rolls back alone and its ``ClaimConflict`` is returned in its
    place (not raised), the others commit together. Invoice numbers are taken in the documents' order.
    """
    for attempt in range(1, CLAIM_ATTEMPTS + 1):
        try:
            with write_transaction(engine) as connection:
                together = _claim_together(connection, run_id, documents)
                if together is not None:
                    return together
                return [_claim_in_savepoint(connection, run_id, document) for document in documents]
        except DBAPIError as error:
            if attempt == CLAIM_ATTEMPTS or not _retryable(error):
                raise
    raise AssertionError("unreachable")  # pragma: no cover


class _NotTogether(Exception):
    """The batch cannot be claimed in one pass (an existing reference or a conflict): claim one by one."""


def _claim_together(
    connection: Connection, run_id: str, documents: Sequence[DocumentClaim]
) -> list[ClaimResult | ClaimConflict] | None:
    """Claim every document of the batch with one statement per table, or ``None`` to go one by one.

    The common case (new references, no registration claimed elsewhere, each registration in one document
    of the batch) writes the same rows as claiming the documents one by one, with a handful of statements
    instead of several per document. Anything else rolls this attempt back (a savepoint) and returns
    ``None``: the caller then claims document by document, which sorts out conflicts per document.
    """
    planned = [(document, _planned_states(document)) for document in documents]
    ids = [rid for _, states in planned for rid in states]
    if len(documents) < 2 or len(ids) != len(set(ids)):
        return None
    savepoint = connection.begin_nested()
    try:
        numbers = _claim_all(connection, run_id, planned)
    except _NotTogether:
        savepoint.rollback()
        return None
    savepoint.commit()
    return [
        ClaimResult(document.reference, "claimed", False, invoice_number=number, claimed_by_run=run_id)
        for document, number in zip(documents, numbers, strict=True)
    ]


def _claim_all(
    connection: Connection, run_id: str, planned: list[tuple[DocumentClaim, dict[str, _PlannedState]]]
) -> list[str | None]:
    """The statements of ``_claim_together``; raises ``_NotTogether`` when the batch needs the slow path."""
    now = utcnow()
    rows = [
        {"reference": document.reference, **_document_values(run_id, document)} for document, _ in planned
    ]
    stamps = {"created_at": now, "updated_at": now}
    inserted = _insert_rows(
        connection, documents_table, rows, same=stamps, returning=("reference", "reference")
    )
    if len(set(inserted)) != len(rows):
        raise _NotTogether
    reference_of = {rid: document.reference for document, states in planned for rid in states}
    expected = {
        rid: state.expected_version
        for _, states in planned
        for rid, state in states.items()
        if state.expected_version is not None
    }
    previous = _lock_states(connection, sorted(expected))
    if any(getattr(previous.get(rid), "version", 0) != version for rid, version in expected.items()):
        raise _NotTogether
    state_of = {rid: state for _, states in planned for rid, state in states.items()}
    fresh = [rid for rid in sorted(state_of) if rid not in expected]
    if fresh and _insert_fresh_states(connection, fresh, state_of, reference_of, now):
        raise _NotTogether
    _update_many_states(connection, sorted(expected), state_of, reference_of, previous, now)
    lines = [
        _line_values(line, document.reference, previous) for document, _ in planned for line in document.lines
    ]
    _insert_rows(connection, ledger_lines, lines, same={"created_at": now})
    return _invoice_numbers(connection, [document for document, _ in planned])


def _insert_rows(
    connection: Connection,
    table: Any,
    rows: Sequence[Mapping[str, Any]],
    *,
    same: Mapping[str, Any] | None = None,
    returning: tuple[str, str] | None = None,
) -> list[Any]:
    """INSERT ``rows`` (plus the columns in ``same``, one value for every row) at the driver's level.

    The values go through each column type's own bind processor (``Money``, ``UtcDateTime``, ``JSON``,
    the dialect's ``Date``), once per value and once for ``same``, instead of SQLAlchemy's per-row
    parameter handling, which was two thirds of a batch claim's CPU. Without ``returning`` it is one
    ``executemany``; with ``returning=(conflict_column, returned_column)`` it is multi-row ``INSERT …
    VALUES (…), (…) ON CONFLICT (conflict_column) DO NOTHING RETURNING returned_column`` statements
    within the driver's limit of bound variables, and the returned values of the inserted rows come back.
    A dialect with another parameter style takes SQLAlchemy's path.
    """
    if not rows:
        return []
    same = dict(same or {})
    names = [*rows[0], *same]
    if connection.dialect.paramstyle not in ("qmark", "format", "pyformat"):
        values = [{**row, **same} for row in rows]
        if returning is None:
            connection.execute(table.insert(), values)
            return []
        conflict, column = returning
        statement = (
            _insert(connection, table)
            .on_conflict_do_nothing(index_elements=[conflict])
            .returning(table.c[column])
        )
        return list(connection.execute(statement, values).scalars())
    dialect = connection.dialect
    columns: list[Iterable[Any]] = []
    for name in rows[0]:  # column by column: one processor look-up per column
        values = [row[name] for row in rows]
        process = _bind_processor(table, name, dialect)
        if process is not None:  # None once per column (JSON stores it as ``null``; most lines have no
            none = process(None)  # previous state)
            values = [none if value is None else process(value) for value in values]
        columns.append(values)
    for name, value in same.items():
        process = _bind_processor(table, name, dialect)
        columns.append(repeat(value if process is None else process(value), len(rows)))
    converted = list(zip(*columns, strict=True))
    quote = dialect.identifier_preparer.quote
    marker = "?" if dialect.paramstyle == "qmark" else "%s"
    one = "(" + ", ".join([marker] * len(names)) + ")"
    head = f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) VALUES "  # noqa: S608 — the schema's own quoted names; values are bound
    if returning is None:
        connection.exec_driver_sql(head + one, converted)
        return []
    conflict, column = returning
    tail = f" ON CONFLICT ({quote(conflict)}) DO NOTHING RETURNING {quote(column)}"
    per_statement = max(1, BOUND_VARIABLES // len(names))
    returned: list[Any] = []
    for start in range(0, len(converted), per_statement):
        part = converted[start : start + per_statement]
        flat = tuple(value for row in part for value in row)
        result = connection.exec_driver_sql(head + ", ".join([one] * len(part)) + tail, flat)
        returned += [row[0] for row in result]
    return returned


def _bind_processor(table: Any, name: str, dialect: Any) -> Any:
    """The column type's bind processor on ``dialect`` (its storage form), as SQLAlchemy itself applies it."""
    return table.c[name].type.dialect_impl(dialect).bind_processor(dialect)


def _insert_fresh_states(
    connection: Connection,
    fresh: list[str],
    state_of: Mapping[str, _PlannedState],
    reference_of: Mapping[str, str],
    now: datetime,
) -> bool:
    """Insert the state rows of never-billed registrations; True when any of them existed already."""
    rows = [
        {"registration_id": rid, "version": 1, **_state_values(state_of[rid].line, reference_of[rid])}
        for rid in fresh
    ]
    inserted = _insert_rows(
        connection,
        registration_state,
        rows,
        same={"updated_at": now},
        returning=("registration_id", "registration_id"),
    )
    return len(set(inserted)) != len(rows)


def _update_many_states(
    connection: Connection,
    ids: list[str],
    state_of: Mapping[str, _PlannedState],
    reference_of: Mapping[str, str],
    previous: Mapping[str, Row[Any]],
    now: datetime,
) -> None:
    if not ids:
        return
    rows = []
    for rid in ids:
        values = _state_values(state_of[rid].line, reference_of[rid]) | {"updated_at": now}
        values["version"] = previous[rid].version + 1
        values["registration_id"] = rid
        rows.append({f"b_{name}": value for name, value in values.items()})
    _execute_state_updates(connection, rows)


def _invoice_numbers(connection: Connection, documents: Sequence[DocumentClaim]) -> list[str | None]:
    """Invoice numbers for the documents that need one, in their order: one counter bump per series."""
    wanted: dict[tuple[int, int], list[int]] = {}
    for position, document in enumerate(documents):
        if document.needs_invoice_number:
            wanted.setdefault((document.administration, int(document.period[:4])), []).append(position)
    numbers: list[str | None] = [None] * len(documents)
    for (administration, year), positions in wanted.items():
        last = _bump_counter(connection, administration, year, len(positions))
        if last >= 10**INVOICE_DIGITS:
            raise _NotTogether  # one by one raises the exhaustion error at the right document
        for position, number in zip(positions, range(last - len(positions) + 1, last + 1), strict=True):
            numbers[position] = f"{INVOICE_PREFIX}{year % 100:02d}{number:0{INVOICE_DIGITS}d}"
    given = [
        {"b_reference": document.reference, "b_invoice_number": number}
        for document, number in zip(documents, numbers, strict=True)
        if number is not None
    ]
    if given:
        statement = (
            update(documents_table)
            .where(documents_table.c.reference == bindparam("b_reference"))
            .values(invoice_number=bindparam("b_invoice_number"))
        )
        connection.execute(statement, given)
    return numbers


def _claim_in_savepoint(
    connection: Connection, run_id: str, document: DocumentClaim
) -> ClaimResult | ClaimConflict:
    try:
        with connection.begin_nested():
            return _claim_in(connection, run_id, document)
    except ClaimConflict as conflict:
        return conflict


@dataclass(frozen=True)
class Confirmation:
    """The outcome of one posted document: ``posted`` (with AFAS's keys), ``failed`` or ``uncertain``."""

    reference: str
    status: str
    afas_keys: Mapping[str, Any] | None = None
    message: str = ""
    profit_log_reference: str | None = None

    def __post_init__(self) -> None:
        if self.status not in ("posted", "failed", "uncertain"):
            raise ValueError(f"confirmation of {self.reference}: unknown status {self.status!r}")


def confirm_batch(engine: Engine, confirmations: Sequence[Confirmation]) -> None:
    """Record the outcomes of a batch in one transaction (the same transitions as ``mark_*``)."""
    if not confirmations:
        return
    with write_transaction(engine) as connection:
        if _confirm_together(connection, confirmations):
            return
        for item in confirmations:
            if item.status == "posted":
                _posted_in(connection, item.reference, item.afas_keys or {})
            elif item.status == "failed":
                _failed_in(connection, item.reference, item.message, item.profit_log_reference)
            else:
                _uncertain_in(connection, item.reference, item.message)


def _confirm_together(connection: Connection, confirmations: Sequence[Confirmation]) -> bool:
    """Record all outcomes with one read and one UPDATE per outcome; False to go one by one instead.

    The statuses are read (and on PostgreSQL locked) first, so every transition is checked before
    anything is written; a batch with a reference twice, an unknown reference or a transition not allowed
    goes one by one, which raises the same error at the same document as ``mark_*`` would.
    """
    references = [item.reference for item in confirmations]
    if len(confirmations) < 2 or len(set(references)) != len(references):
        return False
    status: dict[str, str] = {}
    for chunk in chunked(sorted(references)):
        statement = (
            select(documents_table.c.reference, documents_table.c.status)
            .where(documents_table.c.reference.in_(chunk))
            .order_by(documents_table.c.reference)
            .with_for_update()
        )
        status.update((row.reference, row.status) for row in connection.execute(statement))
    for item in confirmations:
        if item.status == "posted" and status.get(item.reference) == "posted":
            continue
        if status.get(item.reference) not in _ALLOWED_FROM[item.status]:
            return False
    now = utcnow()
    attempts = documents_table.c.attempts + 1
    updates: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {
        "posted": ({"afas_keys": bindparam("b_afas_keys"), "posted_at": now}, []),
        "failed": (
            {
                "error_message": bindparam("b_message"),
                "profit_log_reference": bindparam("b_profit_log_reference"),
            },
            [],
        ),
        "uncertain": ({"error_message": bindparam("b_message")}, []),
    }
    for item in confirmations:
        if item.status == "posted" and status[item.reference] == "posted":
            continue
        row: dict[str, Any] = {"b_reference": item.reference}
        if item.status == "posted":
            row["b_afas_keys"] = dict(item.afas_keys or {})
        else:
            row["b_message"] = item.message
        if item.status == "failed":
            row["b_profit_log_reference"] = item.profit_log_reference
        updates[item.status][1].append(row)
    for target, (values, rows) in updates.items():
        if rows:
            change = (
                update(documents_table)
                .where(documents_table.c.reference == bindparam("b_reference"))
                .values(status=target, updated_at=now, attempts=attempts, **values)
            )
            connection.execute(change, rows)
    return True


def release(engine: Engine, reference: str) -> list[str]:
    """Free a failed document's registrations so the next plan bills them again; return their ids.

    Each registration's state goes back to what it was before this document claimed it (or is removed if
    it was new), with a higher version so stale plans conflict. A registration claimed by a later document
    since then is left alone. The document stays, with status ``released``, as history.
    """
    with write_transaction(engine) as connection:
        _transition(connection, reference, "released", {})
        lines = connection.execute(
            select(ledger_lines.c.registration_id, ledger_lines.c.previous_state).where(
                ledger_lines.c.document_reference == reference
            )
        ).all()
        previous = {line.registration_id: line.previous_state for line in lines}
        current = _lock_states(connection, sorted(previous))
        mine = [rid for rid, row in current.items() if row.document_reference == reference]
        for rid in mine:
            _restore_state(connection, current[rid], previous[rid])
        return sorted(mine)


def _restore_state(connection: Connection, current: Row[Any], before: Mapping[str, Any] | None) -> None:
    where = registration_state.c.registration_id == current.registration_id
    if before is None:
        connection.execute(delete(registration_state).where(where))
        return
    values = {
        "fields_hash": before["fields_hash"],
        "document_reference": before["document_reference"],
        "status": before["status"],
        "minutes": before["minutes"],
        "amount": Decimal(before["amount"]),
        "entry_date": date.fromisoformat(before["entry_date"]),
        "customer_number": before["customer_number"],
        "version": current.version + 1,
        "updated_at": utcnow(),
    }
    connection.execute(update(registration_state).where(where).values(**values))


def adopt(engine: Engine, reference: str, run_id: str, *, previous_run_id: str) -> bool:
    """Take over an unfinished document of a dead run; True for exactly one of several competing workers."""
    with write_transaction(engine) as connection:
        statement = (
            update(documents_table)
            .where(
                documents_table.c.reference == reference,
                documents_table.c.claimed_by_run == previous_run_id,
                documents_table.c.status.in_(("claimed", "uncertain")),
            )
            .values(claimed_by_run=run_id, updated_at=utcnow())
        )
        return connection.execute(statement).rowcount == 1


def unfinished(
    engine: Engine, *, include_running: bool = False, stale_after: timedelta = DEFAULT_STALE_AFTER
) -> list[DocumentRecord]:
    """Documents left ``claimed`` or ``uncertain``: crash recovery looks each up in AFAS before posting.

    By default only those whose run is over (its ``runs`` row is not ``running``, or is missing) or that
    have not moved for ``stale_after``: a document a live worker is posting right now is not listed.
    """
    statement = (
        select(documents_table)
        .outerjoin(runs, runs.c.id == documents_table.c.claimed_by_run)
        .where(documents_table.c.status.in_(("claimed", "uncertain")))
        .order_by(documents_table.c.created_at, documents_table.c.reference)
    )
    if not include_running:
        statement = statement.where(
            or_(
                runs.c.id.is_(None),
                runs.c.status != "running",
                documents_table.c.updated_at < utcnow() - stale_after,
            )
        )
    with engine.connect() as connection:
        return [_record(row) for row in connection.execute(statement)]


def _record(row: Row[Any]) -> DocumentRecord:
    mapping = row._mapping
    return DocumentRecord(**{name: mapping[name] for name in DocumentRecord.__dataclass_fields__})


def document(engine: Engine, reference: str) -> DocumentRecord:
    """The document with this reference (raises ``UnknownDocument``)."""
    with engine.connect() as connection:
        row = connection.execute(
            select(documents_table).where(documents_table.c.reference == reference)
        ).first()
    if row is None:
        raise UnknownDocument(f"no document with reference {reference!r}")
    return _record(row)


BILLED_STATE_DTYPES = {
    "registration_id": "str",
    "fields_hash": "str",
    "document_reference": "str",
    "status": "str",
    "version": "int64",
    "minutes": "int64",
    "amount": "object",
    "entry_date": "object",
    "customer_number": "str",
    "document_status": "str",
}


def billed_state(
    engine: Engine,
    registration_ids: Iterable[str] | None = None,
    entry_date_range: tuple[date, date] | None = None,
) -> pd.DataFrame:
    """The current ledger state of registrations (one row each; ``BILLED_STATE_DTYPES``).

    Selects the rows whose id is in ``registration_ids`` OR whose entry date lies in ``entry_date_range``
    (``[start, end)``): exactly what reconciliation needs (the planned registrations, plus those billed in
    the run's range that may have disappeared from TOPdesk). With neither filter: every row. ``amount``
    holds Decimals and ``entry_date`` dates; ``document_status`` is the status of the claiming document.
    """
    base = select(
        *(registration_state.c[name] for name in list(BILLED_STATE_DTYPES)[:-1]),
        documents_table.c.status.label("document_status"),
    ).join(documents_table, documents_table.c.reference == registration_state.c.document_reference)
    rows: dict[str, Any] = {}
    with engine.connect() as connection:
        for statement in _either_filter(base, registration_state, registration_ids, entry_date_range):
            rows.update((row.registration_id, row._mapping) for row in connection.execute(statement))
    ordered = [rows[key] for key in sorted(rows)]
    return to_frame(ordered, BILLED_STATE_DTYPES)


def _either_filter(
    base: Any,
    table: Any,
    registration_ids: Iterable[str] | None,
    entry_date_range: tuple[date, date] | None,
    ticket_ids: Iterable[str] | None = None,
) -> Iterable[Any]:
    """``base`` once per filter on ``table``'s rows; the caller merges what they select (OR).

    Entry date in ``[start, end)``, registration ids and ticket ids in chunks; no filter at all: ``base``.
    """
    if registration_ids is None and entry_date_range is None and ticket_ids is None:
        yield base
        return
    if entry_date_range is not None:
        start, end = entry_date_range
        yield base.where(table.c.entry_date >= start, table.c.entry_date < end)
    for chunk in chunked(sorted(set(registration_ids or ()))):
        yield base.where(table.c.registration_id.in_(chunk))
    for chunk in chunked(sorted(set(ticket_ids or ()))):
        yield base.where(table.c.ticket_id.in_(chunk))


DOCUMENT_DTYPES = {
    "reference": "str",
    "kind": "str",
    "administration": "int64",
    "debtor": "str",
    "project": "str",
    "period": "str",
    "status": "str",
    "invoice_number": "str",
    "minutes": "int64",
    "amount": "object",
    "claimed_by_run": "str",
    "attempts": "int64",
    "error_message": "str",
    "profit_log_reference": "str",
    "created_at": "datetime",
    "updated_at": "datetime",
    "posted_at": "datetime",
}


def documents(
    engine: Engine, *, period: str | None = None, run_id: str | None = None, status: str | None = None
) -> pd.DataFrame:
    """Documents (without payloads) of a period and/or run and/or status, oldest first."""
    statement = select(*(documents_table.c[name] for name in DOCUMENT_DTYPES)).order_by(
        documents_table.c.created_at, documents_table.c.reference
    )
    if period is not None:
        statement = statement.where(documents_table.c.period == period)
    if run_id is not None:
        statement = statement.where(documents_table.c.claimed_by_run == run_id)
    if status is not None:
        statement = statement.where(documents_table.c.status == status)
    with engine.connect() as connection:
        return to_frame(connection.execute(statement).mappings().all(), DOCUMENT_DTYPES)


# A ledger line's own figures as the reads below return them (amounts as Decimals, entry dates as dates).
LINE_FIGURES = {
    "line_kind": "str",
    "fields_hash": "str",
    "minutes": "int64",
    "amount": "object",
    "entry_date": "object",
    "customer_number": "str",
}
HISTORY_DTYPES = {
    "document_reference": "str",
    "kind": "str",
    "document_status": "str",
    "period": "str",
    "invoice_number": "str",
    **LINE_FIGURES,
    "created_at": "datetime",
}


def registration_history(engine: Engine, registration_id: str) -> pd.DataFrame:
    """Every ledger line of one registration across documents, oldest first (for the CLI)."""
    statement = (
        select(
            ledger_lines.c.document_reference,
            documents_table.c.kind,
            documents_table.c.status.label("document_status"),
            documents_table.c.period,
            documents_table.c.invoice_number,
            *(ledger_lines.c[name] for name in LINE_FIGURES),
            ledger_lines.c.created_at,
        )
        .join(documents_table, documents_table.c.reference == ledger_lines.c.document_reference)
        .where(ledger_lines.c.registration_id == registration_id)
        .order_by(ledger_lines.c.created_at, ledger_lines.c.id)
    )
    with engine.connect() as connection:
        return to_frame(connection.execute(statement).mappings().all(), HISTORY_DTYPES)


LINE_DTYPES = {"registration_id": "str", **LINE_FIGURES}


def document_lines(engine: Engine, reference: str) -> pd.DataFrame:
    """The ledger lines of one document, by registration id (for the CLI)."""
    statement = (
        select(*(ledger_lines.c[name] for name in LINE_DTYPES))
        .where(ledger_lines.c.document_reference == reference)
        .order_by(ledger_lines.c.registration_id, ledger_lines.c.line_kind)
    )
    with engine.connect() as connection:
        return to_frame(connection.execute(statement).mappings().all(), LINE_DTYPES)


def document_of(engine: Engine, item: str) -> str:
    """The reference ``item`` names: a document reference, or the document that last billed a registration.

    Raises ``UnknownDocument`` when ``item`` is neither.
    """
    try:
        return document(engine, item).reference
    except UnknownDocument:
        history = registration_history(engine, item)
    if history.empty:
        raise UnknownDocument(f"{item!r} is neither a document reference nor a registration in the ledger")
    return str(history.iloc[-1]["document_reference"])


POSTED_DTYPES = {
    "registration_id": "str",
    "document_reference": "str",
    **LINE_FIGURES,
    "registration_kind": "str",
    "ticket_id": "str",
    "ticket_number": "str",
    "item_code": "str",
    "quantity": "object",
    "unit_price": "object",
    "cost_account": "str",
    "cost_centre": "str",
    "employee_id": "str",
    "base_minutes": "Int64",
    "reverses": "str",
    "kind": "str",
    "administration": "int64",
    "debtor": "str",
    "project": "str",
    "period": "str",
    "posted_at": "datetime",
}


def posted_lines(
    engine: Engine,
    registration_ids: Iterable[str] | None = None,
    entry_date_range: tuple[date, date] | None = None,
    ticket_ids: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Every ledger line of a *posted* document (what AFAS confirmed), with its document's header.

    This is the billed state reconciliation compares with (``POSTED_DTYPES``): lines of claimed, uncertain,
    failed or released documents are not in AFAS as far as Koppel knows, so they are not returned. Rows
    are selected by registration id, OR entry date in ``[start, end)``, OR ticket id; with no filter, all.
    """
    base = (
        select(
            *(ledger_lines.c[name] for name in list(POSTED_DTYPES)[:19]),
            documents_table.c.kind,
            documents_table.c.administration,
            documents_table.c.debtor,
            documents_table.c.project,
            documents_table.c.period,
            documents_table.c.posted_at,
        )
        .join(documents_table, documents_table.c.reference == ledger_lines.c.document_reference)
        .where(documents_table.c.status == "posted")
    )
    rows: dict[tuple[str, str, str], Any] = {}
    with engine.connect() as connection:
        for statement in _either_filter(base, ledger_lines, registration_ids, entry_date_range, ticket_ids):
            for row in connection.execute(statement):
                rows[(row.registration_id, row.document_reference, row.line_kind)] = row._mapping
    ordered = [rows[key] for key in sorted(rows, key=lambda k: (k[0], rows[k]["posted_at"], k[1], k[2]))]
    return to_frame(ordered, POSTED_DTYPES)


def resend(engine: Engine, item: str) -> tuple[list[str] | None, str]:
    """Free the failed document ``item`` names for a resend: ``(released ids, message)``; idempotent.

    A posted or released document is left as it is (``None``, "nothing to do"); an uncertain or claimed
    one is never freed: the next run's recovery looks it up in AFAS by its reference first. Raises
    ``UnknownDocument`` only when ``item`` names nothing.
    """
    reference = document_of(engine, item)
    record = document(engine, reference)
    if record.status == "failed":
        try:
            released = release(engine, reference)
        except InvalidTransition:  # released by a concurrent resend a moment ago
            return None, f"{reference} was released already; nothing to do"
        return released, (
            f"released {reference} (period {record.period}): {len(released)} registrations are billed "
            "again by the next invoice-hours run"
        )
    if record.status in ("uncertain", "claimed"):
        return None, (
            f"{reference} is {record.status}: the next run looks it up in AFAS by its reference and confirms "
            "or posts it; it is never posted blindly"
        )
    return None, f"{reference} is {record.status} already; nothing to do"
