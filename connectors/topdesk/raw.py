"""Reading what TOPdesk served, value by value, without trusting its shape.

Every helper takes any JSON value (an object, a list, a number, text, a flag, null) and either returns
the usable value or ``None`` plus a reason naming the field, so one malformed row can never stop a run.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

MAX_ABS_MINUTES = 10**9  # beyond this a time value is not a duration (and not a safe integer in float)
UUID = re.compile(r"^[0-9A-Za-z][0-9A-Za-z_-]{0,63}$")  # what may go into an ``id=in=(…)`` query


def show(value: Any) -> str:
    """A short, quoted rendering of a served value for a reason text."""
    text = repr(value)
    return text if len(text) <= 60 else text[:59] + "…"


def usable_id(value: Any) -> str | None:
    """An id as text, or ``None`` when it is missing or not an id (an object, a list, a flag, a fraction)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    return text or None


def id_problem(value: Any, name: str) -> str | None:
    """Why ``value`` is not an id (``None`` when it is one, or is simply missing: validation says so)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return None if usable_id(value) else f"{name}: not an id ({show(value)})"


def number(value: Any) -> float | None:
    """A served number as float; ``None`` for anything else (text, flags, objects, NaN/∞, out of range)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, int) and abs(value) > MAX_ABS_MINUTES * 60:
        return None
    result = float(value)
    return result if math.isfinite(result) and abs(result) <= MAX_ABS_MINUTES * 60 else None


def number_problem(value: Any, name: str) -> str | None:
    """Why ``value`` is not a usable number (``None`` when it is one or is missing)."""
    if value is None or number(value) is not None:
        return None
    return f"{name}: not a usable number ({show(value)})"


def joined(*problems: str | None) -> str | None:
    """The problems found, joined with ``; `` (``None`` when there are none)."""
    found = [p for p in problems if p]
    return "; ".join(found) if found else None


def unreadable(row: Any, kind: str, unit: str) -> dict[str, Any]:
    """A served element that is not an object: one record, rejected by validation with this reason."""
    return {"kind": kind, "time_unit": unit, "read_error": f"row: not an object ({show(row)})"}


def dig(value: Any, path: str) -> Any:
    """``value["a"]["b"]`` for ``"a.b"``; ``None`` when any step is missing."""
    for step in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(step)
    return value


def text(value: Any) -> str | None:
    """``value`` as text; ``None`` for missing, NaN and blank values."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return None if str(value).strip() == "" else str(value)
