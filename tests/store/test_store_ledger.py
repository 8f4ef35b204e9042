"""The ledger's claim protocol and document life cycle, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
from sqlalchemy import Engine, func, select

from store import ledger, runs
from store.ledger import ClaimConflict, InvalidTransition, UnknownDocument
from store.models import documents, ledger_lines, registration_state
from tests.store_support import (  # noqa: F401
    charges,
    db_url_fixture,
    document,
    engine_fixture,
    line,
    postgres_admin,
    postgres_schema_url,
)


def count(engine: Engine, table: object, *where: object) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def state(engine: Engine) -> dict[str, tuple[str, str, int, str]]:
    frame = ledger.billed_state(engine)
    return {
        row.registration_id: (row.document_reference, row.status, row.version, row.fields_hash)
        for row in frame.itertuples()
    }


def test_claim_post_life_cycle(engine: Engine) -> None:
    result = ledger.claim(engine, "run-1", charges("KPL-1-202610-aaaa", ["r1", "r2"]))
    assert result == ledger.ClaimResult("KPL-1-202610-aaaa", "claimed", False, None, "run-1", None)
    assert state(engine) == {
        "r1": ("KPL-1-202610-aaaa", "billed", 1, "hash-r1"),
        "r2": ("KPL-1-202610-aaaa", "billed", 1, "hash-r2"),
    }
    ledger.mark_posted(engine, "KPL-1-202610-aaaa", {"OrNu": "20261001"})
    ledger.mark_posted(engine, "KPL-1-202610-aaaa", {"OrNu": "other"})  # already posted: no change
    record = ledger.document(engine, "KPL-1-202610-aaaa")
    assert (record.status, record.afas_keys, record.attempts) == ("posted", {"OrNu": "20261001"}, 1)
    assert record.posted_at is not None and record.posted_at.tzinfo is UTC
    assert (record.minutes, record.amount) == (60, Decimal("85.00"))
    assert set(ledger.billed_state(engine)["document_status"]) == {"posted"}
    with pytest.raises(InvalidTransition, match="is posted; it cannot become failed"):
        ledger.mark_failed(engine, "KPL-1-202610-aaaa", "too late")


def test_outcomes_of_unknown_documents_are_refused(engine: Engine) -> None:
    with pytest.raises(UnknownDocument, match="no document with reference 'nope'"):
        ledger.mark_posted(engine, "nope", {})
    with pytest.raises(UnknownDocument):
        ledger.mark_uncertain(engine, "nope", "time-out")
    with pytest.raises(UnknownDocument):
        ledger.document(engine, "nope")


def test_uncertain_then_failed_counts_attempts_and_keeps_the_log_reference(engine: Engine) -> None:
    ledger.claim(engine, "run-1", charges("D1", ["r1"]))
    ledger.mark_uncertain(engine, "D1", "read time-out after 120 s")
    ledger.mark_uncertain(engine, "D1", "read time-out after 120 s")
    ledger.mark_failed(engine, "D1", "Periode is geblokkeerd", "0123456789abcdef0123456789abcdef")
    record = ledger.document(engine, "D1")
    assert (record.status, record.attempts, record.error_message) == ("failed", 3, "Periode is geblokkeerd")
    assert record.profit_log_reference == "0123456789abcdef0123456789abcdef"


def test_reclaiming_the_same_reference_returns_the_existing_document(engine: Engine) -> None:
    first = ledger.claim(
        engine, "run-1", charges("D1", ["r1", "r2"], kind="sales_booking", needs_invoice_number=True)
    )
    again = ledger.claim(
        engine, "run-2", charges("D1", ["r1", "r2"], kind="sales_booking", needs_invoice_number=True)
    )
    assert again == ledger.ClaimResult("D1", "claimed", True, first.invoice_number, "run-1", None)
    ledger.mark_posted(engine, "D1", {"EnNo": "70001"})
    posted = ledger.claim(
        engine, "run-3", charges("D1", ["r1", "r2"], kind="sales_booking", needs_invoice_number=True)
    )
    assert (posted.status, posted.existing, posted.afas_keys) == ("posted", True, {"EnNo": "70001"})
    assert count(engine, documents) == 1
    assert count(engine, ledger_lines) == 2
    assert state(engine)["r1"][2] == 1


def test_a_conflict_rolls_back_the_whole_claim(engine: Engine) -> None:
    ledger.claim(engine, "run-1", charges("A", ["r1", "r2"]))
    stale = line("r1", fields_hash="changed", expected_version=5)
    claim = document("B", [stale, line("r2"), line("r3"), line("r4")])
    with pytest.raises(ClaimConflict) as caught:
        ledger.claim(engine, "run-2", claim)
    assert caught.value.registration_ids == ("r1", "r2")
    assert "re-plan without them" in str(caught.value)
    assert count(engine, documents, documents.c.reference == "B") == 0
    assert count(engine, ledger_lines, ledger_lines.c.document_reference == "B") == 0
    assert set(state(engine)) == {"r1", "r2"}
    # The caller re-plans without the conflicting registrations and succeeds.
    assert not ledger.claim(engine, "run-2", charges("B2", ["r3", "r4"])).existing
    assert set(state(engine)) == {"r1", "r2", "r3", "r4"}


def test_a_registration_deleted_since_it_was_read_conflicts(engine: Engine) -> None:
    with pytest.raises(ClaimConflict) as caught:
        ledger.claim(engine, "run-1", document("C", [line("ghost", expected_version=1)]))
    assert caught.value.registration_ids == ("ghost",)
    assert count(engine, registration_state) == 0


def test_correction_credits_the_old_charge_and_bills_the_new_one(engine: Engine) -> None:
    ledger.claim(engine, "run-1", document("A", [line("r1", fields_hash="h1", minutes=30, amount="42.50")]))
    ledger.mark_posted(engine, "A", {"OrNu": "1"})
    correction = document(
        "C",
        [
            line("r1", kind="credit", fields_hash="h1", minutes=-30, amount="-42.50", expected_version=1),
            line("r1", kind="charge", fields_hash="h2", minutes=45, amount="63.75", expected_version=1),
        ],
    )
    assert not ledger.claim(engine, "run-2", correction).existing
    row = ledger.billed_state(engine, ["r1"]).iloc[0]
    assert (row.document_reference, row.status, row.version, row.fields_hash) == ("C", "billed", 2, "h2")
    assert (row.minutes, row.amount) == (45, Decimal("63.75"))
    # A second correction planned from the old read (version 1) must not bill again.
    with pytest.raises(ClaimConflict):
        ledger.claim(engine, "run-3", document("C2", [line("r1", fields_hash="h3", expected_version=1)]))
    # The registration disappears from TOPdesk: a credit-only document.
    credit = line("r1", kind="credit", fields_hash="h2", minutes=-45, amount="-63.75", expected_version=2)
    ledger.claim(engine, "run-3", document("D", [credit]))
    assert state(engine)["r1"] == ("D", "credited", 3, "h2")
    history = ledger.registration_history(engine, "r1")
    assert list(zip(history.document_reference, history.line_kind, history.amount, strict=True)) == [
        ("A", "charge", Decimal("42.50")),
        ("C", "credit", Decimal("-42.50")),
        ("C", "charge", Decimal("63.75")),
        ("D", "credit", Decimal("-63.75")),
    ]


def test_invoice_numbers_are_sequential_without_gaps(engine: Engine) -> None:
    def booking(reference: str, rids: list[str], administration: int = 1, period: str = "2026-10") -> object:
        return charges(
            reference,
            rids,
            kind="sales_booking",
            needs_invoice_number=True,
            administration=administration,
            period=period,
        )

    numbers = [ledger.claim(engine, "run", booking("S1", ["r1"])).invoice_number]
    with pytest.raises(ClaimConflict):
        ledger.claim(engine, "run", booking("S2", ["r2", "r1"]))
    numbers.append(ledger.claim(engine, "run", booking("S3", ["r3"])).invoice_number)
    numbers.append(ledger.claim(engine, "run", booking("S1", ["r1"])).invoice_number)  # idempotent
    numbers.append(ledger.claim(engine, "run", booking("S4", ["r4"], administration=2)).invoice_number)
    numbers.append(ledger.claim(engine, "run", booking("S5", ["r5"], period="2027-01")).invoice_number)
    assert numbers == ["KPL26000001", "KPL26000002", "KPL26000001", "KPL26000001", "KPL27000001"]
    assert all(len(number) <= 12 for number in numbers)
    assert ledger.claim(engine, "run", charges("X", ["r6"])).invoice_number is None
    assert ledger.document(engine, "S3").invoice_number == "KPL26000002"


def test_release_frees_a_failed_documents_registrations(engine: Engine) -> None:
    ledger.claim(engine, "run-1", document("A", [line("old", fields_hash="h1")]))
    ledger.mark_posted(engine, "A", {})
    failed = document(
        "F",
        [line("new"), line("old", fields_hash="h2", expected_version=1)],
        kind="sales_booking",
        needs_invoice_number=True,
    )
    number = ledger.claim(engine, "run-2", failed).invoice_number
    with pytest.raises(InvalidTransition, match="is claimed; it cannot become released"):
        ledger.release(engine, "F")
    ledger.mark_failed(engine, "F", "Debiteur geblokkeerd")
    assert ledger.release(engine, "F") == ["new", "old"]
    assert state(engine) == {"old": ("A", "billed", 3, "h1")}
    assert ledger.document(engine, "F").status == "released"
    with pytest.raises(InvalidTransition):
        ledger.release(engine, "F")
    # The next plan produces the same document again: it is claimed afresh under its reference.
    again = ledger.claim(
        engine,
        "run-3",
        document(
            "F",
            [line("new"), line("old", fields_hash="h2", expected_version=3)],
            kind="sales_booking",
            needs_invoice_number=True,
        ),
    )
    assert (again.existing, again.status, again.invoice_number, again.claimed_by_run) == (
        False,
        "claimed",
        number,
        "run-3",
    )
    assert count(engine, ledger_lines, ledger_lines.c.document_reference == "F") == 2
    assert ledger.document(engine, "F").error_message is None
    assert state(engine)["old"] == ("F", "billed", 4, "h2")


def test_release_leaves_registrations_claimed_by_a_later_document(engine: Engine) -> None:
    ledger.claim(engine, "run-1", charges("F", ["r1", "r2"]))
    ledger.mark_failed(engine, "F", "rejected")
    ledger.claim(engine, "run-2", document("G", [line("r2", fields_hash="h9", expected_version=1)]))
    assert ledger.release(engine, "F") == ["r1"]
    assert state(engine) == {"r2": ("G", "billed", 2, "h9")}


def test_unfinished_lists_documents_of_runs_that_are_over(engine: Engine) -> None:
    live = runs.start_run(engine, "invoice-hours", {"period": "2026-10"})
    ledger.claim(engine, live, charges("U1", ["r1"]))
    ledger.claim(engine, "unknown-run", charges("U2", ["r2"]))
    ledger.claim(engine, live, charges("P", ["r3"]))
    ledger.mark_posted(engine, "P", {})
    assert [d.reference for d in ledger.unfinished(engine)] == ["U2"]
    assert [d.reference for d in ledger.unfinished(engine, include_running=True)] == ["U1", "U2"]
    assert [d.reference for d in ledger.unfinished(engine, stale_after=timedelta(0))] == ["U1", "U2"]
    runs.finish_run(engine, live, "crashed")
    ledger.mark_uncertain(engine, "U1", "connection reset")
    found = ledger.unfinished(engine)
    assert [(d.reference, d.status) for d in found] == [("U1", "uncertain"), ("U2", "claimed")]
    assert found[0].payload == {"FbDirectInvoice": {"Element": {"Fields": {"DbId": "10001", "RfCs": "U1"}}}}
    # Two recovering workers race for U1: exactly one takes it over.
    assert ledger.adopt(engine, "U1", "worker-a", previous_run_id=live)
    assert not ledger.adopt(engine, "U1", "worker-b", previous_run_id=live)
    assert ledger.document(engine, "U1").claimed_by_run == "worker-a"


def test_billed_state_filters_by_ids_or_entry_date(engine: Engine) -> None:
    lines = [
        line("a", entry_date=date(2026, 9, 30)),
        line("b", entry_date=date(2026, 10, 1)),
        line("c", entry_date=date(2026, 10, 31), amount="0.01"),
        line("d", entry_date=date(2026, 11, 1)),
    ]
    ledger.claim(engine, "run", document("A", lines))
    october = (date(2026, 10, 1), date(2026, 11, 1))
    assert list(ledger.billed_state(engine, entry_date_range=october).registration_id) == ["b", "c"]
    assert list(ledger.billed_state(engine, registration_ids=["d", "zz"]).registration_id) == ["d"]
    both = ledger.billed_state(engine, registration_ids=["a", "b"], entry_date_range=october)
    assert list(both.registration_id) == ["a", "b", "c"]
    assert both.amount.tolist() == [Decimal("42.50"), Decimal("42.50"), Decimal("0.01")]
    assert both.entry_date.tolist() == [date(2026, 9, 30), date(2026, 10, 1), date(2026, 10, 31)]
    empty = ledger.billed_state(engine, registration_ids=[])
    assert empty.empty and list(empty.columns) == list(ledger.BILLED_STATE_DTYPES)
    assert str(empty.version.dtype) == "int64"


def test_documents_frame_filters_by_period_run_and_status(engine: Engine) -> None:
    ledger.claim(engine, "run-1", charges("A", ["r1"]))
    ledger.claim(engine, "run-2", charges("B", ["r2"], period="2026-11"))
    ledger.mark_failed(engine, "B", "nope")
    assert list(ledger.documents(engine, period="2026-10").reference) == ["A"]
    assert list(ledger.documents(engine, run_id="run-2").reference) == ["B"]
    failed = ledger.documents(engine, status="failed")
    assert list(failed.reference) == ["B"] and failed.error_message.tolist() == ["nope"]
    assert str(failed.created_at.dtype) == "datetime64[us, UTC]"
    assert ledger.documents(engine).amount.tolist() == [Decimal("42.50"), Decimal("42.50")]
    assert list(ledger.document_lines(engine, "A").registration_id) == ["r1"]


@pytest.mark.parametrize(
    ("build", "error"),
    [
        (lambda: charges("x" * 33, ["r1"]), "1-32 printable ASCII"),
        (lambda: charges("KPL 1", ["r1"]), "1-32 printable ASCII"),
        (lambda: charges("A", ["r1"], period="2026-13"), "not YYYY-MM"),
        (lambda: charges("A", ["r1"], kind="invoice"), "kind 'invoice'"),
        (lambda: charges("A", ["r1", "r1"]), "two charge lines"),
        (lambda: document("A", []), "has no lines"),
        (
            lambda: document(
                "A", [line("r1", kind="credit", expected_version=1), line("r1", expected_version=2)]
            ),
            "different versions",
        ),
        (lambda: line("r1", amount="1.001"), "more than 2 decimals"),
        (lambda: ledger.LineClaim("r1", "charge", "h", 30, 1.5, date(2026, 1, 1), None), "must be a Decimal"),  # type: ignore[arg-type]
        (
            lambda: ledger.LineClaim(
                "r1", "charge", "h", 30, Decimal(1), datetime(2026, 1, 1, tzinfo=UTC), None
            ),
            "must be a date",
        ),
        (
            lambda: ledger.LineClaim("r1", "charge", "h", 1.5, Decimal(1), date(2026, 1, 1), None),
            "must be an int",
        ),  # type: ignore[arg-type]
        (lambda: line("r1", expected_version=0), ">= 1 or None"),
    ],
)
def test_invalid_claims_are_refused_before_touching_the_database(build: object, error: str) -> None:
    with pytest.raises((ValueError, TypeError), match=error):
        build()  # type: ignore[operator]


def test_a_crash_inside_a_claim_leaves_nothing_behind(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger.claim(engine, "run-1", charges("A", ["r1"], kind="sales_booking", needs_invoice_number=True))

    def crash(*_: object) -> str:
        raise RuntimeError("worker killed")

    # The last step of a claim fails after the document, states and lines were written in the transaction.
    monkeypatch.setattr(ledger, "_next_invoice_number", crash)
    claim = document(
        "B",
        [line("r2"), line("r1", fields_hash="h2", expected_version=1)],
        kind="sales_booking",
        needs_invoice_number=True,
    )
    with pytest.raises(RuntimeError, match="worker killed"):
        ledger.claim(engine, "run-2", claim)
    monkeypatch.undo()
    assert count(engine, documents) == 1
    assert count(engine, ledger_lines) == 1
    assert state(engine) == {"r1": ("A", "billed", 1, "hash-r1")}
    assert ledger.claim(engine, "run-2", claim).invoice_number == "KPL26000002"


def test_numpy_integers_from_frames_become_plain_ints(engine: Engine) -> None:
    claim = document("N", [line("r1")], administration=np.int64(2))  # type: ignore[arg-type]
    numpy_line = ledger.LineClaim("r2", "charge", "h", np.int64(45), Decimal("1.00"), date(2026, 10, 1), None)
    claim = ledger.DocumentClaim(
        **{**claim.__dict__, "lines": (*claim.lines, numpy_line), "minutes": np.int64(75)}
    )
    assert type(claim.administration) is int and type(claim.minutes) is int
    assert type(claim.lines[1].minutes) is int
    ledger.claim(engine, "run", claim)
    assert ledger.billed_state(engine).minutes.tolist() == [30, 45]
    assert ledger.document(engine, "N").administration == 2
