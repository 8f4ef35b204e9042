"""Failure notifications: a Prefect ``on_failure``/``on_crashed`` hook that sends a message through a block.

Attach it to a flow (the flows do this)::

    from koppel.notifications import notify_failure

    @flow(name="invoice-hours", on_failure=[notify_failure], on_crashed=[notify_failure])
    def invoice_hours(...): ...

The message goes through the Prefect notification block named by ``KOPPEL_NOTIFY_BLOCK`` as
``<block-type-slug>/<block-name>`` (e.g. ``slack-webhook/koppel-alerts``, ``ms-teams-webhook/finance``,
``custom-webhook/koppel-alerts``); without it the hook only logs. It names the flow, the run, the state's
message, the parameters (secrets redacted), a link to the run in the UI when ``PREFECT_UI_URL`` is set, and
the AFAS log reference(s) (``profitLogReference``) when there are any: from the exception that failed the
run, from the state message, and from the documents of this run that AFAS refused (the state store).
A hook must never make a failure worse: every problem while notifying is logged, never raised.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger("koppel.notifications")

_LOG_REFERENCE = re.compile(r"\b[0-9a-f]{32}\b", re.IGNORECASE)
MAX_REFERENCES = 10


class NotifySettings(BaseSettings):
    """Which Prefect notification block failure messages go through."""

    model_config = SettingsConfigDict(env_prefix="KOPPEL_NOTIFY_", extra="ignore")

    block: str | None = Field(
        None, description="<block-type-slug>/<block-name>, e.g. slack-webhook/koppel-alerts; unset: log only."
    )


@dataclass(frozen=True)
class Failure:
    """What the message says about one failed run."""

    flow_name: str
    run_name: str
    run_id: str
    state_name: str
    state_message: str
    parameters: Mapping[str, Any]
    log_references: tuple[str, ...] = ()
    ui_url: str | None = None


def log_references(*texts: str | None) -> list[str]:
    """AFAS log references (32 hex characters) found in ``texts``, first seen first, no repeats."""
    found: dict[str, None] = {}
    for text in texts:
        for match in _LOG_REFERENCE.findall(text or ""):
            found.setdefault(match.lower())
    return list(found)


def exception_references(error: BaseException | None) -> list[str]:
    """``profit_log_reference`` of the exception and of its causes (connectors' ``BusinessError``)."""
    found, seen = [], set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        reference = getattr(error, "profit_log_reference", None)
        if reference:
            found.append(str(reference))
        error = error.__cause__ or error.__context__
    return found


def message(failure: Failure) -> tuple[str, str]:
    """Subject and body of the notification."""
    from store.runs import scrub

    subject = f"Koppel: {failure.flow_name} run {failure.run_name} {failure.state_name.lower()}"
    parameters = (
        ", ".join(f"{k}={v}" for k, v in _flat(scrub(dict(failure.parameters))).items()) or "defaults"
    )
    lines = [
        f"Flow: {failure.flow_name}",
        f"Run: {failure.run_name} ({failure.run_id})",
        f"State: {failure.state_name}: {failure.state_message or '(no message)'}",
        f"Parameters: {parameters}",
    ]
    if failure.log_references:
        shown = ", ".join(failure.log_references[:MAX_REFERENCES])
        more = len(failure.log_references) - MAX_REFERENCES
        lines.append(f"AFAS log reference: {shown}" + (f" (+{more} more)" if more > 0 else ""))
    if failure.ui_url:
        lines.append(f"Open in Prefect: {failure.ui_url.rstrip('/')}/runs/flow-run/{failure.run_id}")
    return subject, "\n".join(lines)


def _flat(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters of a flow with one pydantic model parameter are shown as that model's fields."""
    if len(parameters) == 1 and isinstance(next(iter(parameters.values())), Mapping):
        parameters = next(iter(parameters.values()))
    return {k: v for k, v in parameters.items() if v not in (None, [], {}, "")}


def failed_document_references(run_id: str) -> list[str]:
    """AFAS log references of the documents of this run that AFAS refused, from the state store."""
    from sqlalchemy.exc import SQLAlchemyError

    from koppel.settings import SettingsError, load
    from store import ledger
    from store.db import connect
    from store.settings import StoreSettings

    try:
        engine = connect(load(StoreSettings))
    except (SettingsError, SQLAlchemyError, OSError) as error:
        log.warning("failure notification: state store not readable (%s)", type(error).__name__)
        return []
    try:
        failed = ledger.documents(engine, run_id=run_id, status="failed")
    except SQLAlchemyError as error:
        log.warning("failure notification: documents not readable (%s)", type(error).__name__)
        return []
    finally:
        engine.dispose()
    return [str(ref) for ref in failed["profit_log_reference"].dropna() if str(ref)]


def _state_exception(state: Any) -> BaseException | None:
    """The exception a failed state holds, if Prefect can hand it back."""
    from prefect.exceptions import PrefectException

    try:
        result = state.result(raise_on_failure=False, _sync=True)
    except (PrefectException, TypeError, ValueError, OSError):  # no result stored: notify without it
        return None
    return result if isinstance(result, BaseException) else None


def describe(flow: Any, flow_run: Any, state: Any) -> Failure:
    """Collect what the message says from Prefect's hook arguments (and the state store)."""
    from prefect.settings import PREFECT_UI_URL

    references = [
        *exception_references(_state_exception(state)),
        *log_references(state.message),
        *failed_document_references(str(flow_run.id)),
    ]
    return Failure(
        flow_name=flow.name,
        run_name=flow_run.name,
        run_id=str(flow_run.id),
        state_name=state.name,
        state_message=state.message or "",
        parameters=dict(flow_run.parameters or {}),
        log_references=tuple(dict.fromkeys(r.lower() for r in references)),
        ui_url=PREFECT_UI_URL.value(),
    )


def send(subject: str, body: str, block_slug: str | None) -> bool:
    """Send through the notification block ``block_slug``; False (and logged) when it cannot."""
    import httpx
    from prefect.blocks.abstract import NotificationBlock
    from prefect.blocks.core import Block

    from koppel.dispatch import synchronous

    if not block_slug:
        log.warning("%s\n%s\n(no KOPPEL_NOTIFY_BLOCK set: logged only)", subject, body)
        return False
    try:
        block = synchronous(Block.load(block_slug, _sync=True))  # type: ignore[call-arg]  # _sync: Prefect's sync/async dispatch keyword
        if not isinstance(block, NotificationBlock):
            kind = type(block).__name__
            log.error(
                "%s is a %s, not a notification block: nothing sent\n%s\n%s", block_slug, kind, subject, body
            )
            return False
        # cast: NotificationBlock declares notify async; every block wraps it in Prefect's async_dispatch,
        # which takes _sync=True and then returns when the message is sent.
        notify = cast("Callable[..., object]", block.notify)
        notify(body=body, subject=subject, _sync=True)
    except (ValueError, httpx.HTTPError, OSError) as error:
        log.error("failure notification through %s not sent: %s\n%s\n%s", block_slug, error, subject, body)
        return False
    return True


def notify_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """Prefect hook (``on_failure``/``on_crashed``): tell the team a run failed, with AFAS log references."""
    try:
        settings = NotifySettings()
    except ValidationError as error:
        log.error("failure notification: bad KOPPEL_NOTIFY_ settings: %s", error)
        return
    subject, body = message(describe(flow, flow_run, state))
    send(subject, body, settings.block)
