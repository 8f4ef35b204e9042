"""A faithful local TOPdesk: ``create_app(world, options) -> Starlette``.

Serves ``/tas/api`` and the OData reporting feed at ``/services/reporting/v2/odata``, following
docs/reference/topdesk-api.md §8 and §9 (see docs/sandbox.md, section "TOPdesk", for every endpoint,
option and default).

State lives on ``app.state.sim`` (``sandbox.topdesk.state.TopdeskSim``): credentials (``login``,
``password``, ``person_login``, ``person_password``), ``options`` (changeable at run time) and the control
helpers tests use. The wrapper in ``sandbox/knobs.py`` adds latency and faults around this app.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from sandbox.topdesk import incidents, masterdata, odata, operations, ticket_writes
from sandbox.topdesk.http import ApiError, error_response, head_too_long, json_response, read_object
from sandbox.topdesk.state import TopdeskOptions, TopdeskSim
from sandbox.world import World

__all__ = ["TopdeskOptions", "TopdeskSim", "create_app"]

API = "/tas/api"
ODATA = "/services/reporting/v2/odata"
CONTROL = "/__sandbox/topdesk"
UNAUTHORIZED_HTML = (
    '<!doctype html><html lang="en"><head><title>HTTP Status 401 – Unauthorized</title></head><body>'
    "<h1>HTTP Status 401 – Unauthorized</h1><p><b>Description</b> The request has not been applied because "
    "it lacks valid authentication credentials for the target resource.</p></body></html>"
)
Handler = Callable[[Request], Awaitable[Response]]


def create_app(world: World, options: TopdeskOptions | None = None) -> Starlette:
    """The TOPdesk simulator for ``world``; its state is ``app.state.sim``."""
    app = Starlette(routes=_routes(), exception_handlers={HTTPException: _http_exception})
    app.state.sim = TopdeskSim(world, options)
    return app


# --- authentication -----------------------------------------------------------------------------------


def _account(request: Request, sim: TopdeskSim) -> str | None:
    """``operator``, ``person`` or None for Basic credentials (UTF-8, decision §9.8)."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        login, _, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    if (login, password) == (sim.login, sim.password):
        return "operator"
    if (login, password) == (sim.person_login, sim.person_password):
        return "person"
    return None


def _unauthorized(sim: TopdeskSim) -> Response:
    headers = {"WWW-Authenticate": 'Basic realm="TOPdesk"'}
    if sim.options.html_401:
        return HTMLResponse(UNAUTHORIZED_HTML, 401, headers=headers)
    return json_response([{"message": "No authentication token provided"}], 401, headers=headers)


def _guarded(handler: Handler, persons: bool = False, feed: bool = False) -> Handler:
    """Basic auth, then the handler; ``ApiError`` becomes TOPdesk's error body (OData's for the feed)."""

    async def endpoint(request: Request) -> Response:
        sim: TopdeskSim = request.app.state.sim
        too_long = head_too_long(request)
        if too_long is not None:  # Tomcat refuses it before authentication
            return error_response(too_long, "message")
        account = _account(request, sim)
        if account is None:
            return _unauthorized(sim)
        try:
            if account == "person" and not persons:
                raise ApiError(403, "Operation not allowed for this log in")
            return await handler(request)
        except ApiError as error:
            if feed:
                return odata.odata_error(odata.ODataError(error.message, error.status))
            return error_response(error, sim.options.error_style)

    return endpoint


async def _http_exception(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    message = "Not found" if status == 404 else "Method not allowed" if status == 405 else "Error"
    return json_response([{"message": message}], status)


# --- small endpoints ----------------------------------------------------------------------------------


async def _version(request: Request) -> Response:
    return json_response({"version": request.app.state.sim.options.version})


async def _product_version(request: Request) -> Response:
    return json_response(request.app.state.sim.options.product_version)


# --- control endpoints (tests only; no auth) ----------------------------------------------------------


async def _control_add(request: Request) -> Response:
    sim: TopdeskSim = request.app.state.sim
    body = await read_object(request)
    key = sim.add_registration(
        incident=body["incident"],
        minutes=int(body["minutes"]),
        entry=datetime.fromisoformat(body["entryDate"]),
        operator_id=body.get("operator"),
        reason_id=body.get("reason"),
        notes=body.get("notes", ""),
    )
    return json_response({"id": key}, 201)


async def _control_change(request: Request) -> Response:
    sim: TopdeskSim = request.app.state.sim
    key = request.path_params["id"]
    if request.method == "DELETE":
        sim.delete_registration(key)
        return Response(status_code=204)
    body = await read_object(request)
    if "minutes" in body:
        sim.set_registration_minutes(key, int(body["minutes"]))
    if "entryDate" in body:
        sim.set_registration_entry_date(key, datetime.fromisoformat(body["entryDate"]))
    return Response(status_code=204)


async def _control_state(request: Request) -> Response:
    sim: TopdeskSim = request.app.state.sim
    return json_response(
        {
            "login": sim.login,
            "password": sim.password,
            "person_login": sim.person_login,
            "person_password": sim.person_password,
            "registrations": int(sim.registrations.alive.sum()),
            "inserted": sim.inserted,
            "deleted": sim.deleted,
        }
    )


def _control(handler: Handler) -> Handler:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except ApiError as error:
            return error_response(error, "message")
        except (KeyError, ValueError) as error:
            return json_response([{"message": f"Bad control request: {error}"}], 400)

    return endpoint


# --- routing ------------------------------------------------------------------------------------------


def _api(path: str, handler: Handler, methods: list[str] | None = None, persons: bool = False) -> Route:
    return Route(API + path, _guarded(handler, persons=persons), methods=methods or ["GET"])


def _by_id_and_number(path: str, handler: Handler, methods: list[str] | None = None) -> list[Route]:
    """One incident endpoint under both incident keys: ``/incidents/id/{id}`` and ``/number/{number}``."""
    return [_api(f"/incidents/{key}{path}", handler, methods) for key in ("id/{id}", "number/{number}")]


def _with_progress_trail(path: str) -> list[Route]:
    """A change or change activity: PATCH ``path/{id}`` and its progress trail (read and add)."""
    w = ticket_writes
    return [
        _api(path + "/{id}", w.patch_record, ["PATCH"]),
        _api(path + "/{id}/progresstrail", w.list_progress),
        _api(path + "/{id}/progresstrail", w.post_progress, ["POST"]),
    ]


def _routes() -> list[Any]:
    m, o, i, w = masterdata, operations, incidents, ticket_writes
    return [
        _api("/version", _version, persons=True),
        _api("/productVersion", _product_version, persons=True),
        _api("/incidents", i.list_incidents),
        _api("/incidents/timeregistrations", i.list_time_registrations),
        _api("/incidents/timeregistrations/{id}", i.get_time_registration),
        _api("/incidents/categories", m.list_categories),
        _api("/incidents/subcategories", m.list_subcategories),
        *_by_id_and_number("", i.get_incident),
        _api("/incidents/id/{id}", w.patch_incident, ["PATCH"]),
        _api("/incidents/id/{id}/actions", w.list_incident_actions),
        *_by_id_and_number("/timespent", i.list_timespent),
        *_by_id_and_number("/timespent", i.create_timespent, ["POST"]),
        _api("/branches", m.list_branches),
        _api("/branches", m.create_branch, ["POST"]),
        _api("/branches/id/{id}", m.get_branch),
        _api("/branches/id/{id}", m.update_branch, ["PATCH", "PUT"]),
        _api("/branches/id/{id}/archive", m.archive_branch, ["PATCH"]),
        _api("/branches/id/{id}/unarchive", m.unarchive_branch, ["PATCH"]),
        _api("/persons", m.list_persons),
        _api("/persons", m.create_person, ["POST"]),
        _api("/persons/id/{id}/archive", m.archive_person, ["PATCH"]),
        _api("/persons/id/{id}/unarchive", m.unarchive_person, ["PATCH"]),
        _api("/persons/id/{id}", m.get_person),
        _api("/persons/{id}", m.get_person),
        _api("/persons/{id}", m.update_person, ["PATCH"]),
        _api("/archiving-reasons", m.list_archiving_reasons),
        _api("/countries", m.list_countries),
        _api("/timespent-reasons", m.list_reasons),
        _api("/operators", m.list_operators),
        _api("/operators/id/{id}", m.get_operator),
        _api("/operatorgroups", m.list_operator_groups),
        _api("/operatorgroups/id/{id}", m.get_operator_group),
        _api("/operationalActivities", o.list_activities),
        _api("/operationalActivities/{id}", o.get_activity),
        _api("/operationalActivities/{id}", w.patch_record, ["PATCH"]),
        _api("/operationalActivities/{id}/timeRegistrations", o.list_activity_registrations),
        _api("/operationalActivities/{id}/timeRegistrations", o.create_activity_registration, ["POST"]),
        _api("/operatorChanges", o.list_changes),
        _api("/operatorChanges/{id}", o.get_change),
        *_with_progress_trail("/operatorChanges"),
        _api("/operatorChangeActivities", o.list_change_activities),
        *_with_progress_trail("/operatorChangeActivities"),
        Route(ODATA, _guarded(odata.service_document, feed=True)),
        Route(ODATA + "/", _guarded(odata.service_document, feed=True)),
        Route(ODATA + "/{entity_set}", _guarded(odata.entity_set, feed=True)),
        Route(CONTROL + "/registrations", _control(_control_add), methods=["POST"]),
        Route(CONTROL + "/registrations/{id}", _control(_control_change), methods=["PATCH", "DELETE"]),
        Route(CONTROL + "/state", _control(_control_state)),
        Route(CONTROL + "/ticket-writes", _control(w.control), methods=["GET", "POST"]),
    ]
