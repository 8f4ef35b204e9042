"""Write-back of the billed status into TOPdesk, after AFAS confirmed the documents (off by default).

Per (posted document, billed ticket) of a kind ``[writeback.<kind>]`` enables, exactly once:

1. **Enqueue**: every posted document with lines in the run's window gets its notes
   (``tasks.invoice_hours.writeback.notes``) as ``pending`` rows; known rows stay as they are, so a crash
   after
   AFAS confirmed but before this step is caught up by the next run.
2. **Claim** the row (``store.writeback.claim``) BEFORE writing to TOPdesk.
3. **Write**: the memo (an action invisible for the caller) and/or the optional text field. A row a dead
   run left ``claimed``, or ``uncertain`` (sent without an answer), is first **read back**: when the ticket's
   actions hold the row's marker, the memo is not written again. The optional field is idempotent.
4. **Confirm**: ``written``; ``failed`` with TOPdesk's reason (403, 404, 400, or still unavailable after the
   connector's retries) — retried by the next run; ``uncertain`` when even the read-back gave no answer.

A failed write-back never blocks or reverses billing: it is reported (table artifact, run summary, log
warning) and the run's verdict does not change.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import anyio.to_thread
import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import Engine

from connectors.errors import ConnectorError, UncertainOutcome
from connectors.topdesk import writeback as topdesk
from connectors.topdesk.client import TOPDESK_POLICY, TopdeskClient
from connectors.topdesk.settings import TopdeskSettings
from store import ledger
from store import writeback as store
from tasks.artifacts import publish_table
from tasks.invoice_hours.config import BillingConfig
from tasks.invoice_hours.extract import Window
from tasks.invoice_hours.writeback import KINDS, notes
from tasks.secrets import load_settings
from tasks.state import state_engine

POLICY = TOPDESK_POLICY  # the connector's retry policy (429/503 on a write: not executed, retried)
CONCURRENT_TICKETS = 4
COLUMNS = ["reference", "ticket_number", "ticket_id", "kind", "status", "attempts", "message"]


@dataclass(frozen=True)
class Result:
    """What happened to one row in this run."""

    note: store.Note
    status: str  # written, failed, uncertain, skipped (another worker has it)
    attempts: int
    message: str = ""


@task(name="write-back", cache_policy=NO_CACHE)
def write_back(config: BillingConfig, window: Window, run_id: str, prefix: str, stale_minutes: float) -> str:
    """Write the notes owed to TOPdesk tickets; publish the table and return the summary line."""
    engine = state_engine()
    store.enqueue(engine, window_notes(engine, config, window))
    items = enabled(store.due(engine, run_id, stale_after=timedelta(minutes=stale_minutes)), config)
    logger = get_run_logger()
    try:
        results = asyncio.run(write_all(engine, items, run_id)) if items else []
    except ConnectorError as error:  # TOPdesk unreachable or the login refused: rows stay for the next run
        logger.warning("write-back: TOPdesk not reached (%s); billing is not affected", error.message)
        return f"**TOPdesk write-back:** not done, TOPdesk not reached: {error.message}. Retried next run."
    table = results_table(results)
    for row in table[table["status"].isin(("failed", "uncertain"))].to_dict(orient="records"):
        logger.warning(
            "write-back %s on %s %s: %s (billing is not affected; retried next run)",
            row["reference"],
            row["kind"],
            row["ticket_number"] or row["ticket_id"],
            row["message"] or row["status"],
        )
    publish_table(f"{prefix}-writeback", table, "TOPdesk write-back per document and ticket")
    line = summary_line(table)
    logger.info("%s", line)
    return line


def enabled(items: list[store.Due], config: BillingConfig) -> list[store.Due]:
    """The rows of kinds enabled now; those of a kind turned off since they were enqueued wait."""
    return [item for item in items if config.writeback.for_kind(item.note.registration_kind).enabled]


def window_notes(engine: Engine, config: BillingConfig, window: Window) -> list[store.Note]:
    """The notes of every posted document with lines in ``window`` on a ticket of an enabled kind.

    The lines are read per ticket, not per date, so a note counts ALL of its document's minutes on the
    ticket, also those dated outside the window.
    """
    end = window.last + timedelta(days=1)
    dated = ledger.posted_lines(engine, entry_date_range=(window.first, end))
    enabled = [kind for kind in KINDS if config.writeback.for_kind(kind).enabled]
    tickets = dated.loc[dated["registration_kind"].isin(enabled), "ticket_id"].dropna().astype(str)
    if tickets.empty:
        return []
    lines = ledger.posted_lines(engine, ticket_ids=sorted(set(tickets)))
    numbers = store.invoice_numbers(engine, lines["document_reference"].astype(str).unique().tolist())
    return notes(lines, numbers, config.writeback)


async def write_all(engine: Engine, items: list[store.Due], run_id: str) -> list[Result]:
    """Claim, write and confirm every due row, a few tickets at a time."""
    slots = asyncio.Semaphore(CONCURRENT_TICKETS)
    async with TopdeskClient.from_settings(load_settings(TopdeskSettings), policy=POLICY) as client:

        async def one(item: store.Due) -> Result:
            async with slots:
                return await write_one(client, engine, item, run_id)

        return list(await asyncio.gather(*(one(item) for item in items)))


async def write_one(client: TopdeskClient, engine: Engine, item: store.Due, run_id: str) -> Result:
    """The protocol for one row: claim, (read back,) write, confirm."""
    note, attempts = item.note, item.attempts + 1
    if not await anyio.to_thread.run_sync(store.claim, engine, item, run_id):
        return Result(note, "skipped", item.attempts, "claimed by another run")
    status, message = await _write(client, note, item.needs_read_back)
    await anyio.to_thread.run_sync(store.finish, engine, note, status, message or None)
    return Result(note, status, attempts, message)


async def _write(client: TopdeskClient, note: store.Note, read_back: bool) -> tuple[str, str]:
    """``(status, message)``; a later attempt reads back first, so "failed" after a memo went in is safe."""
    kind, ticket = note.registration_kind, note.ticket_id
    field = (note.field_path, note.field_value) if note.field_path and note.field_value is not None else None
    together = field if kind in topdesk.WITH_FIELD else None  # one request sets both, atomically
    try:
        if note.memo:
            if not (read_back and await _landed(client, note)):
                await _add_memo_once(client, note, together)
            field = None if together else field  # the memo's request carried it
        if field is not None:
            try:
                await topdesk.set_text_field(client, kind, ticket, *field)
            except UncertainOutcome:  # setting a field twice is harmless
                await topdesk.set_text_field(client, kind, ticket, *field)
    except UncertainOutcome as error:
        return "uncertain", error.message
    except ConnectorError as error:
        status = f"{error.status}: " if error.status else ""
        return "failed", f"{status}{error.message}"
    return "written", ""


async def _add_memo_once(client: TopdeskClient, note: store.Note, field: tuple[str, str] | None) -> None:
    """Add the memo; after a lost answer, only again when the read-back does not find it."""
    assert note.memo is not None  # noqa: S101
    try:
        await topdesk.add_memo(client, note.registration_kind, note.ticket_id, note.memo, field=field)
    except UncertainOutcome:
        if not await _landed(client, note):  # TOPdesk did not apply it: write it once more
            await topdesk.add_memo(client, note.registration_kind, note.ticket_id, note.memo, field=field)


async def _landed(client: TopdeskClient, note: store.Note) -> bool:
    """The ticket's actions already hold this note (its marker)."""
    texts = await topdesk.memo_texts(client, note.registration_kind, note.ticket_id)
    return any(note.marker in text for text in texts)


def results_table(results: list[Result]) -> pd.DataFrame:
    """The artifact table: one row per (document, ticket) handled in this run."""
    rows: list[dict[str, Any]] = [
        {
            "reference": r.note.document_reference,
            "ticket_number": r.note.ticket_number or "",
            "ticket_id": r.note.ticket_id,
            "kind": r.note.registration_kind,
            "status": r.status,
            "attempts": r.attempts,
            "message": r.message,
        }
        for r in results
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


def summary_line(table: pd.DataFrame) -> str:
    """``**TOPdesk write-back:** 12 written, 1 failed (…)`` for the run summary."""
    counts = table["status"].value_counts()
    if table.empty:
        return "**TOPdesk write-back:** nothing to write."
    statuses = ("written", "failed", "uncertain", "skipped")
    shown = ", ".join(f"{int(counts[s])} {s}" for s in statuses if s in counts)
    failed = int(counts.get("failed", 0) + counts.get("uncertain", 0))
    tail = " — billing is not affected; the next run retries them (write-back table)" if failed else ""
    return f"**TOPdesk write-back:** {shown}{tail}."
