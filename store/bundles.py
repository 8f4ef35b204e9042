"""Prepaid hour bundles and monthly allowances per customer, and the minutes registrations draw from them.

A monthly allowance ("contract hours") is kept as a row of the same ``bundles`` table, one per allowance and
month, marked by its description ``allowance:<name> <YYYY-MM>``; its draws are ``bundle_draws`` rows like a
bundle's. Prepaid-bundle functions (``balance``, ``balances``, ``draw``, ``bundle_status``) never see those
rows; ``pools``, ``draw_rows``, ``set_draws`` and ``give_back`` handle both kinds.

A draw is idempotent per registration (asking again returns what was drawn the first time), takes from
the oldest bundle valid on the registration's date first (spilling into the next one), and never takes a
bundle below zero. The customer's bundle rows are locked while drawing, so concurrent draws on
PostgreSQL cannot overdraw; on SQLite write transactions run one at a time anyway.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, Row, and_, false, func, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from store.db import chunked, inserted_id, to_frame, utcnow, write_transaction
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
        return inserted_id(connection.execute(bundles.insert().values(**row)))


ALLOWANCE_PREFIX = "allowance:"  # description of an allowance month: "allowance:<name> <YYYY-MM> …"


def _prepaid() -> ColumnElement[bool]:
    return ~bundles.c.description.startswith(ALLOWANCE_PREFIX)


def _valid_on(on_date: date) -> ColumnElement[bool]:
    return and_(
        bundles.c.valid_from <= on_date,
        or_(bundles.c.valid_to.is_(None), bundles.c.valid_to >= on_date),
        _prepaid(),
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


# --- management (``koppel bundles``) and bundles kept in the billing config ------------------------------

CONFIG_PREFIX = "config:"  # description prefix of bundles copied from the billing config: "config:<name> …"


class UnknownBundle(LookupError):
    """No bundle has this id."""


STATUS_DTYPES = {
    "bundle_id": "int64",
    "customer_number": "str",
    "description": "str",
    "valid_from": "object",
    "valid_to": "object",
    "minutes_total": "int64",
    "minutes_drawn": "int64",
    "minutes_left": "int64",
    "drawn_since": "int64",
}


def bundle_status(
    engine: Engine,
    customer_number: str | None = None,
    since: datetime | None = None,
    allowances: bool = False,
) -> pd.DataFrame:
    """Every bundle (of one customer if given), oldest first: total, drawn, left and drawn since ``since``.

    ``allowances``: the allowance months instead of the prepaid bundles.
    """
    recent = bundle_draws.c.drawn_at >= since if since is not None else false()
    drawn = (
        select(
            bundle_draws.c.bundle_id,
            func.sum(bundle_draws.c.minutes).label("drawn"),
        )
        .group_by(bundle_draws.c.bundle_id)
        .subquery()
    )
    drawn_since = (
        select(func.coalesce(func.sum(bundle_draws.c.minutes), 0))
        .where(bundle_draws.c.bundle_id == bundles.c.id, recent)
        .scalar_subquery()
    )
    total_drawn = func.coalesce(drawn.c.drawn, 0)
    statement = (
        select(
            bundles.c.id.label("bundle_id"),
            bundles.c.customer_number,
            bundles.c.description,
            bundles.c.valid_from,
            bundles.c.valid_to,
            bundles.c.minutes_total,
            total_drawn.label("minutes_drawn"),
            (bundles.c.minutes_total - total_drawn).label("minutes_left"),
            drawn_since.label("drawn_since"),
        )
        .outerjoin(drawn, drawn.c.bundle_id == bundles.c.id)
        .order_by(bundles.c.customer_number, bundles.c.valid_from, bundles.c.id)
    )
    statement = statement.where(_prepaid() if not allowances else ~_prepaid())
    if customer_number is not None:
        statement = statement.where(bundles.c.customer_number == customer_number)
    with engine.connect() as connection:
        return to_frame(connection.execute(statement).mappings().all(), STATUS_DTYPES)


def _one(connection: Connection, bundle_id: int) -> Row:
    row = connection.execute(select(bundles).where(bundles.c.id == bundle_id).with_for_update()).first()
    if row is None:
        raise UnknownBundle(f"no bundle with id {bundle_id}")
    return row


def _drawn(connection: Connection, bundle_id: int) -> int:
    statement = select(func.coalesce(func.sum(bundle_draws.c.minutes), 0)).where(
        bundle_draws.c.bundle_id == bundle_id
    )
    return int(connection.execute(statement).scalar_one())


def _note(description: str, text: str) -> str:
    return f"{description}; {text}" if description else text


def correct_bundle(engine: Engine, bundle_id: int, minutes_total: int, note: str) -> tuple[int, int]:
    """Set a bundle's size to ``minutes_total`` (never below what was drawn); return (old, new) size.

    ``note`` (who and why) is appended to the description, so the bundle keeps its history.
    """
    if not isinstance(minutes_total, int) or minutes_total <= 0:
        raise BundleError(f"minutes_total must be a positive int, got {minutes_total!r}")
    with write_transaction(engine) as connection:
        row = _one(connection, bundle_id)
        drawn = _drawn(connection, bundle_id)
        if minutes_total < drawn:
            raise BundleError(
                f"bundle {bundle_id}: {drawn} minutes are already drawn, more than {minutes_total}"
            )
        text = _note(row.description, f"{note}: {row.minutes_total} → {minutes_total} min")
        connection.execute(
            update(bundles)
            .where(bundles.c.id == bundle_id)
            .values(minutes_total=minutes_total, description=text)
        )
    return int(row.minutes_total), minutes_total


def close_bundle(engine: Engine, bundle_id: int, on_date: date, note: str) -> date:
    """End a bundle's validity on ``on_date`` (inclusive): later registrations no longer draw from it."""
    with write_transaction(engine) as connection:
        row = _one(connection, bundle_id)
        if on_date < row.valid_from:
            raise BundleError(f"bundle {bundle_id} starts on {row.valid_from}, after {on_date}")
        if row.valid_to is not None and row.valid_to < on_date:
            raise BundleError(f"bundle {bundle_id} already ended on {row.valid_to}")
        text = _note(row.description, f"{note}: closed on {on_date}")
        connection.execute(
            update(bundles).where(bundles.c.id == bundle_id).values(valid_to=on_date, description=text)
        )
    return on_date


def sync_config_bundles(engine: Engine, wanted: Sequence[dict]) -> list[str]:
    """Copy the billing config's bundles into the store; return what changed, one line each.

    ``wanted``: dicts with ``name``, ``customer_number``, ``minutes``, ``valid_from``, ``valid_to``,
    ``description``. A bundle is found again by the ``config:<name>`` at the start of its description. A
    changed size or validity is applied (a size below what was drawn is refused); a bundle taken out of the
    config stays in the store (close it with ``koppel bundles close``).
    """
    changes = []
    with write_transaction(engine) as connection:
        for spec in wanted:
            changes += _sync_one(connection, spec)
    return changes


def _sync_one(connection: Connection, spec: dict) -> list[str]:
    marker = f"{CONFIG_PREFIX}{spec['name']}"
    description = f"{marker} {spec['description']}".strip()
    existing = connection.execute(
        select(bundles).where(
            or_(bundles.c.description == marker, bundles.c.description.startswith(marker + " "))
        )
    ).first()
    values = {
        "customer_number": spec["customer_number"],
        "minutes_total": spec["minutes"],
        "valid_from": spec["valid_from"],
        "valid_to": spec["valid_to"],
    }
    if existing is None:
        connection.execute(bundles.insert().values(**values, description=description, created_at=utcnow()))
        return [f"added bundle {spec['name']} for {spec['customer_number']}: {spec['minutes']} min"]
    if all(getattr(existing, key) == value for key, value in values.items()):
        return []
    drawn = _drawn(connection, existing.id)
    if spec["minutes"] < drawn:
        raise BundleError(
            f"bundles.{spec['name']}: {drawn} minutes are already drawn, more than {spec['minutes']}"
        )
    connection.execute(update(bundles).where(bundles.c.id == existing.id).values(**values))
    return [f"updated bundle {spec['name']} (id {existing.id}) from the config"]


# --- monthly allowances and draws of both kinds (tasks/invoice_hours/allowances.py plans them)
# ----------------


def allowance_marker(name: str, month: date) -> str:
    """The description that finds an allowance month again: ``allowance:<name> <YYYY-MM>``."""
    return f"{ALLOWANCE_PREFIX}{name} {month:%Y-%m}"


def sync_allowance_months(engine: Engine, months: Sequence[dict]) -> list[str]:
    """Make sure each allowance month exists with its size and validity; return what changed.

    ``months``: dicts with ``name``, ``customer_number``, ``month`` (its first day), ``minutes``,
    ``valid_to`` (last day it may be used: the month's end plus the carry-over). One row per allowance and
    month, found again by ``allowance_marker``; the table is locked while checking, so two runs cannot
    create the same month twice (the allowance is never granted twice).
    """
    changes: list[str] = []
    with write_transaction(engine) as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("LOCK TABLE bundles IN SHARE ROW EXCLUSIVE MODE")
        for spec in months:
            changes += _sync_month(connection, spec)
    return changes


def _sync_month(connection: Connection, spec: dict) -> list[str]:
    marker = allowance_marker(spec["name"], spec["month"])
    existing = connection.execute(
        select(bundles).where(bundles.c.description == marker).order_by(bundles.c.id)
    ).first()
    values = {
        "customer_number": spec["customer_number"],
        "minutes_total": spec["minutes"],
        "valid_from": spec["month"],
        "valid_to": spec["valid_to"],
    }
    if existing is None:
        connection.execute(bundles.insert().values(**values, description=marker, created_at=utcnow()))
        return [f"allowance {spec['name']} {spec['month']:%Y-%m}: {spec['minutes']} min"]
    if all(getattr(existing, key) == value for key, value in values.items()):
        return []
    drawn = _drawn(connection, existing.id)
    if spec["minutes"] < drawn:
        raise BundleError(
            f"allowances.{spec['name']}: {drawn} minutes of {spec['month']:%Y-%m} are already used, "
            f"more than {spec['minutes']}"
        )
    connection.execute(update(bundles).where(bundles.c.id == existing.id).values(**values))
    return [f"allowance {spec['name']} {spec['month']:%Y-%m} updated from the config"]


POOL_DTYPES = {
    "bundle_id": "int64",
    "customer_number": "str",
    "valid_from": "object",
    "valid_to": "object",
    "minutes_available": "int64",
    "source": "str",
    "allowance": "str",
}


def _source_columns(frame: pd.DataFrame, descriptions: pd.Series) -> pd.DataFrame:
    allowance = descriptions.str.startswith(ALLOWANCE_PREFIX)
    name = descriptions.str.slice(len(ALLOWANCE_PREFIX)).str.split(" ").str[0]
    frame["source"] = np.where(allowance, "allowance", "bundle")
    frame["allowance"] = name.where(allowance, "").astype("str")
    return frame


def pools(engine: Engine, first: date, last: date) -> pd.DataFrame:
    """Every bundle and allowance month valid on some day of ``first``..``last``, with minutes left."""
    drawn = (
        select(bundle_draws.c.bundle_id, func.sum(bundle_draws.c.minutes).label("drawn"))
        .group_by(bundle_draws.c.bundle_id)
        .subquery()
    )
    statement = (
        select(
            bundles.c.id.label("bundle_id"),
            bundles.c.customer_number,
            bundles.c.valid_from,
            bundles.c.valid_to,
            (bundles.c.minutes_total - func.coalesce(drawn.c.drawn, 0)).label("minutes_available"),
            bundles.c.description,
        )
        .outerjoin(drawn, drawn.c.bundle_id == bundles.c.id)
        .where(bundles.c.valid_from <= last, or_(bundles.c.valid_to.is_(None), bundles.c.valid_to >= first))
        .order_by(bundles.c.customer_number, bundles.c.valid_from, bundles.c.id)
    )
    with engine.connect() as connection:
        rows = [dict(row) for row in connection.execute(statement).mappings()]
    descriptions = pd.Series([row.pop("description") for row in rows], dtype="str")
    frame = to_frame(rows, {k: v for k, v in POOL_DTYPES.items() if k not in ("source", "allowance")})
    return _source_columns(frame, descriptions)[list(POOL_DTYPES)]


DRAW_ROW_DTYPES = {"registration_id": "str", **POOL_DTYPES, "minutes": "int64"}


def draw_rows(engine: Engine, registration_ids: Sequence[str]) -> pd.DataFrame:
    """The draws recorded for these registrations, one row per registration and bundle/allowance month."""
    rows: list[dict[str, object]] = []
    with engine.connect() as connection:
        for chunk in chunked(sorted(set(registration_ids))):
            statement = (
                select(
                    bundle_draws.c.registration_id,
                    bundle_draws.c.bundle_id,
                    bundle_draws.c.minutes,
                    bundles.c.customer_number,
                    bundles.c.valid_from,
                    bundles.c.valid_to,
                    bundles.c.description,
                )
                .join(bundles, bundles.c.id == bundle_draws.c.bundle_id)
                .where(bundle_draws.c.registration_id.in_(chunk))
                .order_by(bundle_draws.c.registration_id, bundles.c.valid_from, bundles.c.id)
            )
            rows += [dict(row) for row in connection.execute(statement).mappings()]
    descriptions = pd.Series([row.pop("description") for row in rows], dtype="str")
    for row in rows:
        row["minutes_available"] = 0
    frame = to_frame(rows, {k: v for k, v in DRAW_ROW_DTYPES.items() if k not in ("source", "allowance")})
    return _source_columns(frame, descriptions)[list(DRAW_ROW_DTYPES)].drop(columns="minutes_available")


def set_draws(engine: Engine, registration_id: str, wanted: Sequence[tuple[int, int]]) -> int:
    """Make one registration's draws exactly ``wanted`` (``(bundle_id, minutes)``); see ``settle_draws``."""
    return settle_draws(engine, {registration_id: wanted})[registration_id]


def settle_draws(
    engine: Engine, wanted: Mapping[str, Sequence[tuple[int, int]]], give_back_ids: Sequence[str] = ()
) -> dict[str, int]:
    """Record what posted documents did, in one transaction; return the minutes each registration holds.

    ``wanted``: per charged registration its draws (``(bundle_id, minutes)``); what it drew before and does
    not draw now is given back. ``give_back_ids``: registrations whose charge was reversed: all their draws
    are given back. A bundle never goes below zero (a draw is cut to what is left); settling the same
    draws again changes nothing.
    """
    ids = sorted({bundle_id for rows in wanted.values() for bundle_id, _ in rows})
    held: dict[str, int] = {}
    with write_transaction(engine) as connection:
        for chunk in chunked(ids):  # lock the bundles in a fixed order: concurrent runs cannot overdraw
            connection.execute(
                select(bundles.c.id).where(bundles.c.id.in_(chunk)).order_by(bundles.c.id).with_for_update()
            ).all()
        for chunk in chunked(sorted(set(give_back_ids) | set(wanted))):
            connection.execute(bundle_draws.delete().where(bundle_draws.c.registration_id.in_(chunk)))
        left = {bundle_id: _left(connection, bundle_id) for bundle_id in ids}
        rows, now = [], utcnow()
        for registration_id, draws_of in sorted(wanted.items()):
            held[registration_id] = 0
            for bundle_id, minutes in draws_of:
                take = min(int(minutes), left[bundle_id])
                if take > 0:
                    rows.append({"registration_id": registration_id, "bundle_id": bundle_id, "minutes": take})
                    left[bundle_id] -= take
                    held[registration_id] += take
        if rows:
            connection.execute(bundle_draws.insert(), [{**row, "drawn_at": now} for row in rows])
    return held


def _left(connection: Connection, bundle_id: int) -> int:
    size = connection.execute(select(bundles.c.minutes_total).where(bundles.c.id == bundle_id)).scalar_one()
    return int(size) - _drawn(connection, bundle_id)


def give_back(engine: Engine, registration_ids: Sequence[str]) -> int:
    """Delete the draws of these registrations (their charges were reversed); return the minutes freed."""
    given = 0
    with write_transaction(engine) as connection:
        for chunk in chunked(sorted(set(registration_ids))):
            where = bundle_draws.c.registration_id.in_(chunk)
            given += int(
                connection.execute(
                    select(func.coalesce(func.sum(bundle_draws.c.minutes), 0)).where(where)
                ).scalar_one()
            )
            connection.execute(bundle_draws.delete().where(where))
    return given
