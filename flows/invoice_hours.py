"""invoice-hours: TOPdesk hours → AFAS invoices, realisations, sales bookings and journal entries.

Reads as a table of contents: extract → plan (validate, join, rules, plan, reconcile) → load (claim, post,
confirm) → report. The logic lives in ``tasks/invoice_hours`` (plain functions over frames),
``tasks/invoice_hours/load.py``
(the exactly-once protocol) and ``store/ledger.py``; this module only wires them.
"""

from __future__ import annotations

from datetime import date
from functools import partial
from typing import Annotated, Any

import pandas as pd
from prefect import get_run_logger, runtime
from prefect.states import State
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, Field

from tasks.approval import approval_gate, end_unposted
from tasks.artifacts import Phases
from tasks.bundles import report_bundles, sync_bundles
from tasks.company_sync.tasks import create_missing_customers
from tasks.events import (
    customer_names,
    documents_summary,
    hours_change,
    outcomes_summary,
    read_summary,
    refusal_lines,
)
from tasks.history import OptionalDate, artifact_prefix, run_name, run_tags, tag_current_run
from tasks.invoice_hours.buckets import POSSIBLY_DELETED
from tasks.invoice_hours.config import BillingConfig, load_billing_config
from tasks.invoice_hours.extract import (
    Window,
    account_served,
    billing_window,
    check_prices,
    extract_masters,
    extract_topdesk,
    source_notes,
)
from tasks.invoice_hours.join import Masters
from tasks.invoice_hours.pipeline import BillingRun
from tasks.invoice_hours.tasks import (
    confirm_deletions,
    load_documents,
    plan_billing,
    read_ledger_state,
    release_for_resend,
    report_invoice_hours,
    run_window,
)
from tasks.invoice_hours.writeback_load import write_back
from tasks.masterdata import check_afas_master_data
from tasks.preflight import preflight
from tasks.specifications import write_specifications
from tasks.state import close_run, finish, open_run, recorded_flow, run_verdict

FLOW = "invoice-hours"
PHASES = [
    "reading AFAS master data",
    "reading TOPdesk registrations",
    "planning documents",
    "posting documents in AFAS",
]


class InvoiceHoursParameters(BaseModel):
    """The options of one run, validated together (the flow takes them as flat parameters).

    Without dates a run reconciles the whole horizon (docs/invoice-hours.md).
    """

    start_date: date | None = Field(
        None,
        description="Backfill from this day (Europe/Amsterdam): new charges only. "
        "Default: the horizon (open AFAS periods up to the end of the previous month).",
    )
    end_date: date | None = Field(
        None, description="Backfill up to this day, inclusive. Default: the end of the previous month."
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
    logger = get_run_logger()
    period = billing_window(p.start_date, p.end_date)  # names the run: the cut-off month or the backfill
    tag_current_run(run_tags(period, p.dry_run))
    preflight(["state", "afas", "topdesk"])
    config = load_billing_config(p.config_path).for_administration(p.administration)
    run_id = open_run(FLOW, p.model_dump(mode="json"), runtime.flow_run.id)
    check_afas_master_data(config)  # a code AFAS does not know fails the run here, naming its config key
    if p.resend and not p.dry_run:
        logger.info("resend: released %s", ", ".join(release_for_resend(p.resend)) or "nothing")
    prefix = artifact_prefix(FLOW, period, p.dry_run)
    phases = Phases(f"{prefix}-progress", PHASES[:-1] if p.dry_run else PHASES)
    phases.reached("reading AFAS master data")
    masters, afas_stats = extract_masters()
    config = config.with_debtor_vat(masters.debtors)  # sales-booking VAT per debtor (docs/invoice-hours.md)
    price_rejects = check_prices(masters, config)
    window, regular = run_window(p.start_date, p.end_date, masters, config)
    phases.reached("reading TOPdesk registrations")
    topdesk = extract_topdesk(window, config.topdesk)
    read, topdesk_stats = topdesk.frame, topdesk.stats
    relinked = create_missing_customers(read, p.config_path, p.dry_run)  # off unless companies.toml says so
    if not relinked["customer_number"].equals(read["customer_number"]):
        masters, _ = extract_masters()  # debtors were just created or linked: plan against AFAS as it is now
        config = config.with_debtor_vat(masters.debtors)
    read = relinked
    logger.info("read %s", read_summary(read, window.label()))
    phases.reached("planning documents")
    bundles_before = sync_bundles(config, window)
    read, billing = replan(window, regular, config, masters, read)
    gate = approval_gate(read, billing, config, p.dry_run, partial(replan, window, regular, config), run_id)
    if gate.stop is not None:  # rejected or not approved in time: nothing is posted
        return end_unposted(run_id, gate)
    read, billing = gate.read, gate.billing
    logger.info("planned %s", documents_summary(billing.documents))
    logger.info("hours: %s", hours_change(billing.priced))
    outcomes, load_stats, writeback = None, {}, ""
    if not p.dry_run:
        phases.reached("posting documents in AFAS")
        outcomes, load_stats = load_documents(billing, config, run_id, p.recover_after_minutes)
        logger.info("%s", outcomes_summary(outcomes))
        for line in refusal_lines(outcomes):
            logger.warning("%s", line)
        report_bundles(bundles_before, config)
        if config.writeback.enabled:  # never changes the verdict: a failure is reported and retried
            writeback = write_back(config, window, run_id, prefix, p.recover_after_minutes)
    specification_files = write_specifications(billing, config, run_id)
    context = {
        "window": window.label() + ("" if regular else " (backfill: new charges only)"),
        "dry_run": p.dry_run,
        "modes": config.modes_text(),
        "artifact_prefix": prefix,
        "hours_line": hours_change(billing.priced),
        "customer_names": customer_names(masters.debtors),
        "requests": {"topdesk": topdesk_stats, "afas": afas_stats, "afas_load": load_stats},
        "approval": gate.summary_markdown(),
        "writeback": writeback,
        "specifications": specification_files,
        "notes": source_notes(topdesk, price_rejects),
    }
    result = report_invoice_hours(context, read, billing, outcomes)
    served = account_served(read, result["buckets"])
    phases.done()
    context.pop("customer_names")
    close_run(run_id, "failed" if topdesk.failed else "completed", result["statistics"])
    result = {**result, "context": context, "run_id": run_id, "served": served}
    failed = [f"{s.kind} ({s.source}): {s.error}" for s in topdesk.failed]  # the other sources were billed
    buckets = result["buckets"]
    possibly_deleted = int(buckets["bucket"].eq(POSSIBLY_DELETED).sum()) if "bucket" in buckets else 0
    verdict = run_verdict(
        len(read), result["documents"].get("status", []), failed, possibly_deleted=possibly_deleted
    )
    return finish(f"{FLOW} {window.label()}", result, verdict)


def replan(
    window: Window,
    regular: bool,
    config: BillingConfig,
    masters: Masters | None = None,
    read: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, BillingRun]:
    """Read the ledger state (and, after an approval pause, TOPdesk and AFAS again) and plan the run."""
    if read is None:
        read = extract_topdesk(window, config.topdesk).frame
    if masters is None:
        masters, _ = extract_masters()
    state = read_ledger_state(read, window)
    deleted = confirm_deletions(read, state, window) if regular else []
    return read, plan_billing(read, masters, config, state, window, regular, deleted)
