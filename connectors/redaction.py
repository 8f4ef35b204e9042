"""The one place where secrets are kept out of logs and error messages.

Clients register every secret they hold (tokens, passwords and the header values derived from them);
``redact`` replaces them in any text, and a logging filter installed on httpx's, httpcore's and our own
loggers rewrites each record before a handler sees it, so even DEBUG wire logs stay clean.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterable, Mapping

MASK = "***"
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"})
# Loggers whose records may show request details. Filters on a logger do not apply to records of its
# child loggers, so httpcore's children are listed one by one.
FILTERED_LOGGERS = (
    "httpx",
    "httpcore",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
)
_MIN_SECRET_CHARS = 6  # shorter values would mask ordinary words; credentials are never this short

_lock = threading.Lock()
_secrets: Counter[str] = Counter()


def register_secrets(values: Iterable[str]) -> None:
    """Start masking ``values`` everywhere (reference-counted; see ``forget_secrets``)."""
    with _lock:
        for value in values:
            if value and len(value) >= _MIN_SECRET_CHARS:
                _secrets[value] += 1
    install_log_filter()


def forget_secrets(values: Iterable[str]) -> None:
    """Stop masking ``values`` once every client that registered them has closed."""
    with _lock:
        for value in values:
            if _secrets.get(value, 0) > 1:
                _secrets[value] -= 1
            else:
                _secrets.pop(value, None)


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``headers`` that is safe to log: credential headers masked, others redacted."""
    return {
        name: MASK if name.lower() in SECRET_HEADERS else redact(str(value))
        for name, value in headers.items()
    }


class RedactingFilter(logging.Filter):
    """Rewrites a log record's message with secrets masked; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Render the message once, mask secrets, and store the result without arguments."""
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        clean = redact(message)
        if clean != message or record.args:
            record.msg, record.args = clean, ()
        return True


_FILTER = RedactingFilter()


def get_logger(name: str) -> logging.Logger:
    """The logger for a connector module, with the redacting filter attached."""
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger


def install_log_filter() -> None:
    """Attach the redacting filter to every logger that may carry request details (idempotent)."""
    for name in FILTERED_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
