"""The nightly debtor import: AFAS debtors and contact persons as snapshots in the store, with their changes.

``store/snapshots.py`` keeps the last seen content of every row and records ``added``, ``changed`` and
``removed`` rows, so the invoice flow and the statistics can ask what changed and when
(``changes_since(engine, "afas_debtors", when)``), and the company sync knows which numbers AFAS had
before: a number that disappears was removed in AFAS (decision §11.15: no tombstones, only full reads).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
from sqlalchemy.engine import Engine

from store import snapshots
from tasks.company_sync.fields import text

DEBTORS = "afas_debtors"  # key DebtorId
CONTACTS = "afas_contacts"  # key ContactId; PerNumber is the person
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def keyed(frame: pd.DataFrame, key: str) -> tuple[pd.DataFrame, int]:
    """The rows that have a key (a snapshot needs one), and how many had none."""
    if frame.empty:
        return frame, 0
    has_key = frame[key].map(lambda v: bool(text(v)))
    return frame[has_key].reset_index(drop=True), int((~has_key).sum())


def import_relations(
    engine: Engine, debtors: pd.DataFrame, contacts: pd.DataFrame | None, seen_at: datetime | None = None
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Snapshot debtors (and contacts when given); returns the changes and the rows left out (no key).

    An empty read of debtors is refused by the store (it would mark every debtor removed).
    """
    rows, skipped = keyed(debtors, "DebtorId")
    changes = [snapshots.apply_snapshot(engine, DEBTORS, rows, "DebtorId", seen_at=seen_at)]
    left_out = {DEBTORS: skipped}
    if contacts is not None:
        people, skipped = keyed(contacts, "ContactId")
        changes.append(
            snapshots.apply_snapshot(engine, CONTACTS, people, "ContactId", seen_at=seen_at, allow_empty=True)
        )
        left_out[CONTACTS] = skipped
    frames = [c for c in changes if not c.empty]
    return (pd.concat(frames, ignore_index=True) if frames else changes[0]), left_out


def known_values(engine: Engine, entity: str, column: str) -> set[str]:
    """Every value of ``column`` the snapshots of ``entity`` ever held: current rows and removed ones."""
    values = set()
    current = snapshots.current(engine, entity)
    if column in current.columns:
        values |= {text(v) for v in current[column]}
    removed = snapshots.changes_since(engine, entity, EPOCH)
    for before in removed.loc[removed["change"] == "removed", "before"] if not removed.empty else []:
        values.add(text((before or {}).get(column)))
    return values - {""}


def change_summary(changes: pd.DataFrame) -> pd.DataFrame:
    """Per entity and kind of change, how many rows (for the run report)."""
    if changes.empty:
        return pd.DataFrame(columns=["entity", "change", "rows"])
    return changes.groupby(["entity", "change"]).size().rename("rows").reset_index()


NAME_COLUMNS = ("DebtorName", "FullName", "Name")  # how an added or removed row is shown


def changes_table(changes: pd.DataFrame) -> pd.DataFrame:
    """One row per changed field: ``entity, key, change, field, before, after`` (values as text).

    An added or removed row is one line ``(row)`` showing its name after or before.
    """
    rows = []
    for change in changes.itertuples(index=False):
        before, after = change.before or {}, change.after or {}
        where = (change.entity, change.key, change.change)
        if change.change == "changed":
            rows += [(*where, name, text(before.get(name)), text(after.get(name))) for name in change.fields]
        else:
            rows.append((*where, "(row)", _name(before), _name(after)))
    return pd.DataFrame(rows, columns=["entity", "key", "change", "field", "before", "after"], dtype=object)


def _name(row: dict) -> str:
    return next((text(row[c]) for c in NAME_COLUMNS if text(row.get(c))), "")
