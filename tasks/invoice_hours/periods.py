"""AFAS periods a line is posted in: its own, or the first open one after it (``closed_period``).

A charge or reversal whose period AFAS has closed goes to the first open period after it when the
configuration says ``closed_period = "next_open"`` (the default), with its original date kept in the line
text; with ``"reject"`` the registration is rejected with the reason (join) or the reversal is reported.
``booking_date`` is the date AFAS books the line on: the work date, or the first day of the open period.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.invoice_hours.config import BillingConfig
from tasks.invoice_hours.join import day_numbers, lookup_periods, period_labels
from tasks.invoice_hours.order import group_codes


def _open_table(periods: pd.DataFrame) -> pd.DataFrame:
    table = periods.dropna(subset=["DateFrom", "DateTo"])
    table = table[~table["Blocked"].astype("bool")]
    return pd.DataFrame(
        {
            "unit": table["Unit"].astype("int64").to_numpy(),
            "start": day_numbers(table["DateFrom"].dt.tz_convert("Europe/Amsterdam")),
            "year": table["Year"].astype("int64").to_numpy(),
            "number": table["Period"].astype("int64").to_numpy(),
        }
    ).sort_values("start")


def next_open(units: pd.Series, days: np.ndarray, periods: pd.DataFrame) -> pd.DataFrame:
    """Per row the first open period of its administration starting after ``days``: year, number, start."""
    left = pd.DataFrame({"unit": units.astype("int64").to_numpy(), "day": np.asarray(days, dtype="int64")})
    left = left.assign(position=np.arange(len(left))).sort_values("day")
    merged = pd.merge_asof(
        left, _open_table(periods), left_on="day", right_on="start", by="unit", direction="forward"
    )
    merged = merged.sort_values("position").set_index(units.index)
    return pd.DataFrame(
        {
            "year": merged["year"].astype("Int64"),
            "number": merged["number"].astype("Int64"),
            "start": merged["start"].astype("Int64"),
        },
        index=units.index,
    )


def posting_periods(frame: pd.DataFrame, periods: pd.DataFrame | None, config: BillingConfig) -> pd.DataFrame:
    """``frame`` (with administration, work_date, period_year/number) with closed periods moved on.

    Adds ``booking_date`` and ``moved_from`` (the original period label, ``""`` when not moved). With
    ``closed_period = "reject"`` nothing moves (the join rejects those charges; AFAS refuses such a reversal,
    which is then reported as a failed document).
    """
    frame = frame.assign(booking_date=frame["work_date"], moved_from="")
    if periods is None or frame.empty or config.reconciliation.closed_period != "next_open":
        return frame
    status = _period_open(frame, periods)
    closed = ~status & frame["period_year"].astype("int64").gt(0)
    if not closed.any():
        return frame
    rows = frame[closed]
    first_days = day_numbers(rows["work_date"])
    found = next_open(rows["administration"], first_days + 1, periods)
    movable = found["year"].notna()
    if not movable.any():
        return frame
    index = rows.index[movable.to_numpy()]
    found = found[movable]
    year, number = found["year"].astype("int64"), found["number"].astype("int64")
    start = pd.to_datetime(found["start"].astype("int64"), unit="D").dt.tz_localize(config.timezone)
    frame.loc[index, "moved_from"] = frame.loc[index, "period"].astype("str")
    frame.loc[index, "period_year"] = year
    frame.loc[index, "period_number"] = number
    frame.loc[index, "period"] = period_labels(year, number)
    booking = frame["booking_date"].copy()
    booking.loc[index] = start.to_numpy()
    return frame.assign(booking_date=booking)


def _period_open(frame: pd.DataFrame, periods: pd.DataFrame) -> pd.Series:
    """Whether each row's (administration, period_year, period_number) is open in AFAS.

    Looked up on integer group numbers of the three keys (the first AFAS row of a key counts); rows whose
    key AFAS does not list fall back to the period that holds their work date.
    """
    keys = ["administration", "period_year", "period_number"]
    table = [periods[column].astype("int64").to_numpy() for column in ("Unit", "Year", "Period")]
    rows = [frame[column].astype("int64").to_numpy() for column in keys]
    group = group_codes([np.concatenate([known, row]) for known, row in zip(table, rows, strict=True)])
    known_group, row_group = group[: len(periods)], group[len(periods) :]
    groups, first = np.unique(known_group, return_index=True)
    state = np.full(int(group.max()) + 1 if len(group) else 0, -1, dtype=np.int8)  # -1: not listed
    state[groups] = periods["Blocked"].astype("bool").to_numpy()[first]
    found = state[row_group]
    is_open = found == 0
    unlisted = found < 0
    if unlisted.any():
        by_date = lookup_periods(frame["administration"][unlisted], frame["work_date"][unlisted], periods)
        is_open[unlisted] = by_date["open"].to_numpy(dtype=bool)
    return pd.Series(is_open, index=frame.index, dtype="bool")
