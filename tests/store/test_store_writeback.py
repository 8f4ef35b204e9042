"""Write-back state (revision 0003): enqueue once, claim before the write, confirm after; both dialects."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, update

from store import ledger, runs
from store import writeback as store
from store.db import downgrade, migrate, utcnow
from store.models import writebacks
from tests.store_support import (  # noqa: F401
    charges,
    db_url_fixture,
    engine_fixture,
    postgres_admin,
    postgres_schema_url,
)

REFERENCE = "KPL-1-202610-aaaa"


def note(ticket: str = "t1", reference: str = REFERENCE) -> store.Note:
    return store.Note(
        document_reference=reference,
        ticket_id=ticket,
        registration_kind="incident",
        ticket_number=f"I 2610 {ticket}",
        marker=f"[Koppel {reference}]",
        memo=f"[Koppel {reference}] billed 30 minutes",
        field_path="optionalFields1.text1",
        field_value=f"Koppel {reference} 2026-10 30 min",
    )


def posted(engine: Engine, reference: str = REFERENCE) -> None:
    ledger.claim(engine, "run-0", charges(reference, [f"r-{reference}"]))
    ledger.mark_posted(engine, reference, {"OrNu": "1"})


def statuses(engine: Engine) -> dict[str, tuple[str, int]]:
    frame = store.state(engine)
    return {row.ticket_id: (row.status, row.attempts) for row in frame.itertuples()}


def test_enqueue_twice_keeps_one_row_and_its_progress(engine: Engine) -> None:
    posted(engine)
    store.enqueue(engine, [note("t1"), note("t2")])
    [first, _] = store.due(engine, "run-1")
    assert store.claim(engine, first, "run-1")
    store.finish(engine, first.note, "written")
    store.enqueue(engine, [note("t1"), note("t2"), note("t3")])  # the next run enqueues again
    assert statuses(engine) == {"t1": ("written", 1), "t2": ("pending", 0), "t3": ("pending", 0)}
    assert [item.note.ticket_id for item in store.due(engine, "run-2")] == ["t2", "t3"]


def test_a_claim_wins_once_and_a_retry_reads_back(engine: Engine) -> None:
    posted(engine)
    store.enqueue(engine, [note()])
    [item] = store.due(engine, "run-1")
    assert not item.needs_read_back
    assert store.claim(engine, item, "run-1")
    assert not store.claim(engine, item, "run-2")  # read before the first claim: stale
    store.finish(engine, item.note, "failed", "403: No permission to edit incidents")
    [again] = store.due(engine, "run-2")
    assert (again.status, again.attempts, again.needs_read_back) == ("failed", 1, True)
    assert store.state(engine)["error_message"].tolist() == ["403: No permission to edit incidents"]
    with pytest.raises(ValueError, match="outcome 'claimed'"):
        store.finish(engine, item.note, "claimed")


def test_a_claim_of_a_live_run_is_not_due_until_it_ends_or_goes_stale(engine: Engine) -> None:
    posted(engine)
    live = runs.start_run(engine, "invoice-hours", {}, run_id="00000000-0000-0000-0000-000000000001")
    store.enqueue(engine, [note()])
    [item] = store.due(engine, live)
    assert store.claim(engine, item, live)
    assert store.due(engine, "run-2") == []  # the live run is writing it right now
    assert [i.status for i in store.due(engine, live)] == ["claimed"]  # its own claim: due for itself
    assert [i.status for i in store.due(engine, "run-2", stale_after=timedelta(0))] == ["claimed"]
    with engine.begin() as connection:
        connection.execute(update(writebacks).values(updated_at=utcnow() - timedelta(hours=2)))
    assert [i.attempts for i in store.due(engine, "run-2")] == [1]
    runs.finish_run(engine, live, "crashed", {})
    assert [i.needs_read_back for i in store.due(engine, "run-2")] == [True]


def test_invoice_numbers_only_of_posted_documents(engine: Engine) -> None:
    posted(engine)
    ledger.claim(engine, "run-0", charges("KPL-1-202610-bbbb", ["r-b"]))  # claimed, not posted
    assert store.invoice_numbers(engine, [REFERENCE, "KPL-1-202610-bbbb", "nope"]) == {REFERENCE: None}


def test_downgrade_to_0002_drops_only_the_writebacks(engine: Engine) -> None:
    posted(engine)
    store.enqueue(engine, [note()])
    downgrade(engine, "0002")
    assert ledger.document(engine, REFERENCE).status == "posted"
    migrate(engine)
    assert store.state(engine).empty
