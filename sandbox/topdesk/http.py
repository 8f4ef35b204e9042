"""HTTP details the TOPdesk simulator shares: errors in TOPdesk's shapes, JSON, dates, paging parameters.

Handlers raise ``ApiError``; ``error_response`` renders it in the configured style (reference §2.3, §9.8):
``message`` → ``[{"message": ...}]`` (default), ``errors`` → ``{"errors": [{"errorCode", "appliesTo",
"errorMessage"}]}``, ``descriptions`` → a bare array of those ``ErrorDescription`` objects.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Tomcat (which serves TOPdesk) holds the request line and all headers in one 8 KB buffer; a longer head
# is refused before TOPdesk sees the request (decision §9.6). The simulator answers 414 URI Too Long.
MAX_HEAD_BYTES = 8192
JSON = "application/json"
ERROR_STYLES = ("message", "errors", "descriptions")


class ApiError(Exception):
    """An HTTP error the simulator answers with, in TOPdesk's words."""

    def __init__(
        self, status: int, message: str, code: str = "", applies_to: Iterable[str] = (), **headers: str
    ) -> None:
        super().__init__(message)
        self.status, self.message = status, message
        self.code = code or _DEFAULT_CODES.get(status, "error")
        self.applies_to = list(applies_to)
        self.headers = headers


_DEFAULT_CODES = {
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    406: "not_acceptable",
    414: "uri_too_long",
}


def error_response(error: ApiError, style: str) -> Response:
    """Render ``error`` in one of ``ERROR_STYLES``."""
    if style == "message":
        body: Any = [{"message": error.message}]
    else:
        item = {"errorCode": error.code, "appliesTo": error.applies_to, "errorMessage": error.message}
        body = {"errors": [item]} if style == "errors" else [item]
    return json_response(body, error.status, headers=error.headers)


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None, media_type: str = JSON
) -> Response:
    """UTF-8 JSON, non-ASCII kept as is (TOPdesk sends UTF-8)."""
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(data, status, headers=headers, media_type=f"{media_type}; charset=utf-8")


def topdesk_date(ms: int | None) -> str | None:
    """TOPdesk's default format ``yyyy-MM-ddTHH:mm:ss.SSS+0000`` (always UTC)."""
    if ms is None:
        return None
    stamp = EPOCH + timedelta(milliseconds=ms)
    return f"{stamp:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}+0000"


def iso_date(ms: int | None) -> str | None:
    """The ``dateFormat=iso8601`` form ``yyyy-MM-ddTHH:mm:ssZ`` (milliseconds dropped, as TOPdesk does)."""
    if ms is None:
        return None
    return f"{EPOCH + timedelta(milliseconds=ms):%Y-%m-%dT%H:%M:%S}Z"


def odata_date(ms: int | None) -> str | None:
    """OData ``Edm.DateTimeOffset``: ``yyyy-MM-ddTHH:mm:ssZ``, with ``.SSS`` only when not zero."""
    if ms is None:
        return None
    stamp = EPOCH + timedelta(milliseconds=ms)
    fraction = f".{ms % 1000:03d}" if ms % 1000 else ""
    return f"{stamp:%Y-%m-%dT%H:%M:%S}{fraction}Z"


def head_too_long(request: Request) -> ApiError | None:
    """The refusal of a request whose request line plus headers exceed ``MAX_HEAD_BYTES``, else None."""
    target = request.scope.get("raw_path", b"") + (
        b"?" + request.scope["query_string"] if request.scope.get("query_string") else b""
    )
    line = len(request.method) + 1 + len(target) + len(" HTTP/1.1\r\n")
    headers = sum(len(name) + 2 + len(value) + 2 for name, value in request.scope.get("headers", []))
    if line + headers + 2 <= MAX_HEAD_BYTES:
        return None
    return ApiError(
        414, f"Request header is too large ({line + headers + 2} bytes; at most {MAX_HEAD_BYTES})"
    )


def int_param(request: Request, name: str, default: int, low: int, high: int | None) -> int:
    """An integer query parameter within bounds; out of range is a 400, never clamped (decision §9.10)."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"The value '{raw}' for the parameter '{name}' cannot be parsed") from None
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ApiError(400, f"The value for the parameter '{name}' must be {bound}")
    return value


def fields_param(raw: str | None, allowed: Iterable[str], default: list[str]) -> list[str]:
    """A ``fields`` projection: known names only (400 otherwise), ``all`` or ``*`` for every field."""
    known = list(allowed)
    if raw is None or raw.strip() == "":
        return default
    if raw.strip() in ("all", "*"):
        return known
    wanted = [name.strip() for name in raw.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise ApiError(400, f"Unknown field: '{unknown[0]}'", applies_to=unknown)
    return wanted


def sort_param(raw: str | None, allowed: Iterable[str]) -> list[tuple[str, bool]] | None:
    """``field:asc,field:desc`` as (field, descending) pairs; None when absent."""
    if not raw:
        return None
    known, keys = set(allowed), []
    for part in raw.split(","):
        name, _, direction = part.strip().partition(":")
        if name not in known or direction.lower() not in ("", "asc", "desc"):
            raise ApiError(400, f"Cannot sort on '{part.strip()}'", applies_to=[name])
        keys.append((name, direction.lower() == "desc"))
    return keys


def bool_param(request: Request, name: str, default: bool | None) -> bool | None:
    """``true``/``false`` (any case); anything else is a 400."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if raw.lower() not in ("true", "false"):
        raise ApiError(400, f"The value '{raw}' for the parameter '{name}' cannot be parsed")
    return raw.lower() == "true"


def page_url(request: Request, **changes: object) -> str:
    """The request's own absolute URL with some query parameters replaced (for next-page links)."""
    params = dict(request.query_params)
    params.update({key: str(value) for key, value in changes.items()})
    return str(request.url.replace_query_params(**params))


async def read_object(request: Request) -> dict[str, Any]:
    """The JSON object body of a write; anything else is TOPdesk's generic 400."""
    try:
        body = json.loads(await request.body() or b"null")
    except ValueError:
        raise ApiError(400, "Input parameters malformed") from None
    if not isinstance(body, dict):
        raise ApiError(400, "Input parameters malformed")
    return body


def project(record: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    """Keep only ``fields`` of ``record``, in that order."""
    return {name: record.get(name) for name in fields}
