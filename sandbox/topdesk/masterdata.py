"""Master-data endpoints of the TOPdesk simulator.

Branches, persons v2, operators and groups (paging family B) and the small lookups (reference §4.1-§4.4,
§5; decisions §9.11-§9.14).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sandbox.topdesk.fiql import FiqlError
from sandbox.topdesk.http import (
    ApiError,
    bool_param,
    fields_param,
    int_param,
    json_response,
    page_url,
    project,
    read_object,
    topdesk_date,
)
from sandbox.topdesk.incidents import fiql
from sandbox.topdesk.records import RecordSet, format_dates, optional_fields
from sandbox.topdesk.state import TopdeskSim
from sandbox.topdesk.writes import BRANCH_RULES, PERSON_RULES, apply_changes

PERSON_LIST = "application/x.topdesk-collection-person-v2+json"
PERSON_ONE = "application/x.topdesk-person-v2+json"


def _sim(request: Request) -> TopdeskSim:
    return request.app.state.sim


def _select(records: RecordSet, request: Request, keep: Any = None) -> list[dict[str, Any]]:
    try:
        return records.select(fiql(request), keep)
    except FiqlError as error:
        raise ApiError(400, str(error), code="invalid_query", applies_to=["query"]) from None


# --- branches -----------------------------------------------------------------------------------------


BRANCH_FIELDS = (
    "id",
    "name",
    "specification",
    "clientReferenceNumber",
    "timeZone",
    "extraA",
    "extraB",
    "phone",
    "fax",
    "email",
    "website",
    "address",
    "postalAddress",
    "branchType",
    "headBranch",
    "membershipNumber",
    "accountManager",
    "contact",
    "vatNumber",
    "attention",
    "attentionComment",
    "additionalInfo",
    "serviceWindowOption",
    "serviceWindow",
    "optionalFields1",
    "optionalFields2",
    "notes",
    "archived",
    "creator",
    "creationDate",
    "modifier",
    "modificationDate",
)


async def list_branches(request: Request) -> Response:
    """Not paged; ``$fields`` (default ``id,name``); only active branches unless a ``query`` is given."""
    sim = _sim(request)
    fields = fields_param(request.query_params.get("$fields"), BRANCH_FIELDS, ["id", "name"])
    has_query = bool(request.query_params.get("query"))
    rows = _select(sim.branches, request, None if has_query else lambda r: not r["archived"])
    return json_response([project(format_dates(r, topdesk_date), fields) for r in rows])


async def get_branch(request: Request) -> Response:
    """One branch (archived ones too)."""
    sim = _sim(request)
    fields = fields_param(request.query_params.get("$fields"), BRANCH_FIELDS, list(BRANCH_FIELDS))
    record = sim.branches.get(request.path_params["id"])
    return json_response(project(format_dates(record, topdesk_date), fields))


async def create_branch(request: Request) -> Response:
    """201 with the full branch; 400 with TOPdesk's messages (reference §5)."""
    sim = _sim(request)
    if not sim.options.can_write_branches:
        raise ApiError(403, "No permission to create branches")
    body = await read_object(request)
    if not body.get("name"):
        raise ApiError(400, "Mandatory field 'name' is missing.", applies_to=["name"])
    record = _new_branch(sim)
    apply_changes(sim, record, body, BRANCH_RULES)
    sim.branches.add(record)
    return json_response(format_dates(record, topdesk_date), 201)


async def update_branch(request: Request) -> Response:
    """PATCH (or PUT) any subset of the fields; 404 ``The Branch could not be found``."""
    sim = _sim(request)
    if not sim.options.can_write_branches:
        raise ApiError(403, "No permission to modify branches")
    record = sim.branches.get(request.path_params["id"])
    body = await read_object(request)
    if "name" in body and not body["name"]:
        raise ApiError(400, "Mandatory field 'name' is missing.", applies_to=["name"])
    changed = dict(record)
    apply_changes(sim, changed, body, BRANCH_RULES)
    _stamp(sim, changed)
    record.update(changed)
    return json_response(format_dates(record, topdesk_date))


async def archive_branch(request: Request) -> Response:
    """Archive with ``{"id": <archiving reason>}`` (decision §9.14)."""
    return await _archive(request, _sim(request).branches, "branch", archive=True)


async def unarchive_branch(request: Request) -> Response:
    """Unarchive (no body)."""
    return await _archive(request, _sim(request).branches, "branch", archive=False)


async def _archive(request: Request, records: RecordSet, noun: str, archive: bool) -> Response:
    sim = _sim(request)
    record = records.get(request.path_params["id"])
    if archive:
        body = await read_object(request) if await request.body() else {}
        reason = body.get("id")
        if not reason:
            raise ApiError(400, "Reason for archiving is mandatory", applies_to=["id"])
        if reason not in {r["id"] for r in sim.archiving_reasons}:
            raise ApiError(400, 'The value for the field "id" cannot be found.', applies_to=["id"])
    if record["archived"] == archive:
        raise ApiError(400, _ARCHIVE_MESSAGES[(noun, archive)])
    record["archived"] = archive
    _stamp(sim, record)
    shown = records.render(record)
    media = PERSON_ONE if records is sim.persons else "application/json"
    return json_response(format_dates(shown, topdesk_date), media_type=media)


_ARCHIVE_MESSAGES = {
    ("branch", True): "branch is already archived",
    ("branch", False): "branch is not archived",
    ("person", True): "Person is already archived",
    ("person", False): "Person is not archived",
}


def _stamp(sim: TopdeskSim, record: dict[str, Any]) -> None:
    record["modifier"] = sim.api_ref()
    record["modificationDate"] = sim.now_ms()


def _new_branch(sim: TopdeskSim) -> dict[str, Any]:
    creator, now = sim.api_ref(), sim.now_ms()
    address = {"country": None, "street": "", "number": "", "county": "", "city": "", "postcode": ""}
    address.update(addressMemo="", addressType=None)
    record: dict[str, Any] = {name: "" for name in BRANCH_FIELDS}
    record.update({name: None for name in ("extraA", "extraB", "headBranch", "accountManager", "contact")})
    record.update(
        attention=None, serviceWindow=None, serviceWindowOption="default", branchType="independentBranch"
    )
    record.update(address=dict(address), postalAddress=dict(address), timeZone="Europe/Amsterdam")
    record.update(optionalFields1=optional_fields(), optionalFields2=optional_fields(), archived=False)
    record.update(id=sim.new_id(), creator=creator, creationDate=now, modifier=creator, modificationDate=now)
    return record


# --- persons v2 ---------------------------------------------------------------------------------------


def _accept(request: Request, wanted: str) -> str:
    """Serve the vendor type for ``wanted``, no Accept, ``*/*`` or plain JSON; 406 for other vendor types."""
    accept = request.headers.get("accept", "")
    for part in accept.split(","):
        media = part.split(";")[0].strip().lower()
        if media in ("", "*/*", "application/*", wanted, "application/json"):
            return media
    raise ApiError(406, f"Not acceptable: {accept}; use {wanted}")


async def list_persons(request: Request) -> Response:
    """``{item, size, next}``; 206 while more exist, 200 on the last page; archived ones too without query."""
    sim = _sim(request)
    _accept(request, PERSON_LIST)
    start = int_param(request, "pageStart", 0, 0, None)
    size = int_param(request, "pageSize", 50, 1, 5000)
    fields = fields_param(request.query_params.get("fields"), _person_fields(sim), _person_fields(sim))
    archived = bool_param(request, "archived", None)
    keep = None if archived is None else (lambda r: r["archived"] == archived)
    rows = _select(sim.persons, request, keep)
    rows.sort(key=lambda r: r["dynamicName"])
    page = rows[start : start + size]
    more = start + size < len(rows)
    body = {
        "item": [project(format_dates(r, topdesk_date), fields) for r in page],
        "size": len(page),
        "next": page_url(request, pageStart=start + size, pageSize=size) if more else None,
    }
    return json_response(body, 206 if more else 200, media_type=PERSON_LIST)


def _person_fields(sim: TopdeskSim) -> list[str]:
    first = next(iter(sim.persons), None)
    return list(sim.persons.render(first)) if first else ["id", "surName", "branch"]


async def get_person(request: Request) -> Response:
    """One person (v2)."""
    sim = _sim(request)
    _accept(request, PERSON_ONE)
    record = sim.persons.get(request.path_params["id"])
    return json_response(format_dates(sim.persons.render(record), topdesk_date), media_type=PERSON_ONE)


async def create_person(request: Request) -> Response:
    """201 PersonV2; requires ``surName`` and (decision §9.14) ``branch``."""
    sim = _sim(request)
    _accept(request, PERSON_ONE)
    if not sim.options.can_write_persons:
        raise ApiError(403, "No permission to create persons")
    body = await read_object(request)
    for name in ("surName", "branch"):
        if not body.get(name):
            raise ApiError(400, f"Mandatory field '{name}' is missing.", applies_to=[name])
    record = _new_person(sim)
    apply_changes(sim, record, body, PERSON_RULES)
    record["dynamicName"] = _dynamic_name(record)
    sim.persons.add(record)
    return json_response(format_dates(sim.persons.render(record), topdesk_date), 201, media_type=PERSON_ONE)


async def update_person(request: Request) -> Response:
    """PATCH ``/persons/{id}`` (v2, no ``/id/`` segment)."""
    sim = _sim(request)
    _accept(request, PERSON_ONE)
    if not sim.options.can_write_persons:
        raise ApiError(403, "No permission to modify persons")
    record = sim.persons.get(request.path_params["id"])
    body = await read_object(request)
    if "surName" in body and not body["surName"]:
        raise ApiError(400, "Mandatory field 'surName' is missing.", applies_to=["surName"])
    changed = dict(record)
    apply_changes(sim, changed, body, PERSON_RULES)
    changed["dynamicName"] = _dynamic_name(changed)
    _stamp(sim, changed)
    record.update(changed)
    return json_response(format_dates(sim.persons.render(record), topdesk_date), media_type=PERSON_ONE)


async def archive_person(request: Request) -> Response:
    """Archive with ``{"id": <archiving reason>}``."""
    return await _archive(request, _sim(request).persons, "person", archive=True)


async def unarchive_person(request: Request) -> Response:
    """Unarchive (no body)."""
    return await _archive(request, _sim(request).persons, "person", archive=False)


def _dynamic_name(record: dict[str, Any]) -> str:
    first = record.get("firstName") or ""
    return f"{record['surName']}, {first}" if first else str(record["surName"])


def _new_person(sim: TopdeskSim) -> dict[str, Any]:
    template = next(iter(sim.persons), None)
    creator, now = sim.api_ref(), sim.now_ms()
    record: dict[str, Any] = {}
    if template is not None:
        record = {k: ("" if isinstance(v, str) else None) for k, v in template.items()}
    record.update(archived=False, isCaller=True, isManager=False, hasSspAccess=True)
    record.update(optionalFields1=optional_fields(), optionalFields2=optional_fields())
    record.update(id=sim.new_id(), creator=creator, creationDate=now, modifier=creator, modificationDate=now)
    return record


# --- operators, operator groups (family B) and lookups -------------------------------------------------


async def list_operators(request: Request) -> Response:
    """Family B over the operators."""
    return _family_b(request, _sim(request).operators)


async def list_operator_groups(request: Request) -> Response:
    """Family B over the operator groups (``groupName``, ``hourlyRate``)."""
    return _family_b(request, _sim(request).groups)


def _family_b(request: Request, records: list[dict[str, Any]]) -> Response:
    """``start``/``page_size`` (1..100, default 10): 206 while more exist, 204 for an empty page."""
    start = int_param(request, "start", 0, 0, None)
    size = int_param(request, "page_size", 10, 1, 100)
    fields = fields_param(request.query_params.get("fields"), records[0].keys(), list(records[0]))
    rows = _select(RecordSet("Operator", records, lambda r: r), request)
    page = rows[start : start + size]
    if not page:
        return Response(status_code=204)
    status = 206 if start + size < len(rows) else 200
    return json_response([project(r, fields) for r in page], status)


async def get_operator(request: Request) -> Response:
    """``/operators/id/{id}``."""
    return _one(_sim(request).operators, request.path_params["id"], "Operator")


async def get_operator_group(request: Request) -> Response:
    """``/operatorgroups/id/{id}``."""
    return _one(_sim(request).groups, request.path_params["id"], "Operator group")


def _one(records: list[dict[str, Any]], key: str, noun: str) -> Response:
    for record in records:
        if record["id"] == key:
            return json_response(record)
    raise ApiError(404, f"The {noun} could not be found")


async def list_reasons(request: Request) -> Response:
    """``/timespent-reasons`` → ``[{id, name}]``."""
    return json_response(_sim(request).reasons)


async def list_archiving_reasons(request: Request) -> Response:
    """``/archiving-reasons`` → ``[{id, name}]``."""
    return json_response(_sim(request).archiving_reasons)


async def list_countries(request: Request) -> Response:
    """``/countries`` → ``[{id, name}]``."""
    return json_response(_sim(request).countries)


async def list_categories(request: Request) -> Response:
    """``/incidents/categories`` → ``[{id, name}]``."""
    frame = _sim(request).categories.drop_duplicates("id")
    return json_response([{"id": i, "name": n} for i, n in zip(frame["id"], frame["name"], strict=True)])


async def list_subcategories(request: Request) -> Response:
    """``/incidents/subcategories`` → ``[{id, name, category{id, name}}]``."""
    frame = _sim(request).categories
    return json_response(
        [
            {
                "id": r["subcategory_id"],
                "name": r["subcategory"],
                "category": {"id": r["id"], "name": r["name"]},
            }
            for r in frame.to_dict("records")
        ]
    )
