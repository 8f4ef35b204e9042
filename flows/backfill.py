"""backfill: bill a long date range as one invoice-hours child run per month, spread over the workers.

Reads as a table of contents: cut the range into months → one run of the invoice-hours deployment per month
(``run_deployment``, picked up by any worker of the pool) → wait for them → report each child's outcome,
read back from the state store. The logic is in ``tasks/invoice_hours/backfill.py``.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from prefect import flow, runtime
from pydantic import BaseModel, Field, model_validator

from koppel.notifications import notify_failure
from tasks.history import period_label
from tasks.invoice_hours.backfill import report_children, submit_children, wait_for_children
from tasks.invoice_hours.extract import Window
from tasks.preflight import preflight

MAX_MONTHS = 36


class BackfillFailed(RuntimeError):
    """Some child runs did not complete; the artifact lists them."""


class BackfillParameters(BaseModel):
    """The range to bill and the invoice-hours options every child gets (flat parameters of the flow)."""

    start_date: date = Field(..., description="First day to bill (Europe/Amsterdam).")
    end_date: date = Field(..., description="Last day to bill, inclusive.")
    dry_run: bool = Field(False, description="Children plan and show everything, post nothing.")
    administration: int | None = Field(None, description="Only this AFAS administration (default: all).")
    config_path: str = Field(
        "config/billing.toml", description="Billing rules (TOML), as the children see it."
    )
    recover_after_minutes: float = Field(15.0, ge=0, description="Passed on to every child run.")
    deployment: str = Field("invoice-hours/monthly", description="The invoice-hours deployment to run.")
    wait_minutes: float = Field(720.0, gt=0, description="Give up waiting for the children after this long.")
    poll_seconds: float = Field(10.0, gt=0, le=300, description="How often to look at the children.")

    @model_validator(mode="after")
    def _range(self) -> BackfillParameters:
        months = len(Window(self.start_date, self.end_date).months())
        if months > MAX_MONTHS:
            raise ValueError(f"{months} months is more than {MAX_MONTHS}; split the backfill")
        return self

    def invoice_parameters(self) -> dict[str, Any]:
        """What every child run gets besides its own dates."""
        return self.model_dump(
            mode="json", include={"dry_run", "administration", "config_path", "recover_after_minutes"}
        )


def _run_name() -> str:
    parameters = runtime.flow_run.parameters
    try:
        start, end = (date.fromisoformat(str(parameters[k])) for k in ("start_date", "end_date"))
        label = period_label(Window(start, end))
    except (KeyError, ValueError):
        label = "invalid dates"
    return f"backfill {label}" + (" preview" if parameters.get("dry_run") else "")


@flow(
    name="backfill",
    flow_run_name=_run_name,
    validate_parameters=True,
    on_failure=[notify_failure],
    on_crashed=[notify_failure],
)
def backfill(
    start_date: date,
    end_date: date,
    dry_run: bool = False,
    administration: int | None = None,
    config_path: str = "config/billing.toml",
    recover_after_minutes: Annotated[float, Field(ge=0)] = 15.0,
    deployment: str = "invoice-hours/monthly",
    wait_minutes: Annotated[float, Field(gt=0)] = 720.0,
    poll_seconds: Annotated[float, Field(gt=0, le=300)] = 10.0,
) -> dict[str, Any]:
    """Bill ``start_date``..``end_date`` month by month through the invoice-hours deployment.

    Args:
        start_date: First day to bill (Europe/Amsterdam).
        end_date: Last day to bill, inclusive (at most 36 months after start_date).
        dry_run: Children plan and show everything, post nothing.
        administration: Only this AFAS administration (empty: all).
        config_path: Technical: the billing rules (TOML), as the children see it.
        recover_after_minutes: Technical: passed on to every child run.
        deployment: Technical: the invoice-hours deployment to run.
        wait_minutes: Technical: give up waiting for the children after this long.
        poll_seconds: Technical: how often to look at the children.

    """
    p = BackfillParameters(
        start_date=start_date,
        end_date=end_date,
        dry_run=dry_run,
        administration=administration,
        config_path=config_path,
        recover_after_minutes=recover_after_minutes,
        deployment=deployment,
        wait_minutes=wait_minutes,
        poll_seconds=poll_seconds,
    )
    preflight(["state"])
    label = f"{p.start_date.isoformat()}..{p.end_date.isoformat()}"
    months = Window(p.start_date, p.end_date).months()
    children = submit_children(months, p.deployment, p.invoice_parameters(), str(runtime.flow_run.id))
    finished = wait_for_children(children, p.poll_seconds, p.wait_minutes)
    result = report_children(label, p.deployment, finished)
    if result["unsuccessful"]:
        raise BackfillFailed(
            f"child runs of {', '.join(result['unsuccessful'])} did not complete; see the artifact"
        )
    return result
