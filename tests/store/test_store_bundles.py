"""Prepaid hour bundles: balances, oldest-first draws, idempotency, never below zero."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import Engine

from store import bundles
from store.bundles import BundleError
from tests.store.test_store_concurrency import Outcome, race
from tests.store_support import (  # noqa: F401
    db_url_fixture,
    engine_fixture,
    postgres_admin,
    postgres_schema_url,
)

OCT = date(2026, 10, 15)


def test_draws_take_the_oldest_valid_bundle_first_and_spill_over(engine: Engine) -> None:
    newer = bundles.add_bundle(engine, "10001", 600, date(2026, 7, 1), date(2027, 6, 30), "10 hours 2026b")
    older = bundles.add_bundle(engine, "10001", 120, date(2026, 1, 1), date(2026, 12, 31), "2 hours 2026a")
    bundles.add_bundle(engine, "10001", 6000, date(2025, 1, 1), date(2025, 12, 31), "expired")
    bundles.add_bundle(engine, "10001", 6000, date(2026, 11, 1), None, "not yet valid")
    assert newer != older
    assert bundles.balance(engine, "10001", OCT) == 720
    assert bundles.draw(engine, "reg-1", "10001", 90, OCT) == 90
    assert bundles.draw(engine, "reg-2", "10001", 60, OCT) == 60  # 30 from the older, 30 from the newer
    assert bundles.balance(engine, "10001", OCT) == 570
    assert bundles.balance(engine, "10001", date(2026, 3, 1)) == 0  # the older one was emptied first
    assert bundles.balance(engine, "10001", date(2027, 1, 5)) == 6570  # the newer one and the open one
    assert bundles.balance(engine, "10001", date(2027, 7, 1)) == 6000


def test_a_draw_is_idempotent_per_registration(engine: Engine) -> None:
    bundles.add_bundle(engine, "10001", 100, date(2026, 1, 1), None, "")
    assert bundles.draw(engine, "reg-1", "10001", 45, OCT) == 45
    assert bundles.draw(engine, "reg-1", "10001", 45, OCT) == 45
    assert bundles.draw(engine, "reg-1", "10001", 80, OCT) == 45
    assert bundles.balance(engine, "10001", OCT) == 55


def test_a_bundle_never_goes_below_zero(engine: Engine) -> None:
    bundles.add_bundle(engine, "10001", 50, date(2026, 1, 1), None, "")
    assert bundles.draw(engine, "reg-1", "10001", 30, OCT) == 30
    assert bundles.draw(engine, "reg-2", "10001", 30, OCT) == 20
    assert bundles.draw(engine, "reg-3", "10001", 30, OCT) == 0
    assert bundles.balance(engine, "10001", OCT) == 0
    assert bundles.draw(engine, "reg-4", "99999", 30, OCT) == 0  # a customer without bundles


def test_balances_frame_per_customer(engine: Engine) -> None:
    bundles.add_bundle(engine, "10002", 60, date(2026, 1, 1), None, "")
    bundles.add_bundle(engine, "10001", 100, date(2026, 1, 1), None, "")
    bundles.add_bundle(engine, "10001", 100, date(2026, 1, 1), None, "")
    bundles.draw(engine, "reg-1", "10001", 130, OCT)
    frame = bundles.balances(engine, OCT)
    assert frame.values.tolist() == [["10001", 70], ["10002", 60]]
    assert str(frame.minutes_available.dtype) == "int64"
    assert bundles.balances(engine, date(2025, 1, 1)).empty


def test_invalid_bundles_and_draws_are_refused(engine: Engine) -> None:
    with pytest.raises(BundleError, match="positive int"):
        bundles.add_bundle(engine, "10001", 0, date(2026, 1, 1))
    with pytest.raises(BundleError, match="lies before valid_from"):
        bundles.add_bundle(engine, "10001", 60, date(2026, 2, 1), date(2026, 1, 1))
    with pytest.raises(BundleError, match="non-negative int"):
        bundles.draw(engine, "reg-1", "10001", -5, OCT)


@pytest.mark.timeout(60)
def test_concurrent_draws_never_overdraw(engine: Engine) -> None:
    bundles.add_bundle(engine, "10001", 300, date(2026, 1, 1), None, "")
    answers: dict[str, list[int]] = {}

    def work(index: int, outcome: Outcome) -> None:
        for number in range(4):
            rid = f"reg-{number}-{index % 3}"  # workers i and i + 3 draw for the same registrations
            answers.setdefault(rid, []).append(bundles.draw(engine, rid, "10001", 40, OCT))

    race(6, work)
    # 12 registrations asked for 40 minutes each (480) from 300: the bundle is emptied exactly, and the
    # two workers that drew for the same registration got the same answer.
    assert bundles.balance(engine, "10001", OCT) == 0
    assert sorted(len(given) for given in answers.values()) == [2] * 12
    assert all(len(set(given)) == 1 for given in answers.values()), answers
    assert sum(given[0] for given in answers.values()) == 300


def test_draws_sums_per_registration_across_bundles(engine) -> None:
    from datetime import date

    from store import bundles as bundle_store

    bundle_store.add_bundle(engine, "10001", 60, date(2026, 1, 1), None, "small")
    bundle_store.add_bundle(engine, "10001", 600, date(2026, 2, 1), None, "big")
    assert bundle_store.draw(engine, "reg-a", "10001", 90, date(2026, 3, 1)) == 90
    assert bundle_store.draw(engine, "reg-b", "10001", 30, date(2026, 3, 1)) == 30
    frame = bundle_store.draws(engine, ["reg-a", "reg-b", "reg-none"])
    assert dict(zip(frame["registration_id"], frame["minutes"], strict=True)) == {"reg-a": 90, "reg-b": 30}
