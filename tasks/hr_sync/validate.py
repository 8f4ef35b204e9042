"""Split a normalised HR frame into valid rows and rejects, each reject with a reason naming record and field.

pandera runs the entity's model (schemas/hr.py) lazily, so every failure of every row is found in one pass;
the failure cases are phrased per field (``employee 1004: birth_date: missing``) and joined per row. A row
is rejected, never dropped silently; the good rows go on.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd
from pandera.errors import SchemaErrors

from schemas.hr import DATE_TEXT, SCHEMAS
from tasks.hr_sync.mapping import KEYS

REJECT_COLUMNS = ["entity", "key", "reason", "step"]
SEPARATOR = "; "
SINGULAR = {
    "departments": "department",
    "employees": "employee",
    "employments": "employment",
    "absences": "absence",
    "users": "user",
}


class HrContractError(ValueError):
    """A normalised frame lacks columns (a bug in the mapping, not bad data)."""


def rejects_frame(rows: list[dict[str, str | None]]) -> pd.DataFrame:
    """Rejects as a frame with ``REJECT_COLUMNS`` (also when there are none)."""
    return pd.DataFrame(rows, columns=REJECT_COLUMNS, dtype=object)


def label(entity: str, key: object) -> str:
    """``employee 1004`` / ``employment (no key)``: how a reason names its record."""
    shown = "(no key)" if key is None or (isinstance(key, float) and key != key) else str(key)
    return f"{SINGULAR.get(entity, entity)} {shown}"


def split_valid(entity: str, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(valid, rejects)``: valid rows exactly as given; rejects with ``entity, key, reason, step``."""
    frame = frame.reset_index(drop=True)
    reasons = _reasons(frame, SCHEMAS[entity].to_schema())
    key = KEYS[entity]
    rows = [
        {"entity": entity, "key": frame.at[i, key], "reason": f"{label(entity, frame.at[i, key])}: {text}"}
        | {"step": "validate"}
        for i, text in reasons.items()
    ]
    return frame.drop(index=list(reasons)).reset_index(drop=True), rejects_frame(rows)


def _reasons(frame: pd.DataFrame, schema: Any) -> dict[int, str]:
    try:
        schema.validate(frame, lazy=True)
    except SchemaErrors as errors:
        cases = errors.failure_cases
    else:
        return {}
    if cases["index"].isna().any():
        raise HrContractError(f"normalised HR frame breaks its contract:\n{cases.to_string()}")
    texts: dict[int, list[str]] = {}
    for case in cases.itertuples(index=False):
        text = phrase(case.schema_context, case.column, str(case.check), case.failure_case)
        found = texts.setdefault(int(case.index), [])
        if text not in found:
            found.append(text)
    return {index: SEPARATOR.join(found) for index, found in sorted(texts.items())}


_LENGTH = re.compile(r"str_length\((\S+), (\S+)\)")


def phrase(context: str, column: str, check: str, value: object) -> str:
    """Human text of one failure: the field, what is wrong, the offending value."""
    if context == "DataFrameSchema":
        return check  # a row rule such as "end_date lies before start_date"
    shown = repr(value)
    if check == "not_nullable":
        return f"{column}: missing"
    if check == "field_uniqueness":
        return f"{column}: {shown} occurs more than once"
    if check.startswith("str_matches"):
        wanted = DATE_TEXT if "\\d{4}" in check else "a whole number"
        return f"{column}: {shown} is not {wanted}"
    if match := _LENGTH.match(check):
        low, high = match.groups()
        if low == "1" and not str(value).strip():
            return f"{column}: missing"
        return f"{column}: {shown} is longer than {high} characters"
    if check.startswith("coerce_dtype"):
        return f"{column}: {shown} has the wrong type"
    return f"{column}: {shown} is not {check}"
