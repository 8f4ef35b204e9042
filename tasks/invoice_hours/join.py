"""Step 3: join valid registrations to AFAS: internal department, or debtor + project + open period.

The key is the customer number: TOPdesk branch ``clientReferenceNumber`` = AFAS ``DebtorId`` (TOPdesk
reference decision §9.13). Internal departments are recognised first (their hours are charged internally).
Every other registration needs a known, unblocked debtor, a project of that debtor that is still open
(sources in the configured order: the incident's project field, the configured mapping, the debtor's
default project) and an open AFAS period for its Amsterdam date. A registration that fails is rejected with
the first reason that applies, phrased ``<what>: <detail>`` (``unknown customer: '99999'``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from schemas.afas import Debtors, Periods, Projects
from tasks.invoice_hours.config import BillingConfig, Mode
from tasks.invoice_hours.order import group_codes

CUSTOMER = "customer"
INTERNAL = "internal"


@dataclass(frozen=True)
class Masters:
    """The AFAS master frames the billing needs (docs/contracts.md §2)."""

    debtors: pd.DataFrame
    projects: pd.DataFrame
    periods: pd.DataFrame
    sales_prices: pd.DataFrame | None = None
    employees: pd.DataFrame | None = None  # ``operator_id`` → ``employee_id`` (AFAS EmId), optional
    checked: bool = False  # set by ``checked_copy()``: the frames passed their schemas

    def checked_copy(self) -> Masters:
        """The same master data, validated against ``schemas/afas.py`` once (a run joins many times)."""
        if self.checked:
            return self
        return replace(
            self,
            debtors=Debtors.validate(self.debtors),
            projects=Projects.validate(self.projects),
            periods=Periods.validate(self.periods),
            checked=True,
        )


def join_masters(
    frame: pd.DataFrame, masters: Masters, config: BillingConfig
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return ``(joined, rejects)``; rejects keep the input columns plus ``reason`` and ``step``."""
    frame = with_local_dates(frame.reset_index(drop=True), config.timezone)
    original_customer = frame["customer_number"]
    customer = clean_text(original_customer)
    frame = frame.assign(customer_number=customer)
    reason = pd.Series(pd.NA, index=frame.index, dtype="object")
    frame = frame.join(_internal_columns(customer, config))
    internal = frame["target"].eq(INTERNAL)
    masters = masters.checked_copy()
    reason = _debtor_reasons(customer, internal, masters.debtors, reason)
    frame, reason = _resolve_projects(frame, ~internal, masters.projects, config, reason)
    frame, reason = _administrations(frame, config, reason)
    frame, reason = _periods(frame, masters.periods, reason, config)
    frame = frame.assign(employee_id=_employees(frame, masters.employees, config))
    reason = _employee_reasons(frame, config, reason)
    rejected = reason.notna()
    rejects = frame.loc[rejected, list(frame.columns[: _input_width(frame)])]
    rejects = rejects.assign(
        customer_number=original_customer[rejected], reason=reason[rejected].astype("str"), step="join"
    )
    return frame.loc[~rejected].reset_index(drop=True), rejects.reset_index(drop=True)


def _input_width(frame: pd.DataFrame) -> int:
    # The input columns come first; the local-date columns and the join's own columns follow them.
    return list(frame.columns).index("entry_local")


def with_local_dates(frame: pd.DataFrame, timezone: str) -> pd.DataFrame:
    """Add ``entry_local`` (wall-clock time) and ``work_date`` (local midnight): billing periods are local."""
    local = frame["entry_date"].dt.tz_convert(timezone)
    return frame.assign(entry_local=local, work_date=local.dt.normalize())


def clean_text(values: pd.Series) -> pd.Series:
    """Strip whitespace; blank becomes missing."""
    return on_distinct(values, lambda text: text.str.strip().replace("", None))


def on_distinct(values: pd.Series, transform: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """Apply a string ``transform`` to each distinct value once (ids and names repeat a lot), as text."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    done = transform(pd.Series(uniques, dtype="str"))
    mapped = done.to_numpy(dtype=object).take(codes, mode="clip") if len(done) else np.full(len(codes), None)
    missing: Any = None  # numpy's stubs type where()'s branches alike; a None cell is what pandas reads as NA
    return pd.Series(np.where(codes < 0, missing, mapped), index=values.index, dtype="str")


def _first(reason: pd.Series, mask: pd.Series, text: Callable[[pd.Index], pd.Series] | str) -> pd.Series:
    """Set ``text`` where ``mask`` holds and no earlier reason was given.

    ``text`` is a constant or a function of the rows it applies to: built only for those rows.
    """
    target = reason.isna() & mask
    if not target.any():
        return reason
    rows = reason.index[target.to_numpy()]
    reason = reason.copy()
    reason.loc[rows] = text(rows) if callable(text) else text
    return reason


def _internal_columns(customer: pd.Series, config: BillingConfig) -> pd.DataFrame:
    """Target, internal administration, cost account and centre: worked out once per distinct customer."""
    codes, distinct = pd.factorize(customer, use_na_sentinel=False)  # a missing customer is a value too
    per_customer = _internal_columns_of(pd.Series(distinct, dtype=customer.dtype), config)
    return per_customer.take(codes).set_axis(customer.index)


def _internal_columns_of(customer: pd.Series, config: BillingConfig) -> pd.DataFrame:
    table = config.department_table()
    found = customer.isin(list(table))
    admin = customer.map({code: admin for code, (admin, _) in table.items()})
    account = customer.map({code: dep.cost_account for code, (_, dep) in table.items()})
    centre = customer.map({code: dep.cost_centre for code, (_, dep) in table.items()})
    return pd.DataFrame(
        {
            # Two shared strings, not a new text object per row (``np.where`` on texts makes one each).
            "target": np.array([CUSTOMER, INTERNAL], dtype=object).take(found.to_numpy(dtype=np.int64)),
            "internal_administration": admin.astype("Int64"),
            "cost_account": account.astype("str"),
            "cost_centre": centre.where(centre.notna(), None).astype("str"),
        },
        index=customer.index,
    )


def _debtor_reasons(
    customer: pd.Series, internal: pd.Series, debtors: pd.DataFrame, reason: pd.Series
) -> pd.Series:
    debtor_ids = clean_text(debtors["DebtorId"])
    blocked_ids = debtor_ids[debtors["Blocked"].to_numpy()]
    external = ~internal
    reason = _first(reason, external & customer.isna(), "missing customer number")
    # Looked up once per distinct customer (a missing one included), then spread to the rows.
    codes, distinct = pd.factorize(customer, use_na_sentinel=False)
    distinct = pd.Series(distinct, dtype=customer.dtype)
    listed = distinct.isin(debtor_ids).to_numpy()[codes]
    unknown = external & customer.notna() & ~listed
    reason = _first(reason, unknown, lambda rows: "unknown customer: " + _quoted(customer[rows]))
    blocked = external & distinct.isin(blocked_ids).to_numpy()[codes]
    return _first(reason, blocked, lambda rows: "blocked debtor: " + _quoted(customer[rows]))


def _quoted(values: pd.Series) -> pd.Series:
    return "'" + values.astype("str").fillna("") + "'"


def _resolve_projects(
    frame: pd.DataFrame, external: pd.Series, projects: pd.DataFrame, config: BillingConfig, reason: pd.Series
) -> tuple[pd.DataFrame, pd.Series]:
    # The project follows from the customer and the incident's project field alone: worked out once per
    # distinct pair, then spread to the rows by position.
    codes = group_codes([frame["customer_number"], frame["project_ref"]])
    _, first = np.unique(codes, return_index=True)  # group numbers are 0..n-1, first seen first
    facts = _project_facts(frame.iloc[first].reset_index(drop=True), projects, config)

    def spread(column: str) -> pd.Series:
        return pd.Series(facts[column].array.take(codes), index=frame.index)

    candidate, source, owner, unit, ready = (
        spread(column) for column in ("candidate", "source", "owner", "unit", "ready")
    )
    checked_out, listed = spread("checked_out"), spread("listed")
    pending = external & reason.isna()
    none = pending & candidate.isna()
    customer = frame["customer_number"]
    if config.projects.required:
        none_text = "unknown project: no project found for debtor "
        reason = _first(reason, none, lambda rows: none_text + _quoted(customer[rows]))
    known = candidate.notna()
    missing = pending & known & ~listed
    reason = _first(reason, missing, lambda rows: "unknown project: " + _quoted(candidate[rows]))
    wrong = pending & known & listed & owner.ne(customer)
    reason = _first(
        reason,
        wrong,
        lambda rows: (
            "project not of this debtor: "
            + _quoted(candidate[rows])
            + " belongs to debtor "
            + _quoted(owner[rows])
        ),
    )
    closed = pending & known & (ready.notna() | checked_out)
    reason = _first(
        reason, closed, lambda rows: "project closed: " + _quoted(candidate[rows]) + _ready(ready[rows])
    )
    columns = {
        "debtor_id": frame["customer_number"].where(external, None).astype("str"),
        "project_id": candidate.where(external, None).astype("str"),
        "project_source": source.where(external & candidate.notna(), None).astype("str"),
        "project_administration": unit.astype("Int64"),
    }
    return frame.assign(**columns), reason


def _project_facts(frame: pd.DataFrame, projects: pd.DataFrame, config: BillingConfig) -> pd.DataFrame:
    """Per row its project candidate and source, owner, unit, ready date, whether listed and checked out."""
    candidate, source = _project_candidates(frame, projects, config)
    table = projects.assign(ProjectId=clean_text(projects["ProjectId"])).set_index("ProjectId")
    return pd.DataFrame(
        {
            "candidate": candidate,
            "source": source,
            "owner": candidate.map(clean_text(table["DebtorId"])),
            "unit": candidate.map(table["UnitId"]),
            "ready": candidate.map(table["DateReady"]),
            "checked_out": candidate.isin(table.index[_checked_out(table).to_numpy()]),
            "listed": candidate.isin(table.index),
        }
    )


def _checked_out(projects: pd.DataFrame) -> pd.Series:
    """AFAS's "Gereed" flag (``CheckedOut``) when the GetConnector has it; ``DateReady`` alone otherwise."""
    if "CheckedOut" not in projects.columns:
        return pd.Series(False, index=projects.index)
    return projects["CheckedOut"].astype("boolean").fillna(False).astype(bool)


def _ready(dates: pd.Series) -> pd.Series:
    text = dates.dt.strftime("%Y-%m-%d").fillna("")
    return pd.Series(np.where(dates.notna(), " (ready " + text + ")", " (marked ready)"), index=dates.index)


def _project_candidates(
    frame: pd.DataFrame, projects: pd.DataFrame, config: BillingConfig
) -> tuple[pd.Series, pd.Series]:
    """The first project each configured source yields, and the name of that source."""
    customer = frame["customer_number"]
    by_source = {
        "incident_field": clean_text(frame["project_ref"]),
        "mapping": customer.map(config.projects.mapping).astype("str"),
        "debtor_default": customer.map(default_projects(projects)).astype("str"),
    }
    candidate = pd.Series(None, index=frame.index, dtype="str")
    source = pd.Series(None, index=frame.index, dtype="str")
    for name in config.projects.sources:
        fill = candidate.isna() & by_source[name].notna()
        candidate = candidate.mask(fill, by_source[name])
        source = source.mask(fill, name)
    return candidate, source


def default_projects(projects: pd.DataFrame) -> pd.Series:
    """Per debtor its default project: the lowest open ``ProjectId`` (AFAS has no default flag)."""
    is_open = projects["DateReady"].isna() & ~_checked_out(projects)
    open_projects = projects[is_open & projects["DebtorId"].notna()]
    ordered = open_projects.assign(DebtorId=clean_text(open_projects["DebtorId"])).sort_values("ProjectId")
    return ordered.drop_duplicates("DebtorId").set_index("DebtorId")["ProjectId"].astype("str")


def _administrations(
    frame: pd.DataFrame, config: BillingConfig, reason: pd.Series
) -> tuple[pd.DataFrame, pd.Series]:
    default = config.projects.default_administration
    admin = frame["internal_administration"].fillna(frame["project_administration"]).fillna(default)
    admin = admin.astype("int64")
    configured = admin.isin(list(config.administrations))
    reason = _first(
        reason,
        ~configured,
        lambda rows: (
            "administration not configured: "
            + admin[rows].astype("str")
            + " (project "
            + _quoted(frame.loc[rows, "project_id"])
            + ")"
        ),
    )
    frame = frame.drop(columns=["internal_administration", "project_administration"])
    return frame.assign(administration=admin), reason


def _periods(
    frame: pd.DataFrame, periods: pd.DataFrame, reason: pd.Series, config: BillingConfig
) -> tuple[pd.DataFrame, pd.Series]:
    """AFAS period per registration; a closed one moves to the next open one (``closed_period``)."""
    from tasks.invoice_hours.periods import posting_periods  # periods builds on this module's lookups

    found = lookup_periods(frame["administration"], frame["work_date"], periods)
    year = found["year"].fillna(0).astype("int64")
    number = found["number"].fillna(0).astype("int64")
    frame = frame.assign(period_year=year, period_number=number, period=period_labels(year, number))
    frame = posting_periods(frame, periods, config)
    closed = ~found["open"] & frame["moved_from"].eq("")
    reason = _first(
        reason,
        closed,
        lambda rows: (
            "period closed in AFAS: administration "
            + frame.loc[rows, "administration"].astype("str")
            + ", "
            + frame.loc[rows, "work_date"].dt.strftime("%Y-%m-%d")
        ),
    )
    return frame, reason


def period_labels(year: pd.Series, number: pd.Series) -> pd.Series:
    """``YYYY-PP`` per row, formatted once per distinct period."""
    code = year * 100 + number
    labels = {int(c): f"{int(c) // 100:04d}-{int(c) % 100:02d}" for c in pd.unique(code)}
    return code.map(labels).astype("str")


def day_numbers(stamps: pd.Series) -> np.ndarray:
    """Local calendar days as integers (days since 1970-01-01), ignoring the zone's offset."""
    naive = stamps.dt.tz_localize(None) if isinstance(stamps.dtype, pd.DatetimeTZDtype) else stamps
    return naive.to_numpy(dtype="datetime64[ns]").astype("datetime64[D]").astype("int64")


def lookup_periods(units: pd.Series, dates: pd.Series, periods: pd.DataFrame) -> pd.DataFrame:
    """AFAS period per (administration, local date): ``year``, ``number`` and whether it is ``open``."""
    table = periods.dropna(subset=["DateFrom", "DateTo"])
    table = pd.DataFrame(
        {
            "unit": table["Unit"].astype("int64").to_numpy(),
            "start": day_numbers(table["DateFrom"].dt.tz_convert("Europe/Amsterdam")),
            "stop": day_numbers(table["DateTo"].dt.tz_convert("Europe/Amsterdam")),
            "year": table["Year"].astype("int64").to_numpy(),
            "number": table["Period"].astype("int64").to_numpy(),
            "blocked": table["Blocked"].astype("bool").to_numpy(),
        }
    ).sort_values("start")
    left = pd.DataFrame({"unit": units.astype("int64").to_numpy(), "day": day_numbers(dates)})
    left = left.assign(position=np.arange(len(left))).sort_values("day")
    merged = pd.merge_asof(left, table, left_on="day", right_on="start", by="unit", direction="backward")
    merged = merged.sort_values("position").set_index(units.index)
    inside = merged["stop"].notna() & (merged["day"] <= merged["stop"])
    opened = inside & ~merged["blocked"].astype("boolean").fillna(True)
    return pd.DataFrame(
        {
            "year": merged["year"].where(inside).astype("Int64"),
            "number": merged["number"].where(inside).astype("Int64"),
            "open": opened.astype("bool"),
        },
        index=units.index,
    )


def _employees(frame: pd.DataFrame, employees: pd.DataFrame | None, config: BillingConfig) -> pd.Series:
    """AFAS employee (``EmId``) per registration: from ``employees`` when given, else ``[employees]``."""
    if employees is not None and not employees.empty:
        table = employees.dropna(subset=["operator_id"]).drop_duplicates("operator_id")
        return frame["operator_id"].map(table.set_index("operator_id")["employee_id"]).astype("str")
    operators = config.employees.operators
    if not operators:
        return pd.Series(None, index=frame.index, dtype="str")
    by_id = frame["operator_id"].map(operators)
    by_name = frame["operator_name"].map(operators) if "operator_name" in frame else None
    found = by_id if by_name is None else by_id.fillna(by_name)
    return found.where(found.notna(), None).astype("str")


def _employee_reasons(frame: pd.DataFrame, config: BillingConfig, reason: pd.Series) -> pd.Series:
    """Customer hours of a realisation administration with ``require_employee`` need an AFAS employee."""
    strict = [
        a
        for a, admin in config.administrations.items()
        if admin.require_employee and admin.mode == Mode.PROJECT_REALISATION
    ]
    if not strict:
        return reason
    missing = frame["employee_id"].isna() | frame["employee_id"].astype("str").str.strip().eq("")
    mask = frame["target"].eq(CUSTOMER) & frame["administration"].isin(strict) & missing
    name = frame["operator_name"] if "operator_name" in frame else frame["operator_id"]

    def text(rows: pd.Index) -> pd.Series:
        return (
            "operator has no AFAS employee: "
            + _quoted(name[rows])
            + " ("
            + frame.loc[rows, "operator_id"].fillna("").astype("str")
            + ")"
        )

    return _first(reason, mask, text)
