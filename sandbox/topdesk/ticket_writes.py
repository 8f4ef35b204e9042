"""Writes onto tickets: incident actions, change progress trails, optional text fields (write-back).

The routes Koppel's write-back uses (``connectors/topdesk/writeback.py`` names the specs), strict:

- ``PATCH /incidents/id/{id}`` accepts ``action`` (text), ``actionInvisibleForCaller`` (boolean) and
  ``optionalFields1``/``optionalFields2`` (text fields ≤ 100, memo fields refused as for persons);
  200 with the incident. ``GET /incidents/id/{id}/actions``: family B (``start``, ``page_size`` 1..100,
  default 10), newest first, 206 while more, 204 when none.
- ``POST /operatorChanges/{id}/progresstrail`` and ``/operatorChangeActivities/{id}/progresstrail``:
  ``memoText`` (required, not empty) and ``invisibleForCaller`` (boolean); 201 with the entry. ``GET`` on the
  same path: ``{"results": [...], "next": url|null}`` (``pageStart``, ``pageSize`` 1..100, default 10).
- ``PATCH /operatorChanges/{id}``, ``/operatorChangeActivities/{id}`` and ``/operationalActivities/{id}``:
  a JSON Patch list (``Content-Type: application/json-patch+json``, else 415) of ``replace`` operations on
  ``/optionalFields1/textN`` or ``/optionalFields2/textN``; 200 with the record.

Unknown tickets are 404 in TOPdesk's words, an account without write rights gets 403. Test knobs live in
``TicketWriteKnobs`` on ``sim.ticket_writes`` (also ``/__sandbox/topdesk/ticket-writes``): ``deny`` (403),
``fail_next`` (503 + ``Retry-After`` BEFORE applying, n times) and ``lose_next`` (apply, then answer 504
as a gateway that lost TOPdesk's answer, n times).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sandbox.topdesk.http import ApiError, int_param, json_response, page_url, read_object, topdesk_date
from sandbox.topdesk.incidents import get_incident
from sandbox.topdesk.records import format_dates, optional_fields
from sandbox.topdesk.state import TopdeskSim
from sandbox.topdesk.writes import Rule, apply_changes

NOUNS = {"change": "changes", "change_activity": "change activities", "operational_activity": "activities"}
_TEXT_PATH = re.compile(r"^/(optionalFields[12])/(text[1-5])$")
INCIDENT_RULES = {
    "action": Rule("text"),
    "actionInvisibleForCaller": Rule("bool"),
    "optionalFields1": Rule("optional"),
    "optionalFields2": Rule("optional"),
}


@dataclass
class TicketWriteKnobs:
    """Test controls and what was written (actions per ticket, newest last)."""

    deny: bool = False  # the API account lacks write rights on incidents/changes/activities: 403
    fail_next: int = 0  # the next n writes answer 503 + Retry-After without applying
    lose_next: int = 0  # the next n writes are applied, then answered 504 (the answer is lost)
    actions: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    incident_fields: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # id -> blocks
    writes: int = 0  # writes applied


def knobs(sim: TopdeskSim) -> TicketWriteKnobs:
    """The ticket-write knobs and state of ``sim`` (created on first use)."""
    if not hasattr(sim, "ticket_writes"):
        sim.ticket_writes = TicketWriteKnobs()
    return sim.ticket_writes


def actions_of(sim: TopdeskSim, kind: str, ticket_id: str) -> list[dict[str, Any]]:
    """Every action written onto one ticket, oldest first (tests read TOPdesk's state with it)."""
    return list(knobs(sim).actions.get((kind, ticket_id), []))


def _sim(request: Request) -> TopdeskSim:
    sim: TopdeskSim = request.app.state.sim
    return sim


def _permitted(sim: TopdeskSim, noun: str) -> None:
    if knobs(sim).deny:
        raise ApiError(403, f"No permission to edit {noun}", code="forbidden")


def _before_write(sim: TopdeskSim) -> TicketWriteKnobs:
    """After validation: the injected "not executed" failure, if one is due."""
    state = knobs(sim)
    if state.fail_next > 0:
        state.fail_next -= 1
        raise ApiError(503, "Service temporarily unavailable", code="unavailable", **{"Retry-After": "0"})
    return state


def _answer(state: TicketWriteKnobs, body: Any, status: int = 200) -> Response:
    state.writes += 1
    if state.lose_next > 0:
        state.lose_next -= 1
        return json_response([{"message": "Gateway Timeout"}], 504)
    return json_response(body, status)


def _add_action(sim: TopdeskSim, kind: str, ticket_id: str, text: str, invisible: bool) -> dict[str, Any]:
    entry = {
        "id": sim.new_id(),
        "memoText": text,
        "plainText": re.sub(r"<[^>]+>", "", text),
        "invisibleForCaller": invisible,
        "entryDate": sim.now_ms(),
        "operator": sim.api_ref(),
        "person": None,
    }
    knobs(sim).actions.setdefault((kind, ticket_id), []).append(entry)
    return entry


# --- incidents ----------------------------------------------------------------------------------------


async def patch_incident(request: Request) -> Response:
    """``PATCH /incidents/id/{id}``: an action and/or optional text fields."""
    sim = _sim(request)
    ticket_id = request.path_params["id"]
    position = sim.incidents.find(ticket_id, "id")
    _permitted(sim, "incidents")
    body = await read_object(request)
    record: dict[str, Any] = {"optionalFields1": _incident_fields(sim, ticket_id, 1)}
    record["optionalFields2"] = _incident_fields(sim, ticket_id, 2)
    apply_changes(sim, record, body, INCIDENT_RULES)  # 400 on the first bad field, nothing applied
    state = _before_write(sim)
    if record.get("action"):
        invisible = bool(record.get("actionInvisibleForCaller"))
        _add_action(sim, "incident", ticket_id, record["action"], invisible)
    stored = state.incident_fields.setdefault(ticket_id, {})
    for block in ("optionalFields1", "optionalFields2"):
        if block in body:
            stored[block] = record[block]
    sim.incidents.text["optionalFields1.text1"][position] = record["optionalFields1"]["text1"]
    answer = await get_incident(request)
    return _answer(state, json.loads(bytes(answer.body)))


def _incident_fields(sim: TopdeskSim, ticket_id: str, number: int) -> dict[str, Any]:
    stored = knobs(sim).incident_fields.get(ticket_id, {})
    block = dict(stored.get(f"optionalFields{number}") or optional_fields())
    if number == 1 and "optionalFields1" not in stored:
        block["text1"] = sim.incidents.text["optionalFields1.text1"][sim.incidents.find(ticket_id)]
    return block


async def list_incident_actions(request: Request) -> Response:
    """``GET /incidents/id/{id}/actions``: newest first; family B paging."""
    sim = _sim(request)
    ticket_id = request.path_params["id"]
    sim.incidents.find(ticket_id, "id")
    start = int_param(request, "start", 0, 0, None)
    size = int_param(request, "page_size", 10, 1, 100)
    rows = list(reversed(actions_of(sim, "incident", ticket_id)))
    if not rows[start:]:
        return Response(status_code=204)
    page = [format_dates(row, topdesk_date) for row in rows[start : start + size]]
    return json_response(page, 206 if start + size < len(rows) else 200)


# --- changes, change activities, operational activities ---------------------------------------------


def _records(sim: TopdeskSim, kind: str) -> Any:
    return {
        "change": sim.changes,
        "change_activity": sim.change_activities,
        "operational_activity": sim.om_activities,
    }[kind]


def _kind(request: Request) -> str:
    path = request.url.path
    if "/operatorChangeActivities/" in path:
        return "change_activity"
    return "change" if "/operatorChanges/" in path else "operational_activity"


async def post_progress(request: Request) -> Response:
    """``POST .../progresstrail``: a memo, invisible for the caller or not; 201 with the entry."""
    sim, kind = _sim(request), _kind(request)
    ticket_id = request.path_params["id"]
    _records(sim, kind).get(ticket_id)
    _permitted(sim, NOUNS[kind])
    body = await read_object(request)
    unknown = sorted(set(body) - {"memoText", "invisibleForCaller"})
    if unknown:
        raise ApiError(400, f'The field "{unknown[0]}" does not exist.', applies_to=unknown[:1])
    text = body.get("memoText")
    if not isinstance(text, str) or not text.strip():
        raise ApiError(400, "Mandatory field 'memoText' is missing.", applies_to=["memoText"])
    invisible = body.get("invisibleForCaller", False)
    if not isinstance(invisible, bool):
        raise ApiError(400, 'The value for the field "invisibleForCaller" cannot be parsed')
    state = _before_write(sim)
    entry = _add_action(sim, kind, ticket_id, text, invisible)
    return _answer(state, format_dates(entry, topdesk_date), 201)


async def list_progress(request: Request) -> Response:
    """``GET .../progresstrail``: ``{"results", "next"}``, newest first."""
    sim, kind = _sim(request), _kind(request)
    ticket_id = request.path_params["id"]
    _records(sim, kind).get(ticket_id)
    start = int_param(request, "pageStart", 0, 0, None)
    size = int_param(request, "pageSize", 10, 1, 100)
    rows = list(reversed(actions_of(sim, kind, ticket_id)))
    page = [format_dates(row, topdesk_date) for row in rows[start : start + size]]
    more = start + size < len(rows)
    next_url = page_url(request, pageStart=start + size) if more else None
    return json_response({"results": page, "next": next_url})


async def patch_record(request: Request) -> Response:
    """JSON Patch of optional text fields on a change, change activity or operational activity."""
    sim, kind = _sim(request), _kind(request)
    records = _records(sim, kind)
    record = records.get(request.path_params["id"])
    _permitted(sim, NOUNS[kind])
    if not request.headers.get("content-type", "").startswith("application/json-patch+json"):
        raise ApiError(415, "Unsupported Media Type: use application/json-patch+json")
    try:
        operations = json.loads(await request.body() or b"null")
    except ValueError:
        raise ApiError(400, "Input parameters malformed") from None
    if not isinstance(operations, list) or not operations:
        raise ApiError(400, "Input parameters malformed")
    changes = {}
    for operation in operations:
        changes.update(_checked_operation(operation))
    state = _before_write(sim)
    for (block, name), value in changes.items():
        record.setdefault(block, optional_fields())[name] = value
    return _answer(state, format_dates(records.render(record), topdesk_date))


def _checked_operation(operation: Any) -> dict[tuple[str, str], str]:
    if not isinstance(operation, dict) or operation.get("op") != "replace":
        raise ApiError(400, "Only 'replace' operations are supported")
    match = _TEXT_PATH.match(str(operation.get("path", "")))
    if match is None:
        path = str(operation.get("path", ""))
        raise ApiError(400, f'The field "{path}" does not exist.', applies_to=[path])
    value = operation.get("value")
    name = f"{match.group(1)}.{match.group(2)}"
    if not isinstance(value, str):
        raise ApiError(400, f'The value for the field "{name}" cannot be parsed', applies_to=[name])
    if len(value) > 100:
        raise ApiError(
            400, f'The value for the field "{name}" can only be 100 characters long.', applies_to=[name]
        )
    return {(match.group(1), match.group(2)): value}


# --- control (tests only) -----------------------------------------------------------------------------


async def control(request: Request) -> Response:
    """``POST``: set knobs (``deny``, ``fail_next``, ``lose_next``); ``GET``: knobs and write count."""
    state = knobs(_sim(request))
    if request.method == "POST":
        body = await read_object(request)
        for name in ("deny", "fail_next", "lose_next"):
            if name in body:
                setattr(state, name, type(getattr(state, name))(body[name]))
    shown = {name: getattr(state, name) for name in ("deny", "fail_next", "lose_next", "writes")}
    return json_response(shown)
