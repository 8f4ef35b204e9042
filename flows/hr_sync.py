"""hr-sync: AFAS HR data → occupational-health system (departments, employees, employments, absences, users).

Reads as a table of contents: state → extract (full or changed rows) → plan (validate, mirror, desired
records, diff) → store the mirror → send upserts and deactivations → record what was sent → report. The
logic lives in ``tasks/hr_sync`` (plain functions over frames); ``tasks/hr_sync/tasks.py`` wraps it in tasks.
"""

from __future__ import annotations

from typing import Annotated, Any

from prefect import runtime
from prefect.states import State
from pydantic import AfterValidator, BaseModel, Field, field_validator

from koppel import clock
from tasks.hr_sync.config import absence_window_start, load_hr_config, parse_from_date
from tasks.hr_sync.mirror import Mode
from tasks.hr_sync.report import planned_outcomes
from tasks.hr_sync.tasks import (
    HR_SYNC,
    extract_afas_hr,
    plan_hr_sync,
    read_hr_state,
    read_oh_holdings,
    record_sent,
    report_hr_sync,
    send_to_oh,
    store_afas_mirror,
    sync_statistics,
)
from tasks.preflight import preflight
from tasks.state import close_run, finish, open_run, recorded_flow, writes_verdict


def _from_date(value: str | None) -> str | None:
    """``YYYY-MM-DD`` (blank: None), refused with the expected format named."""
    if value is None or not value.strip():
        return None
    return parse_from_date(value).isoformat()


FromDate = Annotated[str | None, AfterValidator(_from_date)]


class HrSyncParameters(BaseModel):
    """The options of one run (the flow takes them as flat parameters); default: what changed."""

    from_date: str | None = Field(
        None,
        description="Absences ending on or after this day (YYYY-MM-DD), or still open. "
        "Default: 24 months back (absence_months_back in the config).",
        examples=["2024-11-30"],
    )
    mode: Mode = Field(
        "auto",
        description="auto: changed rows, and a full comparison (deletions) when the last one is older than "
        "full_every_hours; incremental: changed rows only; full: compare everything now.",
    )
    dry_run: bool = Field(False, description="Plan and show everything; send and store nothing.")
    config_path: str = Field("config/hr.toml", description="HR configuration (TOML).")

    @field_validator("from_date")
    @classmethod
    def _format(cls, value: str | None) -> str | None:
        return _from_date(value)


@recorded_flow(HR_SYNC)
def hr_sync(
    mode: Mode = "auto",
    from_date: FromDate = None,
    dry_run: bool = False,
    config_path: str = "config/hr.toml",
) -> dict[str, Any] | State:
    """Send AFAS's departments, employees, employments, absences and manager accounts to the OH system.

    Args:
        mode: auto: changed rows, and a full comparison (deletions) when the last one is older than
            full_every_hours; incremental: changed rows only; full: compare everything now.
        from_date: Absences ending on or after this day (YYYY-MM-DD), or still open. Empty: 24 months back
            (absence_months_back in the config).
        dry_run: Plan and show everything; send and store nothing.
        config_path: Technical: the HR configuration (TOML), relative to the worker's checkout.

    """
    p = HrSyncParameters(mode=mode, from_date=from_date, dry_run=dry_run, config_path=config_path)
    preflight(["state", "afas", "occupational-health"])
    config = load_hr_config(p.config_path)
    today = clock.today()
    window_start = absence_window_start(p.from_date, config, today)
    run_id = open_run(HR_SYNC, p.model_dump(mode="json"), runtime.flow_run.id)
    sync = read_hr_state(config, p.mode, window_start)
    if config.initial_sync != "off":  # an OH customer with data: compare with what it holds
        sync = read_oh_holdings(sync)
    raw, afas_stats = extract_afas_hr(config, sync, window_start)
    sync_plan = plan_hr_sync(raw, sync, config, window_start)
    oh_stats: dict[str, Any] = {}
    if p.dry_run or config.initial_sync == "report":  # a report changes nothing until confirmed
        outcomes = planned_outcomes(sync_plan.changes)
    else:
        store_afas_mirror(sync_plan)
        outcomes, oh_stats = send_to_oh(sync_plan.changes)
        record_sent(sync.sent, outcomes)
    context = {
        "window_start": window_start.isoformat(),
        "mode": p.mode,
        "dry_run": p.dry_run or config.initial_sync == "report",
        "initial_sync": config.initial_sync,
        "salary": config.salary,
        "options": ", ".join(config.options) + ("" if config.manager_accounts else " (no manager accounts)"),
        "sent": ", ".join(config.sent_entities),
        "requests": {"afas": afas_stats, "oh": oh_stats},
    }
    result = report_hr_sync(context, sync_plan, outcomes)
    close_run(run_id, "completed", sync_statistics(outcomes, result["rejects"]))
    verdict = writes_verdict(outcomes["outcome"], "the occupational-health system")
    return finish(HR_SYNC, {**result, "context": context, "run_id": run_id}, verdict)
