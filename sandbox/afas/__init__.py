"""A faithful local AFAS Profit REST API (reference §10 fidelity checklist, §11 decisions).

``create_app(world, options)`` returns a Starlette app serving ``/ProfitRestServices`` (matched
case-insensitively): GetConnectors (``sandbox/afas/connectors.py``, query semantics in
``sandbox/afas/query.py``), ``/metainfo``, ``/metainfo/get|update/{id}``, ``/profitversion`` and the
UpdateConnectors (``sandbox/afas/update.py``). Its state, with helpers for tests, is ``app.state.sim``
(``sandbox/afas/state.py``). Order of checks, as Profit's proxy does them: query string over 2049
characters → 404; IP allow-list → 403; ``POST …/oauth/token`` is the OAuth token endpoint
(``sandbox/afas/oauth.py``); ``Authorization: AfasToken <base64 token XML>`` or ``Bearer <access token>``,
as the app connector's mode allows, else 401 with ``WWW-Authenticate``; connector not granted to the app
connector → 401; then the request itself.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from decimal import Decimal
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.afas import update as afas_update
from sandbox.afas.connectors import CONNECTORS, get_connector
from sandbox.afas.errors import UNEXPECTED, AfasError
from sandbox.afas.oauth import OFFER, OAuthDenial, parse_form
from sandbox.afas.query import parse_query
from sandbox.afas.schemas import MANDATORY, PRIMARY_KEYS, UPDATE_CONNECTORS, ObjectDef, enum_labels, schema
from sandbox.afas.state import AfasOptions, AfasSim
from sandbox.afas.tables import render_rows
from sandbox.world import World

__all__ = ["AfasOptions", "AfasSim", "create_app"]

PREFIX = "profitrestservices"
MAX_QUERY = 2049  # characters from the "?" on (reference §1)
ACCESS_DENIED = -2147024891  # E_ACCESSDENIED
_TOKEN_XML = re.compile(r"\s*<token>\s*<version>1</version>\s*<data>([0-9A-Fa-f]{64})</data>\s*</token>\s*")
INVALID_TOKEN = 'Bearer error="invalid_token", error_description="The access token is invalid or expired"'  # noqa: S105
_HEADERS = {"Cache-Control": "no-store, no-cache", "X-AFAS-Proxy-Version": "4.3.0.0"}
_UPDATE_TYPES = {"string": "string", "integer": "int", "number": "decimal", "boolean": "boolean"}


def create_app(world: World, options: AfasOptions | None = None) -> Starlette:
    """The AFAS Profit simulator for ``world`` (AFAS frames are rendered if the world lacks them)."""
    app = Starlette(routes=[Route("/{path:path}", _handle, methods=["GET", "POST", "PUT", "DELETE"])])
    app.state.sim = AfasSim(world, options)
    return app


async def _handle(request: Request) -> Response:
    sim: AfasSim = request.app.state.sim
    language = request.headers.get("accept-language", "")
    try:
        return await _dispatch(request, sim)
    except AfasError as error:
        return _error(sim, error, language, request.url.path)


async def _dispatch(request: Request, sim: AfasSim) -> Response:
    segments = [s for s in request.url.path.split("/") if s]
    if not segments or segments[0].casefold() != PREFIX or len(request.scope["query_string"]) + 1 > MAX_QUERY:
        return _not_found()
    client = request.client.host if request.client else ""
    if sim.options.allowed_ips is not None and client not in sim.options.allowed_ips:
        raise AfasError("ip_blocked", status=403, number=ACCESS_DENIED)
    route = [s.casefold() for s in segments[1:]]
    method = request.method
    if route == ["oauth", "token"]:
        return await _token_endpoint(request, sim) if method == "POST" else _not_found()
    challenge = _resource_challenge(sim, request.headers.get("authorization"))
    if challenge is not None:
        error = AfasError("token", status=401, number=ACCESS_DENIED)
        return _error(sim, error, request.headers.get("accept-language", ""), request.url.path, challenge)
    if method == "GET" and route == ["profitversion"]:
        return _json({"version": sim.options.profit_version})
    if method == "GET" and route[:1] == ["metainfo"]:
        return _metainfo(sim, segments[2:])
    if route[:1] == ["connectors"] and len(route) >= 2:
        return await _connector(request, sim, method, segments[2:])
    return _not_found()


async def _token_endpoint(request: Request, sim: AfasSim) -> Response:
    """``POST …/oauth/token``: the client-credentials grant (``sandbox/afas/oauth.py``)."""
    endpoint = str(request.url.replace(query=""))
    try:
        form = parse_form(request, await request.body())
        answer = sim.oauth.token(form, request.headers, endpoint, sim.options)
    except OAuthDenial as denial:
        headers = {**_HEADERS, **denial.headers}
        text = json.dumps(denial.body()).encode("utf-8")
        return Response(text, denial.status, headers=headers, media_type="application/json")
    return _json(answer)


def _resource_challenge(sim: AfasSim, header: str | None) -> dict[str, str] | None:
    """``None`` when the credential is accepted, else the ``WWW-Authenticate`` header of the 401."""
    mode = sim.options.auth_mode
    scheme, _, value = (header or "").strip().partition(" ")
    offer = {} if mode == "classic" else {"WWW-Authenticate": OFFER}
    if scheme.casefold() == "bearer":
        if mode != "classic" and sim.oauth.bearer_valid(value.strip()):
            return None
        return {"WWW-Authenticate": INVALID_TOKEN}
    if scheme.casefold() == "afastoken" and mode != "oauth" and _authorised(sim, header):
        return None
    return offer


def _authorised(sim: AfasSim, header: str | None) -> bool:
    """``AfasToken <base64(token XML)>`` whose data part is this environment's token."""
    scheme, _, value = (header or "").strip().partition(" ")
    if scheme.casefold() != "afastoken" or not value.strip():
        return False
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    match = _TOKEN_XML.fullmatch(decoded)
    return match is not None and match.group(1).upper() == sim.token_data


# ---------------------------------------------------------------------------- GetConnectors


def _granted_get(sim: AfasSim, name: str) -> Any:
    connector = get_connector(name)
    granted = sim.options.get_connectors
    if connector is None or (granted is not None and connector.id not in granted):
        raise AfasError("get_not_authorised", status=401, number=ACCESS_DENIED)
    return connector


def _granted_update(sim: AfasSim, name: str) -> str:
    found = next((c for c in UPDATE_CONNECTORS if c.casefold() == name.casefold()), None)
    granted = sim.options.update_connectors
    if found is None or (granted is not None and found not in granted):
        raise AfasError("update_not_authorised", status=401, number=ACCESS_DENIED)
    return found


async def _connector(request: Request, sim: AfasSim, method: str, rest: list[str]) -> Response:
    if method == "GET":
        if len(rest) != 1:
            return _not_found()
        return _get_rows(request, sim, _granted_get(sim, rest[0]))
    connector = _granted_update(sim, rest[0])
    if method == "DELETE":
        afas_update.delete(sim, connector, rest[1:])
        return Response(status_code=200, headers=_HEADERS)
    if len(rest) != 1:
        return _not_found()
    body = await _body(request, sim)
    result = afas_update.execute(sim, connector, method, body)
    if method == "PUT":
        return Response(status_code=200, headers=_HEADERS)
    return _json({"results": {connector: result}}, status=201)


def _get_rows(request: Request, sim: AfasSim, connector: Any) -> Response:
    query = parse_query(list(request.query_params.multi_items()), connector)
    rows = sim.run_get(connector, query)
    columns = [(c.id, c.data_type, c.decimals) for c in connector.columns]
    if sim.options.oom_cells is not None and len(rows) * len(columns) > sim.options.oom_cells:
        raise AfasError("out_of_memory", number=-2147024882)
    text = f'{{"skip":{query.skip},"take":{query.take},"rows":{render_rows(rows, columns)}}}'
    return Response(text.encode("utf-8"), 200, headers=_HEADERS, media_type="application/json; charset=utf-8")


async def _body(request: Request, sim: AfasSim) -> Any:
    raw = await request.body()
    limit = sim.options.max_body_bytes
    if len(raw) > limit:
        raise AfasError("payload_too_large", {"limit": limit}, status=413, number=UNEXPECTED)
    try:
        return json.loads(raw.decode("utf-8"), parse_float=Decimal)
    except (UnicodeDecodeError, ValueError):
        raise AfasError("invalid_json", status=400, number=UNEXPECTED) from None


# ---------------------------------------------------------------------------- metainfo


def _metainfo(sim: AfasSim, rest: list[str]) -> Response:
    if not rest:
        return _json(_overview(sim))
    if len(rest) == 2 and rest[0].casefold() == "get":
        connector = _granted_get(sim, rest[1])
        fields = [column.meta(i) for i, column in enumerate(connector.columns)]
        return _json({"name": connector.id, "description": connector.description, "fields": fields})
    if len(rest) == 2 and rest[0].casefold() == "update":
        name = _granted_update(sim, rest[1])
        described = _describe(name, schema(name, "POST"))
        description = afas_update.UPDATE_DESCRIPTIONS[name]
        return _json({"name": name, "description": description, **described})
    return _not_found()


def _overview(sim: AfasSim) -> dict[str, Any]:
    get_ids = [
        c for c in CONNECTORS if sim.options.get_connectors is None or c.id in sim.options.get_connectors
    ]
    update_ids = [
        c
        for c in UPDATE_CONNECTORS
        if sim.options.update_connectors is None or c in sim.options.update_connectors
    ]
    return {
        "updateConnectors": [
            {"id": c, "description": afas_update.UPDATE_DESCRIPTIONS[c]} for c in update_ids
        ],
        "getConnectors": [{"id": c.id, "description": c.description} for c in get_ids],
        "info": {
            "envid": sim.envid,
            "appName": sim.options.app_name,
            "group": f"AuthorizationGroup 1 ({sim.options.environment_number}.KOPPEL)",
            "tokenExpiry": "0",
        },
    }


def _describe(connector: str, definition: ObjectDef) -> dict[str, Any]:
    """Fields (with mandatory flags) and nested objects of an UpdateConnector object, recursively."""
    mandatory = MANDATORY.get((connector, "POST"), {}).get(definition.name, ())
    key = PRIMARY_KEYS.get(definition.name)
    fields = []
    for field in definition.fields.values():
        data_type = "date" if field.is_date else _UPDATE_TYPES.get(field.type, "string")
        fields.append(
            {
                "fieldId": field.name,
                "primaryKey": field.name == key,
                "dataType": data_type,
                "label": field.label,
                "mandatory": field.name in mandatory,
                "length": field.max_length or 0,
                "decimals": 2 if data_type == "decimal" else 0,
                "decimalFieldId": "",
                "notzero": False,
                "controlType": {"string": 1, "int": 5, "decimal": 6, "boolean": 3, "date": 4}[data_type],
                "values": enum_labels(field),
            }
        )
    objects = [{"name": sub.name, **_describe(connector, sub)} for sub in definition.objects.values()]
    return {"fields": fields, "objects": objects}


# ---------------------------------------------------------------------------- responses


def _json(payload: Any, status: int = 200) -> Response:
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return Response(
        text.encode("utf-8"), status, headers=_HEADERS, media_type="application/json; charset=utf-8"
    )


def _error(
    sim: AfasSim, error: AfasError, language: str, path: str, headers: dict[str, str] | None = None
) -> Response:
    reference = sim.log_reference()
    message = error.message(language)
    sim.errors.append({"status": error.status, "message": message, "reference": reference, "path": path})
    body = {"externalMessage": message, "errorNumber": error.number, "profitLogReference": reference}
    response = _json(body, status=error.status)
    response.headers.update(headers or {})
    return response


def _not_found() -> Response:
    return Response("<h1>404 - File or directory not found.</h1>", 404, media_type="text/html")
