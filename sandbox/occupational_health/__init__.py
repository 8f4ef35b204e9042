"""Occupational-health system simulator (Xpert Suite style receiving API) for the HR integration.

Koppel pushes AFAS HR data here: departments, employees, employments, absences and manager user accounts,
each by ``PUT /api/v1/{resource}/{external_id}`` (an idempotent upsert: 201 created, 200 updated or
unchanged) and ``DELETE`` (deactivate, the record stays with ``active=false``). ``GET /api/v1/{resource}``
lists them, paged with ``page``/``page_size`` as ``{"items": [...], "next": url | null}``. Absences that
were registered *in* the OH system flow back through ``GET /api/v1/registered-absences?changed_since=...``.

Rules a sender must follow (the client of a later issue relies on them):

- ``Authorization: Bearer <token>``, else 401 ``{"error": "unauthorized"}``.
- Bodies are JSON objects with exactly the fields of the models below (unknown fields → 422); dates
  ``YYYY-MM-DD``; decimals (hours, salary, presence) as JSON numbers or strings, returned as strings.
- Employment external ids are ``"{employee_id}-{employment_id}"`` (``employment_external_id()``), because
  AFAS numbers employments per employee; registered absences reference employments that way too.
- References must exist and be active: an employment's ``employee_external_id`` and
  ``department_external_id``, an absence's employee and employment (which must belong to that employee),
  a user's employee. So departments go first, then employees, employments, absences and users. A
  department's parent and manager are not checked (they may arrive later).
- 422 bodies: ``{"error": "validation_failed", "errors": [{"field": ..., "message": ...}]}``.
- One customer account may serve several employers (``OhOptions(employer_required=True)``): then every
  employee, employment, absence and user must carry ``employer_external_id`` (departments are shared).

Everything received is kept on ``app.state.sim`` (an ``OhState``) for tests.
"""

from __future__ import annotations

import hashlib
import hmac
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.world import World

API = "/api/v1"
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1_000


def employment_external_id(employee_id: object, employment_id: object) -> str:
    """External id of an employment: AFAS numbers employments per employee (DvId 1, 2, ...), so the pair."""
    return f"{employee_id}-{employment_id}"


def default_token(seed: int) -> str:
    """The sandbox's bearer token for ``seed``: fixed, so a demo restarts with the same configuration."""
    return hashlib.sha256(f"koppel-sandbox-oh-token:{seed}".encode()).hexdigest()[:40]


# --- bodies ------------------------------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DepartmentIn(_Body):
    """A department (AFAS organisational unit)."""

    name: str = Field(min_length=1, max_length=100)
    parent_external_id: str | None = None
    manager_employee_external_id: str | None = None


class EmployeeIn(_Body):
    """A person employed by the organisation."""

    first_name: str | None = Field(default=None, max_length=50)
    name_prefix: str | None = Field(default=None, max_length=20)  # Dutch tussenvoegsel: "de", "van der"
    last_name: str = Field(min_length=1, max_length=80)
    initials: str | None = Field(default=None, max_length=20)
    birth_date: date
    gender: str | None = Field(default=None, max_length=10)
    email: str | None = Field(default=None, max_length=254)
    phone: str | None = Field(default=None, max_length=30)
    employer_external_id: str | None = Field(default=None, min_length=1, max_length=40)


def _check_period(start: date, end: date | None, end_field: str) -> None:
    if end is not None and end < start:
        raise ValueError(f"{end_field} {end} is before start_date {start}")


class EmploymentIn(_Body):
    """An employment (AFAS Dienstverband) of an employee in a department."""

    employee_external_id: str = Field(min_length=1)
    department_external_id: str = Field(min_length=1)
    start_date: date
    end_date: date | None = None
    hours_per_week: Decimal | None = Field(default=None, ge=0, le=80)
    function: str | None = Field(default=None, max_length=100)
    salary: Decimal | None = Field(default=None, ge=0)
    salary_kind: Literal["monthly", "four_weekly", "hourly", "sv_wage"] | None = None
    employer_external_id: str | None = Field(default=None, min_length=1, max_length=40)

    @model_validator(mode="after")
    def _consistent(self) -> EmploymentIn:
        _check_period(self.start_date, self.end_date, "end_date")
        if (self.salary is None) != (self.salary_kind is None):
            raise ValueError("salary and salary_kind go together: send both or neither")
        return self


class AbsenceIn(_Body):
    """A sick-leave absence of an employee on one employment."""

    employee_external_id: str = Field(min_length=1)
    employment_external_id: str = Field(min_length=1)
    start_date: date
    report_date: date | None = None
    expected_end: date | None = None
    end_date: date | None = None
    presence_pct: Decimal | None = Field(default=None, ge=0, le=100)
    employer_external_id: str | None = Field(default=None, min_length=1, max_length=40)

    @model_validator(mode="after")
    def _consistent(self) -> AbsenceIn:
        _check_period(self.start_date, self.end_date, "end_date")
        return self


class UserIn(_Body):
    """A manager's user account."""

    employee_external_id: str = Field(min_length=1)
    username: str = Field(min_length=1, max_length=100)
    email: str | None = Field(default=None, max_length=254)
    blocked: bool = False
    employer_external_id: str | None = Field(default=None, min_length=1, max_length=40)


BODIES: dict[str, type[_Body]] = {
    "departments": DepartmentIn,
    "employees": EmployeeIn,
    "employments": EmploymentIn,
    "absences": AbsenceIn,
    "users": UserIn,
}
REGISTERED = "registered-absences"


# --- state -------------------------------------------------------------------------------------------------


@dataclass
class Record:
    """One stored object: the last body received plus bookkeeping."""

    external_id: str
    body: _Body
    active: bool
    version: int
    created_at: datetime
    updated_at: datetime

    def to_json(self) -> dict[str, Any]:
        """The API representation."""
        return {
            "external_id": self.external_id,
            **self.body.model_dump(mode="json"),
            "active": self.active,
            "version": self.version,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass
class Received:
    """One write request as it arrived, with the outcome."""

    method: str
    resource: str
    external_id: str
    body: Any
    status: int
    outcome: str


@dataclass
class OhState:
    """Everything the OH simulator received and holds; ``app.state.sim``."""

    token: str
    # A customer account serving several employers: every record but a department names its employer.
    employer_required: bool = False
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    records: dict[str, dict[str, Record]] = field(default_factory=lambda: {r: {} for r in BODIES})
    registered: dict[str, Record] = field(default_factory=dict)
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    received: list[Received] = field(default_factory=list)

    def get(self, resource: str, external_id: str) -> Record | None:
        """The stored record, or None."""
        return self.records[resource].get(external_id)

    def changes(self, resource: str | None = None) -> int:
        """Real changes (created, updated, deactivated), for one resource or all."""
        real = ("created", "updated", "deactivated")
        return sum(
            n for (res, outcome), n in self.outcomes.items() if outcome in real and resource in (None, res)
        )

    def upsert(self, resource: str, external_id: str, body: _Body) -> tuple[Record, str]:
        """Create, update or leave alone; returns the record and ``created|updated|unchanged``."""
        now, current = self.clock(), self.get(resource, external_id)
        if current is None:
            record = Record(external_id, body, active=True, version=1, created_at=now, updated_at=now)
            self.records[resource][external_id] = record
            return record, "created"
        # Compare values, not how they were sent: 36 and "36.0" hours are the same.
        if current.body.model_dump() == body.model_dump() and current.active:
            return current, "unchanged"
        current.body, current.active, current.updated_at = body, True, now
        current.version += 1
        return current, "updated"

    def deactivate(self, resource: str, external_id: str) -> tuple[Record, str] | None:
        """Mark inactive (kept); None when unknown."""
        current = self.get(resource, external_id)
        if current is None:
            return None
        if not current.active:
            return current, "unchanged"
        current.active, current.updated_at = False, self.clock()
        current.version += 1
        return current, "deactivated"

    def register_absence(self, body: AbsenceIn, at: datetime | None = None) -> Record:
        """An absence entered by a user of the OH system (flows back to AFAS)."""
        moment = at or self.clock()
        key = f"RA-{len(self.registered) + 1:05d}"
        record = Record(key, body, active=True, version=1, created_at=moment, updated_at=moment)
        self.registered[key] = record
        return record

    def update_registered_absence(self, key: str, **changes: Any) -> Record:
        """Change a registered absence as an OH user would (e.g. set ``end_date``); bumps ``updated_at``."""
        record = self.registered[key]
        record.body = AbsenceIn.model_validate({**record.body.model_dump(), **changes})
        record.version += 1
        record.updated_at = self.clock()
        return record


# --- referential checks ------------------------------------------------------------------------------------


def _active(state: OhState, resource: str, key: str) -> Record | None:
    record = state.get(resource, key)
    return record if record is not None and record.active else None


def _must_exist(state: OhState, resource: str, key: str, fld: str, before: str) -> list[dict[str, str]]:
    if _active(state, resource, key) is not None:
        return []
    what = resource[:-1]
    message = f"{what} {key!r} does not exist or is inactive; send {resource} before {before}"
    return [{"field": fld, "message": message}]


def reference_errors(state: OhState, resource: str, body: _Body) -> list[dict[str, str]]:
    """Errors for references to objects that must already exist."""
    if isinstance(body, EmploymentIn):
        return _must_exist(
            state, "departments", body.department_external_id, "department_external_id", "employments"
        ) + _must_exist(state, "employees", body.employee_external_id, "employee_external_id", "employments")
    if isinstance(body, UserIn):
        return _must_exist(state, "employees", body.employee_external_id, "employee_external_id", "users")
    if isinstance(body, AbsenceIn):
        return _absence_errors(state, body)
    return []


def employer_errors(state: OhState, resource: str, body: _Body) -> list[dict[str, str]]:
    """With several employers in the account, every record but a department must name its employer."""
    if (
        not state.employer_required
        or resource == "departments"
        or getattr(body, "employer_external_id", None)
    ):
        return []
    message = "required: this customer account serves several employers; send the employer key"
    return [{"field": "employer_external_id", "message": message}]


def _absence_errors(state: OhState, body: AbsenceIn) -> list[dict[str, str]]:
    errors = _must_exist(state, "employees", body.employee_external_id, "employee_external_id", "absences")
    errors += _must_exist(
        state, "employments", body.employment_external_id, "employment_external_id", "absences"
    )
    employment = _active(state, "employments", body.employment_external_id)
    # cast: the "employments" resource only ever stores EmploymentIn bodies (see BODIES).
    owner = cast(EmploymentIn, employment.body).employee_external_id if employment is not None else None
    if employment is not None and owner != body.employee_external_id:
        message = f"employment {body.employment_external_id!r} belongs to employee {owner!r}"
        errors.append({"field": "employment_external_id", "message": message})
    return errors


# --- HTTP --------------------------------------------------------------------------------------------------


def _error(status: int, error: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": error, **extra}, status_code=status)


def _validation_failed(errors: list[dict[str, str]]) -> JSONResponse:
    return _error(422, "validation_failed", errors=errors)


def _pydantic_errors(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]} for e in exc.errors()
    ]


def _state(request: Request) -> OhState:
    return request.app.state.sim


def _resource(request: Request) -> str:
    resource = request.path_params["resource"]
    if resource not in BODIES:
        raise HTTPException(404, f"unknown resource {resource!r}")
    return resource


def _paging(request: Request) -> tuple[int, int]:
    try:
        page = int(request.query_params.get("page", "1"))
        size = int(request.query_params.get("page_size", str(DEFAULT_PAGE_SIZE)))
    except ValueError as exc:
        raise HTTPException(400, "page and page_size must be whole numbers") from exc
    if page < 1 or not 1 <= size <= MAX_PAGE_SIZE:
        raise HTTPException(400, f"page must be >= 1 and page_size between 1 and {MAX_PAGE_SIZE}")
    return page, size


def _page(request: Request, items: list[dict[str, Any]]) -> JSONResponse:
    page, size = _paging(request)
    start = (page - 1) * size
    more = start + size < len(items)
    following = str(request.url.include_query_params(page=page + 1)) if more else None
    return JSONResponse({"items": items[start : start + size], "next": following})


async def _json_body(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError as exc:
        raise HTTPException(400, "body is not valid JSON") from exc


async def list_records(request: Request) -> Response:
    """``GET /api/v1/{resource}``: every record (active or not) by external id, paged."""
    records = _state(request).records[_resource(request)]
    return _page(request, [records[key].to_json() for key in sorted(records)])


async def get_record(request: Request) -> Response:
    """``GET /api/v1/{resource}/{external_id}``."""
    record = _state(request).get(_resource(request), request.path_params["external_id"])
    return JSONResponse(record.to_json()) if record else _error(404, "not_found")


async def put_record(request: Request) -> Response:
    """``PUT /api/v1/{resource}/{external_id}``: idempotent upsert."""
    state, resource, key = _state(request), _resource(request), request.path_params["external_id"]
    raw = await _json_body(request)
    try:
        body = BODIES[resource].model_validate(raw)
    except ValidationError as exc:
        return _remember(state, request, raw, _validation_failed(_pydantic_errors(exc)), "rejected")
    errors = reference_errors(state, resource, body) + employer_errors(state, resource, body)
    if errors:
        return _remember(state, request, raw, _validation_failed(errors), "rejected")
    record, outcome = state.upsert(resource, key, body)
    response = JSONResponse(record.to_json(), status_code=201 if outcome == "created" else 200)
    return _remember(state, request, raw, response, outcome)


async def delete_record(request: Request) -> Response:
    """``DELETE /api/v1/{resource}/{external_id}``: deactivate, keep the record."""
    state, resource, key = _state(request), _resource(request), request.path_params["external_id"]
    result = state.deactivate(resource, key)
    if result is None:
        return _remember(state, request, None, _error(404, "not_found"), "rejected")
    record, outcome = result
    return _remember(state, request, None, JSONResponse(record.to_json()), outcome)


def _remember(state: OhState, request: Request, raw: Any, response: Response, outcome: str) -> Response:
    resource = request.path_params.get("resource", REGISTERED)
    key = request.path_params.get("external_id", "")
    state.outcomes[(resource, outcome)] += 1
    state.received.append(Received(request.method, resource, key, raw, response.status_code, outcome))
    return response


def _changed_since(request: Request) -> datetime | None:
    value = request.query_params.get("changed_since")
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise HTTPException(400, f"changed_since {value!r} is not an ISO 8601 date-time") from exc
    if moment.tzinfo is None:
        raise HTTPException(400, "changed_since needs a time zone offset, e.g. 2026-10-01T00:00:00Z")
    return moment


async def list_registered(request: Request) -> Response:
    """``GET /api/v1/registered-absences?changed_since=``: absences entered in the OH system."""
    since = _changed_since(request)
    records = sorted(_state(request).registered.values(), key=lambda r: (r.updated_at, r.external_id))
    chosen = [r.to_json() for r in records if since is None or r.updated_at >= since]
    return _page(request, chosen)


async def post_registered(request: Request) -> Response:
    """``POST /api/v1/registered-absences``: an OH user registers an absence."""
    state, raw = _state(request), await _json_body(request)
    try:
        body = AbsenceIn.model_validate(raw)
    except ValidationError as exc:
        return _remember(state, request, raw, _validation_failed(_pydantic_errors(exc)), "rejected")
    record = state.register_absence(body)
    return _remember(state, request, raw, JSONResponse(record.to_json(), status_code=201), "created")


async def _http_error(request: Request, exc: Exception) -> Response:
    # Registered for HTTPException only; Starlette types every handler over Exception.
    status, detail = (exc.status_code, exc.detail) if isinstance(exc, HTTPException) else (500, str(exc))
    names = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}
    return _error(status, names.get(status, "error"), message=detail)


class _BearerAuth:
    """Every request needs ``Authorization: Bearer <token>``."""

    def __init__(self, app: Any, token: str) -> None:
        self.app, self._expected = app, f"Bearer {token}".encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self._expected):
                headers = {"WWW-Authenticate": "Bearer"}
                response = JSONResponse({"error": "unauthorized"}, status_code=401, headers=headers)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


# --- seeding -----------------------------------------------------------------------------------------------


def seed_registered_absences(state: OhState, world: World, count: int = 5) -> None:
    """A handful of absences registered in the OH system, on employments of ``world.extra["hr_employments"]``.

    Deterministic from the world's seed; none when the world has no HR side.
    """
    frame = world.extra.get("hr_employments")
    if frame is None or frame.empty or count <= 0:
        return
    if "end_date" in frame.columns and frame["end_date"].isna().any():
        frame = frame[frame["end_date"].isna()]  # absences on current employments
    rng = random.Random(f"{world.seed}:oh-registered-absences")
    for row in sorted(rng.sample(range(len(frame)), min(count, len(frame)))):
        start = world.anchor - timedelta(days=rng.randint(3, 45))
        body = AbsenceIn(
            employee_external_id=str(frame["employee_id"].iloc[row]),
            employment_external_id=employment_external_id(
                frame["employee_id"].iloc[row], frame["employment_id"].iloc[row]
            ),
            start_date=start,
            report_date=start,
            expected_end=start + timedelta(days=rng.randint(5, 30)),
            presence_pct=Decimal(rng.choice([0, 0, 0, 50])),
        )
        state.register_absence(body, at=datetime.combine(start, time(9, 0), tzinfo=UTC))


# --- app ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OhOptions:
    """How the OH simulator is set up."""

    token: str | None = None  # default: default_token(world.seed)
    registered_absences: int = 5  # seeded when the world has an HR side
    employer_required: bool = False  # several employers in one account: records must carry the employer key


def create_app(world: World, options: OhOptions | None = None) -> Starlette:
    """The OH simulator as a Starlette app; its state is ``app.state.sim``."""
    options = options or OhOptions()
    state = OhState(
        token=options.token or default_token(world.seed), employer_required=options.employer_required
    )
    seed_registered_absences(state, world, options.registered_absences)
    routes = [
        Route(f"{API}/{REGISTERED}", list_registered, methods=["GET"]),
        Route(f"{API}/{REGISTERED}", post_registered, methods=["POST"]),
        Route(API + "/{resource}", list_records, methods=["GET"]),
        Route(API + "/{resource}/{external_id}", get_record, methods=["GET"]),
        Route(API + "/{resource}/{external_id}", put_record, methods=["PUT"]),
        Route(API + "/{resource}/{external_id}", delete_record, methods=["DELETE"]),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(_BearerAuth, token=state.token)],
        exception_handlers={HTTPException: _http_error},
    )
    app.state.sim = state
    return app
