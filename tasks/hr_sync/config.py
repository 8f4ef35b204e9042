"""HR sync configuration (``config/hr.toml``): GetConnector ids, column names, salary, absence back-flow.

Every GetConnector id and column name is configuration, with defaults that match the project's own HR
GetConnectors (docs/afas-getconnectors.md) and therefore the sandbox. A column set to ``""`` is not read
(the OH field stays empty). Unknown keys are errors: a misspelt column silently falling back to a default
would send the wrong data. ``load_hr_config(path)`` raises ``HrConfigError`` naming each offending key.
"""

from __future__ import annotations

import calendar
import hashlib
import re
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from koppel.config_files import ConfigFileError, load_toml, parse_toml

ENTITIES = ("departments", "employees", "employments", "absences", "users")
SalaryKind = Literal["monthly", "four_weekly", "sv_wage"]
XsOption = Literal["werknemer", "verzuim"]
# XS Connect's options: "Werknemer" sends the organisation (departments, employees with their employments,
# optionally the managers' user accounts), "Verzuim" sends absences only.
OPTION_ENTITIES: dict[str, tuple[str, ...]] = {
    "werknemer": ("departments", "employees", "employments", "users"),
    "verzuim": ("absences",),
}


class HrConfigError(ConfigFileError):
    """The HR configuration is invalid; the message names every offending key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DepartmentColumns(_Strict):
    """``Koppel_HR_OrgUnits`` columns (org unit, its parent and its manager)."""

    id: str = "OrgUnitId"
    name: str = "Description"
    parent_id: str = "ParentId"
    manager_id: str = "ManagerId"


class EmployeeColumns(_Strict):
    """``Koppel_HR_Employees`` columns."""

    id: str = "EmployeeId"
    first_name: str = "FirstName"
    name_prefix: str = "Prefix"  # the tussenvoegsel ("de", "van den"), AFAS KnPerson.Is
    last_name: str = "LastName"
    # A single full-name column instead ("Jan Willem de Vries"): split by tasks.names.split_dutch_name into
    # whichever of first_name, name_prefix, last_name are set to "".
    full_name: str = ""
    initials: str = ""
    birth_date: str = "BirthDate"
    gender: str = "Gender"
    email: str = "Email"
    phone: str = ""


class EmploymentColumns(_Strict):
    """``Koppel_HR_Employments`` columns; the employment is the Dienstverband (``DvId``), never ``DvSn``."""

    employee_id: str = "EmployeeId"
    employment_id: str = "DvId"
    department_id: str = "OrgUnitId"
    function: str = "Function"
    start_date: str = "StartDate"
    end_date: str = "EndDate"
    hours_per_week: str = "HoursPerWeek"
    employer_id: str = ""  # the employer (werkgever) of the employment; needed with several_employers

    @model_validator(mode="after")
    def _dienstverband(self) -> EmploymentColumns:
        if self.employment_id.casefold() == "dvsn":
            raise ValueError(
                "employment_id must be the Dienstverband (DvId/EnSe), never DvSn (reference §11.15)"
            )
        return self


class AbsenceColumns(_Strict):
    """``Profit_Illness`` columns."""

    id: str = "AbsenceId"
    employee_id: str = "EmployeeId"
    employment_id: str = "DvId"
    start_date: str = "StartDate"
    report_date: str = "ReportDate"
    expected_end: str = "ExEndDate"
    end_date: str = "EndDate"
    presence_pct: str = "Presence"


class UserColumns(_Strict):
    """``Profit_Users`` columns (only the accounts of department managers are sent)."""

    id: str = "UserId"
    employee_id: str = "EmployeeId"
    username: str = "UPN"
    email: str = "Email"
    blocked: str = "Blocked"


class Source(_Strict):
    """One GetConnector: its id, unique sort key and modified-date column (``""``: always read in full)."""

    connector: str = Field(min_length=1)
    sort_key: str = Field(min_length=1)
    modified: str = "ModifiedDate"


class Departments(Source):
    """Where departments come from."""

    connector: str = "Koppel_HR_OrgUnits"
    sort_key: str = "OrgUnitId"
    columns: DepartmentColumns = DepartmentColumns()


class Employees(Source):
    """Where employees come from."""

    connector: str = "Koppel_HR_Employees"
    sort_key: str = "EmployeeId"
    columns: EmployeeColumns = EmployeeColumns()


class Employments(Source):
    """Where employments come from."""

    connector: str = "Koppel_HR_Employments"
    sort_key: str = "EmploymentKey"
    columns: EmploymentColumns = EmploymentColumns()


class Absences(Source):
    """Where absences (sick leave) come from."""

    connector: str = "Profit_Illness"
    sort_key: str = "AbsenceId"
    columns: AbsenceColumns = AbsenceColumns()


class Users(Source):
    """Where user accounts come from; ``Profit_Users`` has no modified date, so it is read in full."""

    connector: str = "Profit_Users"
    sort_key: str = "UserId"
    modified: str = ""
    columns: UserColumns = UserColumns()


class SalaryColumns(_Strict):
    """The ``Koppel_HR_Employments`` column of each salary kind."""

    monthly: str = "SalaryMonthly"
    four_weekly: str = "SalaryFourWeekly"
    sv_wage: str = "SvWage"


class AbsenceToAfas(_Strict):
    """The optional back-flow of absences registered in the OH system into AFAS (``HrIllness``)."""

    enabled: bool = False
    absence_type: str = Field(default="Z", min_length=1, max_length=20)  # ViIt: Z = Ziek
    look_back_days: int = Field(default=60, ge=1, le=3660)  # first run: OH changes of this many days
    overlap_minutes: int = Field(default=5, ge=0, le=24 * 60)


class HrConfig(_Strict):
    """The whole HR configuration."""

    salary: Literal["off", "monthly", "four_weekly", "sv_wage"] = "off"
    salary_columns: SalaryColumns = SalaryColumns()
    absence_months_back: int = Field(default=24, ge=1, le=240)
    overlap_minutes: int = Field(default=5, ge=0, le=24 * 60)
    full_every_hours: float = Field(default=24.0, gt=0)
    departments: Departments = Departments()
    employees: Employees = Employees()
    employments: Employments = Employments()
    absences: Absences = Absences()
    users: Users = Users()
    absence_to_afas: AbsenceToAfas = AbsenceToAfas()
    options: tuple[XsOption, ...] = ("werknemer", "verzuim")
    manager_accounts: bool = True
    # An OH customer with existing data: "report" compares with what the OH system holds and changes nothing;
    # "confirmed" sends the differences; "off" (default) is the regular sync (tasks/hr_sync/initial.py).
    initial_sync: Literal["off", "report", "confirmed"] = "off"
    # One OH customer account for several AFAS employers: every record carries its employer key.
    several_employers: bool = False

    @model_validator(mode="after")
    def _options(self) -> HrConfig:
        if not self.options:
            raise ValueError('options: choose "werknemer", "verzuim" or both')
        if len(set(self.options)) != len(self.options):
            raise ValueError(f"options: {list(self.options)} names an option twice")
        if self.several_employers and not self.employments.columns.employer_id:
            raise ValueError(
                'several_employers = true needs employments.columns.employer_id (e.g. "EmployerId")'
            )
        if not self.manager_accounts or "werknemer" in self.options:
            return self
        raise ValueError('manager_accounts = true needs the "werknemer" option (or set it to false)')

    @property
    def sent_entities(self) -> tuple[str, ...]:
        """The OH resources this configuration sends (and deactivates), in referential order."""
        chosen = {e for option in self.options for e in OPTION_ENTITIES[option]}
        if not self.manager_accounts:
            chosen.discard("users")
        return tuple(e for e in ENTITIES if e in chosen)

    def source(self, entity: str) -> Departments | Employees | Employments | Absences | Users:
        """The source of ``entity`` (one of ``ENTITIES``)."""
        if entity not in ENTITIES:
            raise KeyError(f"unknown HR entity {entity!r}")
        return getattr(self, entity)

    def columns(self, entity: str) -> dict[str, str]:
        """Normalised field → AFAS column for ``entity``: the columns read (``""`` ones left out)."""
        columns = {k: v for k, v in self.source(entity).columns.model_dump().items() if v}
        if entity == "employments" and self.salary_column:
            columns["salary"] = self.salary_column
        return columns

    @property
    def salary_kind(self) -> SalaryKind | None:
        """The salary kind sent, or None when the salary column is off."""
        return None if self.salary == "off" else self.salary

    @property
    def salary_column(self) -> str | None:
        """The AFAS column of the chosen salary, or None when off."""
        kind = self.salary_kind
        return None if kind is None else getattr(self.salary_columns, kind)

    def fingerprint(self, entity: str) -> str:
        """A hash of what shapes ``entity``'s mirror; when it changes, a full read rebuilds the mirror."""
        text = self.source(entity).model_dump_json() + repr(sorted(self.columns(entity).items()))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_hr_config(text: str, source: str = "<text>") -> HrConfig:
    """Parse TOML text into a ``HrConfig``; errors name ``source`` and each bad key."""
    return parse_toml(HrConfig, text, source, HrConfigError)


def load_hr_config(path: Path | str) -> HrConfig:
    """Load and check the configuration from a TOML file."""
    return load_toml(HrConfig, path, HrConfigError)


FROM_DATE_FORMAT = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_from_date(text: str) -> date:
    """A ``from_date`` written ``YYYY-MM-DD``; anything else is refused with a message showing the format."""
    value = text.strip() if isinstance(text, str) else text
    problem = ValueError(
        f"from_date must be a date written YYYY-MM-DD (for example 2024-11-30), got {text!r}"
    )
    if not isinstance(value, str) or not FROM_DATE_FORMAT.fullmatch(value):
        raise problem
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise problem from None


def months_before(day: date, months: int) -> date:
    """The same day ``months`` months earlier, clamped to the end of a shorter month."""
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def absence_window_start(from_date: str | None, config: HrConfig, today: date) -> date:
    """First day of the absence window: ``from_date``, else ``absence_months_back`` before today."""
    if from_date:
        return parse_from_date(from_date)
    return months_before(today, config.absence_months_back)
