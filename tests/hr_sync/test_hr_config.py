"""HR configuration: defaults that match the sandbox's GetConnectors, refusals that name the key."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from pydantic import ValidationError

from flows.hr_sync import HrSyncParameters
from sandbox.afas.connectors import get_connector
from tasks.hr_sync.config import (
    ENTITIES,
    HrConfig,
    HrConfigError,
    absence_window_start,
    load_hr_config,
    months_before,
    parse_from_date,
    parse_hr_config,
)

ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_file_equals_the_defaults_and_is_off_where_it_must_be():
    config = load_hr_config(ROOT / "config" / "hr.toml")
    assert config == HrConfig()
    assert config.salary == "off" and config.salary_kind is None and config.salary_column is None
    assert config.absence_to_afas.enabled is False
    assert config.overlap_minutes == 5 and config.absence_months_back == 24


@pytest.mark.parametrize("entity", ENTITIES)
def test_default_connectors_and_columns_exist_in_the_sandbox(entity):
    config = HrConfig(salary="sv_wage")
    source = config.source(entity)
    served = get_connector(source.connector)
    assert served is not None, source.connector
    columns = {c.id for c in served.columns}
    assert set(config.columns(entity).values()) <= columns
    assert source.sort_key in columns
    assert not source.modified or source.modified in columns


def test_salary_choice_picks_one_column_and_changes_the_employments_fingerprint():
    off, monthly, sv = HrConfig(), HrConfig(salary="monthly"), HrConfig(salary="sv_wage")
    assert "salary" not in off.columns("employments")
    assert monthly.columns("employments")["salary"] == "SalaryMonthly"
    assert sv.columns("employments")["salary"] == "SvWage" and sv.salary_kind == "sv_wage"
    assert (
        len(
            {
                off.fingerprint("employments"),
                monthly.fingerprint("employments"),
                sv.fingerprint("employments"),
            }
        )
        == 3
    )
    assert off.fingerprint("employees") == sv.fingerprint("employees")


def test_errors_name_every_offending_key():
    text = (
        'salary = "yearly"\n'
        '[employees.columns]\nfirstname = "FirstName"\n'
        '[employments.columns]\nemployment_id = "DvSn"\n'
    )
    with pytest.raises(HrConfigError) as caught:
        parse_hr_config(text, source="hr.toml")
    message = str(caught.value)
    assert message.startswith("hr.toml: ")
    assert "salary: Input should be 'off', 'monthly', 'four_weekly' or 'sv_wage'" in message
    assert "employees.columns.firstname: unknown key" in message
    assert "never DvSn" in message


def test_unreadable_and_invalid_toml_are_one_line_errors(tmp_path):
    with pytest.raises(HrConfigError, match="cannot read"):
        load_hr_config(tmp_path / "missing.toml")
    with pytest.raises(HrConfigError, match="not valid TOML"):
        parse_hr_config("salary = ")


def test_from_date_accepts_only_yyyy_mm_dd_and_says_so():
    assert parse_from_date("2024-02-29") == date(2024, 2, 29)
    for wrong in ("29-02-2024", "2024-2-29", "2023-02-29", "2024-02-29T00:00", "yesterday", ""):
        with pytest.raises(ValueError, match=r"from_date must be a date written YYYY-MM-DD \(for example"):
            parse_from_date(wrong)


def test_the_flow_parameters_refuse_a_malformed_from_date_showing_the_format():
    assert HrSyncParameters(from_date="2025-01-31").from_date == "2025-01-31"
    assert HrSyncParameters(from_date=" ").from_date is None
    with pytest.raises(ValidationError) as caught:
        HrSyncParameters(from_date="31-01-2025")
    assert "from_date must be a date written YYYY-MM-DD (for example 2024-11-30), got '31-01-2025'" in str(
        caught.value
    )


def test_the_absence_window_defaults_to_24_months_back():
    config = HrConfig()
    assert months_before(date(2026, 3, 31), 1) == date(2026, 2, 28)
    assert months_before(date(2026, 11, 21), 24) == date(2024, 11, 21)
    assert absence_window_start(None, config, date(2026, 11, 21)) == date(2024, 11, 21)
    assert absence_window_start("2026-01-01", config, date(2026, 11, 21)) == date(2026, 1, 1)
    assert absence_window_start(None, HrConfig(absence_months_back=6), date(2026, 8, 31)) == date(2026, 2, 28)


@pytest.mark.parametrize(
    ("text", "sent"),
    [
        ("", ("departments", "employees", "employments", "absences", "users")),
        ('options = ["werknemer"]', ("departments", "employees", "employments", "users")),
        ('options = ["werknemer"]\nmanager_accounts = false', ("departments", "employees", "employments")),
        ('options = ["verzuim"]\nmanager_accounts = false', ("absences",)),
    ],
)
def test_xs_options_choose_the_entities_sent(text, sent):
    assert parse_hr_config(text).sent_entities == sent


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('options = ["verzuim"]', 'manager_accounts = true needs the "werknemer" option'),
        ("options = []", 'options: choose "werknemer", "verzuim" or both'),
        ('options = ["verzuim", "verzuim"]', "names an option twice"),
        ('options = ["salaris"]', "options.0: Input should be 'werknemer' or 'verzuim'"),
    ],
)
def test_xs_options_are_validated(text, message):
    with pytest.raises(HrConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        parse_hr_config(text, "hr.toml")


def test_several_employers_needs_the_employer_column():
    with pytest.raises(
        HrConfigError, match=r"several_employers = true needs employments\.columns\.employer_id"
    ):
        parse_hr_config("several_employers = true\n", "hr.toml")
    config = parse_hr_config('several_employers = true\n[employments.columns]\nemployer_id = "EmployerId"\n')
    assert config.columns("employments")["employer_id"] == "EmployerId"
