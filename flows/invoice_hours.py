"""invoice-hours: TOPdesk hours → AFAS invoices, realisations, sales bookings and journal entries.

Reads as a table of contents: extract → plan (validate, join, rules, plan, reconcile) → load (claim, post,
confirm) → report. The logic lives in ``tasks/billing`` (plain functions over frames), ``tasks/load.py``
(the exactly-once protocol) and ``store/ledger.py``; this module only wires them.
"""

from __future__ import annotations

from datetime import date
from functools import partial
from typing import Any

import pandas as pd
from prefect import flow, runtime
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, Field

from koppel.notifications import notify_failure
from tasks.approval import approval_gate, end_unposted
from tasks.billing.config import BillingConfig, load_billing_config
from tasks.billing.pipeline import BillingRun
from tasks.bundles import report_bundles, sync_bundles
from tasks.extract import Window, billing_window, extract_masters, extract_registrations
from tasks.invoicing import load, plan, read_state, release_for_resend, report
from tasks.masterdata import check_master_data
from tasks.specifications import write_specifications
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
    check_master_data(config)  # a code AFAS does not know fails the run here, naming its config key
    if p.resend and not p.dry_run:
        release_for_resend(p.resend)
    read, topdesk_stats = extract_registrations(window)
    masters, afas_stats = extract_masters()
    bundles_before = sync_bundles(config)
    state = read_state(read, window)
    billing = plan(read, masters, config, state, window)
    gate = approval_gate(read, billing, config, p.dry_run, partial(replan, window, config), run_id)
    if gate.stop is not None:  # rejected or not approved in time: nothing is posted
        return end_unposted(run_id, gate)
    read, billing = gate.read, gate.billing
    outcomes, load_stats = None, {}
    if not p.dry_run:
        outcomes, load_stats = load(billing, config, run_id, p.recover_after_minutes)
        report_bundles(bundles_before, config)
    specification_files = write_specifications(billing, config, run_id)
    context = {
        "window": window.label(),
        "dry_run": p.dry_run,
        "modes": config.modes_text(),
        "requests": {"topdesk": topdesk_stats, "afas": afas_stats, "afas_load": load_stats},
        "approval": gate.summary_markdown(),
        "specifications": specification_files,
    }
    result = report(context, read, billing, outcomes)
    close_run(run_id, "completed", result["statistics"])
    return {**result, "context": context, "run_id": run_id}


def replan(window: Window, config: BillingConfig) -> tuple[pd.DataFrame, BillingRun]:
    """Plan again from TOPdesk and the ledger as they are now (after an approval pause)."""
    read, _ = extract_registrations(window)
    masters, _ = extract_masters()
    return read, plan(read, masters, config, read_state(read, window), window)
