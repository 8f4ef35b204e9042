"""Typed connector errors that say what to do next.

Every error carries the system, the HTTP method and the endpoint label, never the request itself: an
``httpx.Request`` holds the ``Authorization`` header, so it must not travel inside an exception that ends
up in a log, an artifact or a flow-run state. Messages are built from redacted, shortened text only.
"""

from __future__ import annotations

EXCERPT_CHARS = 300


def excerpt(text: str | bytes | None, limit: int = EXCERPT_CHARS) -> str:
    """A short single-line excerpt of a response body for error messages."""
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class ConnectorError(Exception):
    """Base class of every error raised by a connector."""

    hint = ""

    def __init__(
        self,
        message: str,
        *,
        system: str = "",
        method: str = "",
        endpoint: str = "",
        status: int | None = None,
    ) -> None:
        self.message = message
        self.system = system
        self.method = method
        self.endpoint = endpoint
        self.status = status
        super().__init__(self._render())

    def _render(self) -> str:
        where = " ".join(part for part in (self.system, self.method, self.endpoint) if part)
        status = f" (HTTP {self.status})" if self.status is not None else ""
        hint = f" — {self.hint}" if self.hint else ""
        prefix = f"{where}{status}: " if where or status else ""
        return f"{prefix}{self.message}{hint}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class AuthError(ConnectorError):
    """401/403: the credentials or their rights are wrong; retrying will not help."""

    hint = "check the token / app connector / permissions"


class BusinessError(ConnectorError):
    """The system refused the data (AFAS 500 with ``externalMessage``, TOPdesk 400 on a write).

    The data is wrong, so it is never retried. ``profit_log_reference`` finds the entry in AFAS's
    environment log.
    """

    hint = "the data was refused; correct it and run again"

    def __init__(
        self,
        message: str,
        *,
        external_message: str = "",
        error_number: int | None = None,
        profit_log_reference: str | None = None,
        **where: object,
    ) -> None:
        self.external_message = external_message or message
        self.error_number = error_number
        self.profit_log_reference = profit_log_reference
        suffix = f" [log reference {profit_log_reference}]" if profit_log_reference else ""
        super().__init__(f"{message}{suffix}", **where)  # type: ignore[arg-type]  # where: optional keywords the base class names


class RequestRejected(ConnectorError):
    """400/404/406/413 and other 4xx: the request itself is wrong (a bug or a wrong setting)."""

    hint = "the request was refused as malformed or unknown; check the connector id, fields and filters"


class Unavailable(ConnectorError):
    """Retries are exhausted (or not allowed) for a transient failure; ``last_status`` says which."""

    hint = "the system is unavailable or overloaded; try again later"

    def __init__(self, message: str, *, attempts: int = 0, **where: object) -> None:
        self.attempts = attempts
        super().__init__(message, **where)  # type: ignore[arg-type]  # where: optional keywords the base class names

    @property
    def last_status(self) -> int | None:
        """The HTTP status of the last attempt (``None`` for a transport error)."""
        return self.status


class Maintenance(Unavailable):
    """The server asked to wait longer than the configured limit: AFAS maintenance (decision §11.7)."""

    hint = "maintenance window: the run stops; start it again after the window"


class ProtocolError(ConnectorError):
    """The answer has an unexpected shape, or paging went in a loop."""

    hint = "unexpected answer from the server; see the excerpt"


class UncertainOutcome(ConnectorError):
    """A write was sent but its answer was lost: it may or may not have landed.

    Never re-send blindly: look the document up by its reference first.
    """

    hint = "the write may or may not have landed; look it up before sending it again"


class QueryTooLong(ConnectorError):
    """The query string would exceed the system's limit; split the request into batches."""

    hint = "split the filter into smaller batches"
