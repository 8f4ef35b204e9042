"""The TOPdesk REST client: Basic auth with an application password, version gate, paging, writes.

Use it as an async context manager; entering checks ``/tas/api/version`` (Incident API ≥ 3.4,
decision §9.15), which is also the credentials check::

    async with TopdeskClient.from_settings(settings) as topdesk:
        frame = await read_time_registrations(topdesk, start, end)
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Mapping
from typing import Any, Self

import httpx

from connectors.errors import ProtocolError
from connectors.header_auth import HeaderAuth
from connectors.http import (
    ClientLifecycle,
    HttpConfig,
    HttpLayer,
    RetryPolicy,
    Sleep,
    Where,
    decode_json,
    endpoint_label,
)
from connectors.paging import Page, PageRequest, paginate
from connectors.topdesk.endpoints import API, Endpoint
from connectors.topdesk.errors import TopdeskClassifier
from connectors.topdesk.paging import Family, page_from, paginator_for
from connectors.topdesk.settings import TopdeskSettings

SYSTEM = "TOPdesk"
MIN_VERSION = (3, 4)
# Decision §9.9: at most 5 retries, exponential backoff from 2 s, Retry-After honoured.
TOPDESK_POLICY = RetryPolicy(max_attempts=6, base_delay=2.0, max_delay=60.0, max_total_seconds=600.0)


class UnsupportedVersion(ProtocolError):
    """The tenant's Incident API is older than 3.4 (no FIQL on time registrations)."""

    hint = "Koppel needs TOPdesk's Incident API 3.4 or newer"


class TopdeskBasicAuth(HeaderAuth):
    """HTTP Basic with the login and application password encoded as UTF-8; repr hides both."""

    def __init__(self, login: str, password: str) -> None:
        token = base64.b64encode(f"{login}:{password}".encode()).decode("ascii")
        super().__init__(f"Basic {token}")

    @property
    def secret_forms(self) -> list[str]:
        """The header and its encoded part, to be masked in logs."""
        return [self._header, self._header.split(" ", 1)[1]]


def parse_version(text: str) -> tuple[int, ...]:
    """``"4.2.6"`` → ``(4, 2, 6)``; non-numeric parts end the tuple."""
    parts: list[int] = []
    for piece in str(text).split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


class TopdeskClient(ClientLifecycle):
    """One TOPdesk tenant: paged reads of the endpoints in ``endpoints.py`` and JSON writes."""

    def __init__(self, http: HttpLayer, *, root: str, check_version: bool = True) -> None:
        self._http = http
        self.root = root
        self.version: str | None = None
        self._check_version = check_version

    @classmethod
    def from_settings(
        cls,
        settings: TopdeskSettings,
        *,
        policy: RetryPolicy = TOPDESK_POLICY,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep | None = None,
        seed: int | None = None,
        check_version: bool = True,
    ) -> TopdeskClient:
        """Build a client from settings; ``transport``/``sleep``/``seed`` are for tests."""
        password = settings.application_password.get_secret_value()
        auth = TopdeskBasicAuth(settings.login, password)
        config = HttpConfig(
            system=SYSTEM,
            base_url=settings.root,
            auth=auth,
            headers={"Accept": "application/json"},
            read_timeout=settings.timeout_seconds,
            max_concurrency=settings.max_concurrency,
            policy=policy,
            classifier=TopdeskClassifier(),
            secrets=[password, *auth.secret_forms],
            transport=transport,
            seed=seed,
        )
        http = HttpLayer(config, sleep=sleep)
        return cls(http, root=settings.root, check_version=check_version)

    def __repr__(self) -> str:
        return f"TopdeskClient(root={self.root!r})"

    async def __aenter__(self) -> Self:
        if self._check_version:
            try:
                await self.check_version()
            except BaseException:
                await self.aclose()
                raise
        return self

    async def check_version(self) -> str:
        """Read ``/tas/api/version`` and refuse an Incident API older than 3.4."""
        data = await self.get_json(f"{API}/version")
        version = data.get("version") if isinstance(data, dict) else None
        if not version:
            raise ProtocolError(f"version answer without 'version': {str(data)[:200]!r}", system=SYSTEM)
        if parse_version(version) < MIN_VERSION:
            raise UnsupportedVersion(f"the tenant reports Incident API {version}", system=SYSTEM)
        self.version = str(version)
        return self.version

    async def get_json(
        self, path: str, params: Mapping[str, Any] | None = None, *, accept: str | None = None
    ) -> Any:
        """GET one resource and return its JSON (``None`` for 204/empty)."""
        response = await self._http.request("GET", path, params=params, headers=_accept(accept))
        return decode_json(response, Where(SYSTEM, "GET", endpoint_label(path)))

    async def get_text(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        """GET one resource as text (e.g. OData ``$metadata`` XML); ``""`` for 204/empty."""
        response = await self._http.request("GET", path, params=params, headers={"Accept": "application/xml"})
        return response.text if response.status_code != 204 else ""

    async def iter_pages(
        self,
        endpoint: Endpoint,
        params: Mapping[str, Any] | None = None,
        *,
        page_size: int | None = None,
        path_values: Mapping[str, str] | None = None,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The rows of ``endpoint`` page by page, following its family's paging and stop rule."""
        path = endpoint.url(**(path_values or {}))
        fixed = dict(params or {})
        size = endpoint.checked_page_size(page_size or endpoint.page_size)
        paginator = paginator_for(endpoint.family, size, fixed, endpoint.signal)

        async def fetch(request: PageRequest) -> Page:
            if request.url is not None:
                return await self._page(endpoint, request.url, None)
            return await self._page(endpoint, path, {**fixed, **request.params})

        async for page in paginate(fetch, paginator):
            yield page.rows

    async def page_at(self, endpoint: Endpoint, params: Mapping[str, Any], offset: int, size: int) -> Page:
        """One family-A page at ``offset`` (for pages read side by side; the caller applies the stop rule)."""
        if endpoint.family is not Family.A:
            raise ValueError(f"{endpoint.name}: only offset pages (family A) can be read by offset")
        size = endpoint.checked_page_size(size)
        return await self._page(endpoint, endpoint.path, {**params, "pageStart": offset, "pageSize": size})

    def target_length(self, path: str, params: Mapping[str, Any]) -> int:
        """Bytes of the request target (path and encoded query) a GET of ``path`` with ``params`` sends."""
        url = httpx.URL(f"{self.root}/{path.lstrip('/')}", params=dict(params))
        return len(url.raw_path)

    async def read_all(
        self, endpoint: Endpoint, params: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[dict]:
        """Every row of ``endpoint`` in one list."""
        return [row async for page in self.iter_pages(endpoint, params, **kwargs) for row in page]

    async def _page(self, endpoint: Endpoint, path: str, params: Mapping[str, Any] | None) -> Page:
        label = endpoint_label(endpoint.path.replace("{id}", "0"))
        response = await self._http.request(
            "GET", path, params=params, headers=_accept(endpoint.accept), endpoint=label
        )
        body = decode_json(response, Where(SYSTEM, "GET", label))
        try:
            return page_from(response, body, endpoint.rows_key, origin=self.root)
        except ProtocolError as exc:
            raise ProtocolError(exc.message, system=SYSTEM, method="GET", endpoint=label) from None

    async def send(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        accept: str | None = None,
        content_type: str | None = None,
    ) -> Any:
        """A write (POST/PATCH/PUT/DELETE) with a UTF-8 JSON body; returns the answer's JSON."""
        headers = _accept(accept)
        if content_type:
            headers["Content-Type"] = f"{content_type}; charset=utf-8"
        response = await self._http.request(method, path, body=body, headers=headers)
        return decode_json(response, Where(SYSTEM, method.upper(), endpoint_label(path)))


def _accept(accept: str | None) -> dict[str, str]:
    return {"Accept": accept} if accept else {}
