"""AFAS date/time handling (reference §3.2, §3.5; decision §11.4).

AFAS renders date-times with a ``Z`` suffix, but they are Amsterdam local time, not UTC. We drop the
``Z`` and attach ``Europe/Amsterdam``. Filter values go the other way: ``YYYY-MM-DDTHH:MM:SS`` in
Amsterdam local time, without ``Z``.
"""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pandas as pd

from koppel.clock import AMSTERDAM

TZ_NAME = "Europe/Amsterdam"


def parse_local(values: pd.Series) -> pd.Series:
    """AFAS ``…Z`` strings (or ``None``) as tz-aware ``Europe/Amsterdam`` timestamps; NaT if unparseable.

    In the autumn hour that occurs twice the first (summer-time) occurrence is taken; a time that does
    not exist (spring forward) is moved to the first valid instant.
    """
    text = values.astype("string").str.strip().str.replace(r"(Z|[+-]00:?00)$", "", regex=True)
    naive = pd.to_datetime(text, format="ISO8601", errors="coerce")
    ambiguous = np.ones(len(naive), dtype=bool)
    local = naive.dt.tz_localize(TZ_NAME, ambiguous=ambiguous, nonexistent="shift_forward")
    return local.astype(f"datetime64[ns, {TZ_NAME}]")


def filter_value(value: datetime | date | str) -> str:
    """A filter value for AFAS: ``YYYY-MM-DDTHH:MM:SS``, Amsterdam local, no ``Z``.

    Naive datetimes are refused: the caller must say which zone it means.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("AFAS filter datetimes must be time-zone aware")
        return value.astimezone(AMSTERDAM).strftime("%Y-%m-%dT%H:%M:%S")
    return value.strftime("%Y-%m-%dT00:00:00")
