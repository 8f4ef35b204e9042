"""backfill: bill a long date range as one invoice-hours child run per month, spread over the workers.

Reads as a table of contents: cut the range into months → one run of the invoice-hours deployment per month
(``run_deployment``, picked up by any worker of the pool) → wait for them → report each child's outcome,
read back from the state store. The logic is in ``tasks/backfill.py``.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from prefect import flow, runtime
from pydantic import BaseModel, Field, model_validator

from koppel.notifications import notify_failure
from tasks.backfill import report_children, submit_children, wait_for_children
from tasks.extract import Window

MAX_MONTHS = 36


class BackfillFailed(RuntimeError):
    """Some child runs did not complete; the artifact lists them."""


class BackfillParameters(BaseModel):
    """The range to bill and the invoice-hours options every child gets."""

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


@flow(
    name="backfill",
    validate_parameters=True,
    on_failure=[notify_failure],
    on_crashed=[notify_failure],
)
def backfill(parameters: BackfillParameters) -> dict[str, Any]:
    """Bill ``start_date``..``end_date`` month by month through the invoice-hours deployment."""
    p = parameters
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
