"""Paginator objects: each has an explicit stop rule and detects loops.

A paginator turns the page it just saw into the request for the next one, or ``None`` to stop. It never
loops on its own: ``paginate`` drives it for at most ``max_pages`` pages, and every paginator raises
``ProtocolError`` when the server would send it back to an offset, key or URL it has already seen.

- ``OffsetPaginator``: offset + size parameters (AFAS ``skip``/``take``, TOPdesk ``pageStart``/``pageSize``
  and ``start``/``page_size``). Stops on 204, on an empty page, and either on a short page or — when
  the family signals with its status — on anything but 206.
- ``KeysetPaginator``: "rows after key K, sorted by key" (AFAS filter ``key > last``); stops on a short
  page; the last key must grow strictly from page to page.
- ``NextLinkPaginator``: follows a URL from the previous page (body ``next``, ``@odata.nextLink``,
  header ``x-next-page-url``); stops when there is none.
- ``SinglePage``: unpaged endpoints.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from connectors.errors import ProtocolError

MORE_STATUS = 206
EMPTY_STATUS = 204


@dataclass(frozen=True)
class PageRequest:
    """What to ask for next: query parameters, a key to continue after, or a full URL to follow."""

    params: dict[str, Any] = field(default_factory=dict)
    after: Any = None
    url: str | None = None


@dataclass(frozen=True)
class Page:
    """One answer: its rows, its status and the next-page URL the server offered (if any)."""

    rows: list[dict[str, Any]]
    status: int = 200
    next_url: str | None = None


class Paginator(Protocol):
    """The request for the first page, then for each following page until ``None``."""

    def first(self) -> PageRequest:
        """The request for the first page."""
        ...

    def next(self, page: Page) -> PageRequest | None:
        """The request after ``page``, or ``None`` when ``page`` was the last."""
        ...


@dataclass
class OffsetPaginator:
    """Offset/size paging with a stop rule of ``short_page`` or ``status`` (206 = more)."""

    offset_param: str
    size_param: str
    page_size: int
    signal: Literal["short_page", "status"] = "short_page"
    start: int = 0
    _offset: int = field(init=False, default=0)
    _seen: set[int] = field(init=False, default_factory=set)

    def first(self) -> PageRequest:
        """Start at ``start``."""
        self._offset = self.start
        self._seen = {self.start}
        return self._request()

    def next(self, page: Page) -> PageRequest | None:
        """Advance by the rows received, unless the stop rule says this was the last page."""
        if page.status == EMPTY_STATUS or not self._more(page):
            return None
        if not page.rows:  # "more" announced but nothing sent: asking again would loop forever
            raise ProtocolError(f"paging loop: more rows announced at offset {self._offset}, but none sent")
        self._offset += len(page.rows)
        if self._offset in self._seen:
            raise ProtocolError(f"paging loop: offset {self._offset} requested twice")
        self._seen.add(self._offset)
        return self._request()

    def _more(self, page: Page) -> bool:
        announced = page.status == MORE_STATUS or page.next_url is not None
        if self.signal == "status":
            return announced
        return announced or (len(page.rows) >= self.page_size > 0)

    def _request(self) -> PageRequest:
        return PageRequest(params={self.offset_param: self._offset, self.size_param: self.page_size})


@dataclass
class KeysetPaginator:
    """Keyset paging on a unique sortable key: the next page holds the rows after the last key."""

    key: str
    page_size: int
    _last: Any = field(init=False, default=None)

    def first(self) -> PageRequest:
        """The first page: no lower bound."""
        self._last = None
        return PageRequest()

    def next(self, page: Page) -> PageRequest | None:
        """Continue after the last key of a full page; the key must grow strictly."""
        if len(page.rows) < self.page_size:
            return None
        last = page.rows[-1].get(self.key)
        if last is None:
            raise ProtocolError(f"keyset paging: the last row of a page has no {self.key!r}")
        if self._last is not None and not last > self._last:
            raise ProtocolError(f"keyset paging loop: {self.key} {last!r} does not follow {self._last!r}")
        self._last = last
        return PageRequest(after=last)


@dataclass
class NextLinkPaginator:
    """Follows the URL the server gives for the next page; stops when there is none."""

    params: dict[str, Any] = field(default_factory=dict)
    _seen: set[str] = field(init=False, default_factory=set)

    def first(self) -> PageRequest:
        """The first page with the caller's parameters."""
        self._seen = set()
        return PageRequest(params=dict(self.params))

    def next(self, page: Page) -> PageRequest | None:
        """Follow ``page.next_url`` unless absent; a URL seen before is a loop."""
        if not page.next_url or page.status == EMPTY_STATUS:
            return None
        if page.next_url in self._seen:
            raise ProtocolError("paging loop: the same next-page URL was offered twice")
        self._seen.add(page.next_url)
        return PageRequest(url=page.next_url)


@dataclass
class SinglePage:
    """Unpaged endpoints: one request, all rows."""

    params: dict[str, Any] = field(default_factory=dict)

    def first(self) -> PageRequest:
        """The only request."""
        return PageRequest(params=dict(self.params))

    def next(self, page: Page) -> PageRequest | None:
        """There is never a next page."""
        return None


Fetch = Callable[[PageRequest], Awaitable[Page]]
DEFAULT_MAX_PAGES = 100_000


async def paginate(
    fetch: Fetch, paginator: Paginator, *, max_pages: int = DEFAULT_MAX_PAGES
) -> AsyncIterator[Page]:
    """Fetch pages as the paginator directs, at most ``max_pages`` of them."""
    request: PageRequest | None = paginator.first()
    for _ in range(max_pages):
        if request is None:
            return
        page = await fetch(request)
        yield page
        request = paginator.next(page)
    if request is not None:
        raise ProtocolError(f"paging did not end within {max_pages} pages")
