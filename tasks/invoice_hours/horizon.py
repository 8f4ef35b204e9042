"""The horizon of a regular run: every registration from the first open AFAS period to the cut-off.

A run without dates does not bill "the previous month": it reconciles every registration dated from the
horizon start up to the cut-off (the last day of the previous month, Europe/Amsterdam). The start is the
first day of the earliest period AFAS still has open for an administration this run bills, but never more
than ``reconciliation.horizon_months`` calendar months before the cut-off. So hours entered late, or changed
in a month already billed, are billed or corrected by the next regular run, and a period AFAS closed is not
read again (its registrations could only be booked in a later period anyway).
"""

from __future__ import annotations

from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pandas as pd

from koppel import clock
from koppel.clock import AMSTERDAM
from tasks.invoice_hours.config import BillingConfig


def today(timezone: str = AMSTERDAM.key) -> date:
    """The local date now (one place, so tests can pin the clock)."""
    return clock.today(ZoneInfo(timezone))


def horizon(periods: pd.DataFrame | None, config: BillingConfig, on: date | None = None) -> tuple[date, date]:
    """``(first, last)`` day of the horizon (inclusive) for a regular run on ``on`` (default: today)."""
    on = on or today(config.timezone)
    last = on.replace(day=1) - timedelta(days=1)
    months = config.reconciliation.horizon_months
    year, month = last.year, last.month - (months - 1)
    while month < 1:
        year, month = year - 1, month + 12
    earliest = date(year, month, 1)
    first_open = _first_open(periods, config, last)
    first = max(earliest, first_open) if first_open is not None else last.replace(day=1)
    return min(first, last.replace(day=1)), last


def _first_open(periods: pd.DataFrame | None, config: BillingConfig, last: date) -> date | None:
    """First day of the earliest open period (of an administration in scope) that starts before ``last``."""
    if periods is None or periods.empty:
        return None
    table = periods.dropna(subset=["DateFrom"])
    units = table["Unit"].astype("int64")
    billed = units.map(lambda unit: unit in config.administrations and config.in_scope(unit)).astype(bool)
    chosen = table[~table["Blocked"].astype("bool") & billed]
    starts = chosen["DateFrom"].dt.tz_convert(config.timezone).dt.date
    starts = starts[starts <= last]
    return None if starts.empty else starts.min()
