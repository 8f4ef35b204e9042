"""The window guard: whatever the server returned, a run bills only its requested range."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from tasks.invoice_hours.window import split_outside_window


def frame(*moments: str | None) -> pd.DataFrame:
    dates = pd.Series(pd.to_datetime(list(moments), utc=True, format="ISO8601")).astype("datetime64[ns, UTC]")
    return pd.DataFrame({"registration_id": [f"r{i}" for i in range(len(moments))], "entry_date": dates})


def test_rows_outside_the_range_get_their_own_reason_and_the_edges_are_half_open():
    start, end = datetime(2026, 10, 5, tzinfo=UTC), datetime(2026, 10, 6, tzinfo=UTC)
    read = frame(
        "2026-10-05T00:00:00Z", "2026-10-05T23:59:59Z", "2026-10-06T00:00:00Z", "2026-10-04T23:59:00Z", None
    )
    inside, outside = split_outside_window(read, start, end)
    assert inside["registration_id"].tolist() == ["r0", "r1", "r4"]  # no date: validation rejects it
    assert outside["registration_id"].tolist() == ["r2", "r3"]
    assert outside["reason"].iloc[0] == (
        "entry_date: 2026-10-06T00:00:00Z outside the requested range "
        "[2026-10-05T00:00:00Z, 2026-10-06T00:00:00Z)"
    )
    assert set(outside["step"]) == {"window"}


def test_naive_bounds_are_refused():
    with pytest.raises(ValueError, match="time-zone aware"):
        split_outside_window(frame(), datetime(2026, 10, 5), datetime(2026, 10, 6))  # noqa: DTZ001


def test_the_run_window_is_cut_in_the_time_zone_billing_toml_names():
    from datetime import date
    from zoneinfo import ZoneInfo

    from tasks.invoice_hours.tasks import run_window
    from tests.billing_factories import CONFIG_TOML, config

    default, _ = run_window.fn(date(2026, 10, 1), date(2026, 10, 31), None, config())
    assert default.start == datetime(2026, 9, 30, 22, 0, tzinfo=UTC)  # midnight in Amsterdam (CEST)
    london = config(base=CONFIG_TOML.replace("Europe/Amsterdam", "Europe/London", 1))
    window, regular = run_window.fn(date(2026, 10, 1), date(2026, 10, 31), None, london)
    assert not regular and window.zone == ZoneInfo("Europe/London")
    assert window.start == datetime(2026, 9, 30, 23, 0, tzinfo=UTC)  # midnight in London (BST)
    assert window.end == datetime(2026, 11, 1, 0, 0, tzinfo=UTC)  # London is back on GMT by then
    assert [month.zone for month in window.months()] == [ZoneInfo("Europe/London")]
