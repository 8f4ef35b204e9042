"""How AFAS answers are classified (reference §9, decisions §11.7, §11.9, §11.13).

- 401/403: ``AuthError`` (token, app connector, IP restriction).
- 500 with ``externalMessage`` (falling back to ``message``): a business error, never retried — unless
  the text matches a transient rule (booking layout locked, command time-out; Dutch and English), which
  is retried up to 3 times. A locked layout proves the write was not executed; a time-out does not.
- 503 (maintenance, overload) and 429: retried after the body's ``retry_after`` or the ``Retry-After``
  header (fallback 30 s); a wait above the policy's ``max_retry_after`` (15 min) stops as maintenance.
- ``X-PROFIT-ERROR`` (deprecated) is only logged, best-effort base64-decoded, when there is no JSON body.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any

import httpx

from connectors.errors import AuthError, BusinessError, Unavailable, excerpt
from connectors.http import Classifier, Verdict, Where
from connectors.redaction import get_logger, redact

log = get_logger(__name__)

TRANSIENT_500_ATTEMPTS = 4  # the first try + 3 retries (decision §11.7)


@dataclass(frozen=True)
class TransientRule:
    """A 500 message that is worth retrying; ``proves_not_executed`` makes it safe for writes too."""

    pattern: str
    proves_not_executed: bool = False

    def matches(self, message: str) -> bool:
        """Whether ``message`` is this kind of transient failure."""
        return re.search(self.pattern, message, flags=re.IGNORECASE) is not None


DEFAULT_TRANSIENT_RULES = (
    # "Booking layout locked by another user": the entry was refused before anything was booked.
    TransientRule(r"(boekingslay-?out|booking ?layout).*(vergrendeld|geblokkeerd|in gebruik|locked)", True),
    TransientRule(r"(vergrendeld|locked) (door|by) (een )?(andere gebruiker|another user)", True),
    # Command time-out: the server gave up, but a write may have been (partly) processed.
    TransientRule(r"maximale tijdsduur.*verstreken"),
    TransientRule(r"(maximum|maximal) (time|duration).*(exceeded|expired|elapsed)"),
    TransientRule(r"command time-?out|opdracht.*time-?out"),
)


@dataclass(frozen=True)
class AfasErrorBody:
    """The fields AFAS puts in an error body; every one may be missing."""

    message: str = ""
    error_number: int | None = None
    profit_log_reference: str | None = None
    retry_after: float | None = None


def parse_error_body(response: httpx.Response) -> AfasErrorBody:
    """Read ``externalMessage``/``message``/``error.message``, ``errorNumber``, ``profitLogReference``."""
    try:
        body: Any = json.loads(response.content) if response.content.strip() else None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return AfasErrorBody(message=_fallback_text(response))
    error = body.get("error")
    nested = error if isinstance(error, dict) else {}
    message = body.get("externalMessage") or body.get("message") or nested.get("message") or ""
    if body.get("internalMessage"):
        log.debug("AFAS internalMessage: %s", redact(str(body["internalMessage"])))
    return AfasErrorBody(
        message=redact(str(message)),
        error_number=_int_or_none(body.get("errorNumber")),
        profit_log_reference=body.get("profitLogReference"),
        retry_after=_float_or_none(body.get("retry_after")),
    )


def _fallback_text(response: httpx.Response) -> str:
    header = response.headers.get("x-profit-error")
    if header:
        decoded = _maybe_base64(header)
        log.info("AFAS X-PROFIT-ERROR header: %s", redact(decoded))
        return redact(excerpt(decoded))
    return redact(excerpt(response.content))


def _maybe_base64(value: str) -> str:
    try:
        return base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return value


def _int_or_none(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload]  # any JSON value; a non-number raises and is caught
    except (TypeError, ValueError):
        return None


def _float_or_none(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]  # any JSON value; a non-number raises and is caught
    except (TypeError, ValueError):
        return None


@dataclass
class AfasClassifier(Classifier):
    """AFAS's error semantics on top of the shared classifier."""

    transient_rules: tuple[TransientRule, ...] = DEFAULT_TRANSIENT_RULES
    fallback_retry_after: float = 30.0
    not_executed_statuses: frozenset[int] = field(default=frozenset({429, 503}))
    auth_hint: str = ""  # what to check on a 401, per authentication mode (connectors/afas/auth.py)

    def classify(self, response: httpx.Response, where: Where) -> Verdict:
        """The shared rules; a 401 also names the settings of the authentication mode in use."""
        verdict = super().classify(response, where)
        if response.status_code == 401 and self.auth_hint and verdict.error is not None:
            message = f"{verdict.error.message}; {self.auth_hint}"
            return Verdict("fail", AuthError(message, **where.kwargs(401)))
        return verdict

    def message(self, response: httpx.Response) -> str:
        """AFAS's ``externalMessage`` (or ``message``), else a body excerpt."""
        return parse_error_body(response).message or response.reason_phrase

    def transient(self, response: httpx.Response, where: Where) -> Verdict:
        """429/502/503/504, with AFAS's body ``retry_after`` and the 30 s fallback for 503."""
        verdict = super().transient(response, where)
        body = parse_error_body(response)
        hint = body.retry_after if body.retry_after is not None else verdict.retry_after
        if hint is None and response.status_code == 503:
            hint = self.fallback_retry_after
        return Verdict("retry", verdict.error, retry_after=hint, not_executed=verdict.not_executed)

    def server_error(self, response: httpx.Response, where: Where) -> Verdict:
        """A 500 with a message is a business error unless a transient rule matches it."""
        body = parse_error_body(response)
        status = response.status_code
        if not body.message:
            return Verdict("fail", Unavailable(response.reason_phrase, **where.kwargs(status)))
        error = BusinessError(
            body.message,
            external_message=body.message,
            error_number=body.error_number,
            profit_log_reference=body.profit_log_reference,
            **where.kwargs(status),
        )
        rule = next((r for r in self.transient_rules if r.matches(body.message)), None)
        if rule is None:
            return Verdict("fail", error)
        return Verdict(
            "retry",
            error,
            not_executed=rule.proves_not_executed,
            max_attempts=TRANSIENT_500_ATTEMPTS,
            kind="transient-500",
        )
