"""AFAS HR GetConnector frames → normalised HR frames (schemas/hr.py), by the configured column names.

A normalised frame holds plain Python values only — text, ``None``, and ``bool`` for ``blocked`` — with
dates as ``YYYY-MM-DD`` (the Amsterdam calendar day; AFAS date-times are local time) and decimals as exact
text (``"36.00"``). That is the form stored as the AFAS mirror (a JSON round trip gives back the same
values) and compared with what the OH system was sent. Values that do not convert are kept as text so
that validation can reject the row with a reason instead of silently dropping it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pandas as pd

from connectors.occupational_health.endpoints import employment_external_id
from koppel.clock import AMSTERDAM
from schemas.hr import as_decimal
from tasks.hr_sync.config import HrConfig, HrConfigError
from tasks.invoice_hours.money import CENT
from tasks.names import split_dutch_name


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and value != value)


def text(value: Any) -> str | None:
    """Trimmed text; empty → None; whole numbers without a fraction (``DvId`` 2 → ``"2"``)."""
    if _missing(value):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float | Decimal) and value == int(value):
        return str(int(value))
    if isinstance(value, datetime | date):
        return value.isoformat()
    stripped = str(value).strip()
    return stripped or None


def day(value: Any) -> str | None:
    """The Amsterdam calendar day ``YYYY-MM-DD``; unparseable text is kept as it was."""
    if _missing(value):
        return None
    if isinstance(value, datetime):
        local = value.astimezone(AMSTERDAM) if value.tzinfo is not None else value
        return local.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    raw = str(value).strip()
    try:
        return date.fromisoformat(raw[:10]).isoformat()
    except ValueError:
        return raw or None


def decimal_text(value: Any) -> str | None:
    """An exact decimal as text: two decimals when that loses nothing (``36`` → ``"36.00"``), else as is."""
    if _missing(value):
        return None
    number = as_decimal(value)
    if number is None:
        return str(value).strip() or None
    return f"{number:.2f}" if number == number.quantize(CENT) else format(number.normalize(), "f")


def flag(value: Any) -> bool | None:
    """A boolean (AFAS sends JSON booleans; the frame has pandas' nullable boolean)."""
    if _missing(value):
        return None
    if isinstance(value, str):
        return {"true": True, "1": True, "false": False, "0": False}.get(value.strip().lower())
    return bool(value)


def stamp(value: Any) -> str | None:
    """A modified date as ISO text with its offset (Amsterdam)."""
    if _missing(value):
        return None
    if isinstance(value, datetime):
        return (value.astimezone(AMSTERDAM) if value.tzinfo else value).isoformat()
    return str(value)


Convert = Callable[[Any], Any]
# Normalised fields per entity and how each is converted; the AFAS column names come from the config.
FIELDS: dict[str, dict[str, Convert]] = {
    "departments": {"id": text, "name": text, "parent_id": text, "manager_id": text},
    "employees": {
        "id": text,
        "first_name": text,
        "name_prefix": text,
        "last_name": text,
        "initials": text,
        "birth_date": day,
        "gender": text,
        "email": text,
        "phone": text,
    },
    "employments": {
        "employee_id": text,
        "employment_id": text,
        "department_id": text,
        "function": text,
        "start_date": day,
        "end_date": day,
        "hours_per_week": decimal_text,
        "salary": decimal_text,
        "employer_id": text,
    },
    "absences": {
        "id": text,
        "employee_id": text,
        "employment_id": text,
        "start_date": day,
        "report_date": day,
        "expected_end": day,
        "end_date": day,
        "presence_pct": decimal_text,
    },
    "users": {"id": text, "employee_id": text, "username": text, "email": text, "blocked": flag},
}
KEYS = {"departments": "id", "employees": "id", "employments": "key", "absences": "id", "users": "id"}


def columns_of(entity: str, config: HrConfig) -> list[str]:
    """The columns of ``entity``'s normalised frame, in order."""
    fields = [name for name in FIELDS[entity] if name != "salary" or config.salary_column]
    if entity == "employments" and not config.employments.columns.employer_id:
        fields.remove("employer_id")  # not read: the mirror keeps its shape for single-employer customers
    key = ["key"] if entity == "employments" else []
    modified = ["modified"] if config.source(entity).modified else []
    return [*key, *fields, *modified]


def normalise(entity: str, raw: pd.DataFrame, config: HrConfig) -> pd.DataFrame:
    """``entity``'s AFAS frame as a normalised frame; a configured column AFAS does not have stops the run."""
    source, wanted = config.source(entity), config.columns(entity)
    absent = sorted({c for c in wanted.values() if c not in raw.columns})
    if source.modified and source.modified not in raw.columns:
        absent.append(source.modified)
    if absent:
        raise HrConfigError(
            f"{source.connector} has no column(s) {', '.join(absent)} configured for {entity}; "
            f"its columns are: {', '.join(map(str, raw.columns))}"
        )
    out = pd.DataFrame(index=raw.index)
    for name in columns_of(entity, config):
        if name == "key":
            continue
        if name == "modified":
            out[name] = _convert(raw[source.modified], stamp)
        elif name in wanted:
            out[name] = _convert(raw[wanted[name]], FIELDS[entity][name])
        else:
            out[name] = pd.Series([None] * len(raw), index=raw.index, dtype=object)
    if entity == "employees" and "full_name" in wanted:
        _fill_name_parts(out, raw[wanted["full_name"]], wanted)
    if entity == "employments":
        keys = [_employment_key(e, n) for e, n in zip(out["employee_id"], out["employment_id"], strict=True)]
        out.insert(0, "key", pd.Series(keys, index=out.index, dtype=object))
    return out.reset_index(drop=True)


NAME_PARTS = ("first_name", "name_prefix", "last_name")


def _fill_name_parts(out: pd.DataFrame, full: pd.Series, wanted: dict[str, str]) -> None:
    """Fill the name fields that have no column of their own from the full name (Dutch prefix rule)."""
    parts = [split_dutch_name(text(value)) for value in full.astype(object)]
    for index, name in enumerate(NAME_PARTS):
        if name not in wanted:
            out[name] = pd.Series([p[index] for p in parts], index=out.index, dtype=object)


def _convert(values: pd.Series, convert: Convert) -> pd.Series:
    return pd.Series([convert(v) for v in values.astype(object)], index=values.index, dtype=object)


def _employment_key(employee: str | None, employment: str | None) -> str | None:
    return None if employee is None or employment is None else employment_external_id(employee, employment)


def empty(entity: str, config: HrConfig) -> pd.DataFrame:
    """An empty normalised frame of ``entity`` with all its columns."""
    return pd.DataFrame({name: pd.Series([], dtype=object) for name in columns_of(entity, config)})


def plain_frame(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``frame`` (e.g. read back from the store) with exactly ``columns``, object dtype, missing → None."""
    out = frame.reindex(columns=columns).astype(object)
    return out.where(out.notna(), None).reset_index(drop=True)
