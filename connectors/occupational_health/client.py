"""The occupational-health (OH) REST client: bearer auth, paged reads, idempotent upserts, deactivation.

Use it as an async context manager so its connection pool is closed::

    async with OhClient.from_settings(settings) as oh:
        outcome = await oh.upsert("employees", "1001", {"last_name": "Jansen", "birth_date": "1985-04-12"})
        registered = await oh.registered_absences(changed_since=since)

Transport, retries, limits and redaction live in ``connectors.http``; error classification in
``connectors.occupational_health.errors``; resources in ``connectors.occupational_health.endpoints``.
A PUT is an upsert by external id and a DELETE a deactivation, both idempotent, so after a lost answer
(``UncertainOutcome``) the client simply sends the same request again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx
import pandas as pd

from connectors.errors import ProtocolError, RequestRejected, UncertainOutcome
from connectors.header_auth import HeaderAuth
from connectors.http import ClientLifecycle, HttpConfig, HttpLayer, RetryPolicy, Sleep, Where, decode_json
from connectors.occupational_health.endpoints import (
    DEPARTMENTS,
    MAX_PAGE_SIZE,
    RECORD_META,
    REGISTERED_ABSENCES,
    Resource,
    resource,
)
from connectors.occupational_health.errors import OhClassifier
from connectors.occupational_health.settings import OccupationalHealthSettings
from connectors.paging import NextLinkPaginator, Page, PageRequest, paginate
from connectors.redaction import get_logger

log = get_logger(__name__)

SYSTEM = "OH"
OH_POLICY = RetryPolicy(max_attempts=5, base_delay=1.0, max_delay=60.0, max_total_seconds=600.0)
DEFAULT_PAGE_SIZE = 500
WRITE_ATTEMPTS = 3  # idempotent writes whose answer was lost are simply sent again


class BearerAuth(HeaderAuth):
    """``Authorization: Bearer <token>`` on every request; the repr hides the token (registered too)."""

    def __init__(self, token: str) -> None:
        super().__init__(f"Bearer {token}")


@dataclass(frozen=True)
class Upserted:
    """The answer to a PUT: the stored record and whether it was new (201) or not (200)."""

    record: dict[str, Any]
    created: bool


class OhClient(ClientLifecycle):
    """One OH system: paged reads of its resources, upserts and deactivations by external id."""

    def __init__(self, http: HttpLayer, *, root: str) -> None:
        self._http = http
        self.root = root

    @classmethod
    def from_settings(
        cls,
        settings: OccupationalHealthSettings,
        *,
        policy: RetryPolicy = OH_POLICY,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep | None = None,
        seed: int | None = None,
    ) -> OhClient:
        """Build a client from settings; ``transport``/``sleep``/``seed`` are for tests."""
        token = settings.token.get_secret_value()
        auth = BearerAuth(token)
        root = str(settings.url).rstrip("/")
        config = HttpConfig(
            system=SYSTEM,
            base_url=root,
            auth=auth,
            headers={"Accept": "application/json"},
            read_timeout=settings.timeout_seconds,
            max_concurrency=settings.max_concurrency,
            policy=policy,
            classifier=OhClassifier(),
            secrets=[token, *auth.secret_forms],
            transport=transport,
            seed=seed,
        )
        http = HttpLayer(config, sleep=sleep)
        return cls(http, root=root)

    def __repr__(self) -> str:
        return f"OhClient(root={self.root!r})"

    async def ping(self) -> None:
        """One cheap authenticated read (a page of one department): checks URL and token."""
        await self._page(DEPARTMENTS.path, {"page": 1, "page_size": 1}, DEPARTMENTS.path)

    async def iter_pages(
        self, name: str, params: Mapping[str, Any] | None = None, *, page_size: int = DEFAULT_PAGE_SIZE
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The records of a resource page by page, following the ``next`` URLs."""
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, not {page_size}")
        path = resource(name).path
        paginator = NextLinkPaginator({**dict(params or {}), "page": 1, "page_size": page_size})

        async def fetch(request: PageRequest) -> Page:
            if request.url is not None:
                return await self._page(request.url, None, path)
            return await self._page(path, request.params, path)

        async for page in paginate(fetch, paginator):
            yield page.rows

    async def read_frame(
        self, name: str, params: Mapping[str, Any] | None = None, *, page_size: int = DEFAULT_PAGE_SIZE
    ) -> pd.DataFrame:
        """Every record of a resource as a typed frame (``external_id``, the fields, the bookkeeping)."""
        rows = [row async for page in self.iter_pages(name, params, page_size=page_size) for row in page]
        return records_frame(rows, resource(name))

    async def registered_absences(
        self, changed_since: datetime | None = None, *, page_size: int = DEFAULT_PAGE_SIZE
    ) -> pd.DataFrame:
        """Absences entered in the OH system, changed at or after ``changed_since`` (aware), oldest first."""
        params: dict[str, Any] = {}
        if changed_since is not None:
            if changed_since.tzinfo is None:
                raise ValueError("changed_since must be time-zone aware")
            params["changed_since"] = changed_since.isoformat()
        return await self.read_frame(REGISTERED_ABSENCES.name, params, page_size=page_size)

    async def upsert(self, name: str, external_id: str, body: Mapping[str, Any]) -> Upserted:
        """PUT the record (idempotent): created (201) or updated/unchanged (200)."""
        target = resource(name)
        target.check_body(dict(body))
        response = await self._idempotent("PUT", target.record_path(external_id), target, dict(body))
        record = decode_json(response, Where(SYSTEM, "PUT", f"{target.path}/{{id}}"))
        if not isinstance(record, dict):
            raise ProtocolError(f"PUT answer is not a record: {str(record)[:200]!r}", system=SYSTEM)
        return Upserted(record, created=response.status_code == 201)

    async def deactivate(self, name: str, external_id: str) -> dict[str, Any] | None:
        """DELETE = deactivate (the record stays, ``active: false``); ``None`` when the OH system has none."""
        target = resource(name)
        try:
            response = await self._idempotent("DELETE", target.record_path(external_id), target, None)
        except RequestRejected as exc:
            if exc.status == 404:
                return None
            raise
        return decode_json(response, Where(SYSTEM, "DELETE", f"{target.path}/{{id}}"))

    async def _idempotent(self, method: str, path: str, target: Resource, body: Any) -> httpx.Response:
        label = f"{target.path}/{{id}}"
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                return await self._http.request(method, path, body=body, endpoint=label)
            except UncertainOutcome as exc:
                if attempt == WRITE_ATTEMPTS:
                    raise
                log.warning("%s %s %s: %s; sending it again (idempotent)", SYSTEM, method, label, exc.message)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _page(self, path: str, params: Mapping[str, Any] | None, label: str) -> Page:
        response = await self._http.request("GET", path, params=params, endpoint=label)
        body = decode_json(response, Where(SYSTEM, "GET", label))
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise ProtocolError(
                f"list answer without 'items': {str(body)[:200]!r}", system=SYSTEM, endpoint=label
            )
        return Page(rows=items, status=response.status_code, next_url=self._same_origin(body.get("next")))

    def _same_origin(self, url: str | None) -> str | None:
        """Follow a next-page URL only on the OH system's own host: the token must never go elsewhere."""
        if not url:
            return None
        target, base = httpx.URL(url), httpx.URL(self.root)
        if target.is_absolute_url and (target.scheme, target.host, target.port) != (
            base.scheme,
            base.host,
            base.port,
        ):
            raise ProtocolError(f"next-page URL points to another host ({target.host}); not followed")
        return url


# --- frames ------------------------------------------------------------------------------------------------


def _date(value: Any) -> date | None:
    if value in (None, ""):
        return None
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _decimal(value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ProtocolError(f"not a decimal number: {value!r}", system=SYSTEM) from None


def _column(values: list[Any], kind: str) -> pd.Series:
    if kind == "date":
        return pd.Series([_date(v) for v in values], dtype=object)
    if kind == "decimal":
        return pd.Series([_decimal(v) for v in values], dtype=object)
    if kind == "bool":
        return pd.Series(pd.array(values, dtype="boolean"))
    if kind == "int":
        return pd.Series(pd.array(values, dtype="Int64"))
    if kind == "datetime":
        # The OH system writes microseconds only when there are any: parse each value on its own.
        moments = pd.to_datetime(pd.Series(values, dtype=object), utc=True, format="ISO8601")
        return pd.Series(moments).astype("datetime64[ns, UTC]")
    return pd.Series(values, dtype="str")


def records_frame(rows: list[dict[str, Any]], target: Resource) -> pd.DataFrame:
    """OH records as a typed frame: dates as ``date``, decimals as ``Decimal``, timestamps UTC-aware.

    Columns: ``external_id``, the resource's fields, ``active``, ``version``, ``created_at``,
    ``updated_at`` (an empty answer gives the same columns, empty).
    """
    kinds = {
        "external_id": "text",
        **target.fields,
        **{k: v for k, v in RECORD_META.items() if k != "external_id"},
    }
    data = {name: _column([row.get(name) for row in rows], kind) for name, kind in kinds.items()}
    return pd.DataFrame(data, columns=list(kinds))
