"""Full-snapshot change detection for the company and HR syncs.

Each sync hands over the complete current set of one entity (``employees``, ``departments``, ...) as a
frame. ``apply_snapshot`` compares it row by row (by key, through a hash of the row's content) with the
previous one and records ``added``, ``changed`` and ``removed`` rows; unchanged rows leave no trace but
their ``last_seen``. This is how hard deletes in AFAS are noticed (reference decision §11.15).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, bindparam, select, update

from store.db import json_dumps, json_loads, to_frame, utcnow, write_transaction
from store.models import snapshot_changes, snapshots


class SnapshotError(ValueError):
    """The frame cannot be used as a snapshot (missing, empty or duplicate keys, refused empty set)."""


CHANGE_DTYPES = {
    "entity": "str",
    "key": "str",
    "change": "str",
    "fields": "object",
    "before": "object",
    "after": "object",
    "seen_at": "datetime",
}


def _plain(value: Any) -> Any:
    """A JSON-ready value for one cell: missing values become None, timestamps ISO text."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    # 3000, 3000.0 and Decimal("3000.00") are one value: a column's dtype may flip between reads
    # (pandas turns ints into floats when a value is missing), and that is no change.
    if isinstance(value, float | Decimal) and math.isfinite(value) and value == int(value):
        return int(value)
    if isinstance(value, pd.Timestamp | datetime | date):
        return value.isoformat()
    if hasattr(value, "item") and not isinstance(value, Decimal):  # numpy scalars
        return _plain(value.item())
    return value


def _rows(frame: pd.DataFrame, key_column: str) -> dict[str, dict[str, Any]]:
    """The frame as ``key -> row dict``, refusing missing and duplicate keys."""
    if key_column not in frame.columns:
        raise SnapshotError(f"key column {key_column!r} is not in the frame")
    keys = frame[key_column]
    if keys.isna().any():
        raise SnapshotError(f"{int(keys.isna().sum())} row(s) have no {key_column}")
    as_text = keys.astype(str)
    duplicated = sorted(set(as_text[as_text.duplicated()]))
    if duplicated:
        raise SnapshotError(f"duplicate {key_column}: {', '.join(duplicated[:5])}")
    columns = list(frame.columns)
    # Through JSON and back, so that new rows compare with stored ones value for value (floats → Decimal).
    return {
        key: json_loads(json_dumps({str(c): _plain(v) for c, v in zip(columns, values, strict=True)}))
        for key, values in zip(as_text, frame.itertuples(index=False, name=None), strict=True)
    }


def content_hash(row: Mapping[str, Any]) -> str:
    """SHA-256 of the row's canonical JSON (sorted keys; equal values give equal hashes)."""
    return hashlib.sha256(json_dumps(row).encode()).hexdigest()


def _changed_fields(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> list[str]:
    """The fields that differ; every field of the row for an added or removed one."""
    if before is None or after is None:
        return sorted(before or after or {})
    return sorted(name for name in set(before) | set(after) if before.get(name) != after.get(name))


def apply_snapshot(
    engine: Engine,
    entity: str,
    frame: pd.DataFrame,
    key_column: str,
    *,
    seen_at: datetime | None = None,
    allow_empty: bool = False,
) -> pd.DataFrame:
    """Store the complete current set of ``entity`` and return what changed since the last one.

    An empty frame would mark every row removed; that is refused unless ``allow_empty`` (an empty read
    is far more often a broken extraction than a company without employees).
    """
    incoming = _rows(frame, key_column)
    now = seen_at or utcnow()
    with write_transaction(engine) as connection:
        stored = {
            row.key: row for row in connection.execute(select(snapshots).where(snapshots.c.entity == entity))
        }
        if not incoming and not allow_empty and any(row.removed_at is None for row in stored.values()):
            raise SnapshotError(f"empty snapshot of {entity} refused: it would remove every row")
        changes = _diff(entity, incoming, stored, now)
        _write(connection, entity, incoming, stored, changes, now)
    return _changes_frame(changes)


def _diff(
    entity: str, incoming: Mapping[str, dict[str, Any]], stored: Mapping[str, Any], now: datetime
) -> list[dict[str, Any]]:
    changes = []
    for key, row in incoming.items():
        old = stored.get(key)
        if old is None or old.removed_at is not None:
            changes.append({"key": key, "change": "added", "before": None, "after": row})
        elif old.content_hash != content_hash(row):
            changes.append({"key": key, "change": "changed", "before": old.payload, "after": row})
    for key, old in stored.items():
        if key not in incoming and old.removed_at is None:
            changes.append({"key": key, "change": "removed", "before": old.payload, "after": None})
    return [{"entity": entity, **change, "seen_at": now} for change in changes]


def _write(
    connection: Connection,
    entity: str,
    incoming: Mapping[str, dict[str, Any]],
    stored: Mapping[str, Any],
    changes: list[dict[str, Any]],
    now: datetime,
) -> None:
    new = [c for c in changes if c["change"] == "added" and c["key"] not in stored]
    revised = [
        c for c in changes if c["change"] == "changed" or (c["change"] == "added" and c["key"] in stored)
    ]
    removed = [c for c in changes if c["change"] == "removed"]
    if new:
        rows = [_snapshot_row(entity, c["key"], incoming[c["key"]], now) for c in new]
        connection.execute(snapshots.insert(), rows)
    if revised:
        _executemany_update(connection, entity, [_revision(c["key"], incoming[c["key"]]) for c in revised])
    if removed:
        _executemany_update(connection, entity, [{"key": c["key"], "removed_at": now} for c in removed])
    present = update(snapshots).where(snapshots.c.entity == entity, snapshots.c.removed_at.is_(None))
    connection.execute(present.values(last_seen=now))
    if changes:
        connection.execute(snapshot_changes.insert(), changes)


def _snapshot_row(entity: str, key: str, row: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {
        "entity": entity,
        "key": key,
        "content_hash": content_hash(row),
        "payload": row,
        "first_seen": now,
        "last_seen": now,
        "removed_at": None,
    }


def _revision(key: str, row: dict[str, Any]) -> dict[str, Any]:
    return {"key": key, "content_hash": content_hash(row), "payload": row, "removed_at": None}


def _executemany_update(connection: Connection, entity: str, rows: list[dict[str, Any]]) -> None:
    columns = [name for name in rows[0] if name != "key"]
    statement = (
        update(snapshots)
        .where(snapshots.c.entity == entity, snapshots.c.key == bindparam("b_key"))
        .values({name: bindparam(f"b_{name}") for name in columns})
    )
    connection.execute(statement, [{f"b_{name}": value for name, value in row.items()} for row in rows])


def _changes_frame(changes: list[dict[str, Any]]) -> pd.DataFrame:
    rows = [{**change, "fields": _changed_fields(change["before"], change["after"])} for change in changes]
    return to_frame(rows, CHANGE_DTYPES)


def changes_since(engine: Engine, entity: str, when: datetime) -> pd.DataFrame:
    """The recorded changes of ``entity`` seen at or after ``when``, in the order they were recorded."""
    statement = (
        select(
            snapshot_changes.c.entity,
            snapshot_changes.c.key,
            snapshot_changes.c.change,
            snapshot_changes.c.before,
            snapshot_changes.c.after,
            snapshot_changes.c.seen_at,
        )
        .where(snapshot_changes.c.entity == entity, snapshot_changes.c.seen_at >= when)
        .order_by(snapshot_changes.c.id)
    )
    with engine.connect() as connection:
        return _changes_frame([dict(row) for row in connection.execute(statement).mappings()])


def current(engine: Engine, entity: str) -> pd.DataFrame:
    """The last stored snapshot of ``entity`` (rows not removed) as a frame of its stored values."""
    statement = (
        select(snapshots.c.payload)
        .where(snapshots.c.entity == entity, snapshots.c.removed_at.is_(None))
        .order_by(snapshots.c.key)
    )
    with engine.connect() as connection:
        return pd.DataFrame([row.payload for row in connection.execute(statement)])
