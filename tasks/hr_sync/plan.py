"""What the OH system should hold, computed from the complete AFAS mirror (normalised frames).

``desired_state`` turns the mirror into one frame of OH records per resource (``external_id`` + the body
fields of connectors/occupational_health/endpoints.py) and says which rows it cannot send:

- **held**: employees in a *flex construction* (two employments that overlap in time) are not supported;
  their employee, employments, absences and user accounts are held back and reported, never sent as a
  wrong picture, and never deactivated either (what the OH system already has stays);
- **rejected**: a row whose reference cannot be satisfied (an employment in a department AFAS does not
  list, an absence on an employment that is not synced), with the reason.

Only the accounts of department managers are sent as users. Held and rejected keys are *frozen*: the diff
neither upserts nor deactivates them. A department whose manager is held back (flex construction) is sent
without its manager, and listed in ``without_manager`` with the reason: the OH system never gets a
reference to an employee it was not sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

import pandas as pd

from connectors.occupational_health.endpoints import ORDER, RESOURCES, employment_external_id
from tasks.hr_sync.config import HrConfig
from tasks.hr_sync.validate import label, rejects_frame

FAR_FUTURE = "9999-12-31"
HELD_COLUMNS = ["entity", "key", "reason"]
FLEX_COLUMNS = ["employee_id", "employments", "overlap_from", "overlap_to"]


@dataclass
class Desired:
    """The OH records Koppel wants, per resource, and the rows it will not send."""

    records: dict[str, pd.DataFrame]
    held: pd.DataFrame
    rejects: pd.DataFrame
    flex: pd.DataFrame
    frozen: dict[str, set[str]] = field(default_factory=dict)
    without_manager: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=HELD_COLUMNS))


def records_frame(entity: str, rows: Sequence[Mapping[str, object]]) -> pd.DataFrame:
    """OH records of ``entity`` with ``external_id`` and every body field, object dtype."""
    columns = ["external_id", *RESOURCES[entity].fields]
    return pd.DataFrame(rows, columns=columns, dtype=object)


def find_flex(employments: pd.DataFrame, since: date | None = None) -> pd.DataFrame:
    """Employees with two employments whose periods overlap (an open end runs for ever), one row each.

    An overlap that ended before ``since`` (the absence window's first day) is history the OH system is
    not shown differently, so it does not count.
    """
    if employments.empty:
        return pd.DataFrame(columns=FLEX_COLUMNS, dtype=object)
    span = employments[["employee_id", "key", "start_date", "end_date"]].copy()
    span["end_date"] = span["end_date"].astype(object).where(span["end_date"].notna(), FAR_FUTURE)
    pairs = span.merge(span, on="employee_id", suffixes=("_a", "_b"))
    ends = pairs[["end_date_a", "end_date_b"]].min(axis=1)
    overlap = pairs[
        (pairs["key_a"] < pairs["key_b"])
        & (pairs["start_date_a"] <= pairs["end_date_b"])
        & (pairs["start_date_b"] <= pairs["end_date_a"])
        & (ends >= (since.isoformat() if since else ""))
    ]
    rows = []
    for employee, group in overlap.groupby("employee_id", sort=True):
        start = max(group["start_date_a"].max(), group["start_date_b"].max())
        end = min(group["end_date_a"].min(), group["end_date_b"].min())
        keys = sorted(set(group["key_a"]) | set(group["key_b"]))
        rows.append([employee, ", ".join(keys), start, None if end == FAR_FUTURE else end])
    return pd.DataFrame(rows, columns=FLEX_COLUMNS, dtype=object)


def desired_state(mirror: dict[str, pd.DataFrame], config: HrConfig, since: date | None = None) -> Desired:
    """The OH records the complete AFAS mirror asks for, in referential order, with held and rejected rows.

    ``since``: the absence window's first day; flex constructions that ended before it do not count.
    """
    flex = find_flex(mirror["employments"], since)
    flexed = {
        str(e): f"held back: employee {e} has concurrent employments {k} (flex construction, not supported)"
        for e, k in zip(flex["employee_id"], flex["employments"], strict=True)
    }
    held: list[dict[str, str]] = []
    notes: list[dict[str, object]] = []
    # Everyone AFAS names as a manager: a held-back manager's account stays held (frozen), not deactivated.
    managers = {str(m) for m in mirror["departments"]["manager_id"].dropna()}
    employers = employer_keys(mirror["employments"]) if config.several_employers else {}
    rejects: list[dict[str, str | None]] = []
    records: dict[str, pd.DataFrame] = {}
    known: dict[str, set[str]] = {}
    builders = {
        "departments": _departments,
        "employees": _employees,
        "employments": _employments,
        "absences": _absences,
        "users": _users,
    }
    for entity in ORDER:
        context = _Context(entity, records, known, flexed, held, rejects, config, notes, managers, employers)
        records[entity] = records_frame(entity, builders[entity](mirror[entity], context))
        known[entity] = set(records[entity]["external_id"])
    frozen: dict[str, set[str]] = {entity: set() for entity in ORDER}
    frozen_rows: list[Mapping[str, str | None]] = [*held, *rejects]
    for row in frozen_rows:
        frozen[str(row["entity"])].add(str(row["key"]))
    return Desired(
        records,
        pd.DataFrame(held, columns=HELD_COLUMNS, dtype=object),
        rejects_frame(rejects),
        flex,
        frozen,
        pd.DataFrame(notes, columns=HELD_COLUMNS, dtype=object),
    )


@dataclass
class _Context:
    """What a builder needs: the records built so far, flex employees and the lists to add to."""

    entity: str
    records: dict[str, pd.DataFrame]
    known_ids: dict[str, set[str]]
    flexed: dict[str, str]
    held: list[dict[str, str]]
    rejects: list[dict[str, str | None]]
    config: HrConfig
    notes: list[dict[str, object]] = field(default_factory=list)
    managers: set[str] = field(default_factory=set)
    employers: dict[str, str | None] = field(default_factory=dict)

    def employer(self, key: object) -> str | None:
        """The employer key of an employment (``"1001-1"``) or employee (``"1001"``); None when off."""
        return self.employers.get(str(key))

    def hold(self, key: str, employee: str) -> None:
        """Hold ``key`` back because its employee is in a flex construction."""
        reason = f"{label(self.entity, key)}: {self.flexed[employee]}"
        self.held.append({"entity": self.entity, "key": key, "reason": reason})

    def reject(self, key: str, text: str) -> None:
        """Reject ``key`` with a reason."""
        reason = f"{label(self.entity, key)}: {text}"
        self.rejects.append({"entity": self.entity, "key": key, "reason": reason, "step": "plan"})

    def placeable(
        self, key: str, employee: str | None, references: Sequence[tuple[str, object, str]]
    ) -> bool:
        """False (and held or rejected) when the employee is flexed or a reference is not synced."""
        if employee is not None and employee in self.flexed:
            self.hold(key, employee)
            return False
        for entity, value, field_name in references:
            if value not in self.known_ids[entity]:
                self.reject(
                    key, f"{field_name}: {value!r} is not synced ({label(entity, value)} is not sent)"
                )
                return False
        return True


def employer_keys(employments: pd.DataFrame) -> dict[str, str | None]:
    """Employer of every employment (by key) and employee: that of its current, else latest, employment."""
    if employments.empty or "employer_id" not in employments.columns:
        return {}
    keys: dict[str, str | None] = {
        str(k): e for k, e in zip(employments["key"], employments["employer_id"], strict=True)
    }
    span = employments.assign(
        end=employments["end_date"].astype(object).where(employments["end_date"].notna(), FAR_FUTURE)
    )
    latest = span.sort_values(["employee_id", "end", "start_date"], kind="stable").drop_duplicates(
        "employee_id", keep="last"
    )
    keys |= {str(e): k for e, k in zip(latest["employee_id"], latest["employer_id"], strict=True)}
    return keys


def _rows(frame: pd.DataFrame) -> list[dict[str, object]]:
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


def _departments(mirror: pd.DataFrame, context: _Context) -> list[dict[str, object]]:
    out = []
    for row in _rows(mirror):
        manager = row["manager_id"]
        if manager is not None and str(manager) in context.flexed:
            why = context.flexed[str(manager)]
            reason = f"{label('departments', row['id'])}: sent without manager {manager}: {why}"
            context.notes.append({"entity": "departments", "key": row["id"], "reason": reason})
            manager = None
        out.append(
            {
                "external_id": row["id"],
                "name": row["name"],
                "parent_external_id": row["parent_id"],
                "manager_employee_external_id": manager,
            }
        )
    return out


def _employees(mirror: pd.DataFrame, context: _Context) -> list[dict[str, object]]:
    fields = [f for f in RESOURCES["employees"].fields if f in mirror.columns]
    out = []
    for row in _rows(mirror):
        if context.placeable(str(row["id"]), str(row["id"]), []):
            out.append(
                {"external_id": row["id"], **{f: row[f] for f in fields}}
                | {"employer_external_id": context.employer(row["id"])}
            )
    return out


def _employments(mirror: pd.DataFrame, context: _Context) -> list[dict[str, object]]:
    kind = context.config.salary_kind
    out = []
    for row in _rows(mirror):
        references = [
            ("departments", row["department_id"], "department_id"),
            ("employees", row["employee_id"], "employee_id"),
        ]
        if not context.placeable(str(row["key"]), str(row["employee_id"]), references):
            continue
        salary = row.get("salary") if kind else None
        out.append(
            {
                "external_id": row["key"],
                "employee_external_id": row["employee_id"],
                "department_external_id": row["department_id"],
                "start_date": row["start_date"],
                "end_date": row["end_date"],
                "hours_per_week": row["hours_per_week"],
                "function": row["function"],
                "salary": salary,
                "salary_kind": kind if salary is not None else None,
                "employer_external_id": context.employer(row["key"]),
            }
        )
    return out


def _absences(mirror: pd.DataFrame, context: _Context) -> list[dict[str, object]]:
    out = []
    for row in _rows(mirror):
        employment = employment_external_id(row["employee_id"], row["employment_id"])
        references = [("employments", employment, "employment")]
        if context.placeable(str(row["id"]), str(row["employee_id"]), references):
            out.append(
                {
                    "external_id": row["id"],
                    "employee_external_id": row["employee_id"],
                    "employment_external_id": employment,
                    "start_date": row["start_date"],
                    "report_date": row["report_date"],
                    "expected_end": row["expected_end"],
                    "end_date": row["end_date"],
                    "presence_pct": row["presence_pct"],
                    "employer_external_id": context.employer(employment),
                }
            )
    return out


def _users(mirror: pd.DataFrame, context: _Context) -> list[dict[str, object]]:
    out = []
    for row in _rows(mirror):
        if str(row["employee_id"]) not in context.managers:
            continue  # only managers get an account in the OH system
        references = [("employees", row["employee_id"], "employee_id")]
        if context.placeable(str(row["id"]), str(row["employee_id"]), references):
            out.append(
                {
                    "external_id": row["id"],
                    "employee_external_id": row["employee_id"],
                    "username": row["username"],
                    "email": row["email"],
                    "blocked": bool(row["blocked"]),
                    "employer_external_id": context.employer(row["employee_id"]),
                }
            )
    return out
