"""All TOPdesk time registrations of a period as ONE frame in the shape of docs/contracts.md §1.

Sources (reference §6, decisions §9.1–§9.5):

- incidents: the bulk endpoint ``/incidents/timeregistrations`` (FIQL on ``entryDate`` with explicit
  ``Z``, explicit ``fields``, sort ``entryDate:asc,creationDate:asc``, ``pageSize`` 1000, de-duplicated
  by id; SECONDS), with ticket context looked up in batches of ≤ 50 ids through ``/incidents``;
- operational activities: the activity list, then each activity's registrations (bounded concurrency;
  SECONDS on GET), kept when their ``entryDate`` lies in the period;
- changes, change activities and problems: the OData reporting feed; entity sets, property names and
  the unit are configuration (``ODataOptions``; defaults match the sandbox, see docs/sandbox.md).

Nothing malformed is dropped: raw values are kept so validation can reject the row with a reason. A
bulk value that is not a whole number of minutes keeps ``minutes`` NA ("unit mismatch", never rounded).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pandas as pd

from connectors.errors import RequestRejected
from connectors.redaction import get_logger
from connectors.topdesk.client import TopdeskClient
from connectors.topdesk.dates import fiql_datetime, parse_datetime, parse_datetimes
from connectors.topdesk.endpoints import INCIDENTS, OM_ACTIVITIES, OM_REGISTRATIONS, TIME_REGISTRATIONS, odata
from connectors.topdesk.lookups import Lookups
from connectors.topdesk.units import check_units

T = TypeVar("T")
log = get_logger(__name__)

KINDS = ("incident", "change", "change_activity", "operational_activity", "problem")
STR_COLUMNS = (
    "registration_id", "kind", "entry_date_raw", "time_unit", "operator_id", "operator_name",
    "operator_group_id", "operator_group_name", "reason_id", "reason_name", "notes", "ticket_id",
    "ticket_number", "ticket_description", "billed_ticket_id", "billed_ticket_number", "ticket_status",
    "branch_id", "branch_name", "customer_number", "category", "subcategory", "project_ref",
)  # fmt: skip
COLUMNS = (
    "registration_id", "kind", "entry_date_raw", "entry_date", "time_spent_raw", "time_unit", "minutes",
    "creation_date", "modification_date", "operator_id", "operator_name", "operator_group_id",
    "operator_group_name", "reason_id", "reason_name", "notes", "ticket_id", "ticket_number",
    "ticket_description", "billed_ticket_id", "billed_ticket_number", "ticket_status", "branch_id",
    "branch_name", "customer_number", "category", "subcategory", "project_ref",
)  # fmt: skip
ALL_STATUSES = (
    "firstLine", "secondLine", "partial", "firstLineArchived", "secondLineArchived", "partialArchived",
)  # fmt: skip
BULK_FIELDS = (
    "id", "timeSpent", "notes", "status", "entryDate", "creationDate", "operator", "operatorGroup", "reason",
    "parent",
)  # fmt: skip
INCIDENT_FIELDS = ("id", "number", "status", "briefDescription", "callerBranch", "category", "subcategory")
INCIDENT_FIELDS += ("mainIncident",)
OM_ACTIVITY_FIELDS = ("id", "number", "briefDescription", "status", "archived", "linkedBranches")
OM_REGISTRATION_FIELDS = ("id", "timeSpent", "note", "entryDate", "creationDate", "operator", "operatorGroup")
OM_REGISTRATION_FIELDS += ("reason",)
INCIDENT_BATCH = 50  # decision §9.6


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
    ticket_batch: int = 40

    def registration_select(self) -> str:
        """``$select`` of a registration set."""
        names = (self.id, self.ticket_id, self.entry_date, self.time_spent, self.notes, self.operator_id)
        names += (self.operator_name, self.group_id, self.group_name, self.reason_id, self.reason_name)
        return ",".join((*names, self.creation_date, self.modification_date))

    def ticket_select(self) -> str:
        """``$select`` of a ticket set."""
        names = (self.ticket_key, self.ticket_number, self.ticket_description, self.branch_id)
        return ",".join((*names, self.branch_name, self.customer_number))


@dataclass(frozen=True)
class TimeRegistrationOptions:
    """How to read time registrations; the defaults follow the reference's decisions."""

    kinds: Sequence[str] = KINDS
    include_partials_archived: bool = False  # decision §9.5: adds status=in=(…) to the bulk query
    project_field: str = "optionalFields1.text1"  # where incidents keep the AFAS project code
    page_size: int = 1000
    incident_batch: int = INCIDENT_BATCH
    concurrency: int = 4  # parallel incident look-ups / activity reads (the HTTP layer bounds it too)
    activity_query: str | None = None  # FIQL narrowing the operational activities listed (None = all)
    unit_sample: int = 10  # incidents whose per-incident minutes are compared with the bulk (0 = off)
    creation_lookback: timedelta = timedelta(days=31)  # FIQL fallback: how long before start to keep reading
    odata: ODataOptions = field(default_factory=ODataOptions)

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown registration kinds: {sorted(unknown)}")
        if not 1 <= self.incident_batch <= INCIDENT_BATCH:
            raise ValueError(f"incident_batch must be between 1 and {INCIDENT_BATCH}")


async def read_time_registrations(
    client: TopdeskClient, start: datetime, end: datetime, options: TimeRegistrationOptions | None = None
) -> pd.DataFrame:
    """Every registration with ``start <= entryDate < end`` of the configured kinds, as one frame."""
    options = options or TimeRegistrationOptions()
    if start.tzinfo is None or end.tzinfo is None or start >= end:
        raise ValueError("start and end must be time-zone aware with start < end")
    lookups = Lookups(client)
    records: list[dict[str, Any]] = []
    if "incident" in options.kinds:
        records += await read_incident_registrations(client, start, end, options)
    if "operational_activity" in options.kinds:
        records += await read_activity_registrations(client, start, end, options, lookups)
    for kind in ("change", "change_activity", "problem"):
        if kind in options.kinds:
            records += await read_odata_registrations(client, kind, start, end, options.odata)
    return contract_frame(records)


# --- incidents ----------------------------------------------------------------------------------------


def bulk_query(start: datetime, end: datetime, include_partials_archived: bool) -> str:
    """FIQL for the bulk endpoint: the entry-date window with explicit ``Z`` (decision §9.4/§9.5)."""
    query = f"entryDate=ge={fiql_datetime(start)};entryDate=lt={fiql_datetime(end)}"
    if include_partials_archived:
        query += f";status=in=({','.join(ALL_STATUSES)})"
    return query


async def read_incident_registrations(
    client: TopdeskClient, start: datetime, end: datetime, options: TimeRegistrationOptions
) -> list[dict[str, Any]]:
    """Incident registrations of the window with their ticket context, de-duplicated by id."""
    params = {
        "query": bulk_query(start, end, options.include_partials_archived),
        "fields": ",".join(BULK_FIELDS),
        "sort": "entryDate:asc,creationDate:asc",
    }
    try:
        rows = await _bulk_rows(client, params, options.page_size)
    except RequestRejected as exc:
        log.warning("TOPdesk refused the FIQL query (%s); reading by creationDate instead", exc.message)
        rows = await _bulk_rows_by_creation(client, start, end, options)
    if options.unit_sample:
        await check_units(client, list(rows.values()), options.unit_sample)
    parents = {(row.get("parent") or {}).get("id") for row in rows.values()}
    tickets = await resolve_incidents(client, {p for p in parents if p}, options)
    return [incident_record(row, tickets, options.project_field) for row in rows.values()]


async def _bulk_rows(
    client: TopdeskClient, params: dict[str, Any], page_size: int
) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    async for page in client.iter_pages(TIME_REGISTRATIONS, params, page_size=page_size):
        for row in page:
            rows.setdefault(str(row.get("id")), row)  # a row served twice across pages counts once
    return rows


async def _bulk_rows_by_creation(
    client: TopdeskClient, start: datetime, end: datetime, options: TimeRegistrationOptions
) -> dict[str, dict[str, Any]]:
    """Decision §9.4 fallback: newest first by ``creationDate``, filtered locally, until before ``start``.

    A registration is created at or after the moment it was entered for, give or take
    ``creation_lookback``; reading stops at the first page created entirely before that horizon.
    """
    params = {"fields": ",".join(BULK_FIELDS), "sort": "creationDate:desc"}
    horizon = start - options.creation_lookback
    rows: dict[str, dict[str, Any]] = {}
    async for page in client.iter_pages(TIME_REGISTRATIONS, params, page_size=options.page_size):
        for row in page:
            entry = parse_datetime(row.get("entryDate")) or parse_datetime(row.get("creationDate"))
            if entry is not None and start <= entry < end:
                rows.setdefault(str(row.get("id")), row)
        created = [parse_datetime(row.get("creationDate")) for row in page]
        if created and all(c is not None and c < horizon for c in created):
            break
    return rows


async def resolve_incidents(
    client: TopdeskClient, ids: Iterable[str], options: TimeRegistrationOptions
) -> dict[str, dict[str, Any]]:
    """Incidents by id (``id=in=``, ≤ 50 per call, partials and archived included), plus their mains."""
    found = await _incidents_by_id(client, sorted(ids), options)
    mains = {(i.get("mainIncident") or {}).get("id") for i in found.values()}
    missing = sorted(m for m in mains if m and m not in found)
    if missing:
        found.update(await _incidents_by_id(client, missing, options))
    return found


async def _incidents_by_id(
    client: TopdeskClient, ids: list[str], options: TimeRegistrationOptions
) -> dict[str, dict[str, Any]]:
    top_field = options.project_field.split(".", 1)[0]
    fields = ",".join(dict.fromkeys((*INCIDENT_FIELDS, top_field)))
    batches = [ids[i : i + options.incident_batch] for i in range(0, len(ids), options.incident_batch)]

    async def one(batch: list[str]) -> list[dict[str, Any]]:
        params = {
            "query": f"id=in=({','.join(batch)})",
            "all": "true",
            "dateFormat": "iso8601",
            "fields": fields,
        }
        return await client.read_all(INCIDENTS, params, page_size=len(batch))

    results = await gather_bounded([lambda b=b: one(b) for b in batches], options.concurrency)
    return {str(incident["id"]): incident for batch in results for incident in batch}


def dig(value: Any, path: str) -> Any:
    """``value["a"]["b"]`` for ``"a.b"``; ``None`` when any step is missing."""
    for step in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(step)
    return value


def incident_record(
    row: Mapping[str, Any], tickets: Mapping[str, Mapping[str, Any]], project_field: str
) -> dict:
    """One bulk registration with its incident's context, in contract column names."""
    parent = row.get("parent") or {}
    incident = tickets.get(str(parent.get("id")), {})
    main_ref = incident.get("mainIncident") or {}
    main = tickets.get(str(main_ref.get("id")), {}) if main_ref else {}
    branch = incident.get("callerBranch") or main.get("callerBranch") or {}
    return {
        **_common(row, "incident", "seconds", "timeSpent", "notes"),
        "ticket_id": parent.get("id"),
        "ticket_number": incident.get("number"),
        "ticket_description": incident.get("briefDescription"),
        "billed_ticket_id": main_ref.get("id") or parent.get("id"),
        "billed_ticket_number": main_ref.get("number") or incident.get("number"),
        "ticket_status": incident.get("status") or parent.get("status") or row.get("status"),
        "branch_id": branch.get("id"),
        "branch_name": branch.get("name"),
        "customer_number": branch.get("clientReferenceNumber"),
        "category": dig(incident, "category.name"),
        "subcategory": dig(incident, "subcategory.name"),
        "project_ref": _text(dig(incident, project_field)) or _text(dig(main, project_field)),
    }


def _common(row: Mapping[str, Any], kind: str, unit: str, time_key: str, notes_key: str) -> dict[str, Any]:
    """The columns every REST registration has, names of operator/group/reason as sent."""
    return {
        "registration_id": row.get("id"),
        "kind": kind,
        "entry_date_raw": row.get("entryDate"),
        "time_spent_raw": row.get(time_key),
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
    }


def _text(value: Any) -> str | None:
    """``value`` as text; ``None`` for missing, NaN and blank values."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return None if str(value).strip() == "" else str(value)


# --- operational activities ---------------------------------------------------------------------------


async def read_activity_registrations(
    client: TopdeskClient,
    start: datetime,
    end: datetime,
    options: TimeRegistrationOptions,
    lookups: Lookups,
) -> list[dict[str, Any]]:
    """Registrations of operational activities whose ``entryDate`` lies in the window."""
    params: dict[str, Any] = {"fields": ",".join(OM_ACTIVITY_FIELDS)}
    if options.activity_query:
        params["query"] = options.activity_query
    activities = await client.read_all(OM_ACTIVITIES, params)
    fields = {"fields": ",".join(OM_REGISTRATION_FIELDS)}

    async def one(activity: Mapping[str, Any]) -> list[dict[str, Any]]:
        return await client.read_all(OM_REGISTRATIONS, fields, path_values={"id": str(activity["id"])})

    per_activity = await gather_bounded([lambda a=a: one(a) for a in activities], options.concurrency)
    await lookups.load()
    records = []
    for activity, rows in zip(activities, per_activity, strict=True):
        records += [activity_record(r, activity, lookups) for r in rows if _in_window(r, start, end)]
    return records


def _in_window(row: Mapping[str, Any], start: datetime, end: datetime) -> bool:
    """Filter on ``entryDate``; a row whose entry date cannot be read is kept by its creation date."""
    moment = parse_datetime(row.get("entryDate")) or parse_datetime(row.get("creationDate"))
    return moment is not None and start <= moment < end


def activity_record(row: Mapping[str, Any], activity: Mapping[str, Any], lookups: Lookups) -> dict[str, Any]:
    """One activity registration in contract column names; names and customer number via look-ups."""
    linked = activity.get("linkedBranches") or []
    first = linked[0] if linked and isinstance(linked[0], Mapping) else {}
    branch = lookups.branch(first.get("id"))
    record = _common(row, "operational_activity", "seconds", "timeSpent", "note")
    record.update(
        operator_name=lookups.operator_name(record["operator_id"]),
        operator_group_name=lookups.group_name(record["operator_group_id"]),
        reason_name=lookups.reason_name(record["reason_id"]),
        ticket_id=activity.get("id"),
        ticket_number=activity.get("number"),
        ticket_description=activity.get("briefDescription"),
        billed_ticket_id=activity.get("id"),
        billed_ticket_number=activity.get("number"),
        ticket_status=_status_text(activity.get("status")),
        branch_id=first.get("id"),
        branch_name=first.get("name") or branch.get("name"),
        customer_number=branch.get("clientReferenceNumber"),
    )
    return record


def _status_text(status: Any) -> str | None:
    if isinstance(status, Mapping):
        return _text(status.get("name") or status.get("id"))
    return _text(status)


# --- changes, change activities, problems (OData) -----------------------------------------------------


async def read_odata_registrations(
    client: TopdeskClient, kind: str, start: datetime, end: datetime, config: ODataOptions
) -> list[dict[str, Any]]:
    """Registrations of one OData kind in the window, with their tickets' context."""
    c = config
    params = {
        "$filter": f"{c.entry_date} ge {fiql_datetime(start)} and {c.entry_date} lt {fiql_datetime(end)}",
        "$select": c.registration_select(),
        "$orderby": f"{c.entry_date} asc,{c.id} asc",
    }
    rows = {str(r.get(c.id)): r for r in await client.read_all(odata(c.registration_sets[kind]), params)}
    ticket_ids = sorted({str(r[c.ticket_id]) for r in rows.values() if r.get(c.ticket_id)})
    tickets = await _odata_tickets(client, c.ticket_sets[kind], ticket_ids, c)
    return [odata_record(row, kind, tickets, c) for row in rows.values()]


async def _odata_tickets(
    client: TopdeskClient, entity_set: str, ids: list[str], c: ODataOptions
) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for i in range(0, len(ids), c.ticket_batch):
        condition = " or ".join(f"{c.ticket_key} eq {key}" for key in ids[i : i + c.ticket_batch])
        params = {"$filter": condition, "$select": c.ticket_select()}
        for ticket in await client.read_all(odata(entity_set), params):
            found[str(ticket[c.ticket_key])] = ticket
    return found


def odata_record(
    row: Mapping[str, Any], kind: str, tickets: Mapping[str, Mapping[str, Any]], c: ODataOptions
) -> dict:
    """One OData registration in contract column names."""
    ticket = tickets.get(str(row.get(c.ticket_id)), {})
    return {
        "registration_id": row.get(c.id),
        "kind": kind,
        "entry_date_raw": row.get(c.entry_date),
        "time_spent_raw": row.get(c.time_spent),
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
        "ticket_id": row.get(c.ticket_id),
        "ticket_number": ticket.get(c.ticket_number),
        "ticket_description": ticket.get(c.ticket_description),
        "billed_ticket_id": row.get(c.ticket_id),
        "billed_ticket_number": ticket.get(c.ticket_number),
        "branch_id": ticket.get(c.branch_id),
        "branch_name": ticket.get(c.branch_name),
        "customer_number": ticket.get(c.customer_number),
    }


# --- the contract frame -------------------------------------------------------------------------------


def whole_minutes(raw: pd.Series, unit: pd.Series) -> pd.Series:
    """Integer minutes where ``raw`` converts exactly (seconds: a multiple of 60), else ``<NA>``."""
    per_minute = unit.map({"seconds": 60.0, "minutes": 1.0}).astype("float64")
    value = raw / per_minute
    exact = raw.notna() & per_minute.notna() & (raw % per_minute == 0)
    return value.where(exact).round().astype("Int64")


def contract_frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Records → the frame of docs/contracts.md §1 (column order and dtypes exactly)."""
    frame = pd.DataFrame(list(records), columns=list(COLUMNS), dtype=object)
    for column in STR_COLUMNS:
        frame[column] = frame[column].map(_text).astype("str")
    frame["time_spent_raw"] = pd.to_numeric(frame["time_spent_raw"], errors="coerce").astype("float64")
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
