"""Allowance and bundle minutes are conserved across any sequence of edits, moves, deletions and reruns.

A small model of the run cycle with the real pieces: ``draw_pools`` plans the draws from what the store
holds, ``mirror_draws`` builds the zero-priced part of each reversal, ``store.bundles.settle_draws`` records
what "AFAS" (a dict of open charges here) accepted. After every run, per pool: size = left + the minutes the
open charges drew; per registration: the store's draws equal its open charge's, and every live registration
is charged its billed minutes exactly once (drawn + charged = billed).
"""

from __future__ import annotations

from datetime import date

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine

from store import bundles
from store.db import migrate
from tasks.invoice_hours.allowances import draw_pools
from tasks.invoice_hours.reconcile import mirror_draws
from tests.billing_factories import at, config

CUSTOMERS = ["10001", "10002"]
IDS = [f"r{i}" for i in range(6)]
CFG = config(
    '\n[[allowances]]\nname = "a1"\ncustomer_number = "10001"\nhours_per_month = "1"\n'
    "valid_from = 2026-10-01\n"
    '\n[[allowances]]\nname = "b1"\ncustomer_number = "10002"\nhours_per_month = "0.5"\n'
    "valid_from = 2026-10-01\n"
)

operation = st.one_of(
    st.tuples(st.just("edit"), st.sampled_from(IDS), st.integers(1, 120)),
    st.tuples(st.just("move"), st.sampled_from(IDS), st.sampled_from(CUSTOMERS)),
    st.tuples(st.just("delete"), st.sampled_from(IDS), st.just(0)),
    st.tuples(st.just("add"), st.sampled_from(IDS), st.integers(1, 120)),
    st.tuples(st.just("rerun"), st.just(""), st.just(0)),
)


def fresh_store(path):
    engine = create_engine(f"sqlite:///{path}")
    migrate(engine)
    bundles.add_bundle(engine, "10001", 90, date(2026, 1, 1), None, "prepaid")
    months = [
        {**m, "month": date(2026, 10, 1), "valid_to": date(2026, 10, 31)}
        for m in [
            {"name": "a1", "customer_number": "10001", "minutes": 60},
            {"name": "b1", "customer_number": "10002", "minutes": 30},
        ]
    ]
    bundles.sync_allowance_months(engine, months)
    return engine


def lines_of(world: dict[str, dict]) -> pd.DataFrame:
    rows = [
        {
            "registration_id": rid,
            "customer_number": reg["customer"],
            "billed_minutes": reg["minutes"],
            "entry_date": at(f"2026-10-{int(rid[1:]) + 5:02d} 09:00"),
            "item_code": "SUPPORT",
            "target": "customer",
        }
        for rid, reg in sorted(world.items())
    ]
    frame = pd.DataFrame(rows, columns=["registration_id", "customer_number", "billed_minutes", "entry_date"])
    frame = frame.assign(item_code="SUPPORT", target="customer")
    return frame.assign(work_date=frame["entry_date"].dt.tz_convert("Europe/Amsterdam"))


def run_cycle(
    engine, world: dict[str, dict], afas: dict[str, tuple[str, int, int]], crash: bool = False
) -> None:
    """Plan against the store, 'post' to ``afas`` (open charges: customer, billed, drawn), settle draws."""
    lines = lines_of(world)
    prior = bundles.draw_rows(engine, sorted(set(world) | set(afas)))
    pools = bundles.pools(engine, date(2026, 10, 1), date(2026, 10, 31))
    drawn, _, draws = draw_pools(lines, pools, prior, pd.Series(sorted(afas), dtype="str"), CFG)
    desired = {
        rid: (customer, int(billed), int(d))
        for rid, customer, billed, d in zip(
            lines["registration_id"], lines["customer_number"], lines["billed_minutes"], drawn, strict=True
        )
    }
    first = {rid for rid in desired if rid not in afas}  # tasks.invoice_hours.tasks._reserve_new_draws before
    # posting
    bundles.settle_draws(engine, wanted_of(draws, first))
    charged, credited = set(), set()
    for rid in sorted(set(afas) | set(desired)):
        if rid in afas and desired.get(rid) == afas[rid]:
            continue  # billed before
        if rid in afas:  # reversal: its zero-priced part mirrors what the store recorded for the charge
            credit = pd.DataFrame(
                {
                    "registration_id": [rid],
                    "kind": ["direct_invoice"],
                    "billed_minutes": [-afas[rid][1]],
                    "chargeable_minutes": [-afas[rid][1]],
                }
            )
            assert int(mirror_draws(credit, prior).iloc[0]["drawn_minutes"]) == -afas[rid][2]
            del afas[rid]
            credited.add(rid)
        if rid in desired:
            afas[rid] = desired[rid]
            charged.add(rid)
    if crash:  # killed after AFAS accepted everything, before the draws were settled
        return
    wanted = {rid: [] for rid in charged} | wanted_of(draws, charged)
    held = bundles.settle_draws(engine, wanted, sorted(credited - charged))
    assert all(held[rid] == afas[rid][2] for rid in charged)  # the plan never promised more than was left


def wanted_of(draws: pd.DataFrame, ids: set[str]) -> dict[str, list[tuple[int, int]]]:
    wanted: dict[str, list[tuple[int, int]]] = {}
    for draw in draws[draws["registration_id"].isin(ids)].itertuples(index=False):
        wanted.setdefault(draw.registration_id, []).append((int(draw.bundle_id), int(draw.minutes)))
    return wanted


def check_conserved(engine, world: dict[str, dict], afas: dict[str, tuple[str, int, int]]) -> None:
    recorded = bundles.draw_rows(engine, IDS)
    per_registration = recorded.groupby("registration_id")["minutes"].sum().to_dict()
    assert per_registration == {rid: d for rid, (_, _, d) in afas.items() if d}
    assert set(afas) == set(world)  # every live registration charged once, nothing else
    for rid, (customer, billed, drawn) in afas.items():
        assert (customer, billed) == (world[rid]["customer"], world[rid]["minutes"]) and 0 <= drawn <= billed
    for pool in bundles.pools(engine, date(2026, 10, 1), date(2026, 10, 31)).itertuples(index=False):
        used = int(recorded.loc[recorded["bundle_id"].eq(pool.bundle_id), "minutes"].sum())
        size = {"prepaid": 90, "a1": 60, "b1": 30}[pool.allowance or "prepaid"]
        assert pool.minutes_available >= 0 and pool.minutes_available + used == size
        pool_customers = set(recorded.loc[recorded["bundle_id"].eq(pool.bundle_id), "registration_id"])
        assert all(afas[rid][0] == pool.customer_number for rid in pool_customers)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(operation, min_size=1, max_size=12))
def test_allowance_and_bundle_minutes_are_conserved_over_any_sequence(tmp_path_factory, operations) -> None:
    engine = fresh_store(tmp_path_factory.mktemp("conservation") / "state.db")
    world = {rid: {"customer": CUSTOMERS[i % 2], "minutes": 30 + 10 * i} for i, rid in enumerate(IDS[:4])}
    afas: dict[str, tuple[str, int, int]] = {}
    run_cycle(engine, world, afas)
    check_conserved(engine, world, afas)
    for kind, rid, value in operations:
        if kind == "edit" and rid in world:
            world[rid]["minutes"] = value
        elif kind == "move" and rid in world:
            world[rid]["customer"] = value
        elif kind == "delete":
            world.pop(rid, None)
        elif kind == "add" and rid not in world:
            world[rid] = {"customer": CUSTOMERS[0], "minutes": value}
        run_cycle(engine, world, afas)
        check_conserved(engine, world, afas)
    engine.dispose()


def test_a_crash_after_posting_first_charges_loses_no_draw(tmp_path) -> None:
    engine = fresh_store(tmp_path / "state.db")
    world = {rid: {"customer": CUSTOMERS[i % 2], "minutes": 30 + 10 * i} for i, rid in enumerate(IDS)}
    afas: dict[str, tuple[str, int, int]] = {}
    run_cycle(engine, world, afas, crash=True)
    check_conserved(engine, world, afas)  # the draws were recorded before posting
    posted = dict(afas)
    run_cycle(engine, world, afas)
    assert afas == posted  # the next run finds everything billed before: nothing re-charged
    check_conserved(engine, world, afas)


def test_a_reserved_draw_of_a_registration_excluded_before_posting_is_given_back(
    tmp_path, monkeypatch
) -> None:
    from types import SimpleNamespace

    from tasks.invoice_hours import tasks as invoice_hours_tasks

    engine = fresh_store(tmp_path / "state.db")
    pool = int(
        bundles.pools(engine, date(2026, 10, 1), date(2026, 10, 31))
        .query("allowance == 'a1'")["bundle_id"]
        .iloc[0]
    )
    bundles.settle_draws(engine, {"r0": [(pool, 40)], "r1": [(pool, 20)]})  # reserved, never posted
    monkeypatch.setattr(invoice_hours_tasks, "state_engine", lambda: engine)
    empty = pd.DataFrame({"registration_id": pd.Series(dtype="str")})
    billing = SimpleNamespace(
        rejects=pd.DataFrame({"registration_id": ["r0"]}),
        excluded=empty,
        reconciled=SimpleNamespace(open_charges=empty),
        document_lines=pd.DataFrame({"registration_id": [], "reference": [], "line_kind": []}),
        draws=pd.DataFrame(columns=["registration_id", "bundle_id", "minutes"]),
    )
    invoice_hours_tasks._record_draws(billing, [])
    assert list(bundles.draw_rows(engine, IDS)["registration_id"]) == ["r1"]  # r0 rejected now: given back
    left = bundles.pools(engine, date(2026, 10, 1), date(2026, 10, 31)).query("allowance == 'a1'")
    assert int(left["minutes_available"].iloc[0]) == 40
