"""Prefect tasks of the invoice-hours flow around the plain billing functions: state, plan, load, report."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from connectors.afas.client import AfasClient
from connectors.afas.settings import AfasSettings
from store import bundles, exclusions, ledger
from tasks.artifacts import Progress, artifact_key, publish_markdown, publish_table
from tasks.billing.buckets import conservation
from tasks.billing.config import BillingConfig
from tasks.billing.join import Masters
from tasks.billing.payloads import build_payloads
from tasks.billing.pipeline import BillingRun, bill
from tasks.extract import Window
from tasks.load import LoadPlan, Outcome, as_date
from tasks.load_batches import BatchLoader
from tasks.report import (
    documents_table,
    planned_outcomes,
    settle_buckets,
    summary_markdown,
)
from tasks.secrets import load_settings
from tasks.state import state_engine

FLOW = "invoice-hours"


@dataclass(frozen=True)
class LedgerState:
    """What the store knows before planning: ledger rows, the ignore list, bundle balances, earlier draws."""

    billed: pd.DataFrame
    ignore: pd.DataFrame
    balances: pd.DataFrame
    prior_draws: pd.DataFrame


@task(name="resend", cache_policy=NO_CACHE)
def release_for_resend(items: list[str]) -> list[str]:
    """Free failed documents (by reference or one of their registrations) so this run bills them again."""
    engine = state_engine()
    released: list[str] = []
    for item in items:
        released += ledger.release(engine, ledger.document_of(engine, item))
    return released


@task(name="read-ledger-state", cache_policy=NO_CACHE)
def read_state(read: pd.DataFrame, window: Window) -> LedgerState:
    """Ledger rows of the registrations read and of the window, the ignore list, bundles and draws."""
    engine = state_engine()
    ids = read["registration_id"].dropna().astype(str).unique().tolist()
    billed = ledger.billed_state(engine, ids, (window.first, window.last + timedelta(days=1)))
    return LedgerState(
        billed=billed,
        ignore=exclusions.as_frame(engine),
        balances=bundles.balances(engine, window.last),
        prior_draws=bundles.draws(engine, ids),
    )


@task(name="plan-billing", cache_policy=NO_CACHE)
def plan(
    read: pd.DataFrame, masters: Masters, config: BillingConfig, state: LedgerState, window: Window
) -> BillingRun:
    """Validate → exclude → join → price → plan → reconcile → documents (``tasks.billing.pipeline.bill``)."""
    return bill(
        read,
        masters,
        config,
        ignore=state.ignore,
        ledger=state.billed,
        bundles=state.balances,
        prior_draws=state.prior_draws,
        run_range=(window.start, window.end),
    )


@task(name="load-documents", cache_policy=NO_CACHE)
def load(
    billing: BillingRun,
    config: BillingConfig,
    run_id: str,
    recover_after_minutes: float,
) -> tuple[list[Outcome], dict]:
    """Recover unfinished documents, then claim, post and confirm every planned one."""
    progress = Progress(artifact_key(FLOW, "load-progress"), "Documents claimed and posted in AFAS")
    payloads = build_payloads(billing.documents, billing.document_lines, config)
    plan_ = LoadPlan(billing.documents, billing.document_lines, payloads)
    outcomes, stats = asyncio.run(_load(plan_, config, run_id, recover_after_minutes, progress.update))
    _record_draws(billing, outcomes)
    return outcomes, stats


async def _load(
    plan_: LoadPlan, config: BillingConfig, run_id: str, recover_after: float, on_progress
) -> tuple:
    async with AfasClient.from_settings(load_settings(AfasSettings)) as client:
        loader = BatchLoader(state_engine(), client, run_id, config, on_progress)
        recovered = await loader.recover(timedelta(minutes=recover_after))
        outcomes = await loader.load(plan_)
        return recovered + outcomes, client.stats()


def _record_draws(billing: BillingRun, outcomes: list[Outcome]) -> None:
    """Record bundle draws of registrations whose documents are now in AFAS (idempotent per registration)."""
    if billing.draws.empty:
        return
    done = {o.reference for o in outcomes if o.status in ("posted", "recovered")}
    lines = billing.document_lines
    posted_ids = set(lines.loc[lines["reference"].isin(done), "registration_id"])
    engine = state_engine()
    for draw in billing.draws[billing.draws["registration_id"].isin(posted_ids)].itertuples(index=False):
        bundles.draw(
            engine, draw.registration_id, draw.customer_number, int(draw.minutes), as_date(draw.work_date)
        )


@task(name="report", cache_policy=NO_CACHE)
def report(
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
    publish_markdown(f"{FLOW}-summary", summary_markdown(context, result, table), "Summary of the run")
    publish_table(f"{FLOW}-documents", table, "AFAS documents of this run")
    publish_table(f"{FLOW}-rejects", billing.rejects[REJECT_COLUMNS], "Registrations rejected, with reasons")
    publish_table(f"{FLOW}-exclusions", billing.excluded[REJECT_COLUMNS], "Registrations excluded by rules")
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


def bucket_statistics(buckets: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Registrations, minutes read and amount per bucket, as the store keeps them per run."""
    statistics = {}
    for name, group in buckets.groupby("bucket"):
        amounts = [a for a in group["amount"] if isinstance(a, Decimal)]
        statistics[str(name)] = {
            "count": len(group),
            "minutes": int(group["minutes"].astype("Int64").fillna(0).sum()),
            "amount": sum(amounts, Decimal("0.00")),
        }
    return statistics
