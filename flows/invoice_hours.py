"""invoice-hours: TOPdesk hours → AFAS invoices, realisations, sales bookings and journal entries.

Reads as a table of contents: extract → plan (validate, join, rules, plan, reconcile) → load (claim, post,
confirm) → report. The logic lives in ``tasks/billing`` (plain functions over frames), ``tasks/load.py``
(the exactly-once protocol) and ``store/ledger.py``; this module only wires them.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from prefect import flow, runtime
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, Field

from koppel.notifications import notify_failure
from tasks.billing.config import load_billing_config
from tasks.extract import (
    account_served,
    billing_window,
    check_prices,
    extract_masters,
    extract_topdesk,
    raise_for_failed_sources,
    source_notes,
)
from tasks.invoicing import load, plan, read_state, release_for_resend, report
from tasks.state import close_run, mark_run_ended, open_run


class InvoiceHoursParameters(BaseModel):
    """What a user chooses in the Prefect UI; the defaults bill the previous calendar month."""

    start_date: date | None = Field(
        None, description="First day to bill (Europe/Amsterdam). Default: first day of the previous month."
    )
    end_date: date | None = Field(
        None, description="Last day to bill, inclusive. Default: last day of the previous month."
    )
    administration: int | None = Field(
        None,
        description="Only post documents of this AFAS administration "
        "(default: every administration in the billing config).",
    )
    dry_run: bool = Field(False, description="Plan and show everything, post nothing.")
    resend: list[str] = Field(
        default_factory=list,
        description="Document references or registration ids "
        "of failed documents to post again after the cause was fixed.",
    )
    config_path: str = Field("config/billing.toml", description="Billing rules (TOML).")
    recover_after_minutes: float = Field(
        15.0,
        ge=0,
        description="Documents of a run that stopped without "
        "confirming them are looked up in AFAS after this many minutes.",
    )


@flow(
    name="invoice-hours",
    task_runner=ThreadPoolTaskRunner(max_workers=2),
    validate_parameters=True,
    on_failure=[mark_run_ended, notify_failure],
    on_crashed=[mark_run_ended, notify_failure],
)
def invoice_hours(parameters: InvoiceHoursParameters | None = None) -> dict[str, Any]:
    """Bill the hours registered in TOPdesk in AFAS, exactly once, and report every registration's fate."""
    p = parameters or InvoiceHoursParameters()
    window = billing_window(p.start_date, p.end_date)
    config = load_billing_config(p.config_path).for_administration(p.administration)
    run_id = open_run("invoice-hours", p.model_dump(mode="json"), runtime.flow_run.id)
    if p.resend and not p.dry_run:
        release_for_resend(p.resend)
    topdesk = extract_topdesk(window, config.topdesk)
    read, topdesk_stats = topdesk.frame, topdesk.stats
    masters, afas_stats = extract_masters()
    price_rejects = check_prices(masters, config)
    state = read_state(read, window)
    billing = plan(read, masters, config, state, window)
    outcomes, load_stats = None, {}
    if not p.dry_run:
        outcomes, load_stats = load(billing, config, run_id, p.recover_after_minutes)
    context = {
        "window": window.label(),
        "dry_run": p.dry_run,
        "modes": config.modes_text(),
        "requests": {"topdesk": topdesk_stats, "afas": afas_stats, "afas_load": load_stats},
        "notes": source_notes(topdesk, price_rejects),
    }
    result = report(context, read, billing, outcomes)
    served = account_served(read, result["buckets"])
    close_run(run_id, "failed" if topdesk.failed else "completed", result["statistics"])
    raise_for_failed_sources(topdesk)  # the other sources were billed; the run still is not green
    return {**result, "context": context, "run_id": run_id, "served": served}
