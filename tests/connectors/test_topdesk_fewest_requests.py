"""TOPdesk read with the fewest requests (issue #15), counted by the sandbox (what TOPdesk served).

- pages as large as each endpoint allows, and the sandbox refuses larger ones as TOPdesk does;
- id lists as long as the URL allows, and the sandbox refuses a longer request head (414);
- every source, page and list under the one concurrency limit (peak in flight = the limit, never more);
- operational activities read only when they can have hours: a long-running activity stays read through
  the state database, and the sweep catches an activity whose dates say it cannot have hours but has.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pandas as pd
import pytest

from connectors.http import RetryPolicy
from connectors.topdesk.client import TopdeskClient
from connectors.topdesk.endpoints import OM_ACTIVITIES, TIME_REGISTRATIONS
from connectors.topdesk.settings import TopdeskSettings
from connectors.topdesk.timeregistrations import ActivityScope, TimeRegistrationOptions, read_sources
from sandbox.server import Sandbox, running_sandbox
from sandbox.world import generate_world
from store import activities
from store.db import connect
from store.settings import StoreSettings
from tasks.invoice_hours.extract import Window, read_tracked, sweep_due
from tasks.invoice_hours.sources import TopdeskSources

pytestmark = pytest.mark.anyio

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
OCTOBER = (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))
POLICY = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.01, max_total_seconds=30)
MIN_IDS_PER_LIST = 150  # a UUID list within the URL budget holds about 180 ids; an OData "or" filter ~150
BULK = "GET /tas/api/incidents/timeregistrations"
INCIDENTS = "GET /tas/api/incidents"
OM_LIST = "GET /tas/api/operationalActivities"
OM_REGISTRATIONS = "GET /tas/api/operationalActivities/{id}/timeRegistrations"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    # October 2026 only: ~1,000 incidents with hours, so id lists need several calls.
    with running_sandbox(generate_world(seed=23, scale=5_000, months=1)) as running:
        yield running


def settings(sandbox: Sandbox) -> TopdeskSettings:
    return TopdeskSettings(
        base_url=sandbox.topdesk_url,
        login=sandbox.topdesk_login,
        application_password=sandbox.topdesk_password,
    )


class PeakTransport(httpx.AsyncBaseTransport):
    """Counts requests in flight at once (no timing: only overlap)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.now = self.peak = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            response = await self.inner.handle_async_request(request)
            await response.aread()
            return response
        finally:
            self.now -= 1

    async def aclose(self) -> None:
        await self.inner.aclose()


def served(sandbox: Sandbox) -> dict[str, int]:
    return {key: tally["count"] for key, tally in sandbox.counters("topdesk")["endpoints"].items()}


def get(sandbox: Sandbox, path: str, **params: str) -> httpx.Response:
    auth = (sandbox.topdesk_login, sandbox.topdesk_password)
    return httpx.get(f"{sandbox.topdesk_url}/{path}", params=params, auth=auth, timeout=30)


# --- the sandbox is as strict as TOPdesk ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "largest"),
    [(TIME_REGISTRATIONS, 10_000), (OM_ACTIVITIES, 5_000)],
    ids=["bulk registrations", "operational activities"],
)
def test_pages_are_the_largest_each_endpoint_allows_and_a_larger_one_is_refused(sandbox, endpoint, largest):
    assert endpoint.page_size == endpoint.max_page_size == largest
    headers = {"Accept": endpoint.accept} if endpoint.accept else {}
    auth = (sandbox.topdesk_login, sandbox.topdesk_password)
    url = f"{sandbox.topdesk_url}/{endpoint.path}"
    ok = httpx.get(url, params={"pageSize": largest}, headers=headers, auth=auth, timeout=30)
    refused = httpx.get(url, params={"pageSize": largest + 1}, headers=headers, auth=auth, timeout=30)
    assert ok.status_code == 200
    assert refused.status_code == 400 and "pageSize" in refused.json()[0]["message"]  # never clamped
    with pytest.raises(ValueError, match=f"at most {largest}"):
        endpoint.checked_page_size(largest + 1)


def test_a_request_head_beyond_8_kb_is_refused_as_tomcat_does(sandbox):
    ids = ",".join(f"00000000-0000-4000-8000-{n:012d}" for n in range(300))  # ≈ 11 KB encoded
    response = get(sandbox, "tas/api/incidents", query=f"id=in=({ids})", fields="id")
    assert response.status_code == 414


# --- one month with the fewest requests -----------------------------------------------------------------


async def test_a_month_is_read_with_the_largest_pages_and_longest_lists_all_under_one_limit(sandbox):
    x = sandbox.world.extra
    regs = x["td_registrations"]
    in_month = regs[pd.to_datetime(regs["entryDate"], utc=True).between(*OCTOBER, inclusive="left")]
    parents = in_month["parent.id"].nunique()
    transport = PeakTransport()
    sandbox.set_knobs("topdesk", latency_ms=5)  # calls overlap when they can (nothing is timed)
    sandbox.reset_counters("topdesk")
    try:
        client = TopdeskClient.from_settings(settings(sandbox), policy=POLICY, transport=transport)
        async with client:
            extract = await read_sources(client, *OCTOBER, TimeRegistrationOptions(unit_sample=10))
    finally:
        sandbox.set_knobs("topdesk", latency_ms=0)
    counts = served(sandbox)
    assert not extract.failed and extract.totals_error is None
    assert parents > 3 * MIN_IDS_PER_LIST  # the lists below really needed several calls
    # bulk: one page for the month (< 10,000 rows) + the completeness lists of parent ids
    assert len(in_month) < 10_000
    assert counts[BULK] <= 1 + math.ceil(parents / MIN_IDS_PER_LIST)
    # incidents looked up in lists within the URL budget (main incidents of partials may need one more)
    assert counts[INCIDENTS] <= math.ceil(parents / MIN_IDS_PER_LIST) + 2
    # operational activities: one list page (< 5,000), then one call per activity
    assert counts[OM_LIST] == 1
    assert counts[OM_REGISTRATIONS] == len(x["td_om_activities"]) == extract.activities.listed
    assert extract.activities.sweep
    # the unit sample: ten per-incident reads
    assert counts["GET /tas/api/incidents/id/{id}/timespent"] == 10
    # OData ticket look-ups: lists within the URL budget per kind
    odata = x["td_odata_registrations"]
    for kind, entity_set in [
        ("change", "Changes"),
        ("change_activity", "ChangeActivities"),
        ("problem", "Problems"),
    ]:
        tickets = odata.loc[odata["kind"] == kind, "ticket.id"].nunique()
        assert counts[f"GET /services/reporting/v2/odata/{entity_set}"] <= math.ceil(
            tickets / MIN_IDS_PER_LIST
        )
    # every source, page and list under the one limit: the four slots were full, never more
    assert transport.peak == settings(sandbox).max_concurrency == 4
    # served = read: the incident rows served for the month are all in the frame
    frame = extract.frame
    assert set(in_month["id"]) <= set(frame.loc[frame["kind"] == "incident", "registration_id"])


# --- operational activities: only those that can have hours ------------------------------------------------


def test_a_sweep_is_due_when_never_done_monthly_and_every_n_days():
    now = datetime(2026, 12, 20, 9, tzinfo=AMSTERDAM)
    assert sweep_due(None, now, 7)
    assert sweep_due(now - timedelta(hours=1), now, 0)  # 0: every run sweeps
    assert not sweep_due(now - timedelta(days=6), now, 7)
    assert sweep_due(now - timedelta(days=7), now, 7)
    first_of_month = datetime(2027, 1, 1, 0, 30, tzinfo=AMSTERDAM)
    assert sweep_due(first_of_month - timedelta(hours=1), first_of_month, 30)  # the month's first run


async def post_hours(sandbox: Sandbox, activity: str, entry: str, minutes: int) -> str:
    client = TopdeskClient.from_settings(settings(sandbox), policy=POLICY)
    async with client:
        body = {"timeSpent": minutes, "entryDate": entry, "note": "lange klus"}
        created = await client.send(
            "POST", f"tas/api/operationalActivities/{activity}/timeRegistrations", body
        )
    return created["id"]


def activity_rows(read, kind: str = "operational_activity") -> set[str]:
    frame = read.frame
    return set(frame.loc[frame["kind"] == kind, "registration_id"])


def test_a_long_running_activity_stays_read_and_the_sweep_catches_one_whose_dates_say_no(
    sandbox, tmp_path: Path
):
    engine = connect(StoreSettings(db_url=f"sqlite:///{tmp_path / 'state.db'}"))
    world = sandbox.world.extra["td_om_activities"]
    live = world[~world["archived"] & (world["linkedBranches"] != "")]
    long_running, dormant = live["id"].iloc[0], live["id"].iloc[1]
    # Every activity of this world was planned, created and last modified by early November 2026.
    latest = pd.to_datetime(
        world[["plannedStartDate", "creationDate", "modificationDate"]].stack(), utc=True
    ).max()
    assert latest < datetime(2026, 11, 17, tzinfo=UTC)
    sources = TopdeskSources(operational_activities_lookback_days=14, operational_activities_sweep_days=30)
    november, december = (
        Window(date(2026, 11, 1), date(2026, 11, 30)),
        Window(date(2026, 12, 1), date(2026, 12, 31)),
    )

    # Run 1 (no sweep yet → sweep): the long-running activity gets hours in November.
    first = asyncio.run(post_hours(sandbox, long_running, "2026-11-20T10:00:00Z", 90))
    read = read_tracked(
        settings(sandbox), november, sources, engine, datetime(2026, 12, 2, 8, tzinfo=AMSTERDAM)
    )
    assert read.activities.sweep and first in activity_rows(read)
    assert activities.last_sweep(engine) == datetime(2026, 12, 2, 8, tzinfo=AMSTERDAM)

    # December: hours on both; the dates of both say "no hours since 17 November" (look-back 14 days).
    later = asyncio.run(post_hours(sandbox, long_running, "2026-12-10T09:00:00Z", 60))
    hidden = asyncio.run(post_hours(sandbox, dormant, "2026-12-11T09:00:00Z", 45))

    # Run 2 (swept this month, 30-day interval → no sweep): the long-running activity is read because
    # the state database saw it get hours on 20 November; nothing else is listed by date.
    sandbox.reset_counters("topdesk")
    read = read_tracked(
        settings(sandbox), december, sources, engine, datetime(2026, 12, 20, 8, tzinfo=AMSTERDAM)
    )
    assert not read.activities.sweep and not read.failed
    assert later in activity_rows(read)  # (its November row is served too: the window guard counts it)
    assert hidden not in activity_rows(read)  # not read: its dates say it cannot have hours
    assert served(sandbox)[OM_REGISTRATIONS] == read.activities.listed == 1  # one activity read, not all
    assert served(sandbox)[OM_LIST] == 2  # the dated list (empty here) and the known ids

    # Run 3 (a new month → sweep): the dormant activity's December hours are caught.
    read = read_tracked(
        settings(sandbox), december, sources, engine, datetime(2027, 1, 2, 8, tzinfo=AMSTERDAM)
    )
    assert read.activities.sweep and read.activities.listed == len(world)
    assert {later, hidden} <= activity_rows(read)
    assert dormant in activities.activities_with_hours_since(engine, datetime(2026, 12, 1, tzinfo=UTC))


async def test_a_selective_read_lists_activities_by_any_date_field_and_by_known_id(sandbox):
    world = sandbox.world.extra["td_om_activities"]
    planned = pd.to_datetime(world["plannedStartDate"], utc=True)
    since = datetime(2026, 10, 25, tzinfo=UTC)
    modified = pd.to_datetime(world["modificationDate"], utc=True)
    created = pd.to_datetime(world["creationDate"], utc=True)
    dated = set(world.loc[(planned >= since) | (modified >= since) | (created >= since), "id"])
    old = sorted(set(world["id"]) - dated)[:3]
    assert dated and old
    scope = ActivityScope(sweep=False, since=since, known=frozenset(old))
    options = TimeRegistrationOptions(kinds=("operational_activity",), activities=scope)
    sandbox.reset_counters("topdesk")
    async with TopdeskClient.from_settings(settings(sandbox), policy=POLICY) as client:
        extract = await read_sources(client, *OCTOBER, options)
    assert extract.activities.listed == len(dated | set(old)) < len(world)
    assert served(sandbox)[OM_REGISTRATIONS] == extract.activities.listed
    assert set(extract.frame["ticket_id"]) <= dated | set(old)
