"""TOPdesk date/time handling (reference §2.4, decision §9.7).

TOPdesk sends ``2020-10-01T14:10:00.000+0000`` (offset without colon), ``+00:00`` or ``Z`` with
``dateFormat=iso8601``, with or without milliseconds. Anything else — including a time without an
offset, which would silently mean "the API user's zone", and a date beyond the year 2262 such as
``9999-12-31`` — parses to ``NaT`` so validation can reject it.
FIQL values always carry an explicit ``Z``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pandas as pd

_SHAPE = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})$"
_SHAPE_RE = re.compile(_SHAPE)
NS_MIN = pd.Timestamp.min.tz_localize("UTC")
NS_MAX = pd.Timestamp.max.tz_localize("UTC")


def parse_datetimes(values: pd.Series) -> pd.Series:
    """TOPdesk timestamps as ``datetime64[ns, UTC]``; ``NaT`` for missing or malformed text."""
    text = values.astype("string").str.strip()
    shaped = text.where(text.str.match(_SHAPE).fillna(False).astype(bool))
    parsed = pd.to_datetime(shaped, format="ISO8601", utc=True, errors="coerce")
    # 9999-12-31 and the like parse (microsecond resolution) but do not fit the contract's nanoseconds.
    in_range = parsed.isna() | ((parsed >= NS_MIN) & (parsed <= NS_MAX))
    return parsed.where(in_range).astype("datetime64[ns, UTC]")


def parse_datetime(value: str | None) -> datetime | None:
    """One TOPdesk timestamp as an aware UTC ``datetime`` or ``None`` (the rules of ``parse_datetimes``)."""
    if not isinstance(value, str) or not _SHAPE_RE.match(value.strip()):
        return None
    try:
        return datetime.fromisoformat(value.strip()).astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def fiql_datetime(value: datetime) -> str:
    """A FIQL date value with an explicit ``Z`` (``yyyy-MM-ddTHH:mm:ssZ``); naive values are refused."""
    if value.tzinfo is None:
        raise ValueError("TOPdesk query datetimes must be time-zone aware")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
