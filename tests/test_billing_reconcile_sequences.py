"""Property: any sequence of TOPdesk edits and runs leaves every registration billed as desired, or pending.

Hypothesis generates edits (add, change minutes, change customer, delete, exclude, un-exclude, refuse the
next document, resend) interleaved with regular runs (the whole of October) and backfills (halves and
overlapping ranges). Each run is the real pipeline (``bill``), the real load protocol (``tasks.load.Loader``)
and the real ledger (SQLite); AFAS is a small fake that keeps the documents it accepted and refuses on
demand. After every run: the net per registration over the documents AFAS holds equals the amount one clean
plan would charge, or the registration sits in a pending bucket with a reason; no reversal negates a line AFAS
does not hold; conservation holds.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.afas.payloads import Keys
from connectors.errors import BusinessError
from store import ledger
from store.db import connect
from store.models import metadata
from store.settings import StoreSettings
from tasks.billing.buckets import BESIDE
from tasks.billing.payloads import build_payloads
from tasks.billing.pipeline import Scope, bill
from tasks.load import Loader, LoadPlan
from tasks.report import settle_buckets
from tests.billing_factories import AMS, at, config, masters, registration, registrations

OCTOBER = (pd.Timestamp("2026-10-01", tz=AMS), pd.Timestamp("2026-11-01", tz=AMS))
PENDING = {
    "failed",
    "awaiting confirmation",
    "left for the regular run",
    "kept after billing",
    "possibly deleted",
}
BASE = "[rounding]\nunit_minutes = 15\nminimum_minutes_per_ticket = 30\n"
ZERO = Decimal("0.00")


class FakeAfas:
    """Accepts documents (remembering their references) unless told to refuse the next one."""

    def __init__(self) -> None:
        self.held: set[str] = set()
        self.refuse_next = False

    async def find_by_reference(self, reference: Any) -> Keys | None:
        return Keys({"ref": reference.value}, recovered=True) if reference.value in self.held else None

    async def insert_once(self, connector: str, payload: Any, reference: Any) -> Keys:
        if self.refuse_next:
            self.refuse_next = False
            raise BusinessError("refused", external_message="Verkooprelatie geblokkeerd")
        self.held.add(reference.value)
        return Keys({"ref": reference.value})


@dataclass
class World:
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    excluded: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)
    failed: list[str] = field(default_factory=list)
    counter: int = 0


def cfg(world: World):
    rules = "".join(
        f'[[exclusions.rules]]\nkind = "registration"\nvalue = "{rid}"\nreason = "excluded in test"\n'
        for rid in sorted(world.excluded)
    )
    return config("\n[exclusions]\n" + rules if rules else "", base=_base())


def _base() -> str:
    from tests.billing_factories import CONFIG_TOML

    return CONFIG_TOML + BASE


def reference_of(kind: str, reference: str, payload: Any) -> Any:
    from connectors.afas.payloads import Reference

    return Reference("x", "y", reference)


def run(engine, afas: FakeAfas, world: World, window: tuple[int, int] | None) -> Any:
    """One run: read, plan against the ledger, load through the real protocol; return the plan."""
    first, last = window or (1, 31)
    rows = [
        r for rid, r in sorted(world.rows.items()) if rid not in world.deleted and first <= r["day"] <= last
    ]
    read = registrations(*[r["row"] for r in rows]) if rows else registrations().iloc[0:0]
    ids = list(read["registration_id"])
    posted = ledger.posted_lines(engine)
    state = ledger.billed_state(engine, sorted(set(ids) | set(posted["registration_id"])))
    scope = Scope(regular=window is None, window=OCTOBER, deleted=frozenset(world.deleted))
    config_ = cfg(world)
    result = bill(read, masters(), config_, state=state, posted=posted, scope=scope)
    payloads = build_payloads(result.documents, result.document_lines, config_)
    loader = Loader(engine, afas, f"run-{world.counter}", config_)
    world.counter += 1
    import tasks.load as load_module

    original = load_module.reference_for
    load_module.reference_for = reference_of
    try:
        outcomes = asyncio.run(loader.load(LoadPlan(result.documents, result.document_lines, payloads)))
    finally:
        load_module.reference_for = original
    world.failed += [o.reference for o in outcomes if o.status == "failed"]
    return settle_buckets(result.buckets, outcomes), result


def desired(world: World) -> dict[str, Decimal]:
    """What one clean regular run over TOPdesk's current state would charge per registration."""
    rows = [r["row"] for rid, r in sorted(world.rows.items()) if rid not in world.deleted]
    if not rows:
        return {}
    clean = bill(registrations(*rows), masters(), cfg(world))
    charges = clean.document_lines[clean.document_lines["line_kind"].eq("charge")]
    return dict(zip(charges["registration_id"], charges["amount"], strict=True))


def held_net(engine, afas: FakeAfas) -> tuple[dict[str, Decimal], pd.DataFrame]:
    lines = ledger.posted_lines(engine)
    assert set(lines["document_reference"]) <= afas.held  # the ledger's posted = what AFAS holds
    net: dict[str, Decimal] = {}
    for rid, amount in zip(lines["registration_id"], lines["amount"], strict=True):
        net[rid] = net.get(rid, ZERO) + amount
    return net, lines


def check(engine, afas: FakeAfas, world: World, settled: pd.DataFrame, result: Any, regular: bool) -> None:
    assert result.conservation["holds"], result.conservation
    net, lines = held_net(engine, afas)
    charges = lines[lines["line_kind"].eq("charge")]
    for credit in lines[lines["line_kind"].eq("credit")].itertuples():
        target = charges[
            charges["registration_id"].eq(credit.registration_id)
            & charges["fields_hash"].eq(credit.fields_hash)
            & charges["document_reference"].eq(credit.reverses)
        ]
        assert len(target) == 1 and target.iloc[0]["amount"] == -credit.amount, credit  # only what was posted
    wanted = desired(world)
    buckets = settled.set_index("registration_id")
    for rid in set(world.rows) | set(net):
        if net.get(rid, ZERO) == wanted.get(rid, ZERO):
            continue
        bucket = buckets["bucket"].get(rid)
        if bucket in PENDING or bucket in BESIDE:
            assert isinstance(buckets.loc[rid, "reason"], str) and buckets.loc[rid, "reason"]
            continue
        if bucket is None and (rid in world.deleted or not regular):
            continue  # a backfill that did not read it, or gone and not billed: nothing to say about it yet
        raise AssertionError(
            f"{rid}: AFAS nets {net.get(rid, ZERO)}, desired {wanted.get(rid, ZERO)} ({bucket})"
        )


EDITS = st.one_of(
    st.tuples(st.just("add"), st.integers(1, 31), st.integers(1, 90), st.integers(0, 2)),
    st.tuples(st.just("minutes"), st.integers(0, 20), st.integers(1, 120)),
    st.tuples(st.just("customer"), st.integers(0, 20)),
    st.tuples(st.just("delete"), st.integers(0, 20)),
    st.tuples(st.just("exclude"), st.integers(0, 20)),
    st.tuples(st.just("include"), st.integers(0, 20)),
    st.tuples(st.just("refuse")),
    st.tuples(st.just("resend")),
    st.tuples(st.just("run"), st.sampled_from([None, (1, 31), (1, 15), (16, 31), (10, 25)])),
)


def apply(edit: tuple, world: World, afas: FakeAfas, engine) -> bool:
    """Apply an edit; True when it was a run."""
    live = sorted(rid for rid in world.rows if rid not in world.deleted)
    pick = (lambda i: live[i % len(live)]) if live else None
    kind = edit[0]
    if kind == "add":
        rid = f"r{len(world.rows):02d}"
        _, day, minutes, ticket = edit
        world.rows[rid] = {
            "day": day,
            "row": registration(
                registration_id=rid,
                entry_date=at(f"2026-10-{day:02d} 10:00"),
                minutes=minutes,
                ticket_id=f"t{ticket}",
                billed_ticket_id=f"t{ticket}",
                ticket_number=f"I {ticket}",
                billed_ticket_number=f"I {ticket}",
            ),
        }
    elif kind == "minutes" and pick:
        row = world.rows[pick(edit[1])]["row"]
        row.update(minutes=edit[2], time_spent_raw=float(edit[2] * 60))
    elif kind == "customer" and pick:
        row = world.rows[pick(edit[1])]["row"]
        row["customer_number"] = "10002" if row["customer_number"] == "10001" else "10001"
    elif kind == "delete" and pick:
        world.deleted.add(pick(edit[1]))
    elif kind == "exclude" and pick:
        world.excluded.add(pick(edit[1]))
    elif kind == "include" and world.excluded:
        world.excluded.discard(sorted(world.excluded)[edit[1] % len(world.excluded)])
    elif kind == "refuse":
        afas.refuse_next = True
    elif kind == "resend":
        for reference in world.failed:
            ledger.resend(engine, reference)
        world.failed.clear()
    return kind == "run"


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits=st.lists(EDITS, min_size=3, max_size=14))
def test_every_registration_nets_its_desired_amount_or_is_pending_after_every_run(edits):
    engine = _engine()
    with engine.begin() as connection:  # one migrated database, emptied for every example
        for table in reversed(metadata.sorted_tables):
            connection.execute(table.delete())
    afas, world = FakeAfas(), World()
    for edit in [*edits, ("run", None)]:
        if apply(edit, world, afas, engine):
            settled, result = run(engine, afas, world, edit[1])
            check(engine, afas, world, settled, result, regular=edit[1] is None)


_ENGINES: list[Any] = []


def _engine():
    if not _ENGINES:
        folder = tempfile.mkdtemp(prefix="koppel-sequences-")
        _ENGINES.append(connect(StoreSettings(db_url=f"sqlite:///{Path(folder) / 'state.db'}")))
    return _ENGINES[0]
