"""The window guard: a run bills only registrations entered in the range it asked TOPdesk for.

A server may return more than was asked (a tenant that ignores the FIQL date filter, an endpoint without
one, such as the operational activities). Whatever was served, a registration whose entry date lies
outside ``[start, end)`` is not billed by this run; it is counted in its own bucket, ``outside window``,
with the range in the reason. A plain function over the valid frame, so it composes with whatever range a
run asks for (one window, or every open period up to the cut-off).
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

BUCKET = "outside window"
STEP = "window"


def split_outside_window(
    frame: pd.DataFrame, start: datetime, end: datetime
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return ``(inside, outside)``; ``outside`` keeps every column plus ``reason`` and ``step``.

    ``start``/``end`` must be time-zone aware; ``entry_date`` is the parsed, UTC entry date. A row without
    an entry date is left in ``inside`` (validation rejects it with its own reason).
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("the window guard needs time-zone aware start and end")
    entry = frame["entry_date"]
    lower, upper = pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC")
    outside = (entry.notna() & ((entry < lower) | (entry >= upper))).to_numpy()
    if not outside.any():
        # ``.copy()``: an empty view would keep every column of all the rows alive as long as it lives.
        empty = frame.iloc[0:0].copy()
        return frame, empty.assign(reason=pd.Series(dtype="str"), step=pd.Series(dtype="str"))
    rows = frame[outside]
    shown = rows["entry_date"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    span = f"[{lower:%Y-%m-%dT%H:%M:%SZ}, {upper:%Y-%m-%dT%H:%M:%SZ})"
    reason = "entry_date: " + shown + f" outside the requested range {span}"
    return frame[~outside], rows.assign(reason=reason.astype("str"), step=STEP)
