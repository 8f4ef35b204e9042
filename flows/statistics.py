"""statistics: the Koppel dashboard in the Prefect UI, read back from the state store.

Hours and amounts per customer per month, exclusions and rejects of every invoice-hours run over time, and
the AFAS documents that failed, as markdown, table and image artifacts. The logic is in
``tasks/statistics/``; this module only wires it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from prefect import flow
from pydantic import AfterValidator, BaseModel, Field, field_validator

from koppel.clock import AMSTERDAM
from koppel.notifications import notify_failure
from tasks.preflight import preflight
from tasks.statistics import (
    build_dashboard_task,
    check_period,
    default_periods,
    periods_between,
    publish_dashboard,
    read_statistics,
)

Period = Annotated[str | None, AfterValidator(lambda value: None if value is None else check_period(value))]


class StatisticsParameters(BaseModel):
    """The options of one run (the flow takes them as flat parameters); default: the last twelve months."""

    first_period: str | None = Field(
        None, description="First billing month, YYYY-MM. Default: eleven months before the current one."
    )
    last_period: str | None = Field(
        None, description="Last billing month, YYYY-MM. Default: the current one."
    )
    top_customers: int = Field(10, ge=1, le=40, description="Customers shown by name in the charts.")
    charts_dir: str | None = Field(
        None, description="Also save the charts as PNG files in this folder (on the worker)."
    )

    @field_validator("first_period", "last_period")
    @classmethod
    def _month(cls, value: str | None) -> str | None:
        return None if value is None else check_period(value)


@flow(
    name="statistics",
    validate_parameters=True,
    on_failure=[notify_failure],
    on_crashed=[notify_failure],
)
def statistics(
    first_period: Period = None,
    last_period: Period = None,
    top_customers: Annotated[int, Field(ge=1, le=40)] = 10,
    charts_dir: str | None = None,
) -> dict[str, Any]:
    """Publish the dashboard of the chosen billing months.

    Args:
        first_period: First billing month, YYYY-MM. Empty: eleven months before the current one.
        last_period: Last billing month, YYYY-MM. Empty: the current one.
        top_customers: Customers shown by name in the charts.
        charts_dir: Technical: also save the charts as PNG files in this folder (on the worker).

    """
    p = StatisticsParameters(
        first_period=first_period, last_period=last_period, top_customers=top_customers, charts_dir=charts_dir
    )
    preflight(["state"])
    first, last = default_periods(datetime.now(tz=AMSTERDAM).date())
    periods = periods_between(p.first_period or first, p.last_period or last)
    documents, history = read_statistics(periods)
    dashboard = build_dashboard_task(documents, history, periods, p.top_customers)
    return publish_dashboard(dashboard, p.charts_dir)
