"""The OH system's resources, described as data (docs/sandbox.md, "Occupational health").

``employer_external_id`` is the employer key (AFAS werkgever) of a customer account that serves several
employers; departments are shared by the employers and carry none.

Every resource lives under ``/api/v1/{name}``: ``PUT .../{external_id}`` upserts, ``DELETE`` deactivates,
``GET`` lists (paged with ``page``/``page_size``, ``next`` URL in the body). Each one names the body
fields it accepts (anything else is refused with 422), the kind of each field (for typed frames) and the
resources it references, which must be sent first: that is where ``ORDER`` comes from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote

API = "api/v1"
MAX_PAGE_SIZE = 1000

Kind = Literal["text", "date", "decimal", "bool"]


@dataclass(frozen=True)
class Resource:
    """One OH resource: its name (the path segment), body fields with their kinds, and references."""

    name: str
    fields: dict[str, Kind]
    references: tuple[str, ...] = ()
    required: tuple[str, ...] = field(default=())

    @property
    def path(self) -> str:
        """``api/v1/<name>`` (relative to the base URL)."""
        return f"{API}/{self.name}"

    def record_path(self, external_id: str) -> str:
        """The path of one record; the external id is percent-encoded."""
        return f"{self.path}/{quote(str(external_id), safe='')}"

    def check_body(self, body: dict[str, object]) -> None:
        """Refuse a body with unknown or missing required fields before it is sent (a mapping bug)."""
        unknown = sorted(set(body) - set(self.fields))
        if unknown:
            raise ValueError(f"{self.name}: unknown field(s) {', '.join(unknown)}")
        missing = [name for name in self.required if body.get(name) in (None, "")]
        if missing:
            raise ValueError(f"{self.name}: required field(s) {', '.join(missing)} empty")


DEPARTMENTS = Resource(
    "departments",
    {"name": "text", "parent_external_id": "text", "manager_employee_external_id": "text"},
    required=("name",),
)
EMPLOYEES = Resource(
    "employees",
    {
        "first_name": "text",
        "name_prefix": "text",
        "last_name": "text",
        "initials": "text",
        "birth_date": "date",
        "gender": "text",
        "email": "text",
        "phone": "text",
        "employer_external_id": "text",
    },
    required=("last_name", "birth_date"),
)
EMPLOYMENTS = Resource(
    "employments",
    {
        "employee_external_id": "text",
        "department_external_id": "text",
        "start_date": "date",
        "end_date": "date",
        "hours_per_week": "decimal",
        "function": "text",
        "salary": "decimal",
        "salary_kind": "text",
        "employer_external_id": "text",
    },
    references=("departments", "employees"),
    required=("employee_external_id", "department_external_id", "start_date"),
)
ABSENCE_FIELDS: dict[str, Kind] = {
    "employee_external_id": "text",
    "employment_external_id": "text",
    "start_date": "date",
    "report_date": "date",
    "expected_end": "date",
    "end_date": "date",
    "presence_pct": "decimal",
}
ABSENCES = Resource(
    "absences",
    {**ABSENCE_FIELDS, "employer_external_id": "text"},
    references=("employees", "employments"),
    required=("employee_external_id", "employment_external_id", "start_date"),
)
USERS = Resource(
    "users",
    {
        "employee_external_id": "text",
        "username": "text",
        "email": "text",
        "blocked": "bool",
        "employer_external_id": "text",
    },
    references=("employees",),
    required=("employee_external_id", "username"),
)
# Absences entered by OH users; read with ``changed_since`` to flow back into AFAS.
REGISTERED_ABSENCES = Resource("registered-absences", ABSENCE_FIELDS)

RESOURCES: dict[str, Resource] = {r.name: r for r in (DEPARTMENTS, EMPLOYEES, EMPLOYMENTS, ABSENCES, USERS)}
# Referenced resources first: the OH system checks that references exist and are active.
ORDER: tuple[str, ...] = ("departments", "employees", "employments", "absences", "users")
# What every record carries besides its fields.
RECORD_META: dict[str, str] = {
    "external_id": "text",
    "active": "bool",
    "version": "int",
    "created_at": "datetime",
    "updated_at": "datetime",
}


def resource(name: str) -> Resource:
    """The resource called ``name`` (the five synced ones and ``registered-absences``)."""
    if name == REGISTERED_ABSENCES.name:
        return REGISTERED_ABSENCES
    try:
        return RESOURCES[name]
    except KeyError:
        known = ", ".join([*RESOURCES, REGISTERED_ABSENCES.name])
        raise KeyError(f"unknown OH resource {name!r}; known: {known}") from None


def employment_external_id(employee_id: object, employment_id: object) -> str:
    """``"{employee}-{Dienstverband}"``: AFAS numbers employments (``DvId``) per employee, so the pair."""
    return f"{employee_id}-{employment_id}"


def split_employment_external_id(value: str) -> tuple[str, str]:
    """``"1001-2"`` → ``("1001", "2")``; the employment number is the part after the last dash."""
    employee, dash, employment = str(value).rpartition("-")
    if not dash or not employee or not employment:
        raise ValueError(f"employment external id {value!r} is not '<employee>-<employment>'")
    return employee, employment
