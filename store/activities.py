"""What Koppel knows about TOPdesk's operational activities between runs, kept in the ``snapshots`` table.

TOPdesk cannot filter an operational activity's time registrations by date, so a run reads only the
activities that can have hours in its period (``connectors.topdesk.timeregistrations.ActivityScope``).
Two facts make that safe, both stored here under their own ``entity`` names (no table of their own):

- ``topdesk-activity-hours``: per activity (``key`` = its id) the latest entry date of its registrations
  any read has seen (``payload = {"last_entry": ISO}``, only ever moved later), so an activity that keeps
  getting hours stays read however long ago it was planned;
- ``topdesk-activity-sweep``: when the last full sweep (every activity of the tenant) was read
  (``key`` = ``"last"``, ``payload = {"at": ISO}``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import Engine, select, update

from store.db import utcnow, write_transaction
from store.models import snapshots
from store.snapshots import content_hash

HOURS = "topdesk-activity-hours"
SWEEP = "topdesk-activity-sweep"


def _stored(engine: Engine, entity: str) -> dict[str, dict]:
    statement = select(snapshots.c.key, snapshots.c.payload).where(snapshots.c.entity == entity)
    with engine.connect() as connection:
        return {row.key: row.payload for row in connection.execute(statement)}


def activities_with_hours_since(engine: Engine, since: datetime) -> frozenset[str]:
    """Activities whose latest known entry date lies at or after ``since``."""
    if since.tzinfo is None:
        raise ValueError("since must be time-zone aware")
    stored = _stored(engine, HOURS)
    return frozenset(k for k, p in stored.items() if datetime.fromisoformat(p["last_entry"]) >= since)


def record_activity_hours(engine: Engine, last_entry: Mapping[str, datetime]) -> int:
    """Store each activity's latest entry date (kept when a later one is already stored); rows written."""
    if not last_entry:
        return 0
    now = utcnow()
    with write_transaction(engine) as connection:
        statement = select(snapshots.c.key, snapshots.c.payload).where(snapshots.c.entity == HOURS)
        stored = {row.key: row.payload for row in connection.execute(statement)}
        new, later = [], []
        for key, moment in last_entry.items():
            payload = {"last_entry": moment.isoformat()}
            old = stored.get(key)
            if old is None:
                new.append(_row(HOURS, key, payload, now))
            elif datetime.fromisoformat(old["last_entry"]) < moment:
                later.append((key, payload))
        if new:
            connection.execute(snapshots.insert(), new)
        for key, payload in later:
            connection.execute(_update(HOURS, key, payload, now))
    return len(new) + len(later)


def last_sweep(engine: Engine) -> datetime | None:
    """When the last full sweep of the tenant's operational activities was read, if ever."""
    stored = _stored(engine, SWEEP).get("last")
    return datetime.fromisoformat(stored["at"]) if stored else None


def record_sweep(engine: Engine, at: datetime) -> None:
    """Remember a full sweep read at ``at``."""
    if at.tzinfo is None:
        raise ValueError("at must be time-zone aware")
    payload, now = {"at": at.isoformat()}, utcnow()
    with write_transaction(engine) as connection:
        found = connection.execute(
            select(snapshots.c.key).where(snapshots.c.entity == SWEEP, snapshots.c.key == "last")
        ).first()
        if found is None:
            connection.execute(snapshots.insert(), [_row(SWEEP, "last", payload, now)])
        else:
            connection.execute(_update(SWEEP, "last", payload, now))


def _row(entity: str, key: str, payload: dict, now: datetime) -> dict:
    return {
        "entity": entity,
        "key": key,
        "content_hash": content_hash(payload),
        "payload": payload,
        "first_seen": now,
        "last_seen": now,
        "removed_at": None,
    }


def _update(entity: str, key: str, payload: dict, now: datetime):
    return (
        update(snapshots)
        .where(snapshots.c.entity == entity, snapshots.c.key == key)
        .values(payload=payload, content_hash=content_hash(payload), last_seen=now)
    )
