"""Incident endpoints of the TOPdesk simulator.

``/incidents`` (paging family A), the bulk time registrations and the per-incident ``/timespent``
(reference §3.1-§3.3, §4.5; decisions §9.1, §9.3-§9.7, §9.10).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response

from sandbox.topdesk.fiql import FiqlError, Node, parse, parse_datetime_ms
from sandbox.topdesk.http import (
    ApiError,
    bool_param,
    fields_param,
    int_param,
    iso_date,
    json_response,
    page_url,
    read_object,
    sort_param,
    topdesk_date,
)
from sandbox.topdesk.malformed import BULK, malformed_rows
from sandbox.topdesk.records import optional_fields
from sandbox.topdesk.state import TopdeskSim
from sandbox.topdesk.tickets import INCIDENT_SORTS, REGISTRATION_FIELDS, REGISTRATION_SORTS

INCIDENT_FIELDS = (
    "id",
    "number",
    "status",
    "briefDescription",
    "externalNumber",
    "caller",
    "callerBranch",
    "callerLocation",
    "category",
    "subcategory",
    "operator",
    "operatorGroup",
    "processingStatus",
    "completed",
    "completedDate",
    "closed",
    "closedDate",
    "timeSpent",
    "timeSpentFirstLine",
    "timeSpentSecondLine",
    "timeSpentPartial",
    "timeSpentLinkedPartials",
    "callDate",
    "creationDate",
    "modificationDate",
    "targetDate",
    "mainIncident",
    "archivingReason",
    "optionalFields1",
    "optionalFields2",
)
TIMESPENT_FIELDS = {"timeSpent", "notes", "entryDate", "operator", "operatorGroup", "reason"}


def fiql(request: Request) -> Node | None:
    """The parsed ``query`` parameter (400 on a syntax error), None when absent."""
    raw = request.query_params.get("query")
    if raw is None or raw.strip() == "":
        return None
    try:
        return parse(raw)
    except FiqlError as error:
        raise ApiError(400, str(error), code="invalid_query", applies_to=["query"]) from None


def _sim(request: Request) -> TopdeskSim:
    return request.app.state.sim


# --- /incidents ---------------------------------------------------------------------------------------


async def list_incidents(request: Request) -> Response:
    """Family A: 206 + ``x-next-page-url`` while more exist, 204 when the page is empty."""
    sim = _sim(request)
    start = int_param(request, "pageStart", 0, 0, None)
    size = int_param(request, "pageSize", 10, 1, 10_000)
    include_all = bool(bool_param(request, "all", False))
    fields = fields_param(request.query_params.get("fields"), INCIDENT_FIELDS, list(INCIDENT_FIELDS))
    sort = sort_param(request.query_params.get("sort"), INCIDENT_SORTS)
    node = fiql(request)
    try:
        rows = sim.incidents.select(node, include_all, sort)
    except FiqlError as error:
        raise ApiError(400, str(error), code="invalid_query", applies_to=["query"]) from None
    page = rows[start : start + size]
    if len(page) == 0:
        return Response(status_code=204)
    body = IncidentView(sim, _date_format(request)).render(page, fields)
    if start + size < len(rows):
        next_url = page_url(request, pageStart=start + size, pageSize=size)
        return json_response(body, 206, headers={"x-next-page-url": next_url})
    return json_response(body)


async def get_incident(request: Request) -> Response:
    """``/incidents/id/{id}`` and ``/incidents/number/{number}`` (numbers arrive percent-decoded)."""
    sim = _sim(request)
    position = _incident_position(request)
    fields = fields_param(request.query_params.get("fields"), INCIDENT_FIELDS, list(INCIDENT_FIELDS))
    return json_response(IncidentView(sim, _date_format(request)).render(np.array([position]), fields)[0])


def _incident_position(request: Request) -> int:
    params = request.path_params
    if "id" in params:
        return _sim(request).incidents.find(params["id"], "id")
    return _sim(request).incidents.find(params["number"], "number")


def _date_format(request: Request) -> Any:
    return iso_date if request.query_params.get("dateFormat") == "iso8601" else topdesk_date


class IncidentView:
    """Renders incidents with their references and time totals (minutes)."""

    def __init__(self, sim: TopdeskSim, fmt: Any) -> None:
        self.sim, self.fmt, self.store = sim, fmt, sim.incidents
        self.own = sim.registrations.totals()
        self.categories = dict(zip(sim.categories["id"], sim.categories["name"], strict=True))
        self.categories.update(
            zip(sim.categories["subcategory_id"], sim.categories["subcategory"], strict=True)
        )

    def render(self, rows: np.ndarray, fields: list[str]) -> list[dict[str, Any]]:
        """One JSON object per position in ``rows`` with only ``fields``."""
        linked = self._linked_partials(rows)
        out = []
        for row in rows.tolist():
            full = self._full(row, linked.get(row, 0))
            out.append({name: full[name] for name in fields})
        return out

    def _linked_partials(self, rows: np.ndarray) -> dict[int, int]:
        main = self.store.main
        partials = np.flatnonzero(np.isin(main, rows))
        sums: dict[int, int] = {}
        for partial in partials.tolist():
            sums[int(main[partial])] = sums.get(int(main[partial]), 0) + int(self.own[partial])
        return sums

    def _full(self, row: int, linked: int) -> dict[str, Any]:
        s, fmt, text = self.store, self.fmt, self.store.text
        closed_ms = int(s.dates["closedDate"][row])
        closed_at = fmt(closed_ms) if s.closed[row] else None
        optional = optional_fields()
        optional["text1"] = text["optionalFields1.text1"][row]
        if "optionalFields1.text2" in text:
            optional["text2"] = text["optionalFields1.text2"][row]
        return {
            "id": s.ids[row],
            "number": s.numbers[row],
            "status": s.status[row],
            "briefDescription": text["briefDescription"][row],
            "externalNumber": "",
            "caller": self._caller(text["caller.id"][row]),
            "callerBranch": self._branch(text["callerBranch.id"][row]),
            "callerLocation": None,
            "category": self._named(text["category.id"][row]),
            "subcategory": self._named(text["subcategory.id"][row]),
            "operator": self.sim.refs["actors"].ref(
                self.sim.refs["actors"].index.get(text["operator.id"][row], -1)
            ),
            "operatorGroup": self.sim.refs["groups"].ref(
                self.sim.refs["groups"].index.get(text["operatorGroup.id"][row], -1)
            ),
            "processingStatus": {"id": "", "name": "Afgemeld" if s.closed[row] else "In behandeling"},
            "completed": bool(s.closed[row]),
            "completedDate": closed_at,
            "closed": bool(s.closed[row]),
            "closedDate": closed_at,
            **self._times(row, linked),
            "callDate": fmt(int(s.dates["callDate"][row])),
            "creationDate": fmt(int(s.dates["creationDate"][row])),
            "modificationDate": fmt(int(s.dates["modificationDate"][row])),
            "targetDate": None,
            "mainIncident": self._main(row),
            "archivingReason": self._archiving_reason(row),
            "optionalFields1": optional,
            "optionalFields2": optional_fields(),
        }

    def _times(self, row: int, linked: int) -> dict[str, int]:
        own, line = int(self.own[row]), self.store.line[row]
        own += self.sim.total_offsets.get(self.store.ids[row], 0)  # a test made the total disagree
        return {
            "timeSpent": 0 if line == "partial" else own + linked,
            "timeSpentFirstLine": own if line == "firstLine" else 0,
            "timeSpentSecondLine": own if line == "secondLine" else 0,
            "timeSpentPartial": own if line == "partial" else 0,
            "timeSpentLinkedPartials": linked,
        }

    def _caller(self, person_id: str) -> dict[str, Any] | None:
        person = self.sim.persons.by_id.get(person_id)
        if person is None:
            return None
        branch = self._branch(person["branch"])
        return {
            "id": person["id"],
            "dynamicName": person["dynamicName"],
            "email": person["email"],
            "branch": branch,
        }

    def _branch(self, branch_id: str) -> dict[str, Any] | None:
        ref = self.sim.branch_ref(branch_id)
        if ref is None:
            return None
        return {k: ref[k] for k in ("id", "name", "clientReferenceNumber", "timeZone", "extraA", "extraB")}

    def _named(self, key: str) -> dict[str, str] | None:
        return {"id": key, "name": self.categories[key]} if key in self.categories else None

    def _main(self, row: int) -> dict[str, str] | None:
        main = int(self.store.main[row])
        return None if main < 0 else {"id": self.store.ids[main], "number": self.store.numbers[main]}

    def _archiving_reason(self, row: int) -> dict[str, str] | None:
        if not self.store.archived[row]:
            return None
        reason = self.sim.archiving_reasons[0]
        return {"id": reason["id"], "name": reason["name"]}


# --- /incidents/timeregistrations ---------------------------------------------------------------------


async def list_time_registrations(request: Request) -> Response:
    """``{"results": [...]}`` in seconds; default projection ``id``; 200 unless ``bulk_next`` is on."""
    sim = _sim(request)
    start = int_param(request, "pageStart", 0, 0, None)
    size = int_param(request, "pageSize", 100, 0, 10_000)
    fields = fields_param(request.query_params.get("fields"), REGISTRATION_FIELDS, ["id"])
    sort = sort_param(request.query_params.get("sort"), REGISTRATION_SORTS)
    node = None if sim.options.ignore_fiql else fiql(request)
    rows = _served_registrations(sim, node, sort, start, size)
    page = rows[start : start + size]
    body: dict[str, Any] = {"results": sim.registrations.render(page, fields)}
    extra = _malformed(sim, request, rows, fields) if sim.options.malformed_copies else []
    if extra:  # served after the real rows, paged with them
        first = max(0, start - len(rows))
        body["results"] += extra[first : max(first, start + size - len(rows))]
    total = len(rows) + len(extra)
    if sim.options.bulk_next and size > 0 and start + size < total:
        body["next"] = page_url(request, pageStart=start + size, pageSize=size)
        return json_response(body, 206)
    return json_response(body)


def _malformed(sim: TopdeskSim, request: Request, rows: np.ndarray, fields: list[str]) -> list[Any]:
    """The malformed rows the bulk endpoint serves for a date query (not for a ``parent.id`` query)."""
    if "parent.id" in request.query_params.get("query", "") or len(rows) == 0:
        return []
    key = f"bulk|{','.join(fields)}"
    if key not in sim.malformed:
        clean = rows[sim.registrations.cols["dirty"][rows] == ""]
        if len(clean) == 0:
            return []
        template = sim.registrations.render(clean[:1], list(REGISTRATION_FIELDS))[0]
        template = {k: v for k, v in template.items() if k in fields or k == "parent"}
        sim.malformed[key] = malformed_rows("bulk", template, BULK, sim.options.malformed_copies)
    return sim.malformed[key]


def _served_registrations(
    sim: TopdeskSim, node: Node | None, sort: list[tuple[str, bool]] | None, start: int, size: int
) -> np.ndarray:
    store = sim.registrations
    try:
        rows = store.select(node, sort)
        if sim.options.insert_between_pages and start > 0 and len(rows):
            sim.insert_copies(int(rows[0]), sim.options.insert_between_pages)
            rows = store.select(node, sort)
        if sim.options.delete_between_pages and start > 0 and len(rows) > sim.options.delete_between_pages:
            # "rows deleted between pages": every later row shifts forward, an offset client skips some
            for row in rows[: sim.options.delete_between_pages].tolist():
                sim.delete_registration(str(store.cols["ids"][int(row)]))
            rows = store.select(node, sort)
    except FiqlError as error:
        raise ApiError(400, str(error), code="invalid_query", applies_to=["query"]) from None
    return store.with_duplicates(rows, size) if sim.options.serve_duplicates else rows


async def get_time_registration(request: Request) -> Response:
    """One registration by id (every field unless ``fields`` says otherwise)."""
    sim = _sim(request)
    row = sim.registrations.find(request.path_params["id"])
    fields = fields_param(request.query_params.get("fields"), REGISTRATION_FIELDS, list(REGISTRATION_FIELDS))
    return json_response(sim.registrations.render(np.array([row]), fields)[0])


# --- /incidents/{id|number}/timespent -----------------------------------------------------------------


async def list_timespent(request: Request) -> Response:
    """The incident's registrations in MINUTES; 204 when it has none."""
    sim = _sim(request)
    rows = sim.registrations.of_incident(_incident_position(request))
    if len(rows) == 0:
        return Response(status_code=204)
    return json_response([_timespent(sim, row) for row in rows.tolist()])


def _timespent(sim: TopdeskSim, row: int) -> dict[str, Any]:
    store, refs = sim.registrations, sim.refs
    c = store.cols
    return {
        "id": c["ids"][row],
        "timeSpent": int(c["minutes"][row]),
        "notes": c["notes"][row],
        "status": 0,
        "entryDate": store.entry_value(row, topdesk_date),
        "creationDate": topdesk_date(int(c["creation"][row])),
        "operator": refs["actors"].ref(c["operator"][row]),
        "operatorGroup": refs["groups"].ref(c["group"][row]),
        "reason": refs["reasons"].ref(c["reason"][row]),
    }


async def create_timespent(request: Request) -> Response:
    """POST with the validations of reference §3.2 and decision §9.10; 201 with the new TimeSpent."""
    sim = _sim(request)
    position = _incident_position(request)
    if sim.incidents.archived[position]:
        raise ApiError(403, "The incident is archived and cannot be changed")
    body = await read_object(request)
    minutes, notes, entry = _timespent_values(sim, body)
    actor, group = _booked_operator(sim, body)
    reason = _reason(sim, body.get("reason"))
    if int(sim.registrations.totals()[position]) + minutes < 0:
        raise ApiError(
            400, "The total time spent on an incident cannot become negative", applies_to=["timeSpent"]
        )
    key = sim.store_registration(
        position=position,
        minutes=minutes,
        entry_ms=entry,
        actor=actor,
        group=group,
        reason=reason,
        notes=notes,
    )
    return json_response(_timespent(sim, sim.registrations.find(key)), 201)


def _timespent_values(sim: TopdeskSim, body: dict[str, Any]) -> tuple[int, str, int]:
    unknown = sorted(set(body) - TIMESPENT_FIELDS)
    if unknown:
        raise ApiError(400, f'The field "{unknown[0]}" does not exist.', applies_to=unknown)
    minutes = body.get("timeSpent")
    if minutes is None:
        raise ApiError(400, "Mandatory field 'timeSpent' is missing.", applies_to=["timeSpent"])
    if isinstance(minutes, bool) or not isinstance(minutes, int):
        raise ApiError(400, 'The value for the field "timeSpent" cannot be parsed', applies_to=["timeSpent"])
    if minutes == 0:
        raise ApiError(400, "Time spent cannot be 0", applies_to=["timeSpent"])
    notes = body.get("notes") or ""
    if not isinstance(notes, str) or len(notes) > 250:
        raise ApiError(
            400, 'The value for the field "notes" can only be 250 characters long.', applies_to=["notes"]
        )
    raw_entry = body.get("entryDate")
    if raw_entry is None:
        return minutes, notes, sim.now_ms()
    try:
        return minutes, notes, parse_datetime_ms(str(raw_entry))
    except ValueError:
        raise ApiError(
            400, 'The value for the field "entryDate" cannot be parsed', applies_to=["entryDate"]
        ) from None


def _ref_id(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("id", ""), str):
        raise ApiError(400, f'The value for the field "{name}" cannot be parsed', applies_to=[name])
    return value.get("id")


def _booked_operator(sim: TopdeskSim, body: dict[str, Any]) -> tuple[int, int]:
    """(actor, group): operator with an optional matching group; a group alone is booked as operator."""
    operator_id = _ref_id(body.get("operator"), "operator")
    group_id = _ref_id(body.get("operatorGroup"), "operatorGroup")
    actors, groups = sim.refs["actors"], sim.refs["groups"]
    if operator_id is not None and operator_id not in sim.operator_group:
        raise ApiError(404, 'The value for the field "operator" cannot be found.', applies_to=["operator"])
    if group_id is not None and group_id not in groups.index:
        raise ApiError(
            404, 'The value for the field "operatorGroup" cannot be found.', applies_to=["operatorGroup"]
        )
    if operator_id is None and group_id is None:
        return sim.api_operator, -1
    if operator_id is None:
        return actors.index[group_id], groups.index[group_id]
    if group_id is not None and sim.operator_group[operator_id] != group_id:
        raise ApiError(
            400, "The operator is not a member of the given operator group", applies_to=["operatorGroup"]
        )
    return actors.index[operator_id], groups.index.get(group_id or sim.operator_group[operator_id], -1)


def _reason(sim: TopdeskSim, value: Any) -> int:
    """A reason by ``{id}`` or ``{name}`` (the id wins); -1 when none is given."""
    if value is None:
        return -1
    if not isinstance(value, dict):
        raise ApiError(400, 'The value for the field "reason" cannot be parsed', applies_to=["reason"])
    reasons = sim.refs["reasons"]
    if value.get("id"):
        position = reasons.index.get(value["id"], -1)
    else:
        names = reasons.names.tolist()
        position = names.index(value.get("name")) if value.get("name") in names else -1
    if position < 0:
        raise ApiError(404, 'The value for the field "reason" cannot be found.', applies_to=["reason"])
    return position
