"""Full-snapshot change detection for the company and HR syncs."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, func, select

from store import snapshots
from store.models import snapshot_changes
from store.snapshots import SnapshotError
from tests.store_support import (  # noqa: F401
    db_url_fixture,
    engine_fixture,
    postgres_admin,
    postgres_schema_url,
)

T1 = datetime(2026, 10, 1, 2, 0, tzinfo=UTC)
T2 = datetime(2026, 10, 2, 2, 0, tzinfo=UTC)
T3 = datetime(2026, 10, 3, 2, 0, tzinfo=UTC)


def employees(**overrides: dict) -> pd.DataFrame:
    rows = {
        "E1": {"name": "Anna de Vries", "department": "ICT", "salary": Decimal("3500.00"), "manager": np.nan},
        "E2": {"name": "Bram Jansen", "department": "HR", "salary": Decimal("3100.50"), "manager": 1.0},
        "E3": {"name": "Chloé Bakker", "department": "ICT", "salary": None, "manager": 1.0},
    }
    for key, change in overrides.items():
        if change is None:
            rows.pop(key)
        else:
            rows[key] = {**rows.get(key, rows["E1"]), **change}
    return pd.DataFrame([{"employee_id": key, **row} for key, row in rows.items()])


def change_rows(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(snapshot_changes)).scalar_one())


def test_first_snapshot_adds_every_row_and_an_identical_one_changes_nothing(engine: Engine) -> None:
    first = snapshots.apply_snapshot(engine, "employees", employees(), "employee_id", seen_at=T1)
    assert first[["key", "change"]].values.tolist() == [["E1", "added"], ["E2", "added"], ["E3", "added"]]
    assert first.after.iloc[0] == {
        "employee_id": "E1",
        "name": "Anna de Vries",
        "department": "ICT",
        "salary": 3500,
        "manager": None,
    }
    # Same content, other dtypes (the manager column now integer-valued objects, salary as float).
    same = employees()
    same["manager"] = same["manager"].astype(object).where(same["manager"].notna(), None)
    same["salary"] = [3500.0, Decimal("3100.5"), np.nan]
    again = snapshots.apply_snapshot(engine, "employees", same, "employee_id", seen_at=T2)
    assert again.empty and list(again.columns) == list(snapshots.CHANGE_DTYPES)
    assert change_rows(engine) == 3


def test_changed_removed_and_re_added_rows(engine: Engine) -> None:
    snapshots.apply_snapshot(engine, "employees", employees(), "employee_id", seen_at=T1)
    changed = employees(E2={"department": "Finance"}, E3=None, E4={"name": "Daan Smit"})
    found = snapshots.apply_snapshot(engine, "employees", changed, "employee_id", seen_at=T2)
    assert found[["key", "change"]].values.tolist() == [["E2", "changed"], ["E4", "added"], ["E3", "removed"]]
    assert found.fields.tolist() == [
        ["department"],
        ["department", "employee_id", "manager", "name", "salary"],
        ["department", "employee_id", "manager", "name", "salary"],
    ]
    row = found.iloc[0]
    assert (row.before["department"], row.after["department"]) == ("HR", "Finance")
    assert found.iloc[2].after is None and found.iloc[2].before["name"] == "Chloé Bakker"
    assert list(snapshots.current(engine, "employees").employee_id) == ["E1", "E2", "E4"]
    back = snapshots.apply_snapshot(
        engine,
        "employees",
        employees(E2={"department": "Finance"}, E4={"name": "Daan Smit"}),
        "employee_id",
        seen_at=T3,
    )
    assert back[["key", "change"]].values.tolist() == [["E3", "added"]]
    since = snapshots.changes_since(engine, "employees", T2)
    assert since[["key", "change"]].values.tolist() == [
        ["E2", "changed"],
        ["E4", "added"],
        ["E3", "removed"],
        ["E3", "added"],
    ]
    assert since.seen_at.tolist() == [pd.Timestamp(T2)] * 3 + [pd.Timestamp(T3)]
    assert snapshots.changes_since(engine, "departments", T1).empty


def test_entities_are_kept_apart(engine: Engine) -> None:
    snapshots.apply_snapshot(engine, "employees", employees(), "employee_id", seen_at=T1)
    departments = pd.DataFrame({"code": ["ICT", "HR"], "name": ["ICT", "Personeelszaken"]})
    added = snapshots.apply_snapshot(engine, "departments", departments, "code", seen_at=T1)
    assert added.change.tolist() == ["added", "added"]
    assert len(snapshots.current(engine, "employees")) == 3


def test_bad_snapshots_are_refused(engine: Engine) -> None:
    snapshots.apply_snapshot(engine, "employees", employees(), "employee_id", seen_at=T1)
    duplicate = pd.concat([employees(), employees().iloc[:1]])
    with pytest.raises(SnapshotError, match="duplicate employee_id: E1"):
        snapshots.apply_snapshot(engine, "employees", duplicate, "employee_id")
    missing = employees()
    missing.loc[1, "employee_id"] = None
    with pytest.raises(SnapshotError, match="1 row\\(s\\) have no employee_id"):
        snapshots.apply_snapshot(engine, "employees", missing, "employee_id")
    with pytest.raises(SnapshotError, match="key column 'id' is not in the frame"):
        snapshots.apply_snapshot(engine, "employees", employees(), "id")
    empty = employees().iloc[0:0]
    with pytest.raises(SnapshotError, match="empty snapshot of employees refused"):
        snapshots.apply_snapshot(engine, "employees", empty, "employee_id")
    assert change_rows(engine) == 3
    removed = snapshots.apply_snapshot(
        engine, "employees", empty, "employee_id", allow_empty=True, seen_at=T2
    )
    assert removed.change.tolist() == ["removed"] * 3
