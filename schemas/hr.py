"""HR records between the steps of the HR syncs (docs/hr.md).

AFAS side: ``tasks/hr_sync/mapping.py`` turns the HR GetConnector frames into *normalised* frames, one per
entity, whose cells are plain text (dates ``YYYY-MM-DD``, decimals as exact text such as ``"36.00"``),
``None`` when empty — the form in which they are stored as the AFAS mirror and compared. The models
below are their contracts; ``tasks/hr_sync/validate.py`` runs them lazily and rejects failing rows one by
one with a reason naming the record and the field.

OH side: ``RegisteredAbsences`` is the frame ``OhClient.registered_absences`` returns; a registered absence
that may go to AFAS must also meet ``ValidRegisteredAbsences``.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from schemas.checks import as_decimal

DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
DATE_TEXT = "a date written YYYY-MM-DD"
END_BEFORE_START = "end_date lies before start_date"
PERCENTAGE = "a number from 0 to 100"


def _text(**kwargs: Any) -> Any:
    """A nullable text column."""
    return pa.Field(nullable=True, coerce=True, **kwargs)


def _required(max_length: int = 255, **kwargs: Any) -> Any:
    """A text column every row must fill."""
    return pa.Field(coerce=True, str_length={"min_value": 1, "max_value": max_length}, **kwargs)


def _date(nullable: bool = True) -> Any:
    """A date written ``YYYY-MM-DD``."""
    return pa.Field(nullable=nullable, coerce=True, str_matches=DATE_PATTERN)


def end_not_before_start(frame: pd.DataFrame) -> pd.Series:
    """Row-wise: ``end_date`` empty, or not before ``start_date`` (ISO text compares like dates)."""
    start, end = frame["start_date"], frame["end_date"]
    return end.isna() | start.isna() | (end.astype(object) >= start.astype(object))


class HrDepartments(pa.DataFrameModel):
    """Departments (AFAS organisational units) with their parent and manager."""

    id: Series[str] = _required(100, unique=True)
    name: Series[str] = _required(100)
    parent_id: Series[str] = _text()
    manager_id: Series[str] = _text()
    modified: Series[str] = _text()


class HrEmployees(pa.DataFrameModel):
    """Employees; the OH system requires a last name and a birth date."""

    id: Series[str] = _required(100, unique=True)
    first_name: Series[str] = _text(str_length={"max_value": 50})
    name_prefix: Series[str] = _text(str_length={"max_value": 20})
    last_name: Series[str] = _required(80)
    initials: Series[str] = _text(str_length={"max_value": 20})
    birth_date: Series[str] = _date(nullable=False)
    gender: Series[str] = _text(str_length={"max_value": 10})
    email: Series[str] = _text(str_length={"max_value": 254})
    phone: Series[str] = _text(str_length={"max_value": 30})
    modified: Series[str] = _text()


class HrEmployments(pa.DataFrameModel):
    """Employments keyed ``{employee}-{Dienstverband}``; ``salary`` is present only when configured."""

    key: Series[str] = _required(100, unique=True)
    employee_id: Series[str] = _required(100)
    employment_id: Series[str] = _required(20, str_matches=r"^\d+$")
    department_id: Series[str] = _required(100)
    function: Series[str] = _text(str_length={"max_value": 100})
    start_date: Series[str] = _date(nullable=False)
    end_date: Series[str] = _date()
    hours_per_week: Series[str] = _text()
    modified: Series[str] = _text()

    @pa.check("hours_per_week", name="a number from 0 to 80", element_wise=True)
    def _hours(cls, value: Any) -> bool:
        number = as_decimal(value)
        return number is not None and 0 <= number <= 80

    @pa.dataframe_check(name=END_BEFORE_START)
    def _period(cls, frame: pd.DataFrame) -> pd.Series:
        return end_not_before_start(frame)

    class Config:
        """``salary`` (and nothing else) may follow."""

        strict = False


class HrAbsences(pa.DataFrameModel):
    """Sick leave: start, report date, expected and actual end, presence percentage."""

    id: Series[str] = _required(100, unique=True)
    employee_id: Series[str] = _required(100)
    employment_id: Series[str] = _required(20, str_matches=r"^\d+$")
    start_date: Series[str] = _date(nullable=False)
    report_date: Series[str] = _date()
    expected_end: Series[str] = _date()
    end_date: Series[str] = _date()
    presence_pct: Series[str] = _text(percentage={"error": PERCENTAGE})
    modified: Series[str] = _text()

    @pa.dataframe_check(name=END_BEFORE_START)
    def _period(cls, frame: pd.DataFrame) -> pd.Series:
        return end_not_before_start(frame)


class HrUsers(pa.DataFrameModel):
    """AFAS user accounts linked to an employee (only managers' accounts are sent)."""

    id: Series[str] = _required(100, unique=True)
    employee_id: Series[str] = _text()
    username: Series[str] = _required(100)
    email: Series[str] = _text(str_length={"max_value": 254})
    blocked: Series[pd.BooleanDtype] = pa.Field(coerce=True, nullable=False)


SCHEMAS: dict[str, type[pa.DataFrameModel]] = {
    "departments": HrDepartments,
    "employees": HrEmployees,
    "employments": HrEmployments,
    "absences": HrAbsences,
    "users": HrUsers,
}


# --- the OH side -------------------------------------------------------------------------------------------


def _is_date(value: Any) -> bool:
    return isinstance(value, date)


def _optional_date() -> Any:
    return pa.Field(nullable=True)


class RegisteredAbsences(pa.DataFrameModel):
    """Absences entered in the OH system, as ``OhClient.registered_absences`` returns them."""

    external_id: Series[str] = pa.Field(unique=True, coerce=True)
    employee_external_id: Series[str] = _text()
    employment_external_id: Series[str] = _text()
    start_date: Series[object] = _optional_date()
    report_date: Series[object] = _optional_date()
    expected_end: Series[object] = _optional_date()
    end_date: Series[object] = _optional_date()
    presence_pct: Series[object] = pa.Field(nullable=True)
    active: Series[pd.BooleanDtype] = pa.Field(nullable=True)
    version: Series[pd.Int64Dtype] = pa.Field(nullable=True)
    created_at: Series[pd.DatetimeTZDtype] = pa.Field(nullable=True, dtype_kwargs={"unit": "ns", "tz": "UTC"})
    updated_at: Series[pd.DatetimeTZDtype] = pa.Field(nullable=True, dtype_kwargs={"unit": "ns", "tz": "UTC"})

    @pa.check("start_date", "report_date", "expected_end", "end_date", name="a date", element_wise=True)
    def _dates(cls, value: Any) -> bool:
        return _is_date(value)


class ValidRegisteredAbsences(RegisteredAbsences):
    """A registered absence AFAS can take: employee, employment, start and expected end (``DaEs``) known."""

    employee_external_id: Series[str] = _required(15)
    employment_external_id: Series[str] = pa.Field(coerce=True, str_matches=r"^.+-\d+$")
    start_date: Series[object] = pa.Field(nullable=False)
    expected_end: Series[object] = pa.Field(nullable=False)
    presence_pct: Series[object] = pa.Field(nullable=True, percentage={"error": PERCENTAGE})

    @pa.dataframe_check(name=END_BEFORE_START)
    def _period(cls, frame: pd.DataFrame) -> pd.Series:
        return end_not_before_start(frame)
