"""Prepaid hour bundles per customer and the minutes registrations draw from them.

A draw is idempotent per registration (asking again returns what was drawn the first time), takes from
the oldest bundle valid on the registration's date first (spilling into the next one), and never takes a
bundle below zero. The customer's bundle rows are locked while drawing, so concurrent draws on
PostgreSQL cannot overdraw; on SQLite write transactions run one at a time anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import pandas as pd
from sqlalchemy import Connection, Engine, Row, and_, func, or_, select
from sqlalchemy.sql.elements import ColumnElement

from store.db import chunked, to_frame, utcnow, write_transaction
from store.models import bundle_draws, bundles


class BundleError(ValueError):
    """A bundle or draw request is invalid."""


def add_bundle(
    engine: Engine,
    customer_number: str,
    minutes_total: int,
    valid_from: date,
    valid_to: date | None = None,
    description: str = "",
) -> int:
    """Add a prepaid bundle of ``minutes_total`` minutes, valid ``valid_from``..``valid_to`` (inclusive)."""
    if not customer_number:
        raise BundleError("customer_number must not be empty")
    if not isinstance(minutes_total, int) or minutes_total <= 0:
        raise BundleError(f"minutes_total must be a positive int, got {minutes_total!r}")
    if valid_to is not None and valid_to < valid_from:
        raise BundleError(f"valid_to {valid_to} lies before valid_from {valid_from}")
    row = {
        "customer_number": customer_number,
        "minutes_total": minutes_total,
        "valid_from": valid_from,
        "valid_to": valid_to,
        "description": description,
        "created_at": utcnow(),
    }
    with write_transaction(engine) as connection:
        return int(connection.execute(bundles.insert().values(**row)).inserted_primary_key[0])


def _valid_on(on_date: date) -> ColumnElement[bool]:
    return and_(
        bundles.c.valid_from <= on_date, or_(bundles.c.valid_to.is_(None), bundles.c.valid_to >= on_date)
    )


def _remaining(connection: Connection, customer_number: str, on_date: date, lock: bool) -> list[Row]:
    """The customer's bundles valid on ``on_date``, oldest first, with ``remaining`` minutes."""
    drawn = (
        select(func.coalesce(func.sum(bundle_draws.c.minutes), 0))
        .where(bundle_draws.c.bundle_id == bundles.c.id)
        .scalar_subquery()
    )
    valid = (
        select(bundles.c.id, bundles.c.valid_from)
        .where(bundles.c.customer_number == customer_number, _valid_on(on_date))
        .order_by(bundles.c.valid_from, bundles.c.id)
    )
    if lock:
        # Lock the bundle rows first (in a fixed order); the sums below then cannot change under us.
        connection.execute(valid.with_for_update()).all()
    statement = valid.add_columns((bundles.c.minutes_total - drawn).label("remaining"))
    return list(connection.execute(statement))


def balance(engine: Engine, customer_number: str, on_date: date) -> int:
    """Minutes left in the customer's bundles that are valid on ``on_date``."""
    with engine.connect() as connection:
        return sum(int(row.remaining) for row in _remaining(connection, customer_number, on_date, lock=False))


def _existing_draw(connection: Connection, registration_id: str) -> int | None:
    total = connection.execute(
        select(func.sum(bundle_draws.c.minutes)).where(bundle_draws.c.registration_id == registration_id)
    ).scalar_one()
    return None if total is None else int(total)


def draw(engine: Engine, registration_id: str, customer_number: str, minutes: int, on_date: date) -> int:
    """Draw up to ``minutes`` for a registration and return the minutes actually drawn (0 if none left).

    Asking again for the same registration returns the first answer and draws nothing more.
    """
    if not isinstance(minutes, int) or minutes < 0:
        raise BundleError(f"minutes must be a non-negative int, got {minutes!r}")
    with write_transaction(engine) as connection:
        available = _remaining(connection, customer_number, on_date, lock=True)
        earlier = _existing_draw(connection, registration_id)
        if earlier is not None:
            return earlier
        return _take(connection, registration_id, available, minutes)


def _take(connection: Connection, registration_id: str, available: Sequence[Row], minutes: int) -> int:
    wanted, rows, now = minutes, [], utcnow()
    for bundle in available:
        take = min(wanted, int(bundle.remaining))
        if take > 0:
            rows.append({"registration_id": registration_id, "bundle_id": bundle.id, "minutes": take})
            wanted -= take
    if rows:
        connection.execute(bundle_draws.insert(), [{**row, "drawn_at": now} for row in rows])
    return minutes - wanted


BALANCE_DTYPES = {"customer_number": "str", "minutes_available": "int64"}


def balances(engine: Engine, on_date: date) -> pd.DataFrame:
    """Minutes available per customer on ``on_date`` (customers with at least one valid bundle)."""
    drawn = (
        select(bundle_draws.c.bundle_id, func.sum(bundle_draws.c.minutes).label("drawn"))
        .group_by(bundle_draws.c.bundle_id)
        .subquery()
    )
    remaining = bundles.c.minutes_total - func.coalesce(drawn.c.drawn, 0)
    statement = (
        select(bundles.c.customer_number, func.sum(remaining).label("minutes_available"))
        .outerjoin(drawn, drawn.c.bundle_id == bundles.c.id)
        .where(_valid_on(on_date))
        .group_by(bundles.c.customer_number)
        .order_by(bundles.c.customer_number)
    )
    with engine.connect() as connection:
        return to_frame(connection.execute(statement).mappings().all(), BALANCE_DTYPES)


DRAW_DTYPES = {"registration_id": "str", "minutes": "int64"}


def draws(engine: Engine, registration_ids: Sequence[str]) -> pd.DataFrame:
    """Minutes drawn earlier per registration (summed over bundles), for the given registrations."""
    rows: list[dict[str, object]] = []
    with engine.connect() as connection:
        for chunk in chunked(list(registration_ids)):
            statement = (
                select(bundle_draws.c.registration_id, func.sum(bundle_draws.c.minutes).label("minutes"))
                .where(bundle_draws.c.registration_id.in_(chunk))
                .group_by(bundle_draws.c.registration_id)
            )
            rows += [dict(row._mapping) for row in connection.execute(statement)]
    return to_frame(rows, DRAW_DTYPES)
