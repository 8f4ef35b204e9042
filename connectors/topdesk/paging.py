"""TOPdesk's paging families (reference §2.1) mapped onto the generic paginators.

- A: ``pageStart``/``pageSize``; more = 206 + ``x-next-page-url`` (incidents) or a full page (bulk time
  registrations) → ``OffsetPaginator``;
- B: ``start``/``page_size`` ≤ 100; more = 206 → ``OffsetPaginator(signal="status")``;
- C: ``pageStart``/``pageSize``; more = a body ``next`` URL → ``NextLinkPaginator``;
- OData: server-driven ``$skip``; more = ``@odata.nextLink`` → ``NextLinkPaginator``;
- unpaged → ``SinglePage``.

204 always means "nothing (more)".
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

import httpx

from connectors.errors import ProtocolError
from connectors.paging import NextLinkPaginator, OffsetPaginator, Page, Paginator, SinglePage

FAMILY_B_MAX = 100


class Family(StrEnum):
    """How an endpoint pages."""

    A = "A"
    B = "B"
    C = "C"
    ODATA = "odata"
    UNPAGED = "unpaged"


def paginator_for(
    family: Family, page_size: int, params: dict[str, Any], signal: Literal["short_page", "status"]
) -> Paginator:
    """The paginator of a family; ``params`` are the caller's fixed parameters (C/OData/unpaged)."""
    if family is Family.A:
        return OffsetPaginator("pageStart", "pageSize", page_size, signal=signal)
    if family is Family.B:
        if page_size > FAMILY_B_MAX:
            raise ValueError(f"family B pages hold at most {FAMILY_B_MAX} rows, not {page_size}")
        return OffsetPaginator("start", "page_size", page_size, signal="status")
    if family is Family.C:
        return NextLinkPaginator({**params, "pageStart": 0, "pageSize": page_size})
    if family is Family.ODATA:
        return NextLinkPaginator(dict(params))
    return SinglePage(dict(params))


def page_from(response: httpx.Response, body: Any, rows_key: str | None, *, origin: str) -> Page:
    """The rows and next-page URL of one answer of any family."""
    if response.status_code == 204 or body is None:
        return Page(rows=[], status=response.status_code)
    rows = body if rows_key is None else _rows_in(body, rows_key)
    if not isinstance(rows, list):
        raise ProtocolError(f"expected a list under {rows_key or 'the body'}, got {type(rows).__name__}")
    next_url = response.headers.get("x-next-page-url")
    if isinstance(body, dict):
        next_url = body.get("next") or body.get("@odata.nextLink") or next_url
    return Page(rows=rows, status=response.status_code, next_url=same_origin(next_url, origin))


def _rows_in(body: Any, rows_key: str) -> Any:
    if isinstance(body, list):  # some versions answer with a bare list where others wrap it
        return body
    if not isinstance(body, dict):
        return None
    return body.get(rows_key, [])


def same_origin(url: str | None, origin: str) -> str | None:
    """``url`` if it stays on the tenant's host (credentials must never go elsewhere), else raise."""
    if not url:
        return None
    target = httpx.URL(url)
    if not target.is_absolute_url:
        return url
    base = httpx.URL(origin)
    if (target.scheme, target.host, target.port) != (base.scheme, base.host, base.port):
        raise ProtocolError(f"next-page URL points to another host ({target.host}); not followed")
    return url
