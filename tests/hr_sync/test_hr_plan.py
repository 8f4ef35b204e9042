"""Desired OH records from the AFAS mirror (flex, managers, references), diff, mirror and watermarks."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from tasks.hr_sync.config import HrConfig
from tasks.hr_sync.diff import CHANGE_COLUMNS, plan_changes, sent_after
from tasks.hr_sync.mapping import columns_of
from tasks.hr_sync.mirror import ReadSpec, merge_mirror, newest_modified, next_watermarks, read_specs
from tasks.hr_sync.plan import desired_state, find_flex

NOW = datetime(2026, 11, 21, 6, 0, tzinfo=UTC)


def frame(entity: str, rows: list[dict], config: HrConfig | None = None) -> pd.DataFrame:
    columns = columns_of(entity, config or HrConfig())
    return pd.DataFrame([{c: row.get(c) for c in columns} for row in rows], columns=columns, dtype=object)


def employment(
    employee: str, number: str, start: str, end: str | None = None, unit: str = "T01", **extra
) -> dict:
    return {
        "key": f"{employee}-{number}",
        "employee_id": employee,
        "employment_id": number,
        "department_id": unit,
        "function": "Medewerker",
        "start_date": start,
        "end_date": end,
        "hours_per_week": "36.00",
        **extra,
    }


def mirror(config: HrConfig | None = None) -> dict[str, pd.DataFrame]:
    """Two units; 1001 manages T01; 1002 works in a flex construction; 1003 left and came back."""
    config = config or HrConfig()
    return {
        "departments": frame(
            "departments",
            [
                {"id": "KOPPEL", "name": "Koppel", "parent_id": None, "manager_id": "1001"},
                {"id": "T01", "name": "Servicedesk", "parent_id": "KOPPEL", "manager_id": "1002"},
            ],
        ),
        "employees": frame(
            "employees",
            [
                {"id": e, "last_name": f"Naam {e}", "birth_date": "1980-01-01", "first_name": "A"}
                for e in ("1001", "1002", "1003")
            ],
        ),
        "employments": frame(
            "employments",
            [
                employment("1001", "1", "2015-01-01", unit="KOPPEL", salary="5000.00"),
                employment("1002", "1", "2018-01-01", salary="3000.00"),
                employment("1002", "2", "2024-06-01", salary="600.00"),  # on-call next to the first
                employment("1003", "1", "2010-01-01", "2012-12-31", salary="2000.00"),
                employment("1003", "2", "2013-02-01", salary="2500.00"),  # after the first: no overlap
            ],
            config,
        ),
        "absences": frame(
            "absences",
            [
                {"id": "1", "employee_id": "1001", "employment_id": "1", "start_date": "2026-10-01"},
                {"id": "2", "employee_id": "1002", "employment_id": "2", "start_date": "2026-10-02"},
                {"id": "3", "employee_id": "1003", "employment_id": "9", "start_date": "2026-10-03"},
            ],
        ),
        "users": frame(
            "users",
            [
                {"id": "u1001", "employee_id": "1001", "username": "boss", "blocked": False},
                {"id": "u1002", "employee_id": "1002", "username": "flex", "blocked": False},
                {"id": "u1003", "employee_id": "1003", "username": "staff", "blocked": False},
            ],
        ),
    }


def test_flex_constructions_are_overlapping_employments_of_one_employee():
    flex = find_flex(mirror()["employments"])
    assert flex.to_dict(orient="records") == [
        {
            "employee_id": "1002",
            "employments": "1002-1, 1002-2",
            "overlap_from": "2024-06-01",
            "overlap_to": None,
        }
    ]


def test_an_overlap_that_ended_before_the_window_is_history_not_a_flex_construction():
    employments = frame(
        "employments",
        [
            employment("2001", "1", "2015-01-01"),
            employment("2001", "2", "2019-01-01", "2020-06-30"),  # on-call next to the first, long ago
        ],
    )
    assert list(find_flex(employments)["employee_id"]) == ["2001"]
    assert find_flex(employments, since=date(2024, 11, 21)).empty
    assert list(find_flex(employments, since=date(2020, 6, 30))["overlap_to"]) == ["2020-06-30"]


def test_desired_state_holds_flex_employees_rejects_broken_references_and_sends_managers_only():
    desired = desired_state(mirror(), HrConfig())
    records = desired.records
    assert list(records["departments"]["external_id"]) == ["KOPPEL", "T01"]
    assert list(records["employees"]["external_id"]) == ["1001", "1003"]
    assert list(records["employments"]["external_id"]) == ["1001-1", "1003-1", "1003-2"]
    assert list(records["absences"]["external_id"]) == ["1"]
    assert list(records["users"]["external_id"]) == ["u1001"]  # u1003 is no manager; u1002 is held
    held = dict(zip(desired.held["key"], desired.held["reason"], strict=True))
    assert set(held) == {"1002", "1002-1", "1002-2", "2", "u1002"}
    assert held["2"] == (
        "absence 2: held back: employee 1002 has concurrent employments 1002-1, 1002-2 "
        "(flex construction, not supported)"
    )
    assert desired.rejects.to_dict(orient="records") == [
        {
            "entity": "absences",
            "key": "3",
            "reason": "absence 3: employment: '1003-9' is not synced (employment 1003-9 is not sent)",
            "step": "plan",
        }
    ]
    assert desired.frozen["employees"] == {"1002"} and desired.frozen["absences"] == {"2", "3"}
    body = records["absences"].iloc[0].to_dict()
    assert body["employment_external_id"] == "1001-1" and body["employee_external_id"] == "1001"


def test_salary_is_sent_only_when_configured_with_its_kind():
    off = desired_state(mirror(), HrConfig()).records["employments"]
    assert off["salary"].isna().all() and off["salary_kind"].isna().all()
    config = HrConfig(salary="four_weekly")
    on = desired_state(mirror(config), config).records["employments"].set_index("external_id")
    assert on.loc["1001-1", "salary"] == "5000.00" and on.loc["1001-1", "salary_kind"] == "four_weekly"


def test_an_employment_in_an_unknown_department_is_rejected_and_frozen():
    data = mirror()
    data["employments"].loc[0, "department_id"] = "GONE"
    desired = desired_state(data, HrConfig())
    assert "1001-1" not in set(desired.records["employments"]["external_id"])
    assert (
        desired.rejects["reason"].iloc[0].startswith("employment 1001-1: department_id: 'GONE' is not synced")
    )
    # the absence on that employment cannot go either
    assert set(desired.rejects["key"]) == {"1001-1", "1", "3"}


def test_the_diff_sends_only_differences_in_referential_order_and_never_touches_frozen_keys():
    desired = desired_state(mirror(), HrConfig())
    empty = {e: pd.DataFrame() for e in desired.records}
    first = plan_changes(desired.records, empty, desired.frozen)
    assert list(first.columns) == CHANGE_COLUMNS
    assert list(first["entity"]) == ["departments"] * 2 + ["employees"] * 2 + ["employments"] * 3 + [
        "absences",
        "users",
    ]
    assert set(first["change"]) == {"added"}
    sent = dict(desired.records)
    assert plan_changes(desired.records, sent, desired.frozen).empty  # a second run sends nothing

    changed = {e: f.copy() for e, f in desired.records.items()}
    changed["absences"].loc[0, "end_date"] = "2026-10-09"
    stale = {**sent, "employees": pd.concat([sent["employees"], pd.DataFrame([{"external_id": "1002"}])])}
    stale["departments"] = pd.concat(
        [sent["departments"], pd.DataFrame([{"external_id": "OLD", "name": "x"}])]
    )
    second = plan_changes(changed, stale, desired.frozen)
    assert second[["entity", "external_id", "action", "change", "fields"]].to_dict(orient="records") == [
        {
            "entity": "absences",
            "external_id": "1",
            "action": "upsert",
            "change": "changed",
            "fields": "end_date",
        },
        {
            "entity": "departments",
            "external_id": "OLD",
            "action": "deactivate",
            "change": "removed",
            "fields": "",
        },
    ]  # 1002 (frozen, held back) is not deactivated


def test_sent_after_keeps_accepted_upserts_drops_confirmed_deactivations_and_keeps_failures_old():
    sent = pd.DataFrame(
        [
            {"external_id": "A", "name": "old A"},
            {"external_id": "B", "name": "B"},
            {"external_id": "C", "name": "C"},
        ]
    )
    outcomes = pd.DataFrame(
        [
            {
                "entity": "departments",
                "external_id": "A",
                "action": "upsert",
                "body": {"name": "new A"},
                "outcome": "updated",
            },
            {
                "entity": "departments",
                "external_id": "B",
                "action": "deactivate",
                "body": {},
                "outcome": "deactivated",
            },
            {
                "entity": "departments",
                "external_id": "C",
                "action": "deactivate",
                "body": {},
                "outcome": "failed",
            },
            {
                "entity": "departments",
                "external_id": "D",
                "action": "upsert",
                "body": {"name": "D"},
                "outcome": "rejected",
            },
            {
                "entity": "departments",
                "external_id": "E",
                "action": "upsert",
                "body": {"name": "E"},
                "outcome": "created",
            },
        ]
    )
    after = sent_after("departments", sent, outcomes)
    assert after[["external_id", "name"]].to_dict(orient="records") == [
        {"external_id": "A", "name": "new A"},
        {"external_id": "C", "name": "C"},
        {"external_id": "E", "name": "E"},
    ]


def test_merge_mirror_incremental_keeps_the_rest_full_notices_deletions_but_not_rejects_or_old_absences():
    old = frame(
        "absences",
        [
            {"id": "1", "start_date": "2020-01-01", "end_date": "2020-01-05"},  # before the window
            {"id": "2", "start_date": "2026-01-01", "end_date": "2026-01-05"},  # deleted in AFAS
            {"id": "3", "start_date": "2026-02-01", "end_date": None},  # rejected this run
            {"id": "4", "start_date": "2026-03-01", "end_date": None},
        ],
    )
    read = frame("absences", [{"id": "4", "start_date": "2026-03-01", "end_date": "2026-03-09"}])
    incremental = merge_mirror("absences", old, read, set(), full=False)
    assert list(incremental["id"]) == ["1", "2", "3", "4"] and incremental.at[3, "end_date"] == "2026-03-09"
    full = merge_mirror("absences", old, read, {"3"}, full=True, window_start=date(2024, 11, 21))
    assert list(full["id"]) == ["1", "3", "4"]


def test_read_specs_decide_full_or_incremental_and_why():
    config = HrConfig()
    first = read_specs(config, "auto", pd.DataFrame(), NOW)
    assert {e: s.reason for e, s in first.items()} == {
        "departments": "first run",
        "employees": "first run",
        "employments": "first run",
        "absences": "first run",
        "users": "no modified-date column",
    }
    specs = {e: ReadSpec(e, True, None, "first run") for e in first}
    newest = {
        "departments": datetime(2026, 11, 20, 10, 0, tzinfo=UTC),
        "employees": None,
        "employments": datetime(2026, 11, 1, tzinfo=UTC),
    }
    marks = next_watermarks(config, pd.DataFrame(), specs, newest, NOW)
    later = read_specs(config, "auto", marks, NOW + timedelta(hours=1))
    assert later["departments"].full is False
    assert later["departments"].since == datetime(2026, 11, 20, 9, 55, tzinfo=UTC)  # 5 minutes of overlap
    assert later["employees"].reason == "first run"  # nothing read yet: no watermark
    assert read_specs(config, "auto", marks, NOW + timedelta(hours=24))["departments"].reason == (
        "last full comparison older than 24 h"
    )
    assert read_specs(config, "incremental", marks, NOW + timedelta(hours=48))["departments"].full is False
    assert read_specs(config, "full", marks, NOW)["departments"].reason == "mode full"
    salary = HrConfig(salary="monthly")
    assert read_specs(salary, "auto", marks, NOW)["employments"].reason == "configuration changed"


def test_an_absence_window_moved_back_needs_a_full_read_of_absences():
    config = HrConfig()
    specs = {
        e: ReadSpec(e, True, None, "first run")
        for e in ("departments", "employees", "employments", "absences", "users")
    }
    newest = {e: datetime(2026, 11, 20, tzinfo=UTC) for e in specs}
    marks = next_watermarks(config, pd.DataFrame(), specs, newest, NOW, date(2024, 11, 21))
    assert marks.set_index("name").loc["absences", "window_start"] == "2024-11-21"
    assert marks.set_index("name").loc["employees", "window_start"] is None
    later = NOW + timedelta(hours=1)
    assert read_specs(config, "auto", marks, later, date(2024, 11, 22))["absences"].full is False
    back = read_specs(config, "auto", marks, later, date(2023, 1, 1))
    assert back["absences"].reason == "absence window moved back to 2023-01-01"
    assert back["employees"].full is False
    incremental = {e: ReadSpec(e, False, None, "") for e in specs}
    kept = next_watermarks(config, marks, incremental, {}, later, date(2024, 11, 22))
    assert (
        kept.set_index("name").loc["absences", "window_start"] == "2024-11-21"
    )  # the mirror still covers it


def test_watermarks_never_move_back_on_incremental_reads():
    config = HrConfig()
    specs = {
        e: ReadSpec(e, e == "users", None, "")
        for e in ("departments", "employees", "employments", "absences", "users")
    }
    old = pd.DataFrame(
        [
            {
                "name": "departments",
                "modified_until": "2026-11-20T10:00:00+00:00",
                "full_at": NOW.isoformat(),
                "fingerprint": "",
            }
        ]
    )
    marks = next_watermarks(config, old, specs, {"departments": datetime(2026, 11, 19, tzinfo=UTC)}, NOW)
    row = marks.set_index("name").loc["departments"]
    assert row["modified_until"] == "2026-11-20T10:00:00+00:00" and row["full_at"] == NOW.isoformat()


def test_newest_modified_reads_amsterdam_stamps():
    raw = pd.DataFrame(
        {
            "ModifiedDate": pd.Series(pd.to_datetime(["2026-11-20 11:00", None])).dt.tz_localize(
                "Europe/Amsterdam"
            )
        }
    )
    assert newest_modified(raw, "ModifiedDate") == datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    assert newest_modified(raw.iloc[0:0], "ModifiedDate") is None
    assert newest_modified(raw, "") is None


@pytest.mark.parametrize("entity", ["departments", "users"])
def test_empty_mirror_gives_empty_desired_records_with_all_columns(entity):
    empty = {e: frame(e, []) for e in ("departments", "employees", "employments", "absences", "users")}
    desired = desired_state(empty, HrConfig())
    assert desired.records[entity].empty and "external_id" in desired.records[entity].columns
    assert desired.held.empty and desired.rejects.empty and desired.flex.empty


def test_a_department_managed_by_a_held_back_flex_employee_goes_out_without_its_manager():
    desired = desired_state(mirror(), HrConfig())
    departments = desired.records["departments"].set_index("external_id")
    assert departments.loc["T01", "manager_employee_external_id"] is None  # 1002 is in a flex construction
    assert departments.loc["KOPPEL", "manager_employee_external_id"] == "1001"
    assert desired.without_manager.to_dict(orient="records") == [
        {
            "entity": "departments",
            "key": "T01",
            "reason": "department T01: sent without manager 1002: held back: employee 1002 has concurrent "
            "employments 1002-1, 1002-2 (flex construction, not supported)",
        }
    ]
    held = set(desired.held["key"])
    assert "u1002" in held  # the flex manager's account stays held (frozen), it is not deactivated
    sent_managers = set(departments["manager_employee_external_id"].dropna())
    assert not sent_managers & held


def test_every_record_but_a_department_carries_its_employer_key():
    config = HrConfig.model_validate(
        {"several_employers": True, "employments": {"columns": {"employer_id": "EmployerId"}}}
    )
    data = mirror(config)
    data["employments"]["employer_id"] = ["1", "2", "2", "1", "2"]  # 1003 moved from employer 1 to 2
    records = desired_state(data, config).records
    employer = {
        e: dict(zip(records[e]["external_id"], records[e]["employer_external_id"], strict=True))
        for e in records
        if e != "departments"
    }
    assert employer["employments"] == {"1001-1": "1", "1003-1": "1", "1003-2": "2"}
    assert employer["employees"] == {"1001": "1", "1003": "2"}  # the current employment's employer
    assert employer["absences"] == {"1": "1"} and employer["users"] == {"u1001": "1"}
    assert "employer_external_id" not in records["departments"].columns
    assert desired_state(mirror(), HrConfig()).records["employments"]["employer_external_id"].isna().all()
