"""The shared HTTP layer: one ``httpx.AsyncClient`` per system, retries, limits, counters.

What is retried is decided here, once, for every connector:

- a response goes through the system's ``Classifier`` (``connectors/<system>/errors.py``), which says
  ok / retry / fail and, for a retry, how long the server asked us to wait;
- GETs are retried freely on 429/502/503/504, connection errors and read time-outs;
- writes (POST/PUT/PATCH/DELETE) are retried only when the failure proves the request was not executed
  (a 429/503 answered before processing, a connection that was never made). A time-out or reset after
  sending raises ``UncertainOutcome``: the caller must look the document up before sending it again;
- backoff is exponential with full jitter, a server's ``Retry-After`` wins, attempts and total retry
  time are capped; a wait above ``max_retry_after`` stops at once (AFAS maintenance).

Secrets are registered with ``connectors.redaction`` so no log line or error message shows them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any, Literal, Self

import httpx

from connectors.errors import (
    AuthError,
    ConnectorError,
    Maintenance,
    ProtocolError,
    RequestRejected,
    Unavailable,
    UncertainOutcome,
    excerpt,
)
from connectors.redaction import forget_secrets, get_logger, redact, redact_headers, register_secrets

log = get_logger(__name__)

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Raised before a byte of the request left this machine: the server cannot have executed it.
NOT_SENT_ERRORS: tuple[type[Exception], ...] = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)

Action = Literal["ok", "retry", "fail"]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry; the defaults suit production, tests shrink the delays."""

    max_attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 60.0
    max_total_seconds: float = 900.0
    max_retry_after: float = 900.0  # a longer server-requested wait stops the run (AFAS maintenance)

    def backoff(self, retry: int, rng: random.Random) -> float:
        """Full-jitter exponential backoff for the ``retry``-th retry (1-based)."""
        return rng.uniform(0.0, min(self.max_delay, self.base_delay * 2 ** (retry - 1)))


@dataclass(frozen=True)
class Verdict:
    """What a classifier decided about one response."""

    action: Action
    error: ConnectorError | None = None  # raised on "fail", or on "retry" once retries run out
    retry_after: float | None = None  # seconds the server asked us to wait
    not_executed: bool = False  # the server proved it did not execute the request
    max_attempts: int | None = None  # a tighter cap on failures of this ``kind`` within one request
    kind: str = ""  # label counting failures against ``max_attempts`` (e.g. "transient-500")


@dataclass(frozen=True)
class Where:
    """Identifies one call in errors and counters; never contains the request itself."""

    system: str
    method: str
    endpoint: str

    def kwargs(self, status: int | None = None) -> dict[str, Any]:
        """Keyword arguments for a ``ConnectorError``."""
        return {"system": self.system, "method": self.method, "endpoint": self.endpoint, "status": status}


class Classifier:
    """Sorts responses into ok / retry / fail; systems override ``message`` and the 5xx rules."""

    retry_statuses = frozenset({429, 502, 503, 504})
    not_executed_statuses = frozenset({429, 503})  # answered before the request was processed

    def classify(self, response: httpx.Response, where: Where) -> Verdict:
        """Decide what to do with ``response``."""
        status = response.status_code
        if status < 300:
            return Verdict("ok")
        if status in (401, 403):
            return Verdict("fail", AuthError(self.message(response), **where.kwargs(status)))
        if status in self.retry_statuses:
            return self.transient(response, where)
        if 400 <= status < 500:
            return Verdict("fail", RequestRejected(self.message(response), **where.kwargs(status)))
        return self.server_error(response, where)

    def transient(self, response: httpx.Response, where: Where) -> Verdict:
        """A 429/502/503/504: retry, after ``Retry-After`` when given."""
        status = response.status_code
        error = Unavailable(self.message(response) or response.reason_phrase, **where.kwargs(status))
        return Verdict(
            "retry",
            error,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
            not_executed=status in self.not_executed_statuses,
        )

    def server_error(self, response: httpx.Response, where: Where) -> Verdict:
        """Any other 5xx: not retried (the request may be what breaks the server)."""
        status = response.status_code
        return Verdict("fail", Unavailable(self.message(response), **where.kwargs(status)))

    def message(self, response: httpx.Response) -> str:
        """Human text of an error response: a short excerpt of the body by default."""
        return redact(excerpt(response.content)) or response.reason_phrase


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); ``None`` if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


@dataclass
class EndpointStats:
    """Counters of one method + endpoint."""

    count: int = 0
    errors: int = 0
    retries: int = 0
    seconds: float = 0.0


@dataclass
class RequestStats:
    """Request/response counters and timings per method + endpoint, for artifacts and benchmarks."""

    system: str
    by_endpoint: dict[str, EndpointStats] = field(default_factory=dict)

    def entry(self, where: Where) -> EndpointStats:
        """The counters of ``where`` (created on first use)."""
        return self.by_endpoint.setdefault(f"{where.method} {where.endpoint}", EndpointStats())

    def as_dict(self) -> dict[str, dict[str, float | int]]:
        """Plain nested dict: ``{"GET connectors/X": {"count", "errors", "retries", "seconds"}}``."""
        return {
            key: {"count": s.count, "errors": s.errors, "retries": s.retries, "seconds": round(s.seconds, 6)}
            for key, s in sorted(self.by_endpoint.items())
        }

    def totals(self) -> dict[str, float | int]:
        """Sums over every endpoint."""
        values = self.by_endpoint.values()
        return {
            "count": sum(s.count for s in values),
            "errors": sum(s.errors for s in values),
            "retries": sum(s.retries for s in values),
            "seconds": round(sum(s.seconds for s in values), 6),
        }


_ID_SEGMENT = re.compile(r"^(\d+|[0-9a-fA-F-]{32,36}|\{[0-9a-fA-F-]{36}\})$")


def endpoint_label(path: str) -> str:
    """A counter label for a path: ids and numbers replaced by ``{id}``, no leading slash."""
    path = path.split("?", 1)[0].strip("/")
    return "/".join("{id}" if _ID_SEGMENT.match(seg) else seg for seg in path.split("/"))


def encode_json(value: Any) -> bytes:
    """UTF-8 JSON with exact decimals: a ``Decimal`` becomes a JSON number only if that is lossless.

    NaN and infinities are refused (``ValueError``): they are not JSON, and AFAS must never receive one.
    json's C encoder walks the body; it asks ``_jsonable`` only for what it cannot write itself.
    """
    encoded = json.dumps(value, default=_jsonable, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return encoded.encode("utf-8")


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not a finite number and cannot be sent as JSON")
        as_float = float(value)
        # repr(float) is the shortest text that reads back as the same float; when that text is the
        # decimal's own value the JSON number is exact, otherwise send the digits as a string.
        return as_float if Decimal(repr(as_float)) == value else str(value)
    if isinstance(value, date):  # datetime too
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} cannot be sent as JSON")


def decode_json(response: httpx.Response, where: Where, *, decimals: bool = False) -> Any:
    """The JSON body of ``response`` (``None`` when empty); ``ProtocolError`` with an excerpt if not JSON."""
    if not response.content.strip():
        return None
    try:
        if decimals:
            return json.loads(response.content, parse_float=Decimal)
        return json.loads(response.content)
    except ValueError:
        body = redact(excerpt(response.content))
        raise ProtocolError(f"answer is not JSON: {body!r}", **where.kwargs(response.status_code)) from None


@dataclass
class HttpConfig:
    """Everything the HTTP layer needs to reach one system."""

    system: str
    base_url: str
    auth: httpx.Auth | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    read_timeout: float = 60.0
    connect_timeout: float = 10.0
    max_concurrency: int = 4
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    classifier: Classifier = field(default_factory=Classifier)
    secrets: Iterable[str] = ()
    transport: httpx.AsyncBaseTransport | None = None  # tests: httpx.MockTransport
    seed: int | None = None  # jitter seed, for reproducible tests


class HttpLayer:
    """One system's ``httpx.AsyncClient`` with the retry policy, a concurrency bound and counters."""

    def __init__(self, config: HttpConfig, *, sleep: Sleep | None = None) -> None:
        self.config = config
        self.stats = RequestStats(config.system)
        self._secrets = [s for s in config.secrets if s]
        register_secrets(self._secrets)
        self._semaphore = asyncio.Semaphore(config.max_concurrency)
        self._rng = random.Random(config.seed)  # noqa: S311 — jitter, not security
        self._sleep = sleep or asyncio.sleep  # tests pass a fake clock
        limits = httpx.Limits(
            max_connections=config.max_concurrency, max_keepalive_connections=config.max_concurrency
        )
        timeout = httpx.Timeout(config.read_timeout, connect=config.connect_timeout, pool=None)
        self._client = httpx.AsyncClient(
            base_url=config.base_url.rstrip("/") + "/",
            auth=config.auth,
            headers=dict(config.headers),
            timeout=timeout,
            limits=limits,
            transport=config.transport,
        )

    def __repr__(self) -> str:
        return f"HttpLayer(system={self.config.system!r}, base_url={self.config.base_url!r})"

    async def aclose(self) -> None:
        """Close the connection pool and stop masking this client's secrets."""
        await self._client.aclose()
        forget_secrets(self._secrets)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        endpoint: str | None = None,
    ) -> httpx.Response:
        """Send one request with the retry policy; return the successful response or raise."""
        method = method.upper()
        where = Where(self.config.system, method, endpoint or endpoint_label(path))
        content = None if body is None else encode_json(body)
        send_headers = dict(headers or {})
        if content is not None:
            send_headers.setdefault("Content-Type", "application/json; charset=utf-8")
        request = self._client.build_request(
            method, path.lstrip("/"), params=params, content=content, headers=send_headers
        )
        return await self._with_retries(request, where)

    async def _with_retries(self, request: httpx.Request, where: Where) -> httpx.Response:
        spent = 0.0  # time in requests plus time waited: the retry budget (sleep may be a test fake)
        failures: Counter[str] = Counter()
        for attempt in range(1, self.config.policy.max_attempts + 1):
            started = time.monotonic()
            response, verdict = await self._attempt(request, where)
            spent += time.monotonic() - started
            if verdict.action == "ok" and response is not None:
                return response
            assert verdict.error is not None  # noqa: S101 — every non-ok verdict carries its error
            failures[verdict.kind] += 1
            capped = verdict.max_attempts is not None and failures[verdict.kind] >= verdict.max_attempts
            delay = self._retry_delay(verdict, where, attempt, spent, capped=capped)
            spent += delay
            self.stats.entry(where).retries += 1
            log.warning(
                "%s %s %s: %s; retry %d in %.2f s",
                where.system,
                where.method,
                where.endpoint,
                verdict.error.message,
                attempt,
                delay,
            )
            await self._sleep(delay)
        raise AssertionError("unreachable: _retry_delay raises on the last attempt")  # pragma: no cover

    def _retry_delay(
        self, verdict: Verdict, where: Where, attempt: int, elapsed: float, *, capped: bool = False
    ) -> float:
        """Seconds to wait before the next attempt, or raise the verdict's error.

        ``capped``: this kind of failure has used up its own cap (``Verdict.max_attempts``).
        """
        error = verdict.error
        assert error is not None  # noqa: S101
        policy = self.config.policy
        if verdict.action == "fail":
            raise error
        if where.method in WRITE_METHODS and not verdict.not_executed:
            raise UncertainOutcome(
                f"{error.message}; the write may have been executed", **where.kwargs(error.status)
            )
        hint = verdict.retry_after
        if hint is not None and hint > policy.max_retry_after:
            message = f"{where.system} maintenance: {error.message}; the server asks to wait {hint:.0f} s"
            raise Maintenance(message, **where.kwargs(error.status))
        delay = max(hint or 0.0, policy.backoff(attempt, self._rng))
        if capped or attempt >= policy.max_attempts or elapsed + delay > policy.max_total_seconds:
            raise Unavailable(
                f"{error.message}; gave up after {attempt} attempts",
                attempts=attempt,
                **where.kwargs(error.status),
            )
        return delay

    async def _attempt(self, request: httpx.Request, where: Where) -> tuple[httpx.Response | None, Verdict]:
        stats = self.stats.entry(where)
        stats.count += 1
        started = time.monotonic()
        try:
            async with self._semaphore:
                response = await self._client.send(request)
                await response.aread()
        except httpx.TransportError as exc:
            stats.errors += 1
            stats.seconds += time.monotonic() - started
            return None, self._transport_verdict(exc, where)
        elapsed = time.monotonic() - started
        stats.seconds += elapsed
        self._log_exchange(request, response, elapsed)
        verdict = self.config.classifier.classify(response, where)
        if verdict.action != "ok":
            stats.errors += 1
        return response, verdict

    def _transport_verdict(self, exc: httpx.TransportError, where: Where) -> Verdict:
        # Only the exception's type and text travel on: its ``request`` attribute holds the headers.
        detail = redact(f"{type(exc).__name__}: {exc}".rstrip(": "))
        log.debug("%s %s %s failed: %s", where.system, where.method, where.endpoint, detail)
        error = Unavailable(f"connection failed ({detail})", **where.kwargs())
        return Verdict("retry", error, not_executed=isinstance(exc, NOT_SENT_ERRORS))

    def _log_exchange(self, request: httpx.Request, response: httpx.Response, elapsed: float) -> None:
        if not log.isEnabledFor(logging.DEBUG):  # building the header dicts is not free
            return
        log.debug(
            "%s %s -> %s in %.3f s; request headers %s",
            request.method,
            redact(str(request.url)),
            response.status_code,
            elapsed,
            redact_headers(request.headers),
        )


class ClientLifecycle:
    """What every system's client shares: an ``HttpLayer`` in ``_http``, closing it, and its statistics.

    Clients are async context managers: ``async with AfasClient.from_settings(s) as client: ...``.
    A client that checks something on entry (TOPdesk's version) overrides ``__aenter__``.
    """

    _http: HttpLayer

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    def stats(self) -> dict[str, dict[str, float | int]]:
        """Request counters and timings per method + endpoint."""
        return self._http.stats.as_dict()
