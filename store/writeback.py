"""Write-back state: which note Koppel owes which TOPdesk ticket for which posted AFAS document.

One row per (document, ticket) in ``writebacks`` (revision 0003). Protocol (docs/invoice-hours.md,
"Write-back to TOPdesk"):

1. ``enqueue`` inserts a ``pending`` row per billed ticket of a posted document; a row that exists is left
   as it is, so enqueueing again (every run does) never writes twice.
2. ``claim`` moves a row to ``claimed`` (attempts + 1) BEFORE the TOPdesk write, only if nobody changed it
   since it was read (``status`` and ``attempts`` as read): one of several workers wins.
3. After the write: ``finish`` with ``written``, ``failed`` (TOPdesk refused it or never executed it:
   the next run writes again) or ``uncertain`` (sent, no answer).

Any row tried before (left ``claimed`` by a dead run, ``uncertain``, or ``failed`` after its memo went
in) may already be in TOPdesk: the caller reads the ticket's actions back and looks for the row's
``marker`` before writing the memo again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pandas as pd
from sqlalchemy import Engine, and_, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from store.db import chunked, to_frame, utcnow, write_transaction
from store.models import documents, runs, writebacks

STALE_CLAIM = timedelta(hours=1)
OUTCOMES = ("written", "failed", "uncertain")


@dataclass(frozen=True)
class Note:
    """One note owed to one ticket for one posted document."""

    document_reference: str
    ticket_id: str
    registration_kind: str
    ticket_number: str | None
    marker: str
    memo: str | None
    field_path: str | None
    field_value: str | None


@dataclass(frozen=True)
class Due:
    """A row to (re)try, as read: ``status`` and ``attempts`` are the claim's expectation."""

    note: Note
    status: str
    attempts: int

    @property
    def needs_read_back(self) -> bool:
        """An earlier attempt may have reached TOPdesk: read the ticket's actions back first.

        A claim left behind, an uncertain write, or a memo written before the optional field failed.
        """
        return self.attempts > 0


def enqueue(engine: Engine, notes: Iterable[Note]) -> None:
    """Insert ``pending`` rows for the notes not known yet; known rows stay as they are."""
    rows = [
        {**note.__dict__, "status": "pending", "attempts": 0, "created_at": utcnow(), "updated_at": utcnow()}
        for note in notes
    ]
    if not rows:
        return
    insert = postgresql_insert if engine.dialect.name == "postgresql" else sqlite_insert
    statement = insert(writebacks).on_conflict_do_nothing(index_elements=["document_reference", "ticket_id"])
    with write_transaction(engine) as connection:
        for chunk in chunked(rows, 500):
            connection.execute(statement, list(chunk))


def due(engine: Engine, run_id: str, *, stale_after: timedelta = STALE_CLAIM) -> list[Due]:
    """Rows not written yet, oldest first; a row claimed by another run that is still running is skipped.

    A claim of this run, of a run that is over (or unknown) or older than ``stale_after`` is due: its
    writer died (or is this run retrying), so it is read back first.
    """
    claimed_elsewhere = and_(
        writebacks.c.status == "claimed",
        writebacks.c.claimed_by_run != run_id,
        runs.c.status == "running",
        writebacks.c.updated_at >= utcnow() - stale_after,
    )
    statement = (
        select(writebacks)
        .outerjoin(runs, runs.c.id == writebacks.c.claimed_by_run)
        .where(writebacks.c.status != "written")
        .where(or_(runs.c.id.is_(None), ~claimed_elsewhere))
        .order_by(writebacks.c.created_at, writebacks.c.document_reference, writebacks.c.ticket_id)
    )
    with engine.connect() as connection:
        return [_due(row._mapping) for row in connection.execute(statement)]


def _due(row: Any) -> Due:
    note = Note(**{name: row[name] for name in Note.__dataclass_fields__})
    return Due(note, row["status"], int(row["attempts"]))


def _key(note: Note) -> Any:
    return and_(
        writebacks.c.document_reference == note.document_reference,
        writebacks.c.ticket_id == note.ticket_id,
    )


def claim(engine: Engine, item: Due, run_id: str) -> bool:
    """Mark the row ``claimed`` before writing; False when someone changed it since it was read."""
    statement = (
        update(writebacks)
        .where(_key(item.note), writebacks.c.status == item.status, writebacks.c.attempts == item.attempts)
        .values(status="claimed", attempts=item.attempts + 1, claimed_by_run=run_id, updated_at=utcnow())
    )
    with write_transaction(engine) as connection:
        return connection.execute(statement).rowcount == 1


def finish(engine: Engine, note: Note, status: str, error: str | None = None) -> None:
    """Record the outcome of the write the claim announced."""
    if status not in OUTCOMES:
        raise ValueError(f"outcome {status!r} is not one of {OUTCOMES}")
    now = utcnow()
    values = {"status": status, "error_message": error, "updated_at": now}
    if status == "written":
        values["written_at"] = now
    with write_transaction(engine) as connection:
        connection.execute(update(writebacks).where(_key(note)).values(**values))


def invoice_numbers(engine: Engine, references: Sequence[str]) -> dict[str, str | None]:
    """The invoice number (None for documents without one) of each posted document among ``references``."""
    found: dict[str, str | None] = {}
    with engine.connect() as connection:
        for chunk in chunked(sorted(set(references))):
            statement = select(documents.c.reference, documents.c.invoice_number).where(
                documents.c.reference.in_(chunk), documents.c.status == "posted"
            )
            found.update((row.reference, row.invoice_number) for row in connection.execute(statement))
    return found


STATE_DTYPES = {
    "document_reference": "str",
    "ticket_id": "str",
    "registration_kind": "str",
    "ticket_number": "str",
    "status": "str",
    "attempts": "int64",
    "error_message": "str",
    "updated_at": "datetime",
    "written_at": "datetime",
}


def state(engine: Engine, references: Iterable[str] | None = None) -> pd.DataFrame:
    """Write-back rows (of ``references``, else all), by document and ticket (``STATE_DTYPES``)."""
    base = select(*(writebacks.c[name] for name in STATE_DTYPES)).order_by(
        writebacks.c.document_reference, writebacks.c.ticket_id
    )
    rows: list[Any] = []
    with engine.connect() as connection:
        if references is None:
            rows = list(connection.execute(base).mappings())
        else:
            for chunk in chunked(sorted(set(references))):
                statement = base.where(writebacks.c.document_reference.in_(chunk))
                rows += list(connection.execute(statement).mappings())
    return to_frame(rows, STATE_DTYPES)
