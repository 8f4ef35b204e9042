"""A fixed ``Authorization`` header on every request, hidden from ``repr``: what every connector's auth is.

AFAS's classic token (``AfasToken …``), TOPdesk's Basic login and the occupational-health system's Bearer
token differ only in how the header value is made; each subclass makes it and says which forms of it are
secret (``secret_forms``, masked in logs by ``connectors.http``).
"""

from __future__ import annotations

from collections.abc import Generator

import httpx


class HeaderAuth(httpx.Auth):
    """``Authorization: <header>`` on every request; the repr hides the header."""

    def __init__(self, header: str) -> None:
        self._header = header

    def __repr__(self) -> str:
        return f"{type(self).__name__}(***)"

    @property
    def secret_forms(self) -> list[str]:
        """The header value, to be masked in logs."""
        return [self._header]

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Set the header on every request."""
        request.headers["Authorization"] = self._header
        yield request
