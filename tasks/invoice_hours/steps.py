"""The steps ``flows/invoice_hours.py`` composes: start, read, plan, post, finish.

Each step is a short sequence of the slice's Prefect tasks (``tasks.py``, ``extract.py`` and the shared ones)
with the decisions between them; they run inside the flow run, so the flow's task runs are these tasks' runs
and no more. The billing logic itself stays in the plain-function modules beside this one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd
from prefect import get_run_logger
from prefect.states import State
from pydantic import BaseModel, Field

from tasks.approval import Gate
from tasks.artifacts import Phases
from tasks.bundles import report_bundles
from tasks.company_sync.tasks import create_missing_customers
from tasks.events import (
    customer_names,
    documents_summary,
    hours_change,
    outcomes_summary,
    read_summary,
    refusal_lines,
)
from tasks.history import artifact_prefix, run_tags, tag_current_run
from tasks.invoice_hours.buckets import POSSIBLY_DELETED
from tasks.invoice_hours.config import BillingConfig, load_billing_config
from tasks.invoice_hours.extract import (
    TopdeskRead,
    Window,
    account_served_rows,
    billing_window,
    check_afas_prices,
    extract_afas_masters,
    extract_topdesk_sources,
    source_notes,
)
from tasks.invoice_hours.join import Masters
from tasks.invoice_hours.load import Outcome
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
from tasks.state import close_run, finish, open_run, run_verdict

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


@dataclass
class RunStart:
    """A started run: its billing config, run record, artifact prefix and progress artifact."""

    flow: str
    p: InvoiceHoursParameters
    config: BillingConfig
    run_id: str
    prefix: str
    phases: Phases


@dataclass
class Sources:
    """What the run read: AFAS master data (with the config that follows it), the window, TOPdesk's rows."""

    config: BillingConfig
    masters: Masters
    afas_stats: dict
    price_rejects: pd.DataFrame
    window: Window
    regular: bool
    topdesk: TopdeskRead
    read: pd.DataFrame


@dataclass
class Posted:
    """What posting did (nothing in a dry run): outcomes, AFAS request statistics, the write-back note."""

    outcomes: list[Outcome] | None = None
    load_stats: dict = field(default_factory=dict)
    writeback: str = ""


def start_run(flow: str, p: InvoiceHoursParameters, flow_run_id: str | None) -> RunStart:
    """Tag the run, check the systems and AFAS's master data, open the run record, release resends."""
    period = billing_window(p.start_date, p.end_date)  # names the run: the cut-off month or the backfill
    tag_current_run(run_tags(period, p.dry_run))
    preflight(["state", "afas", "topdesk"])
    config = load_billing_config(p.config_path).for_administration(p.administration)
    run_id = open_run(flow, p.model_dump(mode="json"), flow_run_id)
    check_afas_master_data(config)  # a code AFAS does not know fails the run here, naming its config key
    if p.resend and not p.dry_run:
        get_run_logger().info("resend: released %s", ", ".join(release_for_resend(p.resend)) or "nothing")
    prefix = artifact_prefix(flow, period, p.dry_run)
    phases = Phases(f"{prefix}-progress", PHASES[:-1] if p.dry_run else PHASES)
    return RunStart(flow, p, config, run_id, prefix, phases)


def read_sources(run: RunStart) -> Sources:
    """AFAS master data, the run's window, TOPdesk's registrations; missing customers created when asked."""
    p = run.p
    run.phases.reached("reading AFAS master data")
    masters, afas_stats = extract_afas_masters()
    config = run.config.with_debtor_vat(masters.debtors)  # sales-booking VAT per debtor
    price_rejects = check_afas_prices(masters, config)
    window, regular = run_window(p.start_date, p.end_date, masters, config)
    run.phases.reached("reading TOPdesk registrations")
    topdesk = extract_topdesk_sources(window, config.topdesk)
    read = topdesk.frame
    # Off unless companies.toml says so. Annotated: without pandas types mypy takes it for a coroutine.
    relinked: pd.DataFrame = create_missing_customers(read, p.config_path, p.dry_run)
    if not relinked["customer_number"].equals(read["customer_number"]):
        masters, _ = (
            extract_afas_masters()
        )  # debtors were just created or linked: plan against AFAS as it is now
        config = config.with_debtor_vat(masters.debtors)
    get_run_logger().info("read %s", read_summary(relinked, window.label()))
    return Sources(config, masters, afas_stats, price_rejects, window, regular, topdesk, relinked)


def plan_run(
    window: Window,
    regular: bool,
    config: BillingConfig,
    masters: Masters | None = None,
    read: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, BillingRun]:
    """Read the ledger state (and, after an approval pause, TOPdesk and AFAS again) and plan the run."""
    if read is None:
        read = extract_topdesk_sources(window, config.topdesk).frame
    if masters is None:
        masters, _ = extract_afas_masters()
    state = read_ledger_state(read, window)
    deleted = confirm_deletions(read, state, window) if regular else []
    return read, plan_billing(read, masters, config, state, window, regular, deleted)


def post(run: RunStart, sources: Sources, billing: BillingRun, bundles_before: pd.DataFrame) -> Posted:
    """Claim, post and confirm the planned documents; bundle balances; write-back when switched on."""
    logger = get_run_logger()
    logger.info("planned %s", documents_summary(billing.documents))
    logger.info("hours: %s", hours_change(billing.priced))
    if run.p.dry_run:
        return Posted()
    run.phases.reached("posting documents in AFAS")
    config, minutes = sources.config, run.p.recover_after_minutes
    outcomes, load_stats = load_documents(billing, config, run.run_id, minutes)
    logger.info("%s", outcomes_summary(outcomes))
    for line in refusal_lines(outcomes):
        logger.warning("%s", line)
    _: pd.DataFrame = report_bundles(bundles_before, config)  # published as an artifact; typed as above
    writeback = ""
    if config.writeback.enabled:  # never changes the verdict: a failure is reported and retried
        writeback = write_back(config, sources.window, run.run_id, run.prefix, minutes)
    return Posted(outcomes, load_stats, writeback)


def run_context(run: RunStart, sources: Sources, billing: BillingRun, gate: Gate, posted: Posted) -> dict:
    """What the run's summary says beside the figures (customer names only for the artifacts)."""
    config, topdesk = sources.config, sources.topdesk
    return {
        "window": sources.window.label() + ("" if sources.regular else " (backfill: new charges only)"),
        "dry_run": run.p.dry_run,
        "modes": config.modes_text(),
        "artifact_prefix": run.prefix,
        "hours_line": hours_change(billing.priced),
        "customer_names": customer_names(sources.masters.debtors),
        "requests": {"topdesk": topdesk.stats, "afas": sources.afas_stats, "afas_load": posted.load_stats},
        "approval": gate.summary_markdown(),
        "writeback": posted.writeback,
        "specifications": write_specifications(billing, config, run.run_id),
        "notes": source_notes(topdesk, sources.price_rejects),
    }


def finish_run(
    run: RunStart, sources: Sources, read: pd.DataFrame, billing: BillingRun, gate: Gate, posted: Posted
) -> dict[str, Any] | State:
    """Publish the report, account for what TOPdesk served, close the run record and give the verdict."""
    topdesk = sources.topdesk
    context = run_context(run, sources, billing, gate, posted)
    result = report_invoice_hours(context, read, billing, posted.outcomes)
    served = account_served_rows(read, result["buckets"])
    run.phases.done()
    context.pop("customer_names")
    close_run(run.run_id, "failed" if topdesk.failed else "completed", result["statistics"])
    result = {**result, "context": context, "run_id": run.run_id, "served": served}
    failed = [f"{s.kind} ({s.source}): {s.error}" for s in topdesk.failed]  # the other sources were billed
    buckets = result["buckets"]
    possibly_deleted = int(buckets["bucket"].eq(POSSIBLY_DELETED).sum()) if "bucket" in buckets else 0
    verdict = run_verdict(
        len(read), result["documents"].get("status", []), failed, possibly_deleted=possibly_deleted
    )
    return finish(f"{run.flow} {sources.window.label()}", result, verdict)
