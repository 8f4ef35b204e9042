"""AFAS HR frames → normalised frames, and row-by-row validation with reasons."""

from __future__ import annotations

import json
from decimal import Decimal

import pandas as pd
import pytest

from tasks.hr_sync.config import HrConfig, HrConfigError, parse_hr_config
from tasks.hr_sync.mapping import columns_of, day, decimal_text, normalise, plain_frame, text
from tasks.hr_sync.validate import REJECT_COLUMNS, split_valid

AMS = "Europe/Amsterdam"


def stamps(*values: str | None) -> pd.Series:
    return pd.Series(pd.to_datetime(list(values), format="ISO8601")).dt.tz_localize(AMS)


def afas_employments(**overrides) -> pd.DataFrame:
    """A frame typed like AfasClient.read_frame("Koppel_HR_Employments")."""
    frame = pd.DataFrame(
        {
            "EmploymentKey": ["1001.1", "1001.2", "1002.1"],
            "EmployeeId": pd.Series(["1001", "1001", "1002"], dtype="str"),
            "DvId": pd.array([1, 2, 1], dtype="Int64"),
            "DvSn": pd.array([2, 3, 1], dtype="Int64"),
            "OrgUnitId": pd.Series(["T01", "T01", "T02"], dtype="str"),
            "Function": pd.Series(["Medewerker", None, "Manager"], dtype="str"),
            "StartDate": stamps("2020-01-01", "2022-03-01", "2019-05-01"),
            "EndDate": stamps("2021-12-31 17:00", None, None),
            "HoursPerWeek": pd.Series([Decimal("36.00"), Decimal("8"), Decimal("40.125")], dtype=object),
            "SalaryMonthly": pd.Series([Decimal("3500.00"), None, Decimal("5000.5")], dtype=object),
            "SalaryFourWeekly": pd.Series([Decimal("3230.77"), None, None], dtype=object),
            "SvWage": pd.Series([Decimal("3780.00"), None, None], dtype=object),
            "ModifiedDate": stamps("2026-10-01 12:00:00.250", "2026-10-02 08:00", "2026-03-29 03:30"),
        }
    )
    return frame.assign(**overrides)


def test_employments_are_keyed_by_dienstverband_with_text_values():
    frame = normalise("employments", afas_employments(), HrConfig(salary="monthly"))
    assert list(frame.columns) == columns_of("employments", HrConfig(salary="monthly"))
    first = frame.iloc[0].to_dict()
    assert first == {
        "key": "1001-1",  # DvId, never DvSn (2)
        "employee_id": "1001",
        "employment_id": "1",
        "department_id": "T01",
        "function": "Medewerker",
        "start_date": "2020-01-01",
        "end_date": "2021-12-31",
        "hours_per_week": "36.00",
        "salary": "3500.00",
        "modified": "2026-10-01T12:00:00.250000+02:00",
    }
    assert list(frame["hours_per_week"]) == ["36.00", "8.00", "40.125"]  # exact, never rounded
    assert frame.at[1, "function"] is None and frame.at[1, "end_date"] is None
    assert {str(dtype) for dtype in frame.dtypes} == {"object"}


def test_without_salary_no_salary_column_is_read_or_kept():
    frame = normalise("employments", afas_employments(), HrConfig())
    assert "salary" not in frame.columns
    assert not any("3500" in str(v) for v in frame.to_numpy().ravel())


def test_a_normalised_frame_survives_a_json_round_trip_unchanged():
    frame = normalise("employments", afas_employments(), HrConfig(salary="sv_wage"))
    back = plain_frame(
        pd.DataFrame(json.loads(json.dumps(frame.to_dict(orient="records")))), list(frame.columns)
    )
    pd.testing.assert_frame_equal(back, frame)


def test_a_configured_column_missing_in_afas_stops_the_run_naming_it():
    with pytest.raises(HrConfigError, match=r"Koppel_HR_Employments has no column\(s\) HoursPerWeek"):
        normalise("employments", afas_employments().drop(columns=["HoursPerWeek"]), HrConfig())


def test_value_conversions():
    assert text(Decimal("2")) == "2" and text("  x ") == "x" and text("") is None and text(pd.NA) is None
    assert day(pd.Timestamp("2026-03-29 00:30", tz=AMS)) == "2026-03-29"
    assert day(pd.Timestamp("2026-03-28 23:30", tz="UTC")) == "2026-03-29"  # the Amsterdam calendar day
    assert day("31-12-2026") == "31-12-2026"  # kept, so validation can name it
    assert (
        decimal_text(Decimal("50")) == "50.00" and decimal_text("abc") == "abc" and decimal_text(None) is None
    )


def test_validation_rejects_row_by_row_naming_record_and_field():
    frame = normalise("employments", afas_employments(), HrConfig())
    frame.loc[1, "department_id"] = None
    frame.loc[2, "end_date"] = "2018-01-01"
    frame.loc[2, "hours_per_week"] = "99"
    valid, rejects = split_valid("employments", frame)
    assert list(valid["key"]) == ["1001-1"]
    assert list(rejects.columns) == REJECT_COLUMNS
    reasons = dict(zip(rejects["key"], rejects["reason"], strict=True))
    assert reasons == {
        "1001-2": "employment 1001-2: department_id: missing",
        "1002-1": "employment 1002-1: end_date lies before start_date; "
        "hours_per_week: '99' is not a number from 0 to 80",
    }
    assert set(rejects["step"]) == {"validate"}


def test_duplicate_and_missing_keys_are_rejected_not_dropped():
    raw = pd.DataFrame(
        {
            "EmployeeId": ["1", "1", None],
            "FirstName": ["A", "B", "C"],
            "Prefix": [None, None, None],
            "LastName": ["X", "Y", "Z"],
            "BirthDate": stamps("1980-01-01", "1981-01-01", None),
            "Email": [None, None, None],
            "Gender": ["V", "M", "O"],
            "ModifiedDate": stamps("2026-01-01", "2026-01-01", "2026-01-01"),
        }
    )
    valid, rejects = split_valid("employees", normalise("employees", raw, HrConfig()))
    assert valid.empty
    assert list(rejects["reason"]) == [
        "employee 1: id: '1' occurs more than once",
        "employee 1: id: '1' occurs more than once",
        "employee (no key): id: missing; birth_date: missing",
    ]


def test_a_single_full_name_column_is_split_by_the_dutch_prefix_rule():
    config = parse_hr_config(
        '[employees.columns]\nfirst_name = ""\nname_prefix = ""\nlast_name = ""\nfull_name = "Name"\n'
    )
    raw = pd.DataFrame(
        {
            "EmployeeId": ["1", "2"],
            "Name": ["Jan Willem de Vries", "Hanna van den Berg"],
            "BirthDate": stamps("1980-01-01", "1981-01-01"),
            "Email": [None, None],
            "Gender": ["M", "V"],
            "ModifiedDate": stamps("2026-01-01", "2026-01-01"),
        }
    )
    frame = normalise("employees", raw, config)
    assert frame[["first_name", "name_prefix", "last_name"]].values.tolist() == [
        ["Jan Willem", "de", "Vries"],
        ["Hanna", "van den", "Berg"],
    ]
