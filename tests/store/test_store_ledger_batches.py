"""Batch claims and confirmations: one transaction per batch, per-document rows and statuses unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, event

from store import ledger
from store.ledger import ClaimConflict, ClaimResult, Confirmation
from tests.store_support import (  # noqa: F401
    charges,
    db_url_fixture,
    document,
    engine_fixture,
    line,
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


def statements(engine: Engine) -> list[str]:
    """A list that grows by one per SQL statement sent on ``engine``."""
    seen: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: seen.append(args[2]))
    return seen


def mixed_batch(size: int) -> list[ledger.DocumentClaim]:
    """Documents of two administrations, with invoice numbers, fresh and billed-before registrations.

    ``old-*`` registrations were billed by ``OLD`` (version 1): each batch document corrects one of them
    (a credit and a charge expecting version 1) and charges two fresh ones.
    """
    batch = []
    for n in range(size):
        lines = [
            line(f"old-{n}", kind="credit", expected_version=1, amount="-42.50"),
            line(f"old-{n}", fields_hash=f"new-{n}", expected_version=1, minutes=45),
            line(f"new-{n}-a"),
            line(f"new-{n}-b", minutes=60, amount="85.00"),
        ]
        batch.append(
            document(
                f"M{n:02d}",
                lines,
                kind="sales_booking",
                administration=1 + n % 2,
                needs_invoice_number=n % 3 != 0,
            )
        )
    return batch


def ledger_rows(engine: Engine) -> dict[str, list[tuple]]:
    """The ledger's tables without clocks and surrogate keys, in a fixed order."""
    from sqlalchemy import select

    from store.models import documents, invoice_counters, ledger_lines, registration_state

    skip = {"created_at", "updated_at", "posted_at", "id"}
    tables = {"documents": documents, "state": registration_state, "lines": ledger_lines}
    tables["counters"] = invoice_counters
    with engine.connect() as connection:
        return {
            name: sorted(
                (
                    tuple(str(row._mapping[c]) for c in (column.name for column in table.c) if c not in skip)
                    for row in connection.execute(select(table))
                ),
            )
            for name, table in tables.items()
        }


def test_a_batch_claimed_in_one_pass_writes_what_claims_one_by_one_write(
    engine: Engine, tmp_path: Path
) -> None:
    from store.db import connect
    from store.settings import StoreSettings

    one_by_one = connect(StoreSettings(db_url=f"sqlite:///{tmp_path / 'one-by-one.db'}"))
    size = 12
    for target in (engine, one_by_one):
        ledger.claim(target, "run-0", charges("OLD", [f"old-{n}" for n in range(size)]))
        ledger.mark_posted(target, "OLD", {"OrNu": "1"})
    sent = statements(engine)
    results = ledger.claim_batch(engine, "run-1", mixed_batch(size))
    claimed = len(sent)
    expected = [ledger.claim(one_by_one, "run-1", claim) for claim in mixed_batch(size)]
    assert [(r.reference, r.status, r.invoice_number) for r in results] == [
        (r.reference, r.status, r.invoice_number) for r in expected
    ]
    assert ledger_rows(engine) == ledger_rows(one_by_one)
    # a handful of statements for the batch (two invoice series take two each), not several per document
    assert claimed <= 14, sent[:claimed]  # one by one: more than 80
    before_confirm = len(sent)
    confirmations = [Confirmation(f"M{n:02d}", "posted", {"InId": str(n)}) for n in range(size)]
    ledger.confirm_batch(engine, confirmations)
    confirmed = len(sent)
    ledger.confirm_batch(one_by_one, confirmations)
    assert ledger_rows(engine) == ledger_rows(one_by_one)
    assert confirmed - before_confirm <= 4, sent[before_confirm:confirmed]
    one_by_one.dispose()
