"""create-missing-debtors: TOPdesk branches with billable hours but no AFAS debtor → AFAS sales relations.

extract (branches and their hours in the window, AFAS debtors, what is never created) → plan → create in
AFAS and write the number back to TOPdesk, only when ``[create_debtors] enabled = true`` and not a dry run
→ report. Crash safety and the choice of "billable hours" are explained in ``tasks/company_sync/debtors.py``.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from prefect import runtime
from prefect.states import State
from pydantic import BaseModel, Field

from tasks.company_sync.config import load_companies_config
from tasks.company_sync.tasks import (
    create_debtors,
    extract_afas_relations,
    extract_billable_branches,
    plan_missing_debtors,
    planned_debtors,
    read_skip_list,
    report_missing_debtors,
)
from tasks.history import OptionalDate
from tasks.invoice_hours.extract import billing_window
from tasks.preflight import preflight
from tasks.state import close_run, finish, open_run, recorded_flow, writes_verdict

FLOW = "create-missing-debtors"


class CreateMissingDebtorsParameters(BaseModel):
    """The options of one run (the flow takes them as flat parameters); default: the previous month."""

    start_date: date | None = Field(None, description="First day with hours (default: previous month).")
    end_date: date | None = Field(None, description="Last day with hours, inclusive.")
    dry_run: bool = Field(False, description="Show which debtors would be created, write nothing.")
    config_path: str = Field("config/companies.toml", description="Guard and debtor defaults (TOML).")
    billing_config_path: str = Field(
        "config/billing.toml", description="Its internal departments are skipped."
    )


@recorded_flow(FLOW)
def create_missing_debtors(
    start_date: OptionalDate = None,
    end_date: OptionalDate = None,
    dry_run: bool = False,
    config_path: str = "config/companies.toml",
    billing_config_path: str = "config/billing.toml",
) -> dict[str, Any] | State:
    """Create an AFAS debtor for every billable TOPdesk branch that has none, exactly once, and link it.

    Args:
        start_date: First day with hours. Empty: the previous calendar month.
        end_date: Last day with hours, inclusive.
        dry_run: Show which debtors would be created, write nothing.
        config_path: Technical: guard and debtor defaults (TOML).
        billing_config_path: Technical: the billing rules, whose internal departments are skipped.

    """
    p = CreateMissingDebtorsParameters(
        start_date=start_date,
        end_date=end_date,
        dry_run=dry_run,
        config_path=config_path,
        billing_config_path=billing_config_path,
    )
    preflight(["state", "afas", "topdesk"])
    config = load_companies_config(p.config_path)
    window = billing_window(p.start_date, p.end_date)
    run_id = open_run(FLOW, p.model_dump(mode="json"), runtime.flow_run.id)
    branches, billable, topdesk_stats = extract_billable_branches(window)
    afas, afas_stats = extract_afas_relations(with_contacts=False)
    plan = plan_missing_debtors(
        branches, billable, afas, read_skip_list(config, p.billing_config_path), config
    )
    write_stats: dict[str, Any] = {}
    if p.dry_run or not config.create_debtors.enabled:
        blocked = "dry run" if p.dry_run else "not written: create_debtors.enabled is false"
        outcomes = planned_debtors(plan, blocked)
    else:
        outcomes, write_stats = create_debtors(plan, branches, config)
    context = {
        "flow": FLOW,
        "window": window.label(),
        "dry_run": p.dry_run,
        "enabled": config.create_debtors.enabled,
        "requests": {"afas": afas_stats, "topdesk": topdesk_stats, "writes": write_stats},
    }
    result = report_missing_debtors(context, plan, outcomes)
    close_run(run_id, "completed", result["statistics"])
    verdict = writes_verdict(outcomes["status"], "AFAS or TOPdesk", noun="debtor")
    return finish(FLOW, {**result, "run_id": run_id}, verdict)
