"""Exactly once under concurrency: several workers claim overlapping documents at the same moment.

On PostgreSQL eight threads with their own connections race (row locks and unique keys decide); on
SQLite four threads share one file (write transactions queue on the busy timeout). Every thread re-plans
without the registrations a ``ClaimConflict`` names, as the flow does. Afterwards each registration
must be billed by exactly one document, and invoice numbers must run without gaps or duplicates.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from sqlalchemy import Engine, select

from store import ledger
from store.ledger import ClaimConflict, ClaimResult, DocumentClaim, LineClaim
from store.models import invoice_counters, ledger_lines
from tests.store_support import (  # noqa: F401
    db_url_fixture,
    document,
    engine_fixture,
    line,
    postgres_admin,
    postgres_schema_url,
)

JOIN_TIMEOUT_S = 45


@dataclass
class Outcome:
    claimed: list[tuple[ClaimResult, list[str]]] = field(default_factory=list)
    conflicts: int = 0  # ClaimConflicts seen: proof that the workers really collided
    existing: int = 0  # claims answered with another worker's identical document
    errors: list[BaseException] = field(default_factory=list)


def claim_until_settled(
    engine: Engine,
    run_id: str,
    reference: str,
    wanted: list[str],
    build: Callable[[str, list[str]], DocumentClaim],
    outcome: Outcome,
) -> None:
    """Claim ``wanted``; on a conflict re-plan without the named registrations under a new reference."""
    attempt, base = 0, reference
    while wanted:
        try:
            result = ledger.claim(engine, run_id, build(reference, wanted))
        except ClaimConflict as conflict:
            wanted = [rid for rid in wanted if rid not in conflict.registration_ids]
            outcome.conflicts += 1
            attempt += 1
            reference = f"{base}-{run_id}-{attempt}"
            continue
        if result.existing:
            outcome.existing += 1
        else:
            outcome.claimed.append((result, wanted))
        return


def race(workers: int, work: Callable[[int, Outcome], None]) -> Outcome:
    """Start ``workers`` threads at the same moment and wait (bounded) for all of them."""
    outcome = Outcome()
    barrier = threading.Barrier(workers)

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=JOIN_TIMEOUT_S)
            work(index, outcome)
        except BaseException as error:  # noqa: BLE001 - reported by the test below
            outcome.errors.append(error)

    threads = [threading.Thread(target=run, args=(index,), daemon=True) for index in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT_S)
    assert not any(thread.is_alive() for thread in threads), "a claim hung (deadlock or lock wait)"
    assert outcome.errors == []
    return outcome


def workers_for(engine: Engine) -> int:
    return 8 if engine.dialect.name == "postgresql" else 4


def billed_lines(engine: Engine) -> list[tuple[str, str, str]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                ledger_lines.c.registration_id, ledger_lines.c.line_kind, ledger_lines.c.document_reference
            )
        )
        return [tuple(row) for row in rows]


def sales_booking(reference: str, wanted: list[str]) -> DocumentClaim:
    return document(reference, [line(rid) for rid in wanted], kind="sales_booking", needs_invoice_number=True)


@pytest.mark.timeout(120)
def test_overlapping_fresh_claims_bill_each_registration_once(engine: Engine) -> None:
    registrations = [f"r{n:02d}" for n in range(40)]
    workers = workers_for(engine)

    def work(index: int, outcome: Outcome) -> None:
        chooser = random.Random(index)
        # Pairs of workers first plan the very same document (same reference, same lines) ...
        shared = sorted(random.Random(index % (workers // 2)).sample(registrations, 8))
        claim_until_settled(
            engine, f"w{index}", f"shared-{index % (workers // 2)}", shared, sales_booking, outcome
        )
        # ... then overlapping documents of their own.
        for number in range(4):
            wanted = sorted(chooser.sample(registrations, 10))
            claim_until_settled(engine, f"w{index}", f"w{index}-d{number}", wanted, sales_booking, outcome)

    outcome = race(workers, work)
    assert outcome.conflicts > 0 and outcome.existing + outcome.conflicts >= workers // 2
    lines = billed_lines(engine)
    per_registration = Counter(rid for rid, _, _ in lines)
    assert set(per_registration) <= set(registrations)
    assert all(times == 1 for times in per_registration.values()), per_registration.most_common(3)
    assert sum(len(wanted) for _, wanted in outcome.claimed) == len(lines) == len(per_registration)
    frame = ledger.billed_state(engine)
    assert len(frame) == len(per_registration) and set(frame.version) == {1}
    numbers = sorted(result.invoice_number for result, _ in outcome.claimed)
    assert numbers == [f"KPL26{n:06d}" for n in range(1, len(outcome.claimed) + 1)]
    with engine.connect() as connection:
        assert connection.execute(select(invoice_counters.c.last_number)).scalar_one() == len(outcome.claimed)


def correction_lines(rid: str, worker: int) -> list[LineClaim]:
    return [
        line(rid, kind="credit", fields_hash=f"hash-{rid}", minutes=-30, amount="-42.50", expected_version=1),
        line(rid, kind="charge", fields_hash=f"w{worker}", minutes=45, amount="63.75", expected_version=1),
    ]


def corrected_and_fresh(index: int, workers: int) -> list[str]:
    """What worker ``index`` of the corrections test wants: three billed registrations and two new ones."""
    return [f"b{(index + offset) % 10}" for offset in range(3)] + [f"n{index}", f"n{(index + 1) % workers}"]


def largest_disjoint_family(plans: list[set[str]]) -> int:
    """The most plans that share no registration (brute force: at most eight plans)."""
    best = 0
    for mask in range(1 << len(plans)):
        chosen = [plan for bit, plan in enumerate(plans) if mask >> bit & 1]
        if sum(map(len, chosen)) == len(set().union(*chosen)):
            best = max(best, len(chosen))
    return best


def test_largest_disjoint_family_of_the_corrections_plans() -> None:
    assert largest_disjoint_family([{"a"}, {"a", "b"}, {"c"}]) == 2
    assert largest_disjoint_family([set(corrected_and_fresh(i, 4)) for i in range(4)]) == 1
    assert largest_disjoint_family([set(corrected_and_fresh(i, 8)) for i in range(8)]) == 3


@pytest.mark.timeout(120)
def test_concurrent_corrections_and_new_lines_each_win_once(engine: Engine) -> None:
    billed = [f"b{n}" for n in range(10)]
    ledger.claim(engine, "first", document("FIRST", [line(rid) for rid in billed]))
    ledger.mark_posted(engine, "FIRST", {"OrNu": "1"})
    workers = workers_for(engine)

    def work(index: int, outcome: Outcome) -> None:
        wanted = corrected_and_fresh(index, workers)
        corrected, fresh = wanted[:3], wanted[3:]

        def build(reference: str, wanted: list[str]) -> DocumentClaim:
            lines = [item for rid in wanted if rid in corrected for item in correction_lines(rid, index)]
            return document(reference, lines + [line(rid) for rid in wanted if rid in fresh])

        claim_until_settled(engine, f"w{index}", f"corr-{index}", sorted(corrected + fresh), build, outcome)

    outcome = race(workers, work)
    # A worker that met no conflict claimed its whole first plan, so those workers' plans are pairwise
    # disjoint: whatever the thread scheduling, all workers outside the largest such set collided.
    plans = [set(corrected_and_fresh(index, workers)) for index in range(workers)]
    assert outcome.conflicts >= workers - largest_disjoint_family(plans)
    lines = billed_lines(engine)
    kinds = Counter((rid, kind) for rid, kind, _ in lines)
    touched = {billed[(index + offset) % 10] for index in range(workers) for offset in range(3)}
    for rid in touched:
        assert kinds[(rid, "charge")] == 2 and kinds[(rid, "credit")] == 1, rid
    for index in range(workers):
        assert kinds[(f"n{index}", "charge")] == 1
    frame = ledger.billed_state(engine).set_index("registration_id")
    assert set(frame.loc[sorted(touched), "version"]) == {2}
    winners = {rid: reference for rid, kind, reference in lines if kind == "credit"}
    for rid, reference in winners.items():
        assert frame.loc[rid, "document_reference"] == reference
    assert sum(len(wanted) for _, wanted in outcome.claimed) == len(touched) + workers
