"""Prefect tasks of the company flows: sync-companies, create-missing-debtors and import-debtors.

Each task opens and closes its own clients or engine (``asyncio.run`` of a plain async function) and passes
only frames and plain values on. The logic is in ``tasks/company_sync/`` (plain functions, tested without
Prefect); these tasks wire it to the settings, the store and the artifacts.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from connectors.afas.client import AfasClient
from connectors.afas.settings import AfasSettings
from connectors.topdesk.client import TopdeskClient
from connectors.topdesk.masterdata import BRANCH_FIELDS, read_branches
from connectors.topdesk.settings import TopdeskSettings
from connectors.topdesk.timeregistrations import TimeRegistrationOptions, read_time_registrations
from store import exclusions
from tasks.artifacts import markdown_table, publish_markdown, publish_table
from tasks.company_sync import debtors as missing
from tasks.company_sync import history, while_invoicing
from tasks.company_sync import report as sync_report
from tasks.company_sync.apply import Writer
from tasks.company_sync.config import CompaniesConfig, load_companies_config
from tasks.company_sync.extract import (
    AfasRelations,
    TopdeskRelations,
    read_afas_relations,
    read_topdesk_relations,
)
from tasks.company_sync.pipeline import SyncPlan, plan_sync
from tasks.invoice_hours.config import load_billing_config
from tasks.invoice_hours.extract import Window
from tasks.secrets import load_settings
from tasks.state import state_engine

# Fields of a branch create-missing-debtors copies into AFAS (plus the defaults of every read).
DEBTOR_BRANCH_FIELDS = (*BRANCH_FIELDS, "vatNumber")
# Only which branches have hours matters here, not exact minutes: skip the unit sample check.
HOURS_OPTIONS = TimeRegistrationOptions(unit_sample=0)


# ---------------------------------------------------------------------------- reading


async def _afas_relations(with_contacts: bool) -> tuple[AfasRelations, dict]:
    async with AfasClient.from_settings(load_settings(AfasSettings)) as client:
        return await read_afas_relations(client, with_contacts), client.stats()


@task(name="extract-afas-relations", cache_policy=NO_CACHE)
def extract_afas_relations(with_contacts: bool = True) -> tuple[AfasRelations, dict]:
    """Read every AFAS debtor (``Profit_Debtor``) and contact (``Profit_Contacts``)."""
    return asyncio.run(_afas_relations(with_contacts))


async def _topdesk_relations(config: CompaniesConfig) -> tuple[TopdeskRelations, dict]:
    async with TopdeskClient.from_settings(load_settings(TopdeskSettings)) as client:
        person_fields = [*config.persons.fields, config.persons.key]
        read = read_topdesk_relations(
            client, config.branches.fields, person_fields, with_persons=config.persons.enabled
        )
        return await read, client.stats()


@task(name="extract-topdesk-relations", cache_policy=NO_CACHE)
def extract_topdesk_relations(config: CompaniesConfig) -> tuple[TopdeskRelations, dict]:
    """Read every TOPdesk branch and person (archived too), the archiving reasons and the countries."""
    return asyncio.run(_topdesk_relations(config))


@dataclass(frozen=True)
class Known:
    """Every debtor and person number the snapshots ever held (to tell "gone" from "never in AFAS")."""

    debtors: frozenset[str]
    persons: frozenset[str]


@task(name="read-afas-history", cache_policy=NO_CACHE)
def read_afas_history() -> Known:
    """The debtor and person numbers AFAS had in earlier imports."""
    engine = state_engine()
    return Known(
        debtors=frozenset(history.known_values(engine, history.DEBTORS, "DebtorId")),
        persons=frozenset(history.known_values(engine, history.CONTACTS, "PerNumber")),
    )


# ---------------------------------------------------------------------------- sync-companies


@task(name="plan-company-sync", cache_policy=NO_CACHE)
def plan_company_sync(
    afas: AfasRelations, topdesk: TopdeskRelations, known: Known, config: CompaniesConfig
) -> SyncPlan:
    """Map, validate and match: every TOPdesk write of this run, the review list and the rejects."""
    return plan_sync(afas, topdesk, known.debtors, known.persons, config)


async def _write(plan: SyncPlan, concurrency: int, person_key: str) -> tuple[pd.DataFrame, dict]:
    async with TopdeskClient.from_settings(load_settings(TopdeskSettings)) as client:
        writer = Writer(client, plan.reason_id, plan.reason_problem, concurrency, person_key)
        return await writer.run(plan.actions), client.stats()


@task(name="write-topdesk", cache_policy=NO_CACHE)
def write_topdesk(plan: SyncPlan, config: CompaniesConfig) -> tuple[pd.DataFrame, dict]:
    """Create, update, archive and unarchive branches, then persons; one outcome per planned action."""
    return asyncio.run(_write(plan, config.concurrency, config.persons.key))


@task(name="import-afas-relations", cache_policy=NO_CACHE)
def import_afas_relations(afas: AfasRelations) -> tuple[pd.DataFrame, dict[str, int]]:
    """Snapshot debtors and contacts in the store; returns what changed since the last import."""
    contacts = afas.contacts if not afas.contacts.empty else None
    return history.import_relations(state_engine(), afas.debtors, contacts)


@task(name="report-company-sync", cache_policy=NO_CACHE)
def report_company_sync(
    context: dict[str, Any], plan: SyncPlan, outcomes: pd.DataFrame, imported: pd.DataFrame | None
) -> dict[str, Any]:
    """Publish counts, the changes (before → after), the review list and the errors; return them."""
    flow = context["flow"]
    tables = {
        "changes": sync_report.changes_table(plan.actions, outcomes),
        "review": plan.review,
        "errors": sync_report.errors_table(plan.rejects, plan.actions, outcomes),
    }
    counts = sync_report.counts_table(outcomes)
    summary = sync_report.summary_markdown(context, counts, tables, plan.notes)
    publish_markdown(f"{flow}-summary", summary, "Counts of the run")
    publish_table(
        f"{flow}-changes", tables["changes"], "Every TOPdesk change, field by field (before → after)"
    )
    publish_table(f"{flow}-review", tables["review"], "Name-only matches and duplicates: nothing written")
    publish_table(f"{flow}-errors", tables["errors"], "Rejected AFAS rows and failed writes, with reasons")
    if imported is not None:
        publish_table(
            f"{flow}-afas-changes", history.changes_table(imported), "AFAS changes since the last import"
        )
    stats = sync_report.statistics(outcomes, plan.rejects, plan.review, plan.notes)
    return {**tables, "counts": counts, "notes": plan.notes, "statistics": stats}


# ---------------------------------------------------------------------------- import-debtors


@task(name="report-import", cache_policy=NO_CACHE)
def report_import(context: dict[str, Any], changes: pd.DataFrame, left_out: dict[str, int]) -> dict[str, Any]:
    """Publish what changed in AFAS since the last import; return the summary and the statistics."""
    summary = history.change_summary(changes)
    lines = [f"# {context['flow']}", "", *(f"- **{k}**: {v}" for k, v in context.items() if k != "flow")]
    lines += [f"- **rows without a key (not imported)**: {left_out}", "", markdown_table(summary)]
    publish_markdown(f"{context['flow']}-summary", "\n".join(lines), "AFAS changes since the last import")
    publish_table(
        f"{context['flow']}-changes", history.changes_table(changes), "Every change, field by field"
    )
    stats = {f"{r.entity} {r.change}": {"count": int(r.rows)} for r in summary.itertuples(index=False)}
    return {"summary": summary, "changes": changes, "left_out": left_out, "statistics": stats}


# ---------------------------------------------------------------------------- create-missing-debtors


async def _billable(window: Window) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    async with TopdeskClient.from_settings(load_settings(TopdeskSettings)) as client:
        registrations = await read_time_registrations(client, window.start, window.end, HOURS_OPTIONS)
        branches = await read_branches(client, include_archived=True, fields=DEBTOR_BRANCH_FIELDS)
        return branches, missing.billable_branches(registrations), client.stats()


@task(name="extract-billable-branches", cache_policy=NO_CACHE)
def extract_billable_branches(window: Window) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """All TOPdesk branches, and per branch the minutes registered in the window."""
    return asyncio.run(_billable(window))


@task(name="read-skip-list", cache_policy=NO_CACHE)
def read_skip_list(config: CompaniesConfig, billing_config_path: str) -> dict[str, str]:
    """Branches that never become debtors: internal departments, the ignore list, ``never_create``."""
    departments = load_billing_config(billing_config_path).department_table()
    return missing.skip_list(config.create_debtors, departments, exclusions.as_frame(state_engine()))


@task(name="plan-missing-debtors", cache_policy=NO_CACHE)
def plan_missing_debtors(
    branches: pd.DataFrame,
    billable: pd.DataFrame,
    afas: AfasRelations,
    skip: dict[str, str],
    config: CompaniesConfig,
) -> pd.DataFrame:
    """Billable branches without a debtor: create, link (AFAS has it already) or skip, with reasons."""
    return missing.plan_missing_debtors(
        branches, billable, afas.debtors, skip, config.create_debtors.organisation_prefix
    )


async def _create(
    plan: pd.DataFrame, branches: pd.DataFrame, config: CompaniesConfig
) -> tuple[pd.DataFrame, dict]:
    async with (
        AfasClient.from_settings(load_settings(AfasSettings)) as afas,
        TopdeskClient.from_settings(load_settings(TopdeskSettings)) as topdesk,
    ):
        outcomes = await missing.create_missing_debtors(afas, topdesk, plan, branches, config.create_debtors)
        return outcomes, {"afas": afas.stats(), "topdesk": topdesk.stats()}


@task(name="create-debtors", cache_policy=NO_CACHE)
def create_debtors(
    plan: pd.DataFrame, branches: pd.DataFrame, config: CompaniesConfig
) -> tuple[pd.DataFrame, dict]:
    """Create each planned debtor in AFAS once and write its number back to the branch."""
    return asyncio.run(_create(plan, branches, config))


def planned_debtors(plan: pd.DataFrame, status: str) -> pd.DataFrame:
    """Outcomes of a run that writes nothing: every create/link row gets ``status``."""
    todo = plan[plan["action"].isin(["create", "link"])]
    return todo.assign(status=status, message="").reindex(columns=missing.OUTCOME_COLUMNS)


@task(name="report-missing-debtors", cache_policy=NO_CACHE)
def report_missing_debtors(
    context: dict[str, Any], plan: pd.DataFrame, outcomes: pd.DataFrame
) -> dict[str, Any]:
    """Publish the candidates (with hours and reasons), the debtors created or linked and the errors."""
    flow = context["flow"]
    errors = outcomes[outcomes["status"].isin(["failed", "uncertain"])]
    counts = plan.groupby("action").size().rename("branches").reset_index() if not plan.empty else plan
    done = outcomes["status"].eq("done")
    lines = [f"# {flow}", "", *(f"- **{k}**: {v}" for k, v in context.items() if k != "flow")]
    lines += ["", "## Branches with hours but no debtor", "", markdown_table(counts)]
    lines += ["", f"Written: {int(done.sum())}, failed: {len(errors)}"]
    publish_markdown(f"{flow}-summary", "\n".join(lines), "Counts of the run")
    publish_table(
        f"{flow}-candidates", plan, "Billable branches without an AFAS debtor, and what happens to each"
    )
    publish_table(
        f"{flow}-changes",
        outcomes,
        "Debtors created or linked: branch number current_number → AFAS debtor_number",
    )
    publish_table(f"{flow}-errors", errors, "Failed or uncertain writes, with reasons")
    stats = {
        f"debtor {a}": {"count": int(((outcomes["action"] == a) & done).sum())} for a in ("create", "link")
    }
    stats |= {"skipped": {"count": int((plan["action"] == "skip").sum())}, "failed": {"count": len(errors)}}
    return {"plan": plan, "outcomes": outcomes, "errors": errors, "statistics": stats}


# ---------------------------------------------------------------------------- while invoicing


async def _missing_customers(
    registrations: pd.DataFrame, skip: dict[str, str], config: CompaniesConfig, dry_run: bool
) -> tuple[pd.DataFrame, pd.DataFrame]:
    async with (
        AfasClient.from_settings(load_settings(AfasSettings)) as afas,
        TopdeskClient.from_settings(load_settings(TopdeskSettings)) as topdesk,
    ):
        branches = await read_branches(topdesk, include_archived=True, fields=DEBTOR_BRANCH_FIELDS)
        relations = await read_afas_relations(afas, False)
        billable = while_invoicing.billable_of(registrations)
        prefix = config.create_debtors.organisation_prefix
        plan = missing.plan_missing_debtors(branches, billable, relations.debtors, skip, prefix)
        if dry_run:
            return plan, planned_debtors(plan, "dry run")
        return plan, await missing.create_missing_debtors(
            afas, topdesk, plan, branches, config.create_debtors
        )


@task(name="create-missing-customers", cache_policy=NO_CACHE)
def create_missing_customers(
    registrations: pd.DataFrame, billing_config_path: str, dry_run: bool = False
) -> pd.DataFrame:
    """invoice-hours, before planning: create the debtors its branches miss; registrations relinked.

    Only with ``[create_debtors] while_invoicing = true`` in the ``companies.toml`` next to the billing
    configuration (which also needs the guard ``enabled = true``); otherwise the registrations come back
    as they are, without any request. A dry run shows the plan and writes nothing.
    """
    path = Path(billing_config_path).with_name("companies.toml")
    if not path.is_file():
        return registrations
    config = load_companies_config(path)
    if not config.create_debtors.while_invoicing:
        return registrations
    departments = load_billing_config(billing_config_path).department_table()
    skip = missing.skip_list(config.create_debtors, departments, exclusions.as_frame(state_engine()))
    plan, outcomes = asyncio.run(_missing_customers(registrations, skip, config, dry_run))
    publish_table(
        "invoice-hours-missing-customers",
        plan.merge(outcomes[["branch_id", "status", "message"]], on="branch_id", how="left"),
        "Branches with hours but no AFAS debtor: created, linked or skipped before planning",
    )
    return while_invoicing.relink(registrations, outcomes)
