"""Extract: TOPdesk time registrations and AFAS master data for a billing window.

Plain async readers (testable without Prefect) and the Prefect tasks that wrap them. Clients are created and
closed inside the task; only plain values and frames cross task boundaries (Prefect hashes task inputs).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import Engine

from connectors.afas.client import AfasClient
from connectors.afas.settings import AfasSettings
from connectors.topdesk.client import TopdeskClient
from connectors.topdesk.settings import TopdeskSettings
from connectors.topdesk.timeregistrations import (
    ActivityRead,
    ActivityScope,
    SourceResult,
    TimeRegistrationOptions,
    read_sources,
    read_time_registrations,
)
from koppel.clock import AMSTERDAM
from store import activities
from tasks.artifacts import publish_table
from tasks.invoice_hours.completeness import completeness_summary, mismatches
from tasks.invoice_hours.config import BillingConfig
from tasks.invoice_hours.join import Masters
from tasks.invoice_hours.prices import screen_prices
from tasks.invoice_hours.served import served_conservation, served_table
from tasks.invoice_hours.sources import TopdeskSources
from tasks.secrets import load_settings
from tasks.state import state_engine

FLOW = "invoice-hours"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Window:
    """A billing range of whole days, ``first`` to ``last`` inclusive, cut in ``zone``.

    ``zone``: billing.toml's ``timezone`` (``BillingConfig.zone``), Europe/Amsterdam unless it names another.
    """

    first: date
    last: date
    zone: ZoneInfo = AMSTERDAM

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise ValueError(f"end_date {self.last} lies before start_date {self.first}")

    @property
    def start(self) -> datetime:
        """Midnight at the start of ``first`` in the window's zone (aware)."""
        return datetime.combine(self.first, time(), tzinfo=self.zone)

    @property
    def end(self) -> datetime:
        """Midnight after ``last`` in the window's zone (aware): the window is ``start <= t < end``."""
        return datetime.combine(self.last + timedelta(days=1), time(), tzinfo=self.zone)

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
            months.append(Window(first, min(self.last, following - timedelta(days=1)), self.zone))
            first = following
        return months


def previous_month(today: date, zone: ZoneInfo = AMSTERDAM) -> Window:
    """The calendar month before ``today``'s month."""
    last = today.replace(day=1) - timedelta(days=1)
    return Window(last.replace(day=1), last, zone)


def billing_window(
    start_date: date | None, end_date: date | None, now: datetime | None = None, zone: ZoneInfo = AMSTERDAM
) -> Window:
    """The window a run bills: the given dates, or the previous calendar month, in ``zone``."""
    today = (now or datetime.now(tz=zone)).astimezone(zone).date()
    default = previous_month(today, zone)
    return Window(start_date or default.first, end_date or default.last, zone)


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


@task(name="extract-afas-masters", cache_policy=NO_CACHE)
def extract_afas_masters() -> tuple[Masters, dict]:
    """Read debtors, projects, periods and sales prices from AFAS."""
    return asyncio.run(read_masters(load_settings(AfasSettings)))


# --- every TOPdesk source, accounted for ---------------------------------------------------------------


@dataclass(frozen=True)
class TopdeskRead:
    """What TOPdesk served for a window: rows, request statistics, per-source results, incident totals."""

    frame: pd.DataFrame
    stats: dict
    sources: tuple[SourceResult, ...] = ()
    totals: pd.DataFrame = field(default_factory=pd.DataFrame)
    totals_error: str | None = None
    activities: ActivityRead | None = None

    @property
    def failed(self) -> list[SourceResult]:
        """Sources that could not be read as a whole."""
        return [s for s in self.sources if s.error is not None]

    def served(self) -> dict[str, int]:
        """Rows served per source kind."""
        return {s.kind: s.served for s in self.sources}


async def read_topdesk(
    settings: TopdeskSettings, window: Window, options: TimeRegistrationOptions | None = None
) -> TopdeskRead:
    """Every configured source for the window; a failing source is recorded, the others are read."""
    async with TopdeskClient.from_settings(settings) as client:
        extract = await read_sources(client, window.start, window.end, options)
        return TopdeskRead(
            extract.frame,
            client.stats(),
            extract.sources,
            extract.totals,
            extract.totals_error,
            extract.activities,
        )


# --- which operational activities a run reads ----------------------------------------------------------


def sweep_due(last: datetime | None, now: datetime, every_days: int) -> bool:
    """A full sweep is due: never done, ``every_days`` 0, older than that, or before this month began."""
    if every_days == 0 or last is None:
        return True
    month_start = datetime.combine(now.astimezone(AMSTERDAM).date().replace(day=1), time(), tzinfo=AMSTERDAM)
    return last < month_start or now - last >= timedelta(days=every_days)


def activity_scope(sources: TopdeskSources, window: Window, engine: Engine, now: datetime) -> ActivityScope:
    """All activities when a sweep is due, else the dated ones since the look-back and the known ones."""
    if "operational_activity" not in sources.kinds:
        return ActivityScope()
    if sweep_due(activities.last_sweep(engine), now, sources.operational_activities_sweep_days):
        return ActivityScope(sweep=True)
    since = window.start - timedelta(days=sources.operational_activities_lookback_days)
    return ActivityScope(
        sweep=False,
        since=since,
        known=activities.activities_with_hours_since(engine, since),
        date_fields=tuple(sources.operational_activities_date_fields),
    )


def remember_activities(engine: Engine, read: TopdeskRead, now: datetime) -> None:
    """Store the activities' latest entry dates, and the sweep when one was read completely."""
    if read.activities is None:
        return
    activities.record_activity_hours(engine, read.activities.last_entry)
    failed = {s.kind for s in read.failed}
    if read.activities.sweep and "operational_activity" not in failed:
        activities.record_sweep(engine, now)


def read_tracked(
    settings: TopdeskSettings,
    window: Window,
    sources: TopdeskSources,
    engine: Engine,
    now: datetime | None = None,
    *,
    frame_only: bool = False,
) -> TopdeskRead:
    """Read the window's sources with the activity scope the state database allows, then remember it.

    ``frame_only``: no completeness reads and activity rows of the window only (the benchmark's read).
    """
    now = now or datetime.now(tz=AMSTERDAM)
    read = asyncio.run(
        read_topdesk(settings, window, tracked_options(sources, window, engine, now, frame_only))
    )
    remember_activities(engine, read, now)
    return read


def tracked_options(
    sources: TopdeskSources, window: Window, engine: Engine, now: datetime, frame_only: bool = False
) -> TimeRegistrationOptions:
    """The read options of ``sources`` with the activity scope the state database allows."""
    options = replace(sources.options(), activities=activity_scope(sources, window, engine, now))
    if frame_only:
        options = replace(options, totals=False, activities_outside_window=False)
    return options


def read_tracked_and_masters(
    settings: TopdeskSettings,
    afas: AfasSettings,
    window: Window,
    sources: TopdeskSources,
    engine: Engine,
    now: datetime | None = None,
    *,
    frame_only: bool = False,
) -> tuple[TopdeskRead, Masters, dict]:
    """``read_tracked`` and ``read_masters`` side by side, for a window known before AFAS is read.

    The two systems have their own request limits, so AFAS's few reads cost no wall time beside TOPdesk's
    many. A run over the horizon needs AFAS's periods first (``run_window``) and cannot overlap them.
    """
    now = now or datetime.now(tz=AMSTERDAM)
    options = tracked_options(sources, window, engine, now, frame_only)

    async def both() -> tuple[TopdeskRead, tuple[Masters, dict]]:
        return await asyncio.gather(read_topdesk(settings, window, options), read_masters(afas))

    read, (masters, afas_stats) = asyncio.run(both())
    remember_activities(engine, read, now)
    return read, masters, afas_stats


def sources_table(read: TopdeskRead) -> pd.DataFrame:
    """One row per source: kind, endpoint or entity set, rows served, error."""
    rows = [
        {"kind": s.kind, "source": s.source, "served": s.served, "error": s.error or ""} for s in read.sources
    ]
    return pd.DataFrame(rows, columns=["kind", "source", "served", "error"])


def source_notes(read: TopdeskRead, price_rejects: pd.DataFrame | None = None) -> list[str]:
    """Lines for the run summary: rows served per source, failed sources, completeness, refused prices."""
    served = ", ".join(f"{s.kind} {s.served:,}" for s in read.sources)
    notes = [f"**TOPdesk served:** {served or 'nothing'} rows."]
    notes += [
        f"**SOURCE FAILED — its hours were NOT read:** {s.kind} ({s.source}): {s.error}" for s in read.failed
    ]
    if read.activities is not None:
        how = "every activity (sweep)" if read.activities.sweep else "those that can have hours in the period"
        notes.append(f"**Operational activities read:** {read.activities.listed:,}, {how}.")
    if read.totals_error:
        notes.append(f"**Completeness check not done:** {read.totals_error}")
    else:
        notes.append(
            f"**Completeness:** {completeness_summary(read.totals, mismatches(read.totals))['line']}."
        )
    if price_rejects is not None and not price_rejects.empty:
        notes.append(
            f"**AFAS price list:** {len(price_rejects):,} rows refused (see invoice-hours-price-rejects)."
        )
    return notes


@task(name="extract-topdesk-sources", cache_policy=NO_CACHE)
def extract_topdesk_sources(window: Window, sources: TopdeskSources | None = None) -> TopdeskRead:
    """Read every configured TOPdesk source; publish what each served and the completeness check."""
    read = read_tracked(load_settings(TopdeskSettings), window, sources or TopdeskSources(), state_engine())
    for failed in read.failed:
        log.error("TOPdesk source %s (%s) failed: %s", failed.kind, failed.source, failed.error)
    publish_table(f"{FLOW}-sources", sources_table(read), "Rows served per TOPdesk source, and failures")
    found = mismatches(read.totals)
    summary = completeness_summary(read.totals, found)
    publish_table(f"{FLOW}-completeness", found, summary["line"])
    if len(found):
        log.warning("%s", summary["line"])
    return read


@task(name="check-afas-prices", cache_policy=NO_CACHE)
def check_afas_prices(masters: Masters, config: BillingConfig) -> pd.DataFrame:
    """Refuse unbelievable AFAS price-list rows (per row, naming the connector); publish them."""
    if masters.sales_prices is None or config.rates.source != "afas":
        return screen_prices(pd.DataFrame(columns=["ItemCode", "DebtorId", "Price"]), Decimal(1))[1]
    rejects = screen_prices(masters.sales_prices, config.price_checks.max_hourly_price)[1]
    if len(rejects):
        log.warning("AFAS price list: %d rows refused: %s", len(rejects), "; ".join(rejects["reason"][:5]))
    publish_table(f"{FLOW}-price-rejects", rejects, "AFAS price-list rows refused")
    return rejects


@task(name="account-served-rows", cache_policy=NO_CACHE)
def account_served_rows(read: pd.DataFrame, buckets: pd.DataFrame) -> dict:
    """Conservation against the rows each source served; published per source."""
    result = served_conservation(read, buckets)
    publish_table(f"{FLOW}-served", served_table(result), result["line"])
    return result
