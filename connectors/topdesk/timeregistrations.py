"""All TOPdesk time registrations of a period as ONE frame in the shape of docs/contracts.md §1.

Sources (reference §6, decisions §9.1–§9.5):

- incidents: the bulk endpoint ``/incidents/timeregistrations`` (FIQL on ``entryDate`` with explicit
  ``Z``, explicit ``fields``, sort ``entryDate:asc,creationDate:asc``, pages of 10,000 (the maximum) read
  side by side after the first, SECONDS; partial and archived incidents included by default), with ticket
  context looked up through ``/incidents`` in ``id=in=`` lists as long as the URL allows
  (``connectors.topdesk.idlists``); partials are billed on their main incident's customer and project;
- operational activities: the activity list (pages of 5,000), then each listed activity's registrations
  (SECONDS on GET). The endpoint has no date filter, so which activities are read is an
  ``ActivityScope``: all of them (a *sweep*), or only those that can have hours in the period — planned,
  created or modified since a look-back before it, or known (from earlier reads) to have hours since then;
- changes, change activities and problems: the OData reporting feed; entity sets, property names and
  the unit are configuration (``ODataOptions``; defaults match the sandbox, see docs/sandbox.md).

Served = read: every row a source served is a row of the frame, duplicates included (validation
collapses exact duplicates and rejects conflicting ones). Nothing malformed is dropped or crashes the
read: raw values are kept, and what cannot be read (an element that is not an object, an unusable id or
parent, a non-numeric time) is named in the ``read_error`` column so validation rejects the row with that
reason. A bulk value that is not a whole number of minutes keeps ``minutes`` NA ("unit mismatch", never
rounded). A source (one endpoint or OData entity set) that fails as a whole is recorded in the
``Extract`` with its error while the other sources are still read; ``read_sources`` returns it,
``read_time_registrations`` (the frame alone, activity rows of the window only) raises ``SourceFailed``.

Requests: every source, page and id list goes out at once and the HTTP layer's one concurrency limit
(``max_concurrency``) decides what is in flight; sources are read side by side, and within a source the
bulk pages after the first, the incident look-ups, the unit sample, the completeness reads, the
activity reads and the OData ticket look-ups are all concurrent.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar
from urllib.parse import quote

import pandas as pd

from connectors.errors import AuthError, ConnectorError, ProtocolError, RequestRejected
from connectors.paging import Page
from connectors.redaction import get_logger
from connectors.topdesk.client import TopdeskClient
from connectors.topdesk.dates import fiql_datetime, parse_datetime, parse_datetimes
from connectors.topdesk.endpoints import (
    API,
    INCIDENTS,
    OM_ACTIVITIES,
    OM_REGISTRATIONS,
    TIME_REGISTRATIONS,
    odata,
)
from connectors.topdesk.idlists import id_chunks
from connectors.topdesk.lookups import Lookups
from connectors.topdesk.raw import (
    MAX_ABS_MINUTES,
    UUID,
    dig,
    id_problem,
    joined,
    number,
    number_problem,
    show,
    text,
    unreadable,
    usable_id,
)
from connectors.topdesk.units import UnitMismatch, check_bulk_units

T = TypeVar("T")
log = get_logger(__name__)

KINDS = ("incident", "change", "change_activity", "operational_activity", "problem")
STR_COLUMNS = (
    "registration_id", "kind", "entry_date_raw", "time_unit", "operator_id", "operator_name",
    "operator_group_id", "operator_group_name", "reason_id", "reason_name", "notes", "ticket_id",
    "ticket_number", "ticket_description", "billed_ticket_id", "billed_ticket_number", "ticket_status",
    "branch_id", "branch_name", "customer_number", "category", "subcategory", "project_ref", "read_error",
)  # fmt: skip
COLUMNS = (
    "registration_id", "kind", "entry_date_raw", "entry_date", "time_spent_raw", "time_unit", "minutes",
    "creation_date", "modification_date", "operator_id", "operator_name", "operator_group_id",
    "operator_group_name", "reason_id", "reason_name", "notes", "ticket_id", "ticket_number",
    "ticket_description", "billed_ticket_id", "billed_ticket_number", "ticket_status", "branch_id",
    "branch_name", "customer_number", "category", "subcategory", "project_ref", "read_error",
)  # fmt: skip
ALL_STATUSES = (
    "firstLine", "secondLine", "partial", "firstLineArchived", "secondLineArchived", "partialArchived",
)  # fmt: skip
BULK_FIELDS = (
    "id", "timeSpent", "notes", "status", "entryDate", "creationDate", "operator", "operatorGroup", "reason",
    "parent",
)  # fmt: skip
TOTAL_FIELDS: tuple[str, ...] = ("timeSpent", "timeSpentFirstLine", "timeSpentSecondLine", "timeSpentPartial")
TOTAL_FIELDS += ("timeSpentLinkedPartials",)
INCIDENT_FIELDS: tuple[str, ...] = (
    "id",
    "number",
    "status",
    "briefDescription",
    "callerBranch",
    "category",
    "subcategory",
)
INCIDENT_FIELDS += ("mainIncident", *TOTAL_FIELDS)
# What the extract reads of a looked-up incident (``incident_context``, ``resolve_incidents``, the totals);
# ``IncidentFields`` keeps these paths (plus the project and order fields) and drops the rest.
INCIDENT_PATHS = (
    "id", "number", "status", "briefDescription", "callerBranch.id", "callerBranch.name",
    "callerBranch.clientReferenceNumber", "category.name", "subcategory.name", "mainIncident.id",
    *TOTAL_FIELDS,
)  # fmt: skip
OM_ACTIVITY_FIELDS = ("id", "number", "briefDescription", "status", "archived", "linkedBranches")
OM_REGISTRATION_FIELDS: tuple[str, ...] = (
    "id",
    "timeSpent",
    "note",
    "entryDate",
    "creationDate",
    "operator",
    "operatorGroup",
)
OM_REGISTRATION_FIELDS += ("reason",)
INCIDENT_BATCH = INCIDENTS.max_page_size  # ids per /incidents call at most; the URL's length decides first
FRAME_CHUNK = 20_000  # served rows turned into records, and records into frame rows, at a time
ACTIVITY_DATE_FIELDS = ("plannedStartDate", "creationDate", "modificationDate")
# Text columns whose values repeat (names, ids of operators, tickets, branches, …): one ``str`` object per
# distinct value. Not the registration id (unique) nor the raw entry date (mostly unique): a cache of
# them would cost more than it saves.
UNSHARED_COLUMNS = frozenset({"registration_id", "entry_date_raw"})


def shared(value: Any, strings: dict[str, str], skip: frozenset[str] = frozenset()) -> Any:
    """``value`` (served JSON) with every ``str`` in it the equal one in ``strings`` (added if new).

    Objects are copied (as ``dict``), lists kept as they are; the values of keys in ``skip`` (unique ones,
    such as ids and dates) are kept without a look-up. Equal to ``value``.
    """
    if type(value) is str:
        return strings.setdefault(value, value)
    if not isinstance(value, Mapping):
        return value
    return {key: item if key in skip else shared(item, strings) for key, item in value.items()}


def _drained(rows: list[Any]) -> Iterator[Any]:
    """The items of ``rows`` in order; each ``FRAME_CHUNK`` of them is removed from the list when taken."""
    while rows:
        chunk = rows[:FRAME_CHUNK]
        del rows[:FRAME_CHUNK]
        yield from chunk


def _framed(records: Iterable[dict[str, Any]], columns: list[str] | None, strings: SharedText) -> list[Any]:
    """``records`` as ``contract_frame`` chunks of ``FRAME_CHUNK`` (a list of them without ``columns``)."""
    if columns is None:
        return list(records)
    chunks, pending = [], []
    for record in records:
        pending.append(record)
        if len(pending) >= FRAME_CHUNK:
            chunks.append(contract_frame(pending, columns, strings))
            pending = []
    if pending:
        chunks.append(contract_frame(pending, columns, strings))
    return chunks


class SharedText:
    """``text`` of a value, one ``str`` object per distinct text across all frame chunks of one read.

    JSON parsing makes a new ``str`` for every cell, so a million rows held 24 million string objects
    (≈ 60 bytes each) though most columns have a few thousand distinct values. Equal values now share
    one object: a cell costs its 8-byte reference. The values, and so the frame, are the same.
    """

    def __init__(self) -> None:
        self.seen: dict[str, str] = {}

    def __call__(self, value: Any) -> str | None:
        """``text(value)``, the first equal ``str`` seen by this instance."""
        found = text(value)
        return None if found is None else self.seen.setdefault(found, found)

    def column(self, name: str, values: pd.Series) -> pd.Series:
        """``values`` as text of dtype ``str`` (``contract_frame``'s conversion), shared where it pays."""
        return values.map(text if name in UNSHARED_COLUMNS else self).astype("str")


@dataclass(frozen=True)
class ODataOptions:
    """Where the OData feed keeps time of changes, change activities and problems (decision §9.2)."""

    registration_sets: Mapping[str, str] = field(
        default_factory=lambda: {
            "change": "ChangeTimeRegistrations",
            "change_activity": "ChangeActivityTimeRegistrations",
            "problem": "ProblemTimeRegistrations",
        }
    )
    ticket_sets: Mapping[str, str] = field(
        default_factory=lambda: {
            "change": "Changes",
            "change_activity": "ChangeActivities",
            "problem": "Problems",
        }
    )
    unit: str = "minutes"  # unit of ``time_spent``
    # registration property names
    id: str = "Id"
    ticket_id: str = "TicketId"
    entry_date: str = "EntryDate"
    time_spent: str = "TimeSpentMinutes"
    notes: str = "Notes"
    operator_id: str = "OperatorId"
    operator_name: str = "OperatorName"
    group_id: str = "OperatorGroupId"
    group_name: str = "OperatorGroupName"
    reason_id: str = "ReasonId"
    reason_name: str = "ReasonName"
    creation_date: str = "CreationDate"
    modification_date: str = "ModificationDate"
    # ticket property names
    ticket_key: str = "Id"
    ticket_number: str = "Number"
    ticket_description: str = "BriefDescription"
    branch_id: str = "BranchId"
    branch_name: str = "BranchName"
    customer_number: str = "BranchCustomerNumber"
    ticket_batch: int = 1000  # ids per ticket look-up at most; the URL's length decides first

    def registration_select(self) -> str:
        """``$select`` of a registration set."""
        names: tuple[str, ...] = (
            self.id,
            self.ticket_id,
            self.entry_date,
            self.time_spent,
            self.notes,
            self.operator_id,
        )
        names += (self.operator_name, self.group_id, self.group_name, self.reason_id, self.reason_name)
        return ",".join((*names, self.creation_date, self.modification_date))

    def ticket_select(self) -> str:
        """``$select`` of a ticket set."""
        names = (self.ticket_key, self.ticket_number, self.ticket_description, self.branch_id)
        return ",".join((*names, self.branch_name, self.customer_number))


@dataclass(frozen=True)
class ActivityScope:
    """Which operational activities a read lists and reads the registrations of.

    ``sweep``: every activity of the tenant. Otherwise the activities whose ``date_fields`` (any of them)
    lie at or after ``since`` — new, planned or touched lately — plus ``known``: activities an earlier read
    found hours on at or after ``since`` (a long-running activity planned long ago stays read while it
    gets hours). An activity outside both is read at the next sweep.
    """

    sweep: bool = True
    since: datetime | None = None
    known: frozenset[str] = frozenset()
    date_fields: tuple[str, ...] = ACTIVITY_DATE_FIELDS

    def __post_init__(self) -> None:
        if not self.sweep and (self.since is None or self.since.tzinfo is None):
            raise ValueError("a selective activity scope needs a time-zone aware 'since'")
        if not self.sweep and not self.date_fields:
            raise ValueError("a selective activity scope needs at least one date field")

    def query(self) -> str | None:
        """FIQL for the dated part (None for a sweep): any date field at or after ``since``."""
        if self.sweep or self.since is None:
            return None
        moment = fiql_datetime(self.since)
        return ",".join(f"{name}=ge={moment}" for name in self.date_fields)


@dataclass(frozen=True)
class TimeRegistrationOptions:
    """How to read time registrations; the defaults follow the reference's decisions."""

    kinds: Sequence[str] = KINDS
    include_partials_archived: bool = True  # decision §9.5: adds status=in=(…) to the bulk query
    project_field: str = "optionalFields1.text1"  # where incidents keep the AFAS project code
    order_field: str | None = None  # where incidents keep the customer's purchase-order number (order_ref)
    page_size: int = TIME_REGISTRATIONS.page_size
    incident_batch: int = INCIDENT_BATCH
    concurrency: int = 4  # parallel incident look-ups / activity reads (the HTTP layer bounds it too)
    activity_query: str | None = None  # FIQL narrowing the operational activities listed (None = all)
    unit_sample: int = 10  # incidents whose per-incident minutes are compared with the bulk (0 = off)
    creation_lookback: timedelta = timedelta(days=31)  # FIQL fallback: how long before start to keep reading
    odata: ODataOptions = field(default_factory=ODataOptions)
    totals: bool = True  # read every registration of the incidents read, for the completeness check
    # Operational-activity registrations have no date filter: keep those outside the window (the billing's
    # window guard counts them) or drop them here (callers that only want the window's hours).
    activities_outside_window: bool = True
    activities: ActivityScope = field(default_factory=ActivityScope)  # default: a sweep

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown registration kinds: {sorted(unknown)}")
        if not 1 <= self.incident_batch <= INCIDENT_BATCH:
            raise ValueError(f"incident_batch must be between 1 and {INCIDENT_BATCH}")


@dataclass(frozen=True)
class SourceResult:
    """What one source (an endpoint or an OData entity set) served, or why it failed as a whole."""

    kind: str
    source: str
    served: int
    error: str | None = None


@dataclass(frozen=True)
class Extract:
    """Every registration served (``frame``), per-source results and TOPdesk's incident totals."""

    frame: pd.DataFrame
    sources: tuple[SourceResult, ...]
    totals: pd.DataFrame  # per incident read: TOPdesk's own totals and the minutes of all its registrations
    totals_error: str | None = None
    activities: ActivityRead | None = None  # what the operational-activity source read, when it did

    @property
    def failed(self) -> list[SourceResult]:
        """The sources that could not be read."""
        return [s for s in self.sources if s.error is not None]


@dataclass(frozen=True)
class ActivityRead:
    """Which operational activities were read, and the latest entry date of each one's registrations.

    ``last_entry`` holds every activity read that served at least one registration with a readable date
    (any date, not only the window's): what the next run's ``ActivityScope.known`` is built from.
    """

    sweep: bool
    listed: int
    last_entry: Mapping[str, datetime]


class SourceFailed(ConnectorError):
    """A source could not be read as a whole; the others were read."""

    hint = "the other TOPdesk sources were read; check the source's name in [topdesk] of the billing config"


TOTAL_COLUMNS = ("ticket_id", "ticket_number", "registered_minutes", "unreadable_rows", *TOTAL_FIELDS)


async def read_time_registrations(
    client: TopdeskClient, start: datetime, end: datetime, options: TimeRegistrationOptions | None = None
) -> pd.DataFrame:
    """Every registration served for ``start <= entryDate < end``; ``SourceFailed`` if a source failed."""
    # The totals would go unused; callers of the frame alone want the window's activity hours only.
    frame_only = replace(options or TimeRegistrationOptions(), totals=False, activities_outside_window=False)
    extract = await read_sources(client, start, end, frame_only)
    if extract.failed:
        names = "; ".join(f"{s.kind} ({s.source}): {s.error}" for s in extract.failed)
        raise SourceFailed(f"sources failed: {names}", system="TOPdesk")
    return extract.frame


async def read_sources(
    client: TopdeskClient, start: datetime, end: datetime, options: TimeRegistrationOptions | None = None
) -> Extract:
    """Read every configured source side by side; a failing source is recorded and the others still read."""
    options = options or TimeRegistrationOptions()
    if start.tzinfo is None or end.tzinfo is None or start >= end:
        raise ValueError("start and end must be time-zone aware with start < end")
    jobs: list[tuple[str, str, Awaitable[list[Any]]]] = []
    ordered = ["order_ref"] if options.order_field else []
    strings = SharedText()  # one object per distinct text value, across every source's chunks
    incident = _IncidentJob(client, start, end, options, frame_columns=ordered, strings=strings)
    activity = _ActivityJob(client, start, end, options, Lookups(client), ordered, strings)
    if "incident" in options.kinds:
        jobs.append(("incident", TIME_REGISTRATIONS.path, incident.run()))
    if "operational_activity" in options.kinds:
        jobs.append(("operational_activity", OM_ACTIVITIES.path, activity.run()))
    for kind in ("change", "change_activity", "problem"):
        if kind in options.kinds:
            reader = read_odata_registrations(client, kind, start, end, options.odata, ordered, strings)
            jobs.append((kind, f"OData {options.odata.registration_sets[kind]}", reader))
    outcomes = await asyncio.gather(*(_guarded(*job) for job in jobs), return_exceptions=True)
    for outcome in outcomes:  # a refused login or wrong units stop the run, after every job has ended
        if isinstance(outcome, BaseException):
            raise outcome
    found = [outcome for outcome in outcomes if not isinstance(outcome, BaseException)]
    results = tuple(result for _, result in found)
    totals, totals_error = empty_totals(), None
    if "incident" in options.kinds and options.totals and results[0].error is None:
        totals, totals_error = incident.totals, incident.totals_error
    parts = [rows for rows, _ in found]
    del found, outcomes  # the record lists are emptied chunk by chunk as the frame is built
    frame = contract_frames(parts, ordered, strings)
    if ordered and not incident.ordered:  # no record carried one: the column is left out, as before
        frame = frame.drop(columns=ordered)
    return Extract(frame, results, totals, totals_error, activity.read)


async def _guarded(kind: str, source: str, reader: Awaitable[list[Any]]) -> tuple[list[Any], SourceResult]:
    """Run one source's reader; anything but a refused login or wrong units is that source's failure."""
    try:
        records = await reader
    except UnitMismatch:  # every amount would be off by a factor of 60: the run stops (decision §9.1)
        raise
    except AuthError as exc:
        if exc.status == 401:  # the login itself: no source can be read
            raise
        return [], _failure(kind, source, exc)
    except ConnectorError as exc:
        return [], _failure(kind, source, exc)
    return records, SourceResult(kind, source, _served(records))


def _served(rows: list[Any]) -> int:
    """Rows a source served: its records, or the rows of the frame chunks it built of them."""
    return sum(len(row) if isinstance(row, pd.DataFrame) else 1 for row in rows)


def _failure(kind: str, source: str, exc: ConnectorError) -> SourceResult:
    log.error("TOPdesk source %s (%s) failed; its hours are NOT read this run: %s", kind, source, exc)
    return SourceResult(kind, source, 0, str(exc))


# --- incidents ----------------------------------------------------------------------------------------


def bulk_query(start: datetime, end: datetime, include_partials_archived: bool) -> str:
    """FIQL for the bulk endpoint: the entry-date window with explicit ``Z`` (decision §9.4/§9.5)."""
    query = f"entryDate=ge={fiql_datetime(start)};entryDate=lt={fiql_datetime(end)}"
    if include_partials_archived:
        query += f";status=in=({','.join(ALL_STATUSES)})"
    return query


class _IncidentJob:
    """The incident source: bulk pages, then look-ups, unit sample and completeness reads side by side.

    ``totals``/``totals_error`` hold the completeness check's result once ``run`` has ended; a failing
    completeness read never fails the source (its hours were read). With ``frame_columns`` (the optional
    columns of the frame) ``run`` returns ``contract_frame`` chunks instead of records, so that a million
    records are never held at once; ``ordered`` then tells whether any record carried an ``order_ref``.
    """

    def __init__(
        self,
        client: TopdeskClient,
        start: datetime,
        end: datetime,
        options: TimeRegistrationOptions,
        frame_columns: list[str] | None = None,
        strings: SharedText | None = None,
    ) -> None:
        self.client, self.start, self.end, self.options = client, start, end, options
        self.strings = strings or SharedText()
        self.totals = empty_totals()
        self.totals_error: str | None = None
        self.frame_columns, self.ordered = frame_columns, False

    async def run(self) -> list[Any]:
        """Every served incident registration of the window as a record (or frame chunks of them)."""
        client, options = self.client, self.options
        pages = _IncidentPages(options, self.frame_columns, self.strings)
        await _window_rows(client, self.start, self.end, options, pages.add)
        pages.flush()
        parents = sorted(pages.parents)
        keep = IncidentFields(options, self.strings)
        resolving = asyncio.ensure_future(resolve_incidents(client, parents, options, keep))
        counting = asyncio.ensure_future(_registrations_by_parent(client, parents, options))
        if not options.totals:
            counting.cancel()
        try:
            if options.unit_sample:
                await check_bulk_units(client, pages.bulk, pages.unit_parents, options.unit_sample)
            tickets = await resolving
        except BaseException:
            resolving.cancel()
            counting.cancel()
            raise
        built, billed = pages.finish(tickets)
        self.ordered = pages.ordered
        if options.totals:
            await self._complete(counting, sorted(billed), tickets)
        return built

    async def _complete(
        self, counting: asyncio.Future[list[Any]], parents: list[str], tickets: Mapping[str, Any]
    ) -> None:
        try:
            served = await counting
            self.totals = await _totals_frame(self.client, parents, served, self.options, tickets)
        except ConnectorError as exc:
            self.totals_error = str(exc)
            log.error("TOPdesk incident totals could not be read: %s", exc)


class _IncidentPages:
    """The bulk rows of the incident source, taken in page by page so the parsed pages are not held.

    Each row's own fields (``incident_own``) become a record at once and every ``FRAME_CHUNK`` records a
    ``contract_frame`` chunk (or stay records without ``frame_columns``); of the row only what its ticket
    context needs is kept (``_RowTicket``). Once the incidents are looked up, ``finish`` maps the ticket
    context on by parent id (``incident_ticket``): the same records and frame rows as ``incident_record``
    of every row, in served order. For the unit check it keeps each row's ``timeSpent`` by id and the
    parents, which is all ``check_units`` reads of the rows (``check_bulk_units`` takes them as they are).
    """

    def __init__(
        self, options: TimeRegistrationOptions, frame_columns: list[str] | None, strings: SharedText
    ) -> None:
        self.project, self.order, self.strings = options.project_field, options.order_field, strings
        self.frame_columns, self.ordered = frame_columns, False
        self.unit_sample = bool(options.unit_sample)
        self.parents: set[str] = set()  # usable parent ids: the incidents to look up
        self.bulk: dict[str, Any] = {}  # str(id) -> timeSpent, the last served wins (as check_units)
        self.times: dict[int, int] = {}
        self.unit_parents: set[str] = set()  # parent ids as check_units reads them
        self.pending: list[dict[str, Any]] = []
        self.pending_rows: list[_RowTicket | str] = []  # str: the error of a row not an object
        self.chunks: list[tuple[Any, list[_RowTicket | str]]] = []

    def add(self, rows: Sequence[Any]) -> None:
        """Take in one page's rows (in served order); the page itself is not kept."""
        for row in rows:
            if isinstance(row, Mapping):
                own, ticket = incident_own(row, self.strings.seen)
                if ticket.parent_id:
                    self.parents.add(ticket.parent_id)
                if self.unit_sample:
                    spent = row.get("timeSpent")
                    if type(spent) is int:  # a few hundred distinct times: one object each
                        spent = self.times.setdefault(spent, spent)
                    self.bulk[str(row.get("id"))] = spent
                    parent = row.get("parent")
                    key = parent.get("id") if isinstance(parent, Mapping) else None
                    if isinstance(key, str) and key:
                        self.unit_parents.add(self.strings.seen.setdefault(key, key))
                self.pending.append(own)
                self.pending_rows.append(ticket)
            else:
                record = unreadable(row, "incident", "seconds")
                self.pending.append(record)
                self.pending_rows.append(record["read_error"])
            if len(self.pending) >= FRAME_CHUNK:
                self.flush()

    def flush(self) -> None:
        """The records taken in so far as one chunk (a frame chunk with ``frame_columns``)."""
        if not self.pending:
            return
        records, self.pending = self.pending, []
        if self.frame_columns is not None:
            records = contract_frame(records, self.frame_columns, self.strings)
        self.chunks.append((records, self.pending_rows))
        self.pending_rows = []

    def finish(self, tickets: Mapping[str, Mapping[str, Any]]) -> tuple[list[Any], set[str]]:
        """The chunks with their ticket context, and the parents of the rows without a read error."""
        context: dict[str | None, dict[str, Any]] = {}
        billed: set[str] = set()
        built: list[Any] = []
        self.bulk, self.unit_parents, self.times = {}, set(), {}
        for records, rows in self.chunks:
            fields: list[dict[str, Any] | None] = []
            for row in rows:
                if not isinstance(row, _RowTicket):  # not an object: no ticket columns
                    fields.append(None)
                    continue
                if row.parent_id not in context:
                    context[row.parent_id] = incident_context(
                        row.parent_id, tickets, self.project, self.order
                    )
                found = incident_ticket(row, context[row.parent_id], tickets)
                if found["ticket_id"] and not found["read_error"]:
                    billed.add(str(found["ticket_id"]))
                fields.append(found)
            self.ordered = self.ordered or (bool(self.order) and any(f is not None for f in fields))
            if isinstance(records, pd.DataFrame):
                _set_ticket_columns(records, fields, rows, self.strings)
                built.append(records)
            else:
                built += [own if f is None else {**own, **f} for own, f in zip(records, fields, strict=True)]
        self.chunks = []
        return built, billed


TICKET_COLUMNS = (
    "order_ref", "ticket_id", "ticket_number", "ticket_description", "billed_ticket_id",
    "billed_ticket_number", "ticket_status", "branch_id", "branch_name", "customer_number", "category",
    "subcategory", "project_ref", "read_error",
)  # fmt: skip


def _set_ticket_columns(frame: pd.DataFrame, fields: list[Any], rows: list[Any], strings: SharedText) -> None:
    """The ticket columns of a frame chunk from ``fields``, converted as ``contract_frame`` does.

    A row that was not an object has no ticket columns (``None``) and keeps its read error (``rows``).
    """
    for name in (n for n in TICKET_COLUMNS if n in frame.columns):
        if name == "read_error":
            values = [row if f is None else f[name] for f, row in zip(fields, rows, strict=True)]
        else:
            values = [None if f is None else f.get(name) for f in fields]
        frame[name] = strings.column(name, pd.Series(values, index=frame.index, dtype=object))


async def incident_source(
    client: TopdeskClient,
    start: datetime,
    end: datetime,
    options: TimeRegistrationOptions,
) -> list[dict[str, Any]]:
    """Incident registrations served for the window with their ticket context, every served row kept."""
    return await _IncidentJob(client, start, end, replace(options, totals=False)).run()


async def read_incident_registrations(
    client: TopdeskClient, start: datetime, end: datetime, options: TimeRegistrationOptions
) -> list[dict[str, Any]]:
    """Alias of ``incident_source`` (kept for callers of the earlier name)."""
    return await incident_source(client, start, end, options)


async def _window_rows(
    client: TopdeskClient,
    start: datetime,
    end: datetime,
    options: TimeRegistrationOptions,
    consume: Callable[[Sequence[Any]], None] | None = None,
) -> list[Any]:
    params = {
        "query": bulk_query(start, end, options.include_partials_archived),
        "fields": ",".join(BULK_FIELDS),
        "sort": "entryDate:asc,creationDate:asc",
    }
    try:
        span = (start, end)
        return await _bulk_rows(client, params, options.page_size, options.concurrency, span, consume)
    except RequestRejected as exc:
        log.warning("TOPdesk refused the FIQL query (%s); reading by creationDate instead", exc.message)
        return await _bulk_rows_by_creation(client, start, end, options, consume)


async def _bulk_rows(
    client: TopdeskClient,
    params: dict[str, Any],
    page_size: int,
    ahead: int,
    span: tuple[datetime, datetime] | None = None,
    consume: Callable[[Sequence[Any]], None] | None = None,
) -> list[Any]:
    """Every row the bulk endpoint serves for ``params``: the first page, then waves of pages side by side.

    A wave holds at most ``ahead`` pages; with ``span`` (the entry-date window of a query sorted by entry
    date) it holds only as many as the entry date reached so far suggests are left, so the reads end with
    few or no empty pages. The first page that is not full (or a 204) is the last; rows of pages asked
    beyond it in the same wave are kept too (served = read; validation collapses a row served twice). A
    page shorter than asked while the server still announces more (a server that quietly caps the page
    size) would make offsets skip rows: that fails loudly. With ``consume`` each page's rows go to it, in
    served order, and are not returned; a page goes to it as soon as the pages before it have, so the
    parsed pages of a wave are not all held at once (of a page taken in only its last row is kept).
    """
    rows: list[Any] = []
    offset, wave = 0, 1
    while True:
        asked = [
            asyncio.ensure_future(
                client.page_at(TIME_REGISTRATIONS, params, offset + i * page_size, page_size)
            )
            for i in range(wave)
        ]
        pages: list[tuple[Page, int]] = []  # each page with the number of rows it served
        try:
            for task in asked:  # a row served twice across pages is served twice: validation collapses it
                page = await task
                count = len(page.rows)
                if consume is None:
                    rows += page.rows
                else:
                    consume(page.rows)
                    page = replace(page, rows=page.rows[-1:])
                pages.append((page, count))
        except BaseException:  # a page that fails fails the read: the others are not waited for
            for task in asked:
                task.cancel()
            raise
        if any(_last_page(page, page_size, count) for page, count in pages):
            return rows
        offset += wave * page_size
        wave = _wave_size(pages[-1][0].rows, offset, page_size, max(1, ahead), span)


def _wave_size(
    last_rows: Sequence[Any], read: int, page_size: int, ahead: int, span: tuple[datetime, datetime] | None
) -> int:
    """Pages to ask next: the rows left if entries keep coming at the pace seen so far (≤ ``ahead``)."""
    reached = _moment(last_rows[-1]) if span and last_rows else None
    if span is None or reached is None or not span[0] < reached < span[1]:
        return ahead
    covered = (reached - span[0]) / (span[1] - span[0])
    left = read / covered - read
    return max(1, min(ahead, math.ceil(left / page_size)))


def _last_page(page: Page, page_size: int, count: int) -> bool:
    """Whether ``page`` (which served ``count`` rows) is the last one; a capped page size fails loudly."""
    if page.status == 204 or count >= page_size:
        return page.status == 204
    if page.status == 206 or page.next_url is not None:
        raise ProtocolError(
            f"TOPdesk served {count} rows for a page of {page_size} yet announced more: it caps "
            "the page size, and offset pages would skip rows",
            system="TOPdesk",
        )
    return True


async def _bulk_rows_by_creation(
    client: TopdeskClient,
    start: datetime,
    end: datetime,
    options: TimeRegistrationOptions,
    consume: Callable[[Sequence[Any]], None] | None = None,
) -> list[Any]:
    """Decision §9.4 fallback: newest first by ``creationDate``, filtered locally, until before ``start``.

    A registration is created at or after the moment it was entered for, give or take
    ``creation_lookback``; reading stops at the first page created entirely before that horizon. Rows
    whose dates cannot be read are kept (validation rejects them). ``consume`` as in ``_bulk_rows``.
    """
    params = {"fields": ",".join(BULK_FIELDS), "sort": "creationDate:desc"}
    horizon = start - options.creation_lookback
    rows: list[Any] = []
    async for page in client.iter_pages(TIME_REGISTRATIONS, params, page_size=options.page_size):
        kept = [row for row in page if (entry := _moment(row)) is None or start <= entry < end]
        if consume is None:
            rows += kept
        else:
            consume(kept)
        created = [parse_datetime(dig(row, "creationDate")) for row in page]
        if created and all(c is not None and c < horizon for c in created):
            break
    return rows


def _moment(row: Any) -> datetime | None:
    if not isinstance(row, Mapping):
        return None
    entry, created = row.get("entryDate"), row.get("creationDate")
    return parse_datetime(entry if isinstance(entry, str) else None) or parse_datetime(
        created if isinstance(created, str) else None
    )


async def resolve_incidents(
    client: TopdeskClient,
    ids: Iterable[str],
    options: TimeRegistrationOptions,
    keep: Callable[[Any], Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Incidents by id (``id=in=`` lists, partials and archived included), plus their mains.

    ``keep`` (e.g. ``IncidentFields``) is applied to each incident as its list arrives, so the served
    JSON of every incident is never held at once; it must keep ``id`` and ``mainIncident.id``.
    """
    found = await _incidents_by_id(client, sorted(ids), options, keep)
    mains = {usable_id(dig(i, "mainIncident.id")) for i in found.values()}
    missing = sorted(m for m in mains if m and m not in found)
    if missing:
        found.update(await _incidents_by_id(client, missing, options, keep))
    return found


class IncidentFields:
    """An incident reduced to what the extract reads of it, its text values shared (``SharedText``).

    The incident source keeps every incident it looked up until the rows' ticket columns are set: at a
    million registrations some 300,000 incidents, ≈ 4 KB each as parsed JSON (most of it fields nobody
    reads, such as every optional field). What is kept: for every path the extract ``dig``s (ticket
    columns, main incident, project and order fields, the totals) the same value at the same path, so
    ``dig`` of any of those paths gives what it gave on the served incident; everything else is dropped.
    Equal nested objects kept (a branch, a category) are one object.
    """

    def __init__(self, options: TimeRegistrationOptions, strings: SharedText) -> None:
        paths = (*INCIDENT_PATHS, options.project_field, options.order_field)
        self.tree: dict[str, Any] = {}
        for path in (p for p in paths if p):
            node = self.tree
            *parents, leaf = path.split(".")
            for step in parents:
                node = node.setdefault(step, {}) if node.get(step, {}) is not None else {}
            node[leaf] = None  # a leaf: its value is kept whole
        self.strings = strings.seen
        self.objects: dict[Any, dict[str, Any]] = {}

    def __call__(self, incident: Any) -> Any:
        """The incident with only the paths read (a value that is not an object is kept as it is)."""
        return self._kept(incident, self.tree, top=True)

    def _kept(self, value: Any, tree: Mapping[str, Any], top: bool = False) -> Any:
        if not isinstance(value, Mapping):
            return self._value(value)
        kept = {
            key: self._value(value[key]) if sub is None else self._kept(value[key], sub)
            for key, sub in tree.items()
            if key in value
        }
        if top:
            return kept
        try:
            return self.objects.setdefault(tuple(kept.items()), kept)
        except TypeError:  # a value that is not hashable (a list): kept on its own
            return kept

    def _value(self, value: Any) -> Any:
        return self.strings.setdefault(value, value) if type(value) is str else value


def _id_in(name: str, more: str = "") -> Callable[[Sequence[str]], str]:
    return lambda chunk: f"{name}=in=({','.join(chunk)}){more}"


async def _incidents_by_id(
    client: TopdeskClient,
    ids: list[str],
    options: TimeRegistrationOptions,
    keep: Callable[[Any], Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Incidents by id; an id that is not id-shaped is never put in a query, an unknown one is absent.

    ``keep`` as in ``resolve_incidents``, applied to each list as it arrives.
    """
    top_fields = [f.split(".", 1)[0] for f in (options.project_field, options.order_field) if f]
    fixed = {
        "all": "true",
        "dateFormat": "iso8601",
        "fields": ",".join(dict.fromkeys((*INCIDENT_FIELDS, *top_fields))),
    }
    query = _id_in("id")
    ids = [i for i in ids if UUID.match(i)]
    chunks = id_chunks(
        client, INCIDENTS.path, ids, lambda c: {"query": query(c), **fixed}, at_most=options.incident_batch
    )

    async def one(chunk: list[str]) -> list[dict[str, Any]]:
        try:
            found = await client.read_all(INCIDENTS, {"query": query(chunk), **fixed}, page_size=len(chunk))
        except RequestRejected:  # one odd id spoils the list: ask one by one
            each = await asyncio.gather(*(_incident(client, key, fixed["fields"]) for key in chunk))
            found = [i for i in each if i is not None]
        return found if keep is None else [keep(i) for i in found]

    results = await gather_bounded([partial(one, c) for c in chunks], options.concurrency)
    return {
        key: i
        for batch in results
        for i in batch
        if isinstance(i, Mapping) and (key := usable_id(i.get("id")))
    }


async def _incident(client: TopdeskClient, key: str, fields: str) -> dict[str, Any] | None:
    try:
        found = await client.get_json(f"{API}/incidents/id/{quote(key, safe='')}", {"fields": fields})
    except RequestRejected:
        return None
    return found if isinstance(found, dict) else None


def _parent_problem(raw: Any, key: str | None, tickets: Mapping[str, Any]) -> str | None:
    if key is None:
        return "parent.id: missing" if raw is None or raw == "" else f"parent.id: not an id ({show(raw)})"
    if key not in tickets:
        return f"parent.id: incident {key!r} unknown to TOPdesk"
    return None


def incident_record(
    row: Any, tickets: Mapping[str, Mapping[str, Any]], project_field: str, order_field: str | None = None
) -> dict:
    """One bulk registration with its incident's context, in contract column names.

    A partial incident is billed on its main incident: the main's customer (``callerBranch``) and project.
    With ``order_field`` the record also carries ``order_ref``: the customer's purchase-order number from
    that incident field (the main incident's first), for ``RfCs`` on direct invoices. The row's own fields
    (``incident_own``) and its ticket's (``incident_ticket``) are built apart: the incident source takes
    in the rows page by page and maps the tickets on once they are looked up.
    """
    if not isinstance(row, Mapping):
        return unreadable(row, "incident", "seconds")
    own, ticket = incident_own(row)
    context = incident_context(ticket.parent_id, tickets, project_field, order_field)
    return {**own, **incident_ticket(ticket, context, tickets)}


@dataclass(frozen=True, slots=True)
class _RowTicket:
    """What a bulk row's ticket columns need of the row itself once its page is released."""

    parent_id: str | None
    parent_problem: str | None  # when the parent is missing or not an id (no look-up needed)
    status: str | None  # the row's own ticket status (``parent.status``, else ``status``) as text
    own_error: str | None


def incident_own(
    row: Mapping[str, Any], strings: dict[str, str] | None = None
) -> tuple[dict[str, Any], _RowTicket]:
    """A bulk row's own columns (``read_error``: the row's own problems) and what its ticket needs.

    ``strings`` (``SharedText.seen``): the parent id and status kept are the equal ``str`` seen before.
    """
    own = _common(row, "incident", "seconds", "timeSpent", "notes")
    raw_parent = dig(row, "parent.id")
    parent_id = usable_id(raw_parent)
    problem = _parent_problem(raw_parent, None, {}) if parent_id is None else None
    status = _status_text(dig(row, "parent.status") or row.get("status"))
    if strings is not None:
        parent_id = None if parent_id is None else strings.setdefault(parent_id, parent_id)
        status = None if status is None else strings.setdefault(status, status)
    return own, _RowTicket(parent_id, problem, status, own["read_error"])


def incident_context(
    parent_id: str | None,
    tickets: Mapping[str, Mapping[str, Any]],
    project_field: str,
    order_field: str | None,
) -> dict[str, Any]:
    """The ticket columns of every row of one parent (``ticket_status`` is the incident's raw status)."""
    incident = tickets.get(parent_id or "", {})
    main_id = usable_id(dig(incident, "mainIncident.id"))
    main = tickets.get(main_id, {}) if main_id else {}
    billed = main or incident
    order = {}
    if order_field:
        order["order_ref"] = text(dig(billed, order_field)) or text(dig(incident, order_field))
    return {
        **order,
        "ticket_id": parent_id,
        "ticket_number": dig(incident, "number"),
        "ticket_description": dig(incident, "briefDescription"),
        "billed_ticket_id": main_id or parent_id,
        "billed_ticket_number": dig(main, "number") if main_id else dig(incident, "number"),
        "ticket_status": dig(incident, "status"),
        "branch_id": dig(billed, "callerBranch.id") or dig(incident, "callerBranch.id"),
        "branch_name": dig(billed, "callerBranch.name") or dig(incident, "callerBranch.name"),
        "customer_number": dig(billed, "callerBranch.clientReferenceNumber")
        or dig(incident, "callerBranch.clientReferenceNumber"),
        "category": dig(incident, "category.name"),
        "subcategory": dig(incident, "subcategory.name"),
        "project_ref": text(dig(billed, project_field)) or text(dig(incident, project_field)),
    }


def incident_ticket(
    row: _RowTicket, context: Mapping[str, Any], tickets: Mapping[str, Any]
) -> dict[str, Any]:
    """A row's ticket columns and its ``read_error`` (its own problems and its parent's) from ``context``."""
    status = context["ticket_status"]
    problem = row.parent_problem if row.parent_id is None else _parent_problem(None, row.parent_id, tickets)
    return {
        **context,
        "ticket_status": _status_text(status) if status else row.status,
        "read_error": joined(row.own_error, problem),
    }


def _common(row: Mapping[str, Any], kind: str, unit: str, time_key: str, notes_key: str) -> dict[str, Any]:
    """The columns every REST registration has, names of operator/group/reason as sent."""
    raw_id, raw_time = row.get("id"), row.get(time_key)
    return {
        "registration_id": usable_id(raw_id),
        "kind": kind,
        "entry_date_raw": row.get("entryDate"),
        "time_spent_raw": number(raw_time),
        "time_unit": unit,
        "creation_date": row.get("creationDate"),
        "modification_date": row.get("modificationDate"),
        "operator_id": dig(row, "operator.id"),
        "operator_name": dig(row, "operator.name"),
        "operator_group_id": dig(row, "operatorGroup.id"),
        "operator_group_name": dig(row, "operatorGroup.name"),
        "reason_id": dig(row, "reason.id"),
        "reason_name": dig(row, "reason.name"),
        "notes": row.get(notes_key),
        "read_error": joined(id_problem(raw_id, "id"), number_problem(raw_time, time_key)),
    }


async def incident_totals(
    client: TopdeskClient,
    incident_ids: Sequence[str],
    options: TimeRegistrationOptions,
    known: Mapping[str, Mapping[str, Any]] | None = None,
) -> pd.DataFrame:
    """Per incident: TOPdesk's own time totals and the minutes of ALL its registrations (any date).

    The registrations come from the bulk endpoint by ``parent.id=in=(…)`` (every status, lists as long
    as the URL allows); each id counts once. The incidents' totals come from ``/incidents`` (minutes;
    ``known`` are reused).
    """
    served = await _registrations_by_parent(client, list(incident_ids), options)
    return await _totals_frame(client, list(incident_ids), served, options, known or {})


async def _registrations_by_parent(
    client: TopdeskClient, incident_ids: Sequence[str], options: TimeRegistrationOptions
) -> list[Any]:
    """Every registration of the incidents (any date), read by ``parent.id=in=(…)`` lists side by side."""
    ids = [i for i in incident_ids if UUID.match(i)]
    query = _id_in("parent.id", f";status=in=({','.join(ALL_STATUSES)})")
    fixed = {"fields": "id,timeSpent,parent"}
    chunks = id_chunks(client, TIME_REGISTRATIONS.path, ids, lambda c: {"query": query(c), **fixed})

    async def one(chunk: list[str]) -> list[Any]:
        return await _bulk_rows(client, {"query": query(chunk), **fixed}, options.page_size, 1)

    # The first list alone: a tenant that ignores the query would serve everything to every list.
    served = [await one(chunks[0])] if chunks else []
    strays = [r for r in served[0] if usable_id(dig(r, "parent.id")) not in set(chunks[0])] if served else []
    if strays:
        raise ProtocolError(
            f"TOPdesk ignored the parent.id query ({len(strays)} registrations of other incidents served); "
            "the completeness check is not done",
            system="TOPdesk",
        )
    served += await gather_bounded([partial(one, c) for c in chunks[1:]], options.concurrency)
    return [row for rows in served for row in rows]


async def _totals_frame(
    client: TopdeskClient,
    incident_ids: Sequence[str],
    served: Sequence[Any],
    options: TimeRegistrationOptions,
    known: Mapping[str, Mapping[str, Any]],
) -> pd.DataFrame:
    """The totals frame of ``incident_ids`` from the registrations served and the incidents' totals."""
    ids = [i for i in incident_ids if UUID.match(i)]
    incidents = {key: known[key] for key in ids if key in known}
    missing = [key for key in ids if key not in incidents]
    if missing:
        incidents.update(await _incidents_by_id(client, missing, options))
    wanted = set(ids)
    minutes: dict[str, int] = dict.fromkeys(ids, 0)
    odd: dict[str, int] = dict.fromkeys(ids, 0)
    seen: set[str] = set()
    for row in (r for r in served if isinstance(r, Mapping)):
        parent, key = usable_id(dig(row, "parent.id")), usable_id(row.get("id"))
        if parent not in wanted or key in seen:
            continue
        seen.add(key or "")
        seconds = number(row.get("timeSpent"))
        if seconds is None or seconds % 60:
            odd[parent] += 1
        else:
            minutes[parent] += int(seconds // 60)
    rows = [
        {
            "ticket_id": key,
            "ticket_number": text(dig(incidents.get(key), "number")),
            "registered_minutes": minutes[key],
            "unreadable_rows": odd[key],
            **{name: number(dig(incidents.get(key), name)) for name in TOTAL_FIELDS},
        }
        for key in ids
    ]
    return pd.DataFrame(rows, columns=list(TOTAL_COLUMNS)) if rows else empty_totals()


def empty_totals() -> pd.DataFrame:
    """No incident read: the totals frame with its columns."""
    return pd.DataFrame({name: pd.Series(dtype="object") for name in TOTAL_COLUMNS})


# --- operational activities ---------------------------------------------------------------------------


class _ActivityJob:
    """The operational-activity source: the activities in scope, then each one's registrations.

    The endpoint has no date filter, so rows outside the window are served too; they are kept
    (``activities_outside_window``: the billing's window guard counts them in their own bucket) or left
    out here. A row whose dates cannot be read is always kept (validation rejects it). ``read`` holds
    what was read once ``run`` has ended.
    """

    def __init__(
        self,
        client: TopdeskClient,
        start: datetime,
        end: datetime,
        options: TimeRegistrationOptions,
        lookups: Lookups,
        frame_columns: list[str] | None = None,
        strings: SharedText | None = None,
    ) -> None:
        self.client, self.start, self.end, self.options, self.lookups = client, start, end, options, lookups
        self.read: ActivityRead | None = None
        self.frame_columns, self.strings = frame_columns, strings or SharedText()

    async def run(self) -> list[Any]:
        """Every registration served for the activities in scope, as records.

        With ``frame_columns`` (the optional columns of the frame) ``contract_frame`` chunks instead: each
        activity's text values are shared as its rows arrive, and its rows released once they are records.
        """
        scope, client = self.options.activities, self.client
        activities = await _activities_in_scope(client, self.options)
        fields = {"fields": ",".join(OM_REGISTRATION_FIELDS)}
        unique = frozenset(("id", "entryDate", "creationDate", "modificationDate"))

        async def one(activity: Mapping[str, Any]) -> list[dict[str, Any]]:
            rows = await client.read_all(OM_REGISTRATIONS, fields, path_values={"id": str(activity["id"])})
            if self.frame_columns is None:
                return rows
            return [shared(row, self.strings.seen, unique) for row in rows]

        per_activity, _ = await asyncio.gather(
            gather_bounded([partial(one, a) for a in activities], self.options.concurrency),
            self.lookups.load(),
        )
        last_entry = {}
        keep_all = self.options.activities_outside_window

        def records() -> Iterator[dict[str, Any]]:
            for index, activity in enumerate(activities):
                rows, per_activity[index] = per_activity[index], []
                moments = [m for r in rows if (m := _moment(r)) is not None]
                if moments:
                    last_entry[str(activity["id"])] = max(moments)
                kept = [
                    r for r in rows if keep_all or _moment(r) is None or _in_window(r, self.start, self.end)
                ]
                yield from (activity_record(r, activity, self.lookups) for r in kept)

        built = _framed(records(), self.frame_columns, self.strings)
        self.read = ActivityRead(scope.sweep, len(activities), last_entry)
        return built


async def read_activity_registrations(
    client: TopdeskClient,
    start: datetime,
    end: datetime,
    options: TimeRegistrationOptions,
    lookups: Lookups,
) -> list[dict[str, Any]]:
    """Every registration served for the operational activities in ``options.activities``' scope."""
    return await _ActivityJob(client, start, end, options, lookups).run()


async def _activities_in_scope(
    client: TopdeskClient, options: TimeRegistrationOptions
) -> list[Mapping[str, Any]]:
    """The activities a read covers (each once): all, or the dated ones plus the known ones by id."""
    scope = options.activities
    fixed: dict[str, Any] = {"fields": ",".join(OM_ACTIVITY_FIELDS)}

    def query(part: str | None) -> dict[str, Any]:
        parts = [f"({q})" for q in (options.activity_query, part) if q]
        return {**fixed, "query": ";".join(parts)} if parts else dict(fixed)

    reads = [client.read_all(OM_ACTIVITIES, query(scope.query()))]
    if not scope.sweep and scope.known:
        by_id = _id_in("id")
        chunks = id_chunks(client, OM_ACTIVITIES.path, sorted(scope.known), lambda c: query(by_id(c)))
        reads += [client.read_all(OM_ACTIVITIES, query(by_id(chunk))) for chunk in chunks]
    served = [row for rows in await asyncio.gather(*reads) for row in rows]
    activities = [a for a in served if isinstance(a, Mapping) and usable_id(a.get("id"))]
    if len(activities) < len(served):
        log.error(
            "TOPdesk served %d operational activities without a usable id", len(served) - len(activities)
        )
    unique = {str(a["id"]): a for a in reversed(activities)}  # listed by date and by id: read once
    return [unique[key] for key in dict.fromkeys(str(a["id"]) for a in activities)]


def _in_window(row: Mapping[str, Any], start: datetime, end: datetime) -> bool:
    """Filter on ``entryDate``; a row whose entry date cannot be read is kept by its creation date."""
    moment = _moment(row)
    return moment is not None and start <= moment < end


def activity_record(row: Any, activity: Mapping[str, Any], lookups: Lookups) -> dict[str, Any]:
    """One activity registration in contract column names; names and customer number via look-ups."""
    if not isinstance(row, Mapping):
        return unreadable(row, "operational_activity", "seconds") | {"ticket_id": activity.get("id")}
    linked = activity.get("linkedBranches") or []
    first = linked[0] if isinstance(linked, list) and linked and isinstance(linked[0], Mapping) else {}
    branch_id = usable_id(first.get("id"))
    branch = lookups.branch(branch_id)
    record = _common(row, "operational_activity", "seconds", "timeSpent", "note")
    record.update(
        operator_name=lookups.operator_name(usable_id(record["operator_id"])),
        operator_group_name=lookups.group_name(usable_id(record["operator_group_id"])),
        reason_name=lookups.reason_name(usable_id(record["reason_id"])),
        ticket_id=activity.get("id"),
        ticket_number=activity.get("number"),
        ticket_description=activity.get("briefDescription"),
        billed_ticket_id=activity.get("id"),
        billed_ticket_number=activity.get("number"),
        ticket_status=_status_text(activity.get("status")),
        branch_id=branch_id,
        branch_name=first.get("name") or branch.get("name"),
        customer_number=branch.get("clientReferenceNumber"),
    )
    return record


def _status_text(status: Any) -> str | None:
    if isinstance(status, Mapping):
        return text(status.get("name") or status.get("id"))
    return text(status)


# --- changes, change activities, problems (OData) -----------------------------------------------------


async def read_odata_registrations(
    client: TopdeskClient,
    kind: str,
    start: datetime,
    end: datetime,
    config: ODataOptions,
    frame_columns: list[str] | None = None,
    strings: SharedText | None = None,
) -> list[Any]:
    """Every registration of one OData kind served for the window, with their tickets' context.

    With ``frame_columns`` (the optional columns of the frame) ``contract_frame`` chunks instead of
    records: each page's text values are shared (``strings``) as it arrives, and the served rows are
    released chunk by chunk as they become frame rows.
    """
    c = config
    strings = strings or SharedText()
    unique = frozenset((c.id, c.entry_date, c.creation_date, c.modification_date))
    params = {
        "$filter": f"{c.entry_date} ge {fiql_datetime(start)} and {c.entry_date} lt {fiql_datetime(end)}",
        "$select": c.registration_select(),
        "$orderby": f"{c.entry_date} asc,{c.id} asc",
    }
    rows: list[Any] = []
    async for page in client.iter_pages(odata(c.registration_sets[kind]), params):
        rows += page if frame_columns is None else [shared(row, strings.seen, unique) for row in page]
    ticket_ids = sorted({t for r in rows if isinstance(r, Mapping) and (t := usable_id(r.get(c.ticket_id)))})
    tickets = await _odata_tickets(client, c.ticket_sets[kind], ticket_ids, c)
    records = (odata_record(row, kind, tickets, c) for row in _drained(rows))
    return _framed(records, frame_columns, strings)


async def _odata_tickets(
    client: TopdeskClient, entity_set: str, ids: list[str], c: ODataOptions
) -> dict[str, dict[str, Any]]:
    """Tickets by id in ``Id eq … or …`` filters as long as the URL allows, read side by side."""
    endpoint = odata(entity_set)
    ids = [key for key in ids if UUID.match(key)]

    def params(chunk: Sequence[str]) -> dict[str, str]:
        return {
            "$filter": " or ".join(f"{c.ticket_key} eq {key}" for key in chunk),
            "$select": c.ticket_select(),
        }

    chunks = id_chunks(client, endpoint.path, ids, params, at_most=c.ticket_batch)
    served = await asyncio.gather(*(client.read_all(endpoint, params(chunk)) for chunk in chunks))
    found: dict[str, dict[str, Any]] = {}
    for ticket in (t for rows in served for t in rows):
        if isinstance(ticket, Mapping) and (key := usable_id(ticket.get(c.ticket_key))):
            found[key] = dict(ticket)
    return found


def odata_record(row: Any, kind: str, tickets: Mapping[str, Mapping[str, Any]], c: ODataOptions) -> dict:
    """One OData registration in contract column names."""
    if not isinstance(row, Mapping):
        return unreadable(row, kind, c.unit)
    raw_ticket = row.get(c.ticket_id)
    ticket_id = usable_id(raw_ticket)
    ticket = tickets.get(ticket_id or "", {})
    problem: str | None
    if ticket_id is None:
        problem = f"{c.ticket_id}: missing" if raw_ticket in (None, "") else f"{c.ticket_id}: not an id"
    else:
        problem = None if ticket else f"{c.ticket_id}: ticket {ticket_id!r} unknown to TOPdesk"
    raw_id, raw_time = row.get(c.id), row.get(c.time_spent)
    return {
        "registration_id": usable_id(raw_id),
        "kind": kind,
        "entry_date_raw": row.get(c.entry_date),
        "time_spent_raw": number(raw_time),
        "time_unit": c.unit,
        "creation_date": row.get(c.creation_date),
        "modification_date": row.get(c.modification_date),
        "operator_id": row.get(c.operator_id),
        "operator_name": row.get(c.operator_name),
        "operator_group_id": row.get(c.group_id),
        "operator_group_name": row.get(c.group_name),
        "reason_id": row.get(c.reason_id),
        "reason_name": row.get(c.reason_name),
        "notes": row.get(c.notes),
        "ticket_id": ticket_id,
        "ticket_number": ticket.get(c.ticket_number),
        "ticket_description": ticket.get(c.ticket_description),
        "billed_ticket_id": ticket_id,
        "billed_ticket_number": ticket.get(c.ticket_number),
        "branch_id": ticket.get(c.branch_id),
        "branch_name": ticket.get(c.branch_name),
        "customer_number": ticket.get(c.customer_number),
        "read_error": joined(id_problem(raw_id, c.id), number_problem(raw_time, c.time_spent), problem),
    }


# --- the contract frame -------------------------------------------------------------------------------


def whole_minutes(raw: pd.Series, unit: pd.Series) -> pd.Series:
    """Integer minutes where ``raw`` converts exactly (seconds: a multiple of 60), else ``<NA>``."""
    per_minute = unit.map({"seconds": 60.0, "minutes": 1.0}).astype("float64")
    value = raw / per_minute
    exact = raw.notna() & per_minute.notna() & (raw % per_minute == 0) & (value.abs() <= MAX_ABS_MINUTES)
    return value.where(exact).round().astype("Int64")


def contract_frames(
    parts: list[list[Any]], optional: list[str] | None = None, strings: SharedText | None = None
) -> pd.DataFrame:
    """``contract_frame`` of all ``parts`` (in order), built ``FRAME_CHUNK`` records at a time.

    A part is a list of records or a list of frame chunks already built (``_IncidentJob``); ``optional``
    as in ``contract_frame`` (by default: those any record has); ``strings`` shared by every chunk.

    Each chunk's records are removed from its list once they are frame rows, and the chunks' columns are
    joined one column at a time, so the records, the frame and a second copy of it are never all held at
    once (at a million registrations the records alone take gigabytes). Same frame as ``contract_frame``
    of all records together: the same columns, dtypes and row order.
    """
    if optional is None:
        has = any(isinstance(r, Mapping) and "order_ref" in r for part in parts for r in part)
        optional = ["order_ref"] if has else []
    strings = strings or SharedText()
    pieces: list[pd.DataFrame] = []
    for part in parts:
        if part and isinstance(part[0], pd.DataFrame):
            pieces += part
            part.clear()
        while part:
            chunk = part[:FRAME_CHUNK]
            del part[:FRAME_CHUNK]
            pieces.append(contract_frame(chunk, optional, strings))
    if len(pieces) <= 1:
        return pieces[0] if pieces else contract_frame([], optional, strings)
    names = list(pieces[0].columns)
    columns = {}
    for name in names:
        columns[name] = pd.concat([piece.pop(name) for piece in pieces], ignore_index=True)
    return pd.DataFrame(columns, columns=names, copy=False)


def contract_frame(
    records: Sequence[Mapping[str, Any]], optional: list[str] | None = None, strings: SharedText | None = None
) -> pd.DataFrame:
    """Records → the frame of docs/contracts.md §1 (column order and dtypes exactly) plus ``read_error``.

    ``optional``: the optional columns to add (``order_ref``); by default those any record has.
    ``strings``: shared across the chunks of one read, so equal text values are one object (``SharedText``).
    """
    records = list(records)
    strings = strings or SharedText()
    if optional is None:
        optional = ["order_ref"] if any("order_ref" in record for record in records) else []
    frame = pd.DataFrame(records, columns=[*COLUMNS, *optional], dtype=object)
    if optional:  # only when [topdesk] order_field is set; after the contract columns
        frame["order_ref"] = strings.column("order_ref", frame["order_ref"])
    for column in STR_COLUMNS:
        frame[column] = strings.column(column, frame[column])
    frame["time_spent_raw"] = frame["time_spent_raw"].map(number).astype("float64")
    for column, raw in (
        ("entry_date", "entry_date_raw"),
        ("creation_date", None),
        ("modification_date", None),
    ):
        frame[column] = parse_datetimes(frame[raw or column])
    frame["minutes"] = whole_minutes(frame["time_spent_raw"], frame["time_unit"])
    return frame


async def gather_bounded(factories: Sequence[Callable[[], Awaitable[T]]], limit: int) -> list[T]:
    """Run coroutine factories with at most ``limit`` in flight; results in input order."""
    semaphore = asyncio.Semaphore(max(1, limit))

    async def run(factory: Callable[[], Awaitable[T]]) -> T:
        async with semaphore:
            return await factory()

    return list(await asyncio.gather(*(run(f) for f in factories)))
