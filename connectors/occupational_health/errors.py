"""How the occupational-health (OH) system's answers are classified (docs/sandbox.md, "Occupational health").

Error bodies are ``{"error": "<code>", "message": "..."}`` or, for a refused record,
``{"error": "validation_failed", "errors": [{"field": ..., "message": ...}]}``. A 422 means the OH system
refused the data (``RecordRefused``, never retried); 401 is a configuration error; 429/503 are retried by
the shared layer after ``Retry-After``.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from connectors.errors import BusinessError, excerpt
from connectors.http import Classifier, Verdict, Where
from connectors.redaction import redact


class RecordRefused(BusinessError):
    """422: the OH system refused the record; ``errors`` holds its ``{"field", "message"}`` entries."""

    hint = "the OH system refused the record; correct the data in AFAS and run again"

    def __init__(self, message: str, *, errors: list[dict[str, str]] | None = None, **where: Any) -> None:
        self.errors = list(errors or [])
        super().__init__(message, external_message=message, **where)


def _body(content: bytes) -> Any:
    try:
        return json.loads(content)
    except ValueError:
        return None


def field_errors(content: bytes) -> list[dict[str, str]]:
    """The ``errors`` list of a validation failure (empty for any other body)."""
    body = _body(content)
    items = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(items, list):
        return []
    return [
        {"field": str(item.get("field", "body")), "message": str(item.get("message", ""))}
        for item in items
        if isinstance(item, dict)
    ]


def error_text(content: bytes) -> str:
    """One line for any OH error body: ``field: message; ...``, else the message or the error code."""
    errors = field_errors(content)
    if errors:
        return redact(excerpt("; ".join(f"{e['field']}: {e['message']}" for e in errors)))
    body = _body(content)
    if isinstance(body, dict):
        text = body.get("message") or body.get("error")
        if text:
            return redact(excerpt(str(text)))
    return redact(excerpt(content))


class OhClassifier(Classifier):
    """The OH system's error semantics on top of the shared classifier."""

    def message(self, response: httpx.Response) -> str:
        """The error text of the body, else the reason phrase."""
        return error_text(response.content) or response.reason_phrase

    def classify(self, response: httpx.Response, where: Where) -> Verdict:
        """422 is a refused record (a business error); everything else as usual."""
        if response.status_code == 422:
            error = RecordRefused(
                self.message(response), errors=field_errors(response.content), **where.kwargs(422)
            )
            return Verdict("fail", error)
        return super().classify(response, where)
