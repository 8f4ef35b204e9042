"""Extract: TOPdesk time registrations and AFAS master data for a billing window.

Plain async readers (testable without Prefect) and the Prefect tasks that wrap them. Clients are created and
closed inside the task; only plain values and frames cross task boundaries (Prefect hashes task inputs).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from connectors.afas.client import AfasClient
from connectors.afas.settings import AfasSettings
from connectors.topdesk.client import TopdeskClient
from connectors.topdesk.settings import TopdeskSettings
from connectors.topdesk.timeregistrations import TimeRegistrationOptions, read_time_registrations
from tasks.billing.join import Masters
from tasks.secrets import load_settings

AMSTERDAM = ZoneInfo("Europe/Amsterdam")


@dataclass(frozen=True)
class Window:
    """A billing range of whole days in Europe/Amsterdam, ``first`` to ``last`` inclusive."""

    first: date
    last: date

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise ValueError(f"end_date {self.last} lies before start_date {self.first}")

    @property
    def start(self) -> datetime:
        """Midnight at the start of ``first``, Amsterdam time (aware)."""
        return datetime.combine(self.first, time(), tzinfo=AMSTERDAM)

    @property
    def end(self) -> datetime:
        """Midnight after ``last``, Amsterdam time (aware): the window is ``start <= t < end``."""
        return datetime.combine(self.last + timedelta(days=1), time(), tzinfo=AMSTERDAM)

    def label(self) -> str:
        """``2026-10-01..2026-10-31``."""
        return f"{self.first.isoformat()}..{self.last.isoformat()}"

    @property
    def month(self) -> str:
        """The calendar month the window starts in: ``2026-10``."""
        return f"{self.first:%Y-%m}"

    def months(self) -> list[Window]:
        """The window cut at calendar months (the first and last possibly partial)."""
        months, first = [], self.first
        while first <= self.last:
            following = (first.replace(day=1) + timedelta(days=32)).replace(day=1)
            months.append(Window(first, min(self.last, following - timedelta(days=1))))
            first = following
        return months


def previous_month(today: date) -> Window:
    """The calendar month before ``today``'s month."""
    last = today.replace(day=1) - timedelta(days=1)
    return Window(last.replace(day=1), last)


def billing_window(start_date: date | None, end_date: date | None, now: datetime | None = None) -> Window:
    """The window a run bills: the given dates, or the previous calendar month in Europe/Amsterdam."""
    today = (now or datetime.now(tz=AMSTERDAM)).astimezone(AMSTERDAM).date()
    default = previous_month(today)
    return Window(start_date or default.first, end_date or default.last)


async def read_registrations(
    settings: TopdeskSettings, window: Window, options: TimeRegistrationOptions | None = None
) -> tuple[pd.DataFrame, dict]:
    """All time registrations of the window (docs/contracts.md §1) and the client's request statistics."""
    async with TopdeskClient.from_settings(settings) as client:
        frame = await read_time_registrations(client, window.start, window.end, options)
        return frame, client.stats()


MASTER_CONNECTORS = {
    "debtors": "Profit_Debtor",
    "projects": "Profit_Projects",
    "periods": "Profit_periods_per_administration",
    "sales_prices": "Koppel_Sales_Prices",
}


async def read_masters(settings: AfasSettings) -> tuple[Masters, dict]:
    """The AFAS master frames the billing needs, read in parallel, and the request statistics."""
    async with AfasClient.from_settings(settings) as client:
        frames = await asyncio.gather(*(client.read_frame(c) for c in MASTER_CONNECTORS.values()))
        by_name = dict(zip(MASTER_CONNECTORS, frames, strict=True))
        return Masters(**by_name), client.stats()


@task(name="extract-topdesk-registrations", cache_policy=NO_CACHE)
def extract_registrations(window: Window) -> tuple[pd.DataFrame, dict]:
    """Read the window's time registrations of all five kinds from TOPdesk."""
    return asyncio.run(read_registrations(load_settings(TopdeskSettings), window))


@task(name="extract-afas-masters", cache_policy=NO_CACHE)
def extract_masters() -> tuple[Masters, dict]:
    """Read debtors, projects, periods and sales prices from AFAS."""
    return asyncio.run(read_masters(load_settings(AfasSettings)))
