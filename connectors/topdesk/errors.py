"""How TOPdesk answers are classified (reference §2.2–§2.3, decisions §9.8, §9.9).

Error bodies come in several shapes — ``[{"message": ...}]``, ``{"errors": [{"errorCode", "appliesTo",
"errorMessage"}]}``, a bare array of ``ErrorDescription``, an HTML page (some 401s) or nothing at all —
and ``error_text`` reads every one of them. 401/403 are configuration errors whose hints name TOPdesk's
own settings (``KOPPEL_TOPDESK_LOGIN`` / ``KOPPEL_TOPDESK_APPLICATION_PASSWORD``), never AFAS's token;
a 400/404 on a write means TOPdesk refused the data (``BusinessError``); on a read it means the request
is wrong (a 404 names the base URL and the OData entity-set settings).
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

import httpx

from connectors.errors import AuthError, BusinessError, RequestRejected, excerpt
from connectors.http import WRITE_METHODS, Classifier, Verdict, Where
from connectors.redaction import redact

_TAGS = re.compile(r"<(script|style)[^>]*>.*?</\1>|<[^>]+>", re.IGNORECASE | re.DOTALL)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def error_text(content: bytes | str | None) -> str:
    """The human message of any TOPdesk error body (``""`` when empty)."""
    if not content:
        return ""
    text = content.decode("utf-8", errors="replace") if isinstance(content, bytes) else content
    stripped = text.strip()
    if not stripped:
        return ""
    if stripped.startswith(("[", "{")):
        try:
            return redact(excerpt("; ".join(_messages(json.loads(stripped)))))
        except ValueError:
            pass
    if stripped.startswith("<"):
        return redact(excerpt(_html_text(stripped)))
    return redact(excerpt(stripped))


def _messages(body: Any) -> list[str]:
    if isinstance(body, list):
        return [m for item in body for m in _messages(item)]
    if not isinstance(body, dict):
        return [str(body)]
    if isinstance(body.get("errors"), list):
        return _messages(body["errors"])
    text = body.get("errorMessage") or body.get("message") or ""
    code = body.get("errorCode")
    fields = body.get("appliesTo") or []
    parts = [f"{code}:" if code else "", str(text), f"({', '.join(map(str, fields))})" if fields else ""]
    joined = " ".join(p for p in parts if p)
    return [joined] if joined else [json.dumps(body, ensure_ascii=False)]


def _html_text(page: str) -> str:
    body = _TAGS.sub(" ", page)
    title = _TITLE.search(page)
    text = " ".join(html.unescape(body).split())
    if title:
        heading = " ".join(html.unescape(title.group(1)).split())
        text = text if text.startswith(heading) else f"{heading}: {text}"
    return text


class TopdeskLoginRejected(AuthError):
    """401: TOPdesk did not accept the login name and application password."""

    hint = (
        "TOPdesk rejected the login: check KOPPEL_TOPDESK_LOGIN (the operator's login name) and "
        "KOPPEL_TOPDESK_APPLICATION_PASSWORD (application passwords expire)"
    )


class TopdeskForbidden(AuthError):
    """403: the TOPdesk account lacks a permission (or is a person account)."""

    hint = (
        "TOPdesk refused the operator KOPPEL_TOPDESK_LOGIN: its permission group needs REST API access "
        "and read rights on this module (reporting/OData for changes and problems)"
    )


class TopdeskNotFound(RequestRejected):
    """404 on a read: the path, the entity set or the record does not exist on this tenant."""

    hint = (
        "TOPdesk has no such resource: check KOPPEL_TOPDESK_BASE_URL and, for OData, the entity set names "
        "in [topdesk] of the billing config (`koppel topdesk sources` lists them)"
    )


class TopdeskClassifier(Classifier):
    """TOPdesk's error semantics on top of the shared classifier."""

    def message(self, response: httpx.Response) -> str:
        """The error text of any body shape, else the reason phrase."""
        return error_text(response.content) or response.reason_phrase

    def classify(self, response: httpx.Response, where: Where) -> Verdict:
        """A refused write (400, 404, 419) is a business error; everything else as usual."""
        status = response.status_code
        if where.method in WRITE_METHODS and status in (400, 404, 419):
            message = self.message(response)
            return Verdict("fail", BusinessError(message, external_message=message, **where.kwargs(status)))
        named = {401: TopdeskLoginRejected, 403: TopdeskForbidden, 404: TopdeskNotFound}.get(status)
        if named is not None:
            return Verdict("fail", named(self.message(response), **where.kwargs(status)))
        return super().classify(response, where)
