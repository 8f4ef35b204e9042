"""Latency, injected faults, request counters and control endpoints around any simulator app.

``instrument(app, knobs, flavour)`` wraps one simulator (``afas``, ``topdesk`` or ``oh``) in an ASGI layer
that

- delays every request by ``latency_ms`` plus up to ``jitter_ms``;
- injects transient faults into a share ``fault_rate`` of the requests, shaped like the real system's
  (AFAS 503 bodies with ``retry_after``, TOPdesk ``[{"message"}]`` lists, the OH ``{"error"}`` object);
- loses the response of a share ``lost_response_rate`` of the writes *after* the app committed them;
- refuses requests beyond ``max_concurrency`` in flight with the throttle answer;
- counts every request per ``(method, normalised path)`` with its status codes and faults;
- serves ``/__sandbox/knobs`` and ``/__sandbox/counters`` on the same port (never delayed, faulted or
  counted).

Writes (POST/PUT/PATCH/DELETE) only get faults that happen before the app runs (``throttle``,
``unavailable``), so a 429/503 on a write always means "not executed"; the uncertain case is
``lost_response_rate`` alone. Every random draw comes from one ``random.Random(seed)`` per wrapped app, four
draws per request, so a run is reproducible from the seed and the order of the requests.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import socket
import struct
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

FaultKind = Literal["throttle", "unavailable", "timeout_message", "reset", "slow"]
Flavour = Literal["afas", "topdesk", "oh"]

FAULT_KINDS: tuple[FaultKind, ...] = ("throttle", "unavailable", "timeout_message", "reset", "slow")
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CONTROL_PREFIX = "/__sandbox"

# Faults that answer before the app runs: on a write they prove "not executed", so writes get only these.
_PRE_APP_KINDS = frozenset({"throttle", "unavailable"})
# The AFAS command time-out is an AFAS message; the other systems have no such answer.
_FLAVOUR_KINDS: dict[str, frozenset[str]] = {
    "afas": frozenset(FAULT_KINDS),
    "topdesk": frozenset(FAULT_KINDS) - {"timeout_message"},
    "oh": frozenset(FAULT_KINDS) - {"timeout_message"},
}

AFAS_TIMEOUT_NL = "De maximale tijdsduur voor het uitvoeren van de opdracht is verstreken."
AFAS_TIMEOUT_EN = "The maximum duration for executing the command has been exceeded."
AFAS_MAINTENANCE = (
    "Service temporarily unavailable due to scheduled maintenance. Please check afasstatus.nl for details."
)
AFAS_OVERLOAD = "Service temporarily unavailable due to high load. Please try again later."
AFAS_GENERIC_ERROR_NUMBER = -2147180999


class Knobs(BaseModel):
    """What the wrapper does to the requests of one app; change at run time through ``/__sandbox/knobs``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    latency_ms: int = Field(default=0, ge=0, description="Fixed delay added to every request.")
    jitter_ms: int = Field(default=0, ge=0, description="Extra delay, uniform in [0, jitter_ms).")
    seed: int = Field(default=0, description="Seed of the wrapper's random.Random; setting it restarts it.")
    fault_rate: float = Field(default=0.0, ge=0.0, le=1.0, description="Share of requests given a fault.")
    fault_kinds: tuple[FaultKind, ...] = Field(
        default=("throttle", "unavailable"), description="Kinds a faulted request is drawn from."
    )
    retry_after_seconds: int = Field(default=1, ge=0, description="Retry-After / retry_after in faults.")
    slow_ms: int = Field(default=2_000, ge=0, description="Delay of the `slow` fault.")
    lost_response_rate: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Share of writes committed whose response is lost."
    )
    max_concurrency: int | None = Field(
        default=None, ge=1, description="Requests in flight beyond this get the throttle answer."
    )

    @field_validator("fault_kinds")
    @classmethod
    def _canonical_kinds(cls, kinds: tuple[FaultKind, ...]) -> tuple[FaultKind, ...]:
        # One order whatever the caller sent, so the same seed picks the same kind.
        return tuple(kind for kind in FAULT_KINDS if kind in kinds)


def applicable_kinds(knobs: Knobs, flavour: Flavour, method: str) -> tuple[FaultKind, ...]:
    """The configured fault kinds this flavour can answer with for this method."""
    allowed = _FLAVOUR_KINDS[flavour]
    if method.upper() in WRITE_METHODS:
        allowed = allowed & _PRE_APP_KINDS
    return tuple(kind for kind in knobs.fault_kinds if kind in allowed)


# --- path normalisation for the counters -------------------------------------------------------------------

_UUID = re.compile(r"^\{?[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\}?$")
_HEX = re.compile(r"^(?=.*\d)[0-9a-fA-F]{16,}$")
_NUMBERISH = re.compile(r"^[A-Za-z]{0,4}[ _-]?\d[\d ,.\-]*$")  # 1001, I 2301 104, P10001-01, 1,123
_VERSION = re.compile(r"^v\d+$")
# Collections whose next segment is a key whatever it looks like (OH external ids, TOPdesk id/number).
_KEY_AFTER = frozenset(
    {"id", "number", "departments", "employees", "employments", "absences", "users", "registered-absences"}
)


def _is_key(segment: str, previous: str) -> bool:
    if not segment or _VERSION.match(segment):
        return False
    if previous in _KEY_AFTER or previous.startswith("@"):  # AFAS DELETE: .../@OrNu/{value}
        return True
    return bool(_UUID.match(segment) or _HEX.match(segment) or _NUMBERISH.match(segment))


def normalise_path(path: str) -> str:
    """The path with ids and numbers replaced by ``{id}``: ``/tas/api/incidents/id/{id}/timespent``."""
    out: list[str] = []
    previous = ""
    for segment in path.split("/"):
        out.append("{id}" if _is_key(segment, previous) else segment)
        previous = segment.lower()
    return "/".join(out)


# --- counters ----------------------------------------------------------------------------------------------


@dataclass
class _Tally:
    count: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)


class Counters:
    """Requests per ``METHOD /normalised/path``; thread-safe (the server runs in another thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tallies: dict[str, _Tally] = {}

    def record(self, method: str, path: str, status: str, fault: str | None = None) -> None:
        """Count one request: its final status (``"200"``, ``"503"``, ``"reset"``) and its fault if any."""
        key = f"{method.upper()} {normalise_path(path)}"
        with self._lock:
            tally = self._tallies.setdefault(key, _Tally())
            tally.count += 1
            tally.statuses[status] += 1
            if fault:
                tally.faults[fault] += 1

    def count(self, method: str, path: str) -> int:
        """Requests counted for one endpoint; ``path`` may be concrete or already normalised."""
        with self._lock:
            tally = self._tallies.get(f"{method.upper()} {normalise_path(path)}")
            return tally.count if tally else 0

    def total(self) -> int:
        """All requests counted since the last reset."""
        with self._lock:
            return sum(t.count for t in self._tallies.values())

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready copy: ``{"total": n, "endpoints": {"GET /x/{id}": {count, statuses, faults}}}``."""
        with self._lock:
            endpoints = {
                key: {"count": t.count, "statuses": dict(t.statuses), "faults": dict(t.faults)}
                for key, t in sorted(self._tallies.items())
            }
        return {"total": sum(e["count"] for e in endpoints.values()), "endpoints": endpoints}

    def reset(self) -> None:
        """Forget everything counted so far."""
        with self._lock:
            self._tallies.clear()


# --- fault responses ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """What happens to one request, drawn before it runs."""

    number: int
    delay_s: float
    fault: FaultKind | None
    lose_response: bool


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


def _afas_fault(kind: FaultKind, knobs: Knobs, scope: Scope, number: int) -> tuple[int, Any, bool]:
    if kind == "timeout_message":
        english = _header(scope, b"accept-language").lower().startswith("en")
        reference = hashlib.sha256(f"{knobs.seed}:{number}".encode()).hexdigest()[:32]
        body = {
            "externalMessage": AFAS_TIMEOUT_EN if english else AFAS_TIMEOUT_NL,
            "errorNumber": AFAS_GENERIC_ERROR_NUMBER,
            "profitLogReference": reference,
        }
        return 500, body, False
    message = AFAS_OVERLOAD if kind == "throttle" else AFAS_MAINTENANCE
    body = {"error": {"code": "503", "message": message}, "retry_after": knobs.retry_after_seconds}
    # AFAS documents retry_after in the body only; the header comes with maintenance (`unavailable`) alone,
    # so clients must read the body to honour a throttle.
    return 503, body, kind == "unavailable"


def fault_response(
    kind: FaultKind, flavour: Flavour, knobs: Knobs, scope: Scope, number: int = 0
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, headers and body of an answering fault (throttle, unavailable, timeout_message)."""
    if flavour == "afas":
        status, payload, with_header = _afas_fault(kind, knobs, scope, number)
    elif flavour == "topdesk":
        status = 429 if kind == "throttle" else 503
        payload = [{"message": "Too many requests" if kind == "throttle" else "Service unavailable"}]
        with_header = True
    else:
        status = 429 if kind == "throttle" else 503
        payload = {"error": "too_many_requests" if kind == "throttle" else "service_unavailable"}
        with_header = True
    headers = [(b"retry-after", str(knobs.retry_after_seconds).encode())] if with_header else []
    return status, headers, json.dumps(payload, separators=(",", ":")).encode()


async def _send_bytes(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    start_headers = [
        (b"content-type", b"application/json; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        *headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": start_headers})
    await send({"type": "http.response.body", "body": body})


async def _send_json(send: Send, status: int, payload: Any) -> None:
    await _send_bytes(send, status, json.dumps(payload, separators=(",", ":")).encode(), [])


async def drop_connection(send: Send, *, hard: bool) -> None:
    """Close the client's connection without (the rest of) a response; ``hard`` sends a TCP reset.

    uvicorn passes its request cycle's bound ``send``; its ``transport`` is the connection. Servers that
    expose no transport (in-process ASGI transports) get an exception instead, which their client sees.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if not isinstance(transport, asyncio.Transport):
        raise ConnectionResetError("sandbox dropped the connection")
    if hard:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    # Let the server see the disconnect before the app returns, so it does not try to answer anyway.
    await asyncio.sleep(0)


class _LosingSend:
    """Passes the real status line and headers on and swallows the body: the response is lost mid-way."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.status: int | None = None

    async def __call__(self, message: Message) -> None:
        if message["type"] != "http.response.start":
            return
        self.status = message["status"]
        headers = dict((k.lower(), v) for k, v in message.get("headers", []))
        # Headers of a body-less answer would be a complete response; withhold them too.
        if self.status not in (204, 304) and headers.get(b"content-length") != b"0":
            await self._send(message)


class _StatusSend:
    """Passes the answer on and counts it *before* its last body part leaves.

    So a client that has read the answer always finds it counted: a test reading the counters right after
    a response is never early.
    """

    def __init__(self, send: Send, on_answered: Callable[[str], None]) -> None:
        self._send = send
        self._on_answered = on_answered
        self.status: int | None = None
        self.counted = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        elif message["type"] == "http.response.body" and not message.get("more_body") and not self.counted:
            self.counted = True
            self._on_answered(str(self.status))
        await self._send(message)


# --- the wrapper -------------------------------------------------------------------------------------------


class InstrumentedApp:
    """ASGI app that adds latency, faults, lost responses, counters and control endpoints to ``app``."""

    def __init__(self, app: ASGIApp, knobs: Knobs, flavour: Flavour) -> None:
        self.app = app
        self.flavour: Flavour = flavour
        self.counters = Counters()
        self._lock = threading.Lock()
        self._knobs = knobs
        self._rng = random.Random(knobs.seed)
        self._requests = 0
        self._in_flight = 0  # only touched on the server's event loop

    @property
    def knobs(self) -> Knobs:
        """The knobs in force."""
        return self._knobs

    def set_knobs(self, **changes: Any) -> Knobs:
        """Change some knobs (validated as a whole); a new ``seed`` restarts the random sequence."""
        with self._lock:
            knobs = Knobs.model_validate({**self._knobs.model_dump(), **changes})
            self._knobs = knobs
            if "seed" in changes:
                self._rng = random.Random(knobs.seed)
        return knobs

    def restart(self, app: ASGIApp, knobs: Knobs) -> None:
        """Serve ``app`` from now on as if just started: ``knobs`` in force, counters and draws anew."""
        with self._lock:
            self.app = app
            self._knobs = knobs
            self._rng = random.Random(knobs.seed)
            self._requests = 0
        self.counters.reset()

    def _plan(self, method: str) -> _Plan:
        knobs = self._knobs
        with self._lock:
            self._requests += 1
            u_fault, u_kind, u_jitter, u_lost = (self._rng.random() for _ in range(4))
            number = self._requests
        kinds = applicable_kinds(knobs, self.flavour, method)
        fault = kinds[int(u_kind * len(kinds))] if kinds and u_fault < knobs.fault_rate else None
        lose = method.upper() in WRITE_METHODS and fault is None and u_lost < knobs.lost_response_rate
        delay = (knobs.latency_ms + u_jitter * knobs.jitter_ms) / 1000
        return _Plan(number=number, delay_s=delay, fault=fault, lose_response=lose)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
        elif scope["path"] == CONTROL_PREFIX or scope["path"].startswith(CONTROL_PREFIX + "/"):
            await self._control(scope, receive, send)
        else:
            self._in_flight += 1
            try:
                await self._serve(scope, receive, send, self._plan(scope["method"]))
            finally:
                self._in_flight -= 1

    async def _serve(self, scope: Scope, receive: Receive, send: Send, plan: _Plan) -> None:
        method, path, knobs = scope["method"], scope["path"], self._knobs
        if knobs.max_concurrency is not None and self._in_flight > knobs.max_concurrency:
            # AFAS decision §11.6: parallel calls are only limited under a fault profile; answered before
            # the app runs, so a write refused this way was not executed.
            await self._answer(scope, send, "throttle", plan.number, "concurrency")
            return
        if plan.delay_s:
            await asyncio.sleep(plan.delay_s)
        if plan.fault == "reset":
            self.counters.record(method, path, "reset", "reset")
            await drop_connection(send, hard=True)
            return
        if plan.fault in ("throttle", "unavailable", "timeout_message"):
            await self._answer(scope, send, plan.fault, plan.number, plan.fault)
            return
        if plan.fault == "slow":
            replay = await _wait_unless_gone(receive, knobs.slow_ms / 1000)
            if replay is None:  # the client gave up: nobody to answer
                self.counters.record(method, path, "client_gone", "slow")
                return
            receive = replay
        await self._run_app(scope, receive, send, plan)

    async def _answer(self, scope: Scope, send: Send, kind: FaultKind, number: int, label: str) -> None:
        status, headers, body = fault_response(kind, self.flavour, self._knobs, scope, number)
        self.counters.record(scope["method"], scope["path"], str(status), label)
        await _send_bytes(send, status, body, headers)

    async def _run_app(self, scope: Scope, receive: Receive, send: Send, plan: _Plan) -> None:
        fault = "lost_response" if plan.lose_response else plan.fault

        def count(status: str) -> None:
            self.counters.record(scope["method"], scope["path"], status, fault)

        wrapped = _LosingSend(send) if plan.lose_response else _StatusSend(send, count)
        try:
            await self.app(scope, receive, wrapped)
        finally:
            if not getattr(wrapped, "counted", False):
                count(str(wrapped.status) if wrapped.status is not None else "error")
        if plan.lose_response:
            await drop_connection(send, hard=False)

    async def _control(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = (scope["method"], scope["path"].rstrip("/"))
        if route == ("GET", "/__sandbox/knobs"):
            await _send_json(send, 200, self._knobs.model_dump(mode="json"))
        elif route in (("PUT", "/__sandbox/knobs"), ("PATCH", "/__sandbox/knobs")):
            await self._put_knobs(receive, send)
        elif route == ("GET", "/__sandbox/counters"):
            await _send_json(send, 200, self.counters.snapshot())
        elif route == ("POST", "/__sandbox/counters/reset"):
            self.counters.reset()
            await _send_json(send, 200, self.counters.snapshot())
        else:
            # The simulator's own control routes (e.g. /__sandbox/topdesk/...): passed on, never faulted
            # or counted; the simulator answers 404 for what it does not know either.
            await self.app(scope, receive, send)

    async def _put_knobs(self, receive: Receive, send: Send) -> None:
        try:
            changes = json.loads(await _read_body(receive) or b"{}")
            if not isinstance(changes, dict):
                raise TypeError("body must be a JSON object of knob names and values")
            knobs = self.set_knobs(**changes)
        except ValidationError as exc:
            detail = json.loads(exc.json(include_url=False, include_context=False, include_input=False))
            await _send_json(send, 422, {"error": "invalid knobs", "detail": detail})
        except (ValueError, TypeError) as exc:
            await _send_json(send, 400, {"error": str(exc)})
        else:
            await _send_json(send, 200, knobs.model_dump(mode="json"))


async def _wait_unless_gone(receive: Receive, seconds: float) -> Receive | None:
    """Wait ``seconds`` unless the client disconnects first (then None).

    Otherwise returns a ``receive`` that replays what was read while watching, so the app still gets its
    request. Without this a timed-out client would leave the sandbox sleeping, and holding up shutdown.
    """
    seen: list[Message] = []

    async def watch() -> None:
        while True:
            seen.append(await receive())
            if seen[-1]["type"] == "http.disconnect":
                return

    watcher = asyncio.ensure_future(watch())
    done, _ = await asyncio.wait({watcher}, timeout=seconds)
    if watcher in done:
        return None
    watcher.cancel()

    async def replay() -> Message:
        return seen.pop(0) if seen else await receive()

    return replay


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def instrument(app: ASGIApp, knobs: Knobs | None = None, flavour: Flavour = "oh") -> InstrumentedApp:
    """Wrap ``app`` with latency, faults shaped like ``flavour``'s, counters and the control endpoints."""
    if flavour not in _FLAVOUR_KINDS:
        raise ValueError(f"unknown flavour {flavour!r}; expected one of {sorted(_FLAVOUR_KINDS)}")
    return InstrumentedApp(app, knobs or Knobs(), flavour)


def counters(app: InstrumentedApp) -> dict[str, Any]:
    """JSON-ready snapshot of an instrumented app's request counters."""
    return app.counters.snapshot()
