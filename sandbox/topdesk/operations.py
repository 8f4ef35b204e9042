"""Operational activities and the change lists of the TOPdesk simulator.

Per-activity time registrations are in SECONDS on GET, MINUTES on POST (reference §3.5, §4.6; decision §9.1).
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sandbox.topdesk.fiql import FiqlError, parse_datetime_ms
from sandbox.topdesk.http import (
    ApiError,
    bool_param,
    fields_param,
    int_param,
    json_response,
    page_url,
    project,
    read_object,
    sort_param,
    topdesk_date,
)
from sandbox.topdesk.incidents import fiql
from sandbox.topdesk.malformed import OM, malformed_rows
from sandbox.topdesk.records import RecordSet, format_dates
from sandbox.topdesk.state import TopdeskSim

OM_LIST = "application/x.topdesk-collection-om-activity-v1+json"
OM_PAGE_MAX = 5000  # decision §9.17: the activity list's page maximum (400 above it, never clamped)
OM_SORTS = ("creationDate", "modificationDate", "plannedStartDate", "number", "id")
OM_REGISTRATION_FIELDS: tuple[str, ...] = ("id", "timeSpent", "note", "entryDate", "creationDate")
OM_REGISTRATION_FIELDS += ("reason", "operator", "operatorGroup")
OM_POST_FIELDS = {"timeSpent", "note", "entryDate", "reason", "operator", "operatorGroup"}


def _sim(request: Request) -> TopdeskSim:
    return request.app.state.sim


def _om_media(request: Request) -> str:
    """The vendor type (or no Accept, ``*/*``) gets ``{item,next}``; plain JSON the old ``{results}``."""
    accept = request.headers.get("accept", "")
    for part in accept.split(","):
        media = part.split(";")[0].strip().lower()
        if media in ("", "*/*", "application/*", OM_LIST):
            return OM_LIST
        if media == "application/json":
            return media
    raise ApiError(406, f"Not acceptable: {accept}; use {OM_LIST}")


async def list_activities(request: Request) -> Response:
    """``{"item": [...], "next": url|null}``; FIQL ``query``, ``fields`` (default ``id,number``), ``sort``."""
    sim = _sim(request)
    media = _om_media(request)
    start = int_param(request, "pageStart", 0, 0, None)
    size = int_param(request, "pageSize", 100, 1, OM_PAGE_MAX)
    fields = fields_param(request.query_params.get("fields"), _activity_fields(sim), ["id", "number"])
    sort = sort_param(request.query_params.get("sort"), OM_SORTS) or [("creationDate", True)]
    keep = (lambda r: not r["archived"]) if media == "application/json" else None
    try:
        rows = sim.om_activities.select(fiql(request), keep)
    except FiqlError as error:
        raise ApiError(400, str(error), code="invalid_query", applies_to=["query"]) from None
    for name, descending in reversed(sort):
        rows.sort(key=itemgetter(name), reverse=descending)
    page = [project(format_dates(r, topdesk_date), fields) for r in rows[start : start + size]]
    if media == "application/json":
        return json_response({"results": page})
    more = start + size < len(rows)
    next_url = page_url(request, pageStart=start + size, pageSize=size) if more else None
    return json_response({"item": page, "next": next_url}, media_type=OM_LIST)


def _activity_fields(sim: TopdeskSim) -> list[str]:
    first = next(iter(sim.om_activities), None)
    return list(first) if first else ["id", "number"]


async def get_activity(request: Request) -> Response:
    """One operational activity, every field."""
    sim = _sim(request)
    record = sim.om_activities.get(request.path_params["id"])
    return json_response(format_dates(sim.om_activities.render(record), topdesk_date))


async def list_activity_registrations(request: Request) -> Response:
    """``{"results": [...]}``, unpaged, default fields ``id,timeSpent``; entryDate desc, creationDate asc."""
    sim = _sim(request)
    key = sim.om_activities.get(request.path_params["id"])["id"]
    fields = fields_param(request.query_params.get("fields"), OM_REGISTRATION_FIELDS, ["id", "timeSpent"])
    rows = sorted(sim.om_registrations.get(key, []), key=lambda r: r["creationDate"])
    rows.sort(key=lambda r: r["entryDate"], reverse=True)
    results: list[Any] = [project(format_dates(r, topdesk_date), fields) for r in rows]
    return json_response({"results": results + _malformed(sim, key, results)})


def _malformed(sim: TopdeskSim, key: str, results: list[Any]) -> list[Any]:
    """Malformed rows (``malformed_copies``), served by the first activity that has registrations."""
    if not sim.options.malformed_copies or not results:
        return []
    owner = sim.malformed.setdefault("om-owner", [key])[0]
    if owner != key:
        return []
    if "om" not in sim.malformed:
        sim.malformed["om"] = malformed_rows("om", results[0], OM, sim.options.malformed_copies)
    return sim.malformed["om"]


async def create_activity_registration(request: Request) -> Response:
    """POST in MINUTES (stored and shown in seconds); 200, not 201, as the spec says."""
    sim = _sim(request)
    key = sim.om_activities.get(request.path_params["id"])["id"]
    body = await read_object(request)
    unknown = sorted(set(body) - OM_POST_FIELDS)
    if unknown:
        raise ApiError(400, f'The field "{unknown[0]}" does not exist.', applies_to=unknown)
    minutes = body.get("timeSpent")
    if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes <= 0:
        raise ApiError(400, 'The value for the field "timeSpent" cannot be parsed', applies_to=["timeSpent"])
    note = body.get("note") or ""
    if not isinstance(note, str) or len(note) > 250:
        raise ApiError(
            400, 'The value for the field "note" can only be 250 characters long.', applies_to=["note"]
        )
    record = {
        "id": sim.new_id(),
        "timeSpent": minutes * 60,
        "note": note,
        "entryDate": _entry(sim, body.get("entryDate")),
        "creationDate": sim.now_ms(),
        "reason": _id_ref(sim.refs["reasons"].index, body.get("reason"), "reason"),
        "operator": _id_ref(sim.refs["actors"].index, body.get("operator"), "operator")
        or {"id": sim.api_ref()["id"]},
        "operatorGroup": _id_ref(sim.refs["groups"].index, body.get("operatorGroup"), "operatorGroup"),
    }
    sim.om_registrations.setdefault(key, []).append(record)
    return json_response(format_dates(record, topdesk_date))


def _entry(sim: TopdeskSim, raw: Any) -> int:
    if raw is None:
        return sim.now_ms()
    try:
        return parse_datetime_ms(str(raw))
    except ValueError:
        raise ApiError(
            400, 'The value for the field "entryDate" cannot be parsed', applies_to=["entryDate"]
        ) from None


def _id_ref(index: dict[str, int], value: Any, name: str) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("id") not in index:
        raise ApiError(404, f'The value for the field "{name}" cannot be found.', applies_to=[name])
    return {"id": value["id"]}


# --- changes ------------------------------------------------------------------------------------------


async def list_changes(request: Request) -> Response:
    """``{"results": [...]}``; ``pageStart``/``pageSize`` (1..5000, default 1000), 206 while more exist."""
    sim = _sim(request)
    return _paged_results(request, sim.changes, _archived_filter(request))


async def get_change(request: Request) -> Response:
    """One change with its requester and the requester's branch."""
    sim = _sim(request)
    record = sim.changes.get(request.path_params["id"])
    return json_response(format_dates(sim.changes.render(record), topdesk_date))


async def list_change_activities(request: Request) -> Response:
    """Change activities, optionally of one ``change`` (id or number)."""
    sim = _sim(request)
    change = request.query_params.get("change")
    archived = _archived_filter(request)

    def keep(record: dict[str, Any]) -> bool:
        wanted = change is None or change in (record["change"]["id"], record["change"]["number"])
        return wanted and (archived is None or archived(record))

    return _paged_results(request, sim.change_activities, keep)


def _archived_filter(request: Request) -> Any:
    archived = bool_param(request, "archived", None)
    return None if archived is None else (lambda r: r["archived"] == archived)


def _paged_results(request: Request, records: RecordSet, keep: Any) -> Response:
    start = int_param(request, "pageStart", 0, 0, None)
    size = int_param(request, "pageSize", 1000, 1, 5000)
    try:
        rows = records.select(fiql(request), keep)
    except FiqlError as error:
        raise ApiError(400, str(error), code="invalid_query", applies_to=["query"]) from None
    page = [format_dates(r, topdesk_date) for r in rows[start : start + size]]
    return json_response({"results": page}, 206 if start + size < len(rows) else 200)
