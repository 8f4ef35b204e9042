import pandas as pd
import pytest

from tasks.invoice_hours.join import join_masters, lookup_periods
from tasks.invoice_hours.validate import split_valid
from tests.billing_factories import (
    AMS,
    CONFIG_TOML,
    at,
    config,
    masters,
    periods,
    registration,
    registrations,
)


def with_projects(lines: str):
    return config(
        base=CONFIG_TOML.replace("default_administration = 1", "default_administration = 1\n" + lines)
    )


def joined(*rows, cfg=None, **master_overrides):
    valid, rejects = split_valid(registrations(*rows))
    assert rejects.empty
    return join_masters(valid, masters(**master_overrides), cfg or config())


def test_customer_joins_debtor_default_project_administration_and_period():
    frame, rejects = joined(registration(registration_id="a"))
    assert rejects.empty
    row = frame.iloc[0]
    assert (row["target"], row["debtor_id"], row["project_id"], row["project_source"]) == (
        "customer",
        "10001",
        "P10001-01",  # lowest open project of 10001
        "debtor_default",
    )
    assert (row["administration"], row["period_year"], row["period_number"], row["period"]) == (
        1,
        2026,
        10,
        "2026-10",
    )
    assert row["work_date"] == pd.Timestamp("2026-10-06", tz=AMS)


def test_internal_department_goes_to_the_internal_target_with_its_cost_account():
    frame, rejects = joined(registration(registration_id="i", customer_number="INT-ICT"))
    assert rejects.empty
    row = frame.iloc[0]
    assert (row["target"], row["administration"], row["cost_account"], row["cost_centre"]) == (
        "internal",
        1,
        "4300",
        "100",
    )
    assert pd.isna(row["debtor_id"]) and pd.isna(row["project_id"])


def test_department_without_cost_centre():
    frame, _ = joined(registration(customer_number="INT-HR"))
    assert frame.loc[0, "cost_account"] == "4310"
    assert pd.isna(frame.loc[0, "cost_centre"])


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"customer_number": "99999"}, "unknown customer: '99999'"),
        ({"customer_number": None}, "missing customer number"),
        ({"customer_number": "   "}, "missing customer number"),
        ({"customer_number": "10003"}, "blocked debtor: '10003'"),
        ({"project_ref": "P10002-01"}, "project not of this debtor: 'P10002-01' belongs to debtor '10002'"),
        ({"project_ref": "P10001-03"}, "project closed: 'P10001-03' (ready 2026-06-30)"),
        ({"project_ref": "NOPE"}, "unknown project: 'NOPE'"),
        ({"customer_number": "10004"}, "unknown project: no project found for debtor '10004'"),
        ({"entry_date": at("2025-12-31 10:00")}, "period closed in AFAS: administration 1, 2025-12-31"),
    ],
)
def test_each_join_reject_reason(overrides, reason):
    frame, rejects = joined(
        registration(registration_id="ok"), registration(registration_id="bad", **overrides)
    )
    assert list(frame["registration_id"]) == ["ok"]
    assert list(rejects["registration_id"]) == ["bad"]
    assert rejects.loc[0, "reason"] == reason
    assert rejects.loc[0, "step"] == "join"


def test_project_in_an_unconfigured_administration_is_rejected():
    projects = masters().projects.assign(UnitId=[9, 1, 1, 2, 1])
    frame, rejects = joined(registration(registration_id="x"), projects=projects)
    assert frame.empty
    assert rejects.loc[0, "reason"] == "administration not configured: 9 (project 'P10001-01')"


def test_blocked_period_is_rejected_when_configured_so():
    cfg = config('[reconciliation]\nclosed_period = "reject"\n')
    frame, rejects = joined(
        registration(registration_id="b"), cfg=cfg, periods=periods(blocked=((1, 2026, 10),))
    )
    assert frame.empty
    assert rejects.loc[0, "reason"] == "period closed in AFAS: administration 1, 2026-10-06"


def test_blocked_period_moves_to_the_next_open_period_by_default():
    closed = ((1, 2026, 10), (1, 2026, 11))
    frame, rejects = joined(registration(registration_id="b"), periods=periods(blocked=closed))
    assert rejects.empty
    row = frame.iloc[0]
    assert (row["period"], row["moved_from"]) == ("2026-12", "2026-10")
    assert row["booking_date"] == pd.Timestamp("2026-12-01", tz="Europe/Amsterdam")


def test_rejects_keep_the_original_customer_number_and_all_columns():
    raw = registration(customer_number=" 99999 ")
    _, rejects = joined(raw)
    assert rejects.loc[0, "customer_number"] == " 99999 "
    assert rejects.loc[0, "reason"] == "unknown customer: '99999'"
    assert "entry_local" not in rejects.columns
    assert {"registration_id", "notes", "project_ref", "reason", "step"} <= set(rejects.columns)


def test_whitespace_around_the_customer_number_still_joins():
    frame, rejects = joined(registration(customer_number=" 10001 "))
    assert rejects.empty and frame.loc[0, "debtor_id"] == "10001"


def test_project_sources_in_configured_order():
    incident = registration(registration_id="inc", project_ref="P10001-02")
    frame, _ = joined(incident, cfg=config('[projects.mapping]\n"10001" = "P10001-01"\n'))
    assert (frame.loc[0, "project_id"], frame.loc[0, "project_source"]) == ("P10001-02", "incident_field")
    mapping_first = with_projects(
        'sources = ["mapping", "incident_field"]\n[projects.mapping]\n"10001" = "P10001-01"'
    )
    frame, _ = joined(incident, cfg=mapping_first)
    assert (frame.loc[0, "project_id"], frame.loc[0, "project_source"]) == ("P10001-01", "mapping")


def test_project_in_another_administration_moves_the_registration_there():
    frame, rejects = joined(registration(customer_number="10002"))
    assert rejects.empty
    assert (frame.loc[0, "project_id"], frame.loc[0, "administration"]) == ("P10002-01", 2)


def test_project_not_required_bills_without_project_in_default_administration():
    frame, rejects = joined(registration(customer_number="10004"), cfg=with_projects("required = false"))
    assert rejects.empty
    assert pd.isna(frame.loc[0, "project_id"]) and frame.loc[0, "administration"] == 1


def test_billing_day_and_period_are_cut_in_amsterdam():
    # 2026-10-31 23:30 UTC is 2026-11-01 00:30 in Amsterdam (CET after the DST change on 25 October)
    frame, _ = joined(registration(entry_date=pd.Timestamp("2026-10-31T23:30:00Z")))
    assert frame.loc[0, "period"] == "2026-11"
    assert frame.loc[0, "work_date"] == pd.Timestamp("2026-11-01", tz=AMS)


def test_lookup_periods_marks_missing_and_blocked_periods_closed():
    table = periods(blocked=((2, 2026, 3),))
    units = pd.Series([1, 2, 1, 9])
    dates = pd.Series(
        pd.to_datetime(["2026-03-31", "2026-03-15", "2027-01-01", "2026-03-01"])
    ).dt.tz_localize(AMS)
    found = lookup_periods(units, dates, table)
    assert list(found["open"]) == [True, False, False, False]
    assert found["number"].tolist()[:2] == [3, 3]
    assert found["number"].isna().tolist() == [False, False, True, True]


def test_employee_numbers_come_from_an_optional_operator_table():
    employees = pd.DataFrame({"operator_id": ["op-1"], "employee_id": ["1001"]})
    frame, _ = joined(registration(), employees=employees)
    assert frame.loc[0, "employee_id"] == "1001"


def test_a_project_marked_ready_without_date_is_closed_and_never_a_default():
    projects = masters().projects.assign(CheckedOut=[True, False, False, False, False])
    frame, rejects = joined(
        registration(registration_id="explicit", project_ref="P10001-01"),
        registration(registration_id="default"),
        projects=projects,
    )
    assert rejects.set_index("registration_id")["reason"].to_dict() == {
        "explicit": "project closed: 'P10001-01' (marked ready)"
    }
    assert frame.set_index("registration_id")["project_id"].to_dict() == {"default": "P10001-02"}
