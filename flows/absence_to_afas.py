"""absence-to-afas: absences registered in the occupational-health system → AFAS (``HrIllness``).

Optional and off by default (``[absence_to_afas] enabled`` in config/hr.toml). Reads as a table of
contents: watermark → extract (OH registered absences, AFAS absences of those employees) → plan (match
by employee, employment and start date) → load (insert or update, never duplicate) → watermark → report.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prefect import runtime
from prefect.states import State
from pydantic import BaseModel, Field

from tasks.artifacts import publish_markdown
from tasks.hr_sync.config import load_hr_config
from tasks.hr_sync.tasks import (
    ABSENCE_TO_AFAS,
    advance_absence_watermark,
    extract_registered_absences,
    load_absences_into_afas,
    plan_absences,
    read_absence_watermark,
    report_absences,
)
from tasks.preflight import preflight
from tasks.state import close_run, finish, open_run, recorded_flow, writes_verdict

if TYPE_CHECKING:
    import pandas as pd

DISABLED = "absence-to-afas is disabled: set `enabled = true` under `[absence_to_afas]` in {path}."


class AbsenceToAfasParameters(BaseModel):
    """The options of one run, validated together (the flow takes them as flat parameters)."""

    dry_run: bool = Field(False, description="Plan and show everything; write nothing to AFAS.")
    config_path: str = Field("config/hr.toml", description="HR configuration (TOML).")


@recorded_flow(ABSENCE_TO_AFAS)
def absence_to_afas(dry_run: bool = False, config_path: str = "config/hr.toml") -> dict[str, Any] | State:
    """Insert or update in AFAS the absences users registered in the OH system, each exactly once.

    Args:
        dry_run: Plan and show everything; write nothing to AFAS.
        config_path: Technical: the HR configuration (TOML), relative to the worker's checkout.

    """
    p = AbsenceToAfasParameters(dry_run=dry_run, config_path=config_path)
    config = load_hr_config(p.config_path)
    if not config.absence_to_afas.enabled:
        publish_markdown(f"{ABSENCE_TO_AFAS}-summary", DISABLED.format(path=p.config_path), "disabled")
        return {"enabled": False}
    preflight(["state", "afas", "occupational-health"])
    run_id = open_run(ABSENCE_TO_AFAS, p.model_dump(mode="json"), runtime.flow_run.id)
    since = read_absence_watermark(config)
    registered, afas, afas_stats = extract_registered_absences(config, since)
    # annotated: with pandas untyped, mypy takes a task returning a frame for an async one
    absence_plan: pd.DataFrame = plan_absences(registered, afas, config)
    outcomes = absence_plan.assign(outcome="planned", message="") if p.dry_run else None
    if outcomes is None:
        outcomes, afas_stats = load_absences_into_afas(absence_plan, config)
        advance_absence_watermark(outcomes, registered)
    context = {"since": since.isoformat(), "dry_run": p.dry_run, "requests": {"afas": afas_stats}}
    result = report_absences(context, outcomes)
    statistics = {name: {"count": count} for name, count in result["counts"].items()}
    close_run(run_id, "completed", statistics)
    verdict = writes_verdict(outcomes["outcome"], "AFAS", noun="absence")
    return finish(ABSENCE_TO_AFAS, {"enabled": True, **result, "context": context, "run_id": run_id}, verdict)
