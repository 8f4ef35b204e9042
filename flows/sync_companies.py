"""sync-companies: AFAS debtors and contact persons → TOPdesk branches and persons.

Reads as a table of contents: extract (AFAS, TOPdesk, what AFAS had before) → plan (map, validate, match)
→ write TOPdesk (unless dry run) → import the AFAS snapshot → report. The logic lives in
``tasks/company_sync`` (plain functions over frames); this module only wires it.
"""

from __future__ import annotations

from typing import Any

from prefect import runtime
from prefect.states import State
from pydantic import BaseModel, Field

from tasks.company_sync.config import load_companies_config
from tasks.company_sync.report import planned_outcomes
from tasks.company_sync.tasks import (
    extract_afas_relations,
    extract_topdesk_relations,
    import_afas_relations,
    plan_company_sync,
    read_afas_history,
    report_company_sync,
    write_topdesk,
)
from tasks.preflight import preflight
from tasks.state import close_run, finish, open_run, recorded_flow, writes_verdict

FLOW = "sync-companies"


class SyncCompaniesParameters(BaseModel):
    """The options of one run (the flow takes them as flat parameters)."""

    dry_run: bool = Field(False, description="Show every change (before → after), write nothing.")
    config_path: str = Field("config/companies.toml", description="Field map and archiving reason (TOML).")


@recorded_flow(FLOW)
def sync_companies(
    dry_run: bool = False, config_path: str = "config/companies.toml"
) -> dict[str, Any] | State:
    """Keep TOPdesk's branches and persons in line with AFAS's debtors and contacts.

    Args:
        dry_run: Show every change (before → after), write nothing.
        config_path: Technical: field map and archiving reason (TOML).

    """
    p = SyncCompaniesParameters(dry_run=dry_run, config_path=config_path)
    preflight(["state", "afas", "topdesk"])
    config = load_companies_config(p.config_path)
    run_id = open_run(FLOW, p.model_dump(mode="json"), runtime.flow_run.id)
    afas, afas_stats = extract_afas_relations(with_contacts=config.persons.enabled)
    topdesk, topdesk_stats = extract_topdesk_relations(config)
    plan = plan_company_sync(afas, topdesk, read_afas_history(), config)
    write_stats: dict[str, Any] = {}
    if p.dry_run:
        outcomes, imported = planned_outcomes(plan.actions, "dry run"), None
    else:
        outcomes, write_stats = write_topdesk(plan, config)
        imported, _ = import_afas_relations(afas)
    context = {
        "flow": FLOW,
        "dry_run": p.dry_run,
        "read": plan.read,
        "requests": {"afas": afas_stats, "topdesk": topdesk_stats, "topdesk_writes": write_stats},
    }
    result = report_company_sync(context, plan, outcomes, imported)
    close_run(run_id, "completed", result["statistics"])
    return finish(FLOW, {**result, "run_id": run_id}, writes_verdict(outcomes["status"], "TOPdesk"))
