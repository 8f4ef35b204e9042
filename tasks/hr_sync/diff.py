"""Desired OH records vs. what the OH system was last sent → the upserts and deactivations to send.

Only differences are sent: a record whose body equals what was sent before stays quiet (so a second run
sends nothing). Upserts go in referential order (departments, employees, employments, absences, users),
then deactivations in the reverse order. Frozen keys (held or rejected in the plan) are never touched.
After sending, ``sent_after`` gives the new "what was sent" snapshot: successful upserts replace the
stored body, successful deactivations leave it, failures keep the old one so the next run tries again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from connectors.occupational_health.endpoints import ORDER, RESOURCES
from tasks.hr_sync.plan import records_frame

CHANGE_COLUMNS = ["entity", "external_id", "action", "change", "fields", "body"]
UPSERTED = frozenset({"created", "updated"})
GONE = frozenset({"deactivated", "not_found"})


def bodies(entity: str, frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """``external_id -> body`` with exactly the resource's fields, missing values as None."""
    if frame.empty:
        return {}
    fields = list(RESOURCES[entity].fields)
    plain = frame.reindex(columns=["external_id", *fields]).astype(object)
    plain = plain.where(plain.notna(), None)
    return {str(row.pop("external_id")): row for row in plain.to_dict(orient="records")}


def diff_entity(
    entity: str, desired: pd.DataFrame, sent: pd.DataFrame, frozen: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """The changes of one resource: ``added``/``changed`` upserts and ``removed`` deactivations."""
    wanted, before, skip = bodies(entity, desired), bodies(entity, sent), set(frozen)
    changes = []
    for key in sorted(wanted):
        old, new = before.get(key), wanted[key]
        if key in skip or old == new:
            continue
        fields = sorted(new) if old is None else sorted(f for f in new if old.get(f) != new[f])
        change = "added" if old is None else "changed"
        changes.append(_change(entity, key, "upsert", change, fields, new))
    for key in sorted(set(before) - set(wanted) - skip):
        changes.append(_change(entity, key, "deactivate", "removed", [], before[key]))
    return changes


def _change(entity: str, key: str, action: str, change: str, fields: list[str], body: dict) -> dict[str, Any]:
    return {
        "entity": entity,
        "external_id": key,
        "action": action,
        "change": change,
        "fields": ", ".join(fields),
        "body": body,
    }


def plan_changes(
    desired: dict[str, pd.DataFrame], sent: dict[str, pd.DataFrame], frozen: dict[str, set[str]]
) -> pd.DataFrame:
    """Every change in sending order: upserts departments → users, then deactivations users → departments."""
    per_entity = {e: diff_entity(e, desired[e], sent[e], frozen.get(e, ())) for e in ORDER}
    upserts = [c for e in ORDER for c in per_entity[e] if c["action"] == "upsert"]
    deactivations = [c for e in reversed(ORDER) for c in per_entity[e] if c["action"] == "deactivate"]
    return pd.DataFrame(upserts + deactivations, columns=CHANGE_COLUMNS, dtype=object)


def sent_after(entity: str, sent: pd.DataFrame, outcomes: pd.DataFrame) -> pd.DataFrame:
    """What the OH system holds of ``entity`` after this run's ``outcomes`` (changes + ``outcome``)."""
    current = bodies(entity, sent)
    mine = outcomes[outcomes["entity"] == entity] if not outcomes.empty else outcomes
    for change in mine.to_dict(orient="records"):
        if change["action"] == "upsert" and change["outcome"] in UPSERTED:
            current[change["external_id"]] = dict(change["body"])
        elif change["action"] == "deactivate" and change["outcome"] in GONE:
            current.pop(change["external_id"], None)
    return records_frame(entity, [{"external_id": key, **body} for key, body in sorted(current.items())])
