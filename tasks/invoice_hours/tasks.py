"""Prefect tasks of the invoice-hours flow around the plain billing functions: state, plan, load, report."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from connectors.afas.client import AfasClient
from connectors.afas.settings import AfasSettings
from connectors.errors import ConnectorError, RequestRejected
from connectors.topdesk.client import TopdeskClient
from connectors.topdesk.endpoints import API as TOPDESK_API
from connectors.topdesk.settings import TopdeskSettings
from store import bundles, exclusions, ledger
from tasks.artifacts import (
    Progress,
    artifact_key,
    finance_documents,
    finance_registrations,
    publish_markdown,
    publish_table,
)
from tasks.invoice_hours.buckets import bucket_statistics, conservation, settle_buckets
from tasks.invoice_hours.config import BillingConfig
from tasks.invoice_hours.extract import Window, billing_window
from tasks.invoice_hours.horizon import horizon
from tasks.invoice_hours.join import Masters
from tasks.invoice_hours.load import BatchLoader, LoadPlan, Outcome
from tasks.invoice_hours.payloads import build_payloads, payload_problems
from tasks.invoice_hours.pipeline import BillingRun, bill
from tasks.invoice_hours.reconcile import Scope, open_charges
from tasks.invoice_hours.report import (
    documents_table,
    planned_outcomes,
    summary_markdown,
)
from tasks.secrets import load_settings
from tasks.state import state_engine

FLOW = "invoice-hours"


@dataclass(frozen=True)
class LedgerState:
    """What the store knows before planning: ledger state, posted lines, ignore list, bundles, draws."""

    billed: pd.DataFrame  # store.ledger.billed_state: versions and each registration's latest document
    posted: pd.DataFrame  # store.ledger.posted_lines: what AFAS holds according to the ledger
    ignore: pd.DataFrame
    balances: pd.DataFrame
    prior_draws: pd.DataFrame


@task(name="release-for-resend", cache_policy=NO_CACHE)
def release_for_resend(items: list[str]) -> list[str]:
    """Free failed documents (by reference or one of their registrations) so this run bills them again.

    Idempotent and never stops the run: a posted (or already released) document is left as it is, an
    uncertain or claimed one is looked up in AFAS by its reference by the recovery step of this run; each
    gets a message (returned and logged).
    """
    engine = state_engine()
    messages: list[str] = []
    for item in items:
        messages.append(resend_one(engine, item)[1])
    for message in messages:
        get_run_logger().info(message)
    return messages


def resend_one(engine, item: str) -> tuple[bool, str]:
    """Release one failed document for a resend (``store.ledger.resend``); never raises for a state."""
    try:
        released, message = ledger.resend(engine, item)
    except ledger.UnknownDocument as error:
        return False, f"resend {item}: {error}"
    return released is not None, f"resend {message}"


@task(name="run-window", cache_policy=NO_CACHE)
def run_window(
    start_date: date | None, end_date: date | None, masters: Masters, config: BillingConfig
) -> tuple[Window, bool]:
    """``(window, regular)``: the horizon for a run without dates, else the backfill's dates."""
    if start_date is None and end_date is None:
        first, last = horizon(masters.periods, config)
        return Window(first, last, config.zone), True
    return billing_window(start_date, end_date, zone=config.zone), False


@task(name="read-ledger-state", cache_policy=NO_CACHE)
def read_ledger_state(read: pd.DataFrame, window: Window) -> LedgerState:
    """Posted lines of the registrations read, of the window and of their tickets; states; ignore list."""
    engine = state_engine()
    ids = read["registration_id"].dropna().astype(str).unique().tolist()
    tickets = pd.concat([read["billed_ticket_id"], read["ticket_id"]]).dropna().astype(str).unique().tolist()
    posted = ledger.posted_lines(engine, ids, (window.first, window.last + timedelta(days=1)), tickets)
    known = sorted(set(ids) | set(posted["registration_id"]))
    billed = ledger.billed_state(engine, known, (window.first, window.last + timedelta(days=1)))
    return LedgerState(
        billed=billed,
        posted=posted,
        ignore=exclusions.as_frame(engine),
        balances=bundles.pools(engine, window.first, window.last),  # allowance months and bundles
        prior_draws=bundles.draw_rows(engine, sorted(set(ids) | set(posted["registration_id"]))),
    )


@task(name="confirm-deletions", cache_policy=NO_CACHE)
def confirm_deletions(read: pd.DataFrame, state: LedgerState, window: Window) -> list[str]:
    """Billed registrations of the window not read: those TOPdesk confirms gone (404 on the single read).

    Only incident registrations have a single-registration endpoint; any other answer, or another kind,
    leaves the registration *possibly deleted* (not credited, checked again next run).
    """
    candidates = deletion_candidates(read, state.posted, window)
    if not candidates:
        return []
    return asyncio.run(_confirm(candidates))


def deletion_candidates(read: pd.DataFrame, posted: pd.DataFrame, window: Window) -> list[str]:
    """Incident registrations with an open posted charge dated inside ``window`` that were not read."""
    opened = open_charges(posted)
    if opened.empty:
        return []
    dates = pd.to_datetime(opened["entry_date"]).dt.date
    inside = (dates >= window.first) & (dates <= window.last)
    unread = ~opened["registration_id"].isin(read["registration_id"].dropna())
    incident = opened["registration_kind"].eq("incident")
    return sorted(set(opened.loc[inside & unread & incident, "registration_id"]))


async def _confirm(candidates: list[str]) -> list[str]:
    gone = []
    async with TopdeskClient.from_settings(load_settings(TopdeskSettings)) as client:
        for rid in candidates:
            try:
                await client.get_json(f"{TOPDESK_API}/incidents/timeregistrations/{rid}")
            except RequestRejected as error:
                if error.status == 404:
                    gone.append(rid)
            except ConnectorError:
                continue  # unknown: stays "possibly deleted"
    return gone


@task(name="plan-billing", cache_policy=NO_CACHE)
def plan_billing(
    read: pd.DataFrame,
    masters: Masters,
    config: BillingConfig,
    state: LedgerState,
    window: Window,
    regular: bool = False,
    deleted: list[str] | None = None,
) -> BillingRun:
    """Validate → exclude → join → price → plan → reconcile → documents (``pipeline.bill``)."""
    return bill(
        read,
        masters,
        config,
        ignore=state.ignore,
        state=state.billed,
        posted=state.posted,
        bundles=state.balances,
        prior_draws=state.prior_draws,
        scope=Scope(regular=regular, window=(window.start, window.end), deleted=frozenset(deleted or ())),
    )


@task(name="load-documents", cache_policy=NO_CACHE)
def load_documents(
    billing: BillingRun,
    config: BillingConfig,
    run_id: str,
    recover_after_minutes: float,
) -> tuple[list[Outcome], dict]:
    """Recover unfinished documents, then claim, post and confirm every planned one."""
    progress = Progress(artifact_key(FLOW, "load-progress"), "Documents claimed and posted in AFAS")
    payloads = build_payloads(billing.documents, billing.document_lines, config)
    problems = {ref: payload_problems(payload) for ref, payload in payloads.items()}
    problems = {ref: found for ref, found in problems.items() if found}
    payloads = {ref: payload for ref, payload in payloads.items() if ref not in problems}
    load_plan = LoadPlan(billing.documents, billing.document_lines, payloads, problems)
    _reserve_new_draws(billing)
    outcomes, stats = asyncio.run(_post(load_plan, config, run_id, recover_after_minutes, progress.update))
    _record_draws(billing, outcomes)
    return outcomes, stats


async def _post(
    load_plan: LoadPlan, config: BillingConfig, run_id: str, recover_after: float, on_progress
) -> tuple:
    async with AfasClient.from_settings(load_settings(AfasSettings)) as client:
        loader = BatchLoader(state_engine(), client, run_id, config, on_progress)
        recovered = await loader.recover(timedelta(minutes=recover_after))
        outcomes = await loader.load(load_plan)
        return recovered + outcomes, client.stats()


def _wanted_draws(draws: pd.DataFrame, ids: set[str]) -> dict[str, list[tuple[int, int]]]:
    wanted: dict[str, list[tuple[int, int]]] = {}
    mine = draws[draws["registration_id"].isin(ids) & draws["bundle_id"].ge(0)]
    for draw in mine.itertuples(index=False):
        wanted.setdefault(draw.registration_id, []).append((int(draw.bundle_id), int(draw.minutes)))
    return wanted


def _reserve_new_draws(billing: BillingRun) -> None:
    """Before posting: record the draws of first charges, so a crash after AFAS accepted them loses nothing.

    A registration without an open charge keeps a recorded draw in the next plan, so the recovered or
    re-planned document is the same; its draw is given back if it turns out not billable (``_record_draws``).
    Re-charges are recorded after posting: their old draws must stay until the reversal is in AFAS.
    """
    lines = billing.document_lines
    if lines.empty or billing.draws.empty:
        return
    opened = billing.reconciled.open_charges
    billed = set(opened["registration_id"]) if not opened.empty else set()
    first = set(lines.loc[lines["line_kind"].eq("charge"), "registration_id"]) - billed
    wanted = _wanted_draws(billing.draws, first)
    if wanted:
        bundles.settle_draws(state_engine(), wanted)


def _record_draws(billing: BillingRun, outcomes: list[Outcome]) -> None:
    """Record the allowance and bundle draws of what is now in AFAS; give back those of reversed charges.

    Per posted charge its planned draws replace what the registration held; a posted reversal without a
    posted charge of the same registration gives all its draws back (``store.bundles.settle_draws``).
    """
    done = {o.reference for o in outcomes if o.status in ("posted", "recovered")}
    lines = billing.document_lines
    posted = lines[lines["reference"].isin(done)] if not lines.empty else lines
    engine = state_engine()
    charged = set(posted.loc[posted["line_kind"].eq("charge"), "registration_id"])
    credited = set(posted.loc[posted["line_kind"].eq("credit"), "registration_id"]) - charged
    held = set(bundles.draw_rows(engine, sorted(charged))["registration_id"])
    none: dict[str, list[tuple[int, int]]] = {rid: [] for rid in held}
    wanted = none | _wanted_draws(billing.draws, charged)
    released = _unbacked_draws(engine, billing)
    if wanted or credited or released:
        bundles.settle_draws(engine, wanted, sorted(credited | released))


def _unbacked_draws(engine, billing: BillingRun) -> set[str]:
    """Excluded or rejected registrations holding draws without a charge in AFAS or on the way there.

    Their draws were reserved for a charge that never got posted (``_reserve_new_draws``): given back.
    """
    ids = set(billing.rejects["registration_id"].dropna()) | set(billing.excluded["registration_id"].dropna())
    holding = set(bundles.draw_rows(engine, sorted(ids))["registration_id"]) if ids else set()
    opened = billing.reconciled.open_charges
    holding -= set(opened["registration_id"]) if not opened.empty else set()
    if not holding:
        return set()
    state = ledger.billed_state(engine, sorted(holding))
    in_flight = state.loc[state["document_status"].isin(["claimed", "uncertain"]), "registration_id"]
    return holding - set(in_flight)


@task(name="report-invoice-hours", cache_policy=NO_CACHE)
def report_invoice_hours(
    context: dict[str, Any],
    read: pd.DataFrame,
    billing: BillingRun,
    outcomes: list[Outcome] | None,
) -> dict[str, Any]:
    """Publish the artifacts of the run and return its summary (dry runs included)."""
    outcomes = outcomes if outcomes is not None else planned_outcomes(billing.documents)
    buckets = settle_buckets(billing.buckets, outcomes)
    result = conservation(read, buckets)
    table = documents_table(billing.documents, outcomes)
    if context.get("specifications"):  # reference → hours specification file (tasks/specifications.py)
        table["specification"] = table["reference"].map(context["specifications"]).fillna("")
    key = context.get("artifact_prefix", FLOW)  # per period, previews apart (tasks/history.py)
    publish_markdown(f"{key}-summary", summary_markdown(context, result, table), "Summary of the run")
    names = context.get("customer_names", {})
    publish_table(f"{key}-documents", finance_documents(table, names), "AFAS documents of this run")
    rejects = finance_registrations(billing.rejects[REJECT_COLUMNS], names)
    publish_table(f"{key}-rejects", rejects, "Registrations rejected, reason first")
    excluded = finance_registrations(billing.excluded[REJECT_COLUMNS], names)
    publish_table(f"{key}-exclusions", excluded, "Registrations excluded by rules, reason first")
    context = {k: v for k, v in context.items() if k != "customer_names"}
    return {
        "conservation": result,
        "documents": table,
        "buckets": buckets,
        "statistics": bucket_statistics(buckets),
    }


REJECT_COLUMNS = [
    "registration_id",
    "kind",
    "entry_date_raw",
    "minutes",
    "customer_number",
    "ticket_number",
    "operator_name",
    "reason",
]
