"""Batch claims and confirmations: one transaction per batch, per-document rows and statuses unchanged."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, event

from store import ledger
from store.ledger import ClaimConflict, ClaimResult, Confirmation
from tests.store_support import (  # noqa: F401
    charges,
    db_url_fixture,
    engine_fixture,
    postgres_admin,
    postgres_schema_url,
)


def commits(engine: Engine) -> list[int]:
    """A list that grows by one per COMMIT on ``engine`` (to count transactions)."""
    seen: list[int] = []
    event.listen(engine, "commit", lambda connection: seen.append(1))
    return seen


def test_a_batch_is_claimed_in_one_transaction_and_a_conflict_rolls_back_only_its_document(
    engine: Engine,
) -> None:
    ledger.claim(engine, "run-0", charges("EARLIER", ["r3"]))
    counted = commits(engine)
    results = ledger.claim_batch(
        engine,
        "run-1",
        [
            charges("B1", ["r1", "r2"], kind="sales_booking", needs_invoice_number=True),
            charges("B2", ["r3", "r4"], kind="sales_booking", needs_invoice_number=True),  # r3 taken
            charges("B3", ["r5"], kind="sales_booking", needs_invoice_number=True),
        ],
    )
    assert len(counted) == 1
    assert isinstance(results[1], ClaimConflict) and results[1].registration_ids == ("r3",)
    first, third = results[0], results[2]
    assert isinstance(first, ClaimResult) and isinstance(third, ClaimResult)
    assert (first.status, first.existing, third.existing) == ("claimed", False, False)
    assert first.invoice_number and third.invoice_number
    assert int(third.invoice_number[-6:]) == int(first.invoice_number[-6:]) + 1  # no gap for B2
    state = ledger.billed_state(engine).set_index("registration_id")["document_reference"].to_dict()
    assert state == {"r1": "B1", "r2": "B1", "r3": "EARLIER", "r5": "B3"}
    with pytest.raises(ledger.UnknownDocument):
        ledger.document(engine, "B2")
    again = ledger.claim_batch(engine, "run-2", [charges("B1", ["r1", "r2"])])
    assert again[0].existing and again[0].claimed_by_run == "run-1"


def test_outcomes_of_a_batch_are_confirmed_in_one_transaction(engine: Engine) -> None:
    ledger.claim_batch(engine, "run-1", [charges(f"C{n}", [f"r{n}"]) for n in range(3)])
    counted = commits(engine)
    ledger.confirm_batch(
        engine,
        [
            Confirmation("C0", "posted", {"OrNu": "7001"}),
            Confirmation(
                "C1", "failed", message="Verkooprelatie 1 is geblokkeerd.", profit_log_reference="ab" * 16
            ),
            Confirmation("C2", "uncertain", message="answer lost"),
        ],
    )
    assert len(counted) == 1
    records = {ref: ledger.document(engine, ref) for ref in ("C0", "C1", "C2")}
    assert (records["C0"].status, records["C0"].afas_keys) == ("posted", {"OrNu": "7001"})
    assert (records["C1"].status, records["C1"].profit_log_reference) == ("failed", "ab" * 16)
    assert (records["C2"].status, records["C2"].error_message) == ("uncertain", "answer lost")
    ledger.confirm_batch(engine, [Confirmation("C2", "posted", {"OrNu": "7002"})])
    assert ledger.document(engine, "C2").status == "posted"


def test_a_refused_transition_rolls_the_whole_confirmation_back(engine: Engine) -> None:
    ledger.claim_batch(engine, "run-1", [charges("D0", ["r0"]), charges("D1", ["r1"])])
    ledger.mark_posted(engine, "D1", {"OrNu": "1"})
    with pytest.raises(ledger.InvalidTransition):
        ledger.confirm_batch(
            engine, [Confirmation("D0", "posted", {"OrNu": "2"}), Confirmation("D1", "failed")]
        )
    assert ledger.document(engine, "D0").status == "claimed"
    with pytest.raises(ValueError, match="unknown status"):
        Confirmation("D0", "done")
