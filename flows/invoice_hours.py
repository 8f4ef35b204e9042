"""invoice-hours: TOPdesk hours → AFAS invoices, realisations, sales bookings and journal entries.

Reads as a table of contents: start → read (AFAS master data, TOPdesk registrations) → plan (ledger state,
validate, join, rules, plan, reconcile) → approval → post (claim, post, confirm) → finish (report, verdict).
Each step is a function of ``tasks/invoice_hours/steps.py`` over the slice's tasks; the logic lives in
``tasks/invoice_hours`` (plain functions over frames), ``tasks/invoice_hours/load.py`` (the exactly-once
protocol) and ``store/ledger.py``; this module only wires them.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from prefect import runtime
from prefect.states import State
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import Field

from tasks.approval import approval_gate, end_unposted
from tasks.bundles import sync_bundles
from tasks.history import OptionalDate, run_name
from tasks.invoice_hours.steps import (
    InvoiceHoursParameters,
    finish_run,
    plan_run,
    post,
    read_sources,
    start_run,
)
from tasks.state import recorded_flow

__all__ = ["InvoiceHoursParameters", "invoice_hours"]

FLOW = "invoice-hours"


def _run_name() -> str:
    return run_name(FLOW, runtime.flow_run.parameters)


@recorded_flow(FLOW, flow_run_name=_run_name, task_runner=ThreadPoolTaskRunner(max_workers=2))
def invoice_hours(
    start_date: OptionalDate = None,
    end_date: OptionalDate = None,
    dry_run: bool = False,
    administration: int | None = None,
    resend: list[str] | None = None,
    config_path: str = "config/billing.toml",
    recover_after_minutes: Annotated[float, Field(ge=0)] = 15.0,
) -> dict[str, Any] | State:
    """Bill the hours registered in TOPdesk in AFAS, exactly once, and report every registration's fate.

    A run with refused or uncertain documents, or without a single registration read, ends Failed (after
    finishing its work and publishing its artifacts) and notifies; its result is the ``RunNotClean``
    exception's ``result``.

    Args:
        start_date: Backfill from this day (Europe/Amsterdam): new charges only. Empty: a regular run over
            the horizon (the open AFAS periods up to the end of the previous month).
        end_date: Backfill up to this day, inclusive. Empty: the end of the previous month.
        dry_run: Plan and show everything, post nothing.
        administration: Only post documents of this AFAS administration (empty: every administration).
        resend: Document references or registration ids of refused documents to post again after the
            cause was fixed in AFAS.
        config_path: Technical: the billing rules (TOML), relative to the worker's checkout.
        recover_after_minutes: Technical: documents of a run that stopped without confirming them are
            looked up in AFAS after this many minutes.

    """
    p = InvoiceHoursParameters(
        start_date=start_date,
        end_date=end_date,
        administration=administration,
        dry_run=dry_run,
        resend=resend or [],
        config_path=config_path,
        recover_after_minutes=recover_after_minutes,
    )
    run = start_run(FLOW, p, runtime.flow_run.id)
    sources = read_sources(run)
    window, regular, config = sources.window, sources.regular, sources.config
    run.phases.reached("planning documents")
    bundles_before = sync_bundles(config, window)
    read, billing = plan_run(window, regular, config, sources.masters, sources.read)
    gate = approval_gate(
        read, billing, config, p.dry_run, partial(plan_run, window, regular, config), run.run_id
    )
    if gate.stop is not None:  # rejected or not approved in time: nothing is posted
        return end_unposted(run.run_id, gate)
    posted = post(run, sources, gate.billing, bundles_before)
    return finish_run(run, sources, gate.read, gate.billing, gate, posted)
