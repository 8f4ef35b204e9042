"""The dashboard: hours and amounts per customer and month, rejects over time, AFAS failures, all flows' runs.

Next to invoicing it shows the HR and company runs (runs, changes sent, rejects per run).

Everything is read back from the state store (``store.ledger.documents`` and ``store.runs.run_history``),
so the dashboard shows what Koppel really posted, whichever worker posted it. The plain functions turn
those frames into the dashboard's tables and PNG charts. Three modules hold the parts: ``reads`` (the store
reads), ``tables`` (frames) and ``charts`` (PNG images); this one assembles the dashboard and publishes it.
Charts are drawn from floats; the tables keep Decimals, so the amounts a user reads are exact.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import task
from prefect.artifacts import create_image_artifact
from prefect.cache_policies import NO_CACHE

from tasks.artifacts import artifact_key, markdown_table, publish_markdown, publish_table
from tasks.statistics.charts import (
    CHART_DPI,
    CHART_SIZE,
    INTERNAL_COLOUR,
    OTHER_COLOUR,
    _png,
    customer_chart,
    customer_palette,
    customer_series,
    data_uri,
    failures_chart,
    flow_runs_figure,
    run_history_chart,
    run_history_figure,
    series_colours,
    time_limits,
)
from tasks.statistics.reads import read_statistics, read_store
from tasks.statistics.tables import (
    BILLING_FLOW,
    CHANGE_WORDS,
    FAILED_STATUSES,
    FLOW,
    INTERNAL,
    OTHER,
    RUN_BUCKETS,
    RUN_HISTORY_LIMIT,
    SYNC_FLOWS,
    SYNC_HISTORY_LIMIT,
    afas_failures,
    bucket_totals,
    check_period,
    customer_label,
    customer_months,
    default_periods,
    document_counts,
    failures_per_period,
    flow_runs_frame,
    hours,
    month_totals,
    periods_between,
    run_buckets,
    run_figures,
    run_history_frame,
    runs_per_flow,
    top_customers,
    top_rows,
)

# --- the dashboard ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dashboard:
    """Every table and chart of the dashboard for a range of billing periods."""

    periods: list[str]
    per_customer: pd.DataFrame
    totals: pd.DataFrame
    history: pd.DataFrame
    failures: pd.DataFrame
    failures_per_period: pd.DataFrame
    charts: dict[str, bytes]
    flow_runs: pd.DataFrame = field(default_factory=pd.DataFrame)
    runs_per_flow: pd.DataFrame = field(default_factory=pd.DataFrame)


def build_dashboard(
    documents: pd.DataFrame, history: pd.DataFrame, periods: Sequence[str], top: int = 10
) -> Dashboard:
    """Tables and charts from the store's documents (of ``periods``) and invoice-hours run history."""
    periods = list(periods)
    documents = documents[documents["period"].isin(periods)]
    per_customer = customer_months(documents)
    runs_frame = run_history_frame(history, periods[0], periods[-1])
    flow_runs = flow_runs_frame(history, periods[0], periods[-1])
    failures = afas_failures(documents)
    per_period = failures_per_period(failures, periods)
    charts = {
        "hours-and-amounts": customer_chart(per_customer, periods, top),
        "exclusions-and-rejects": run_history_chart(runs_frame),
        "afas-failures": failures_chart(per_period),
        "runs-per-flow": _png(flow_runs_figure(flow_runs)),
    }
    totals = month_totals(per_customer, periods)
    return Dashboard(
        periods,
        per_customer,
        totals,
        runs_frame,
        failures,
        per_period,
        charts,
        flow_runs,
        runs_per_flow(flow_runs),
    )


CHART_TITLES = {
    "hours-and-amounts": "Hours and amounts per customer per month",
    "exclusions-and-rejects": "Exclusions and rejects over time",
    "afas-failures": "AFAS failures",
    "runs-per-flow": "Invoicing, HR and company runs: changes sent and rejects",
}


def dashboard_markdown(dashboard: Dashboard) -> str:
    """The dashboard page: totals per month, the charts inline, and the latest AFAS failures."""
    first, last = dashboard.periods[0], dashboard.periods[-1]
    hours_total = sum(dashboard.totals["hours"], Decimal("0.00"))
    amount_total = sum(dashboard.totals["amount"], Decimal("0.00"))
    lines = [
        f"# Koppel dashboard {first} .. {last}",
        "",
        f"Posted in AFAS: **{hours_total:,.2f} hours**, **{amount_total:,.2f} EUR** excl. VAT, "
        f"{int(dashboard.totals['documents'].sum()):,} documents. "
        f"Invoice-hours runs: {len(dashboard.history)}. AFAS failures open: {len(dashboard.failures)}.",
        "",
        "## Per month",
        "",
        markdown_table(dashboard.totals, limit=60),
        "",
        "## Runs per flow and month (invoicing, HR, companies)",
        "",
        markdown_table(dashboard.runs_per_flow, limit=60),
    ]
    for name, png in dashboard.charts.items():
        lines += ["", f"## {CHART_TITLES[name]}", "", f"![{CHART_TITLES[name]}]({data_uri(png)})"]
    lines += ["", "## Latest AFAS failures", "", markdown_table(dashboard.failures, limit=20)]
    return "\n".join(lines)


def write_charts(charts: Mapping[str, bytes], folder: Path) -> list[str]:
    """Save the charts as ``<name>.png`` in ``folder``; return the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, png in charts.items():
        path = folder / f"{name}.png"
        path.write_bytes(png)
        paths.append(str(path))
    return paths


def summary(dashboard: Dashboard, chart_files: Iterable[str] = ()) -> dict[str, Any]:
    """What the statistics flow returns: the range and its headline figures."""
    return {
        "periods": [dashboard.periods[0], dashboard.periods[-1]],
        "documents": int(dashboard.totals["documents"].sum()),
        "hours": sum(dashboard.totals["hours"], Decimal("0.00")),
        "amount": sum(dashboard.totals["amount"], Decimal("0.00")),
        "customers": int(dashboard.per_customer["customer"].nunique()),
        "runs": len(dashboard.history),
        "afas_failures": len(dashboard.failures),
        "chart_files": list(chart_files),
    }


@task(name="publish-dashboard", cache_policy=NO_CACHE)
def publish_dashboard(dashboard: Dashboard, charts_dir: str | None = None) -> dict[str, Any]:
    """Publish the dashboard as markdown, table and image artifacts (and PNG files if asked)."""
    publish_markdown(f"{FLOW}-dashboard", dashboard_markdown(dashboard), "Koppel dashboard")
    publish_table(f"{FLOW}-per-month", dashboard.totals, "Hours and amounts posted per month")
    publish_table(f"{FLOW}-customers-per-month", dashboard.per_customer, "Hours and amounts per customer")
    publish_table(f"{FLOW}-runs", dashboard.history, "Buckets of each invoice-hours run")
    publish_table(f"{FLOW}-runs-per-flow", dashboard.runs_per_flow, "Runs, changes sent and rejects per flow")
    publish_table(f"{FLOW}-afas-failures", dashboard.failures, "AFAS documents failed or uncertain")
    for name, png in dashboard.charts.items():
        create_image_artifact(
            image_url=data_uri(png), key=artifact_key(FLOW, "chart", name), description=CHART_TITLES[name]
        )
    files = write_charts(dashboard.charts, Path(charts_dir)) if charts_dir else []
    return summary(dashboard, files)


build_dashboard_task = task(name="build-dashboard", cache_policy=NO_CACHE)(build_dashboard)


__all__ = [
    "BILLING_FLOW",
    "CHANGE_WORDS",
    "CHART_DPI",
    "CHART_SIZE",
    "CHART_TITLES",
    "FAILED_STATUSES",
    "FLOW",
    "INTERNAL",
    "INTERNAL_COLOUR",
    "OTHER",
    "OTHER_COLOUR",
    "RUN_BUCKETS",
    "RUN_HISTORY_LIMIT",
    "SYNC_FLOWS",
    "SYNC_HISTORY_LIMIT",
    "Dashboard",
    "afas_failures",
    "bucket_totals",
    "build_dashboard",
    "build_dashboard_task",
    "check_period",
    "customer_chart",
    "customer_label",
    "customer_months",
    "customer_palette",
    "customer_series",
    "dashboard_markdown",
    "data_uri",
    "default_periods",
    "document_counts",
    "failures_chart",
    "failures_per_period",
    "flow_runs_figure",
    "flow_runs_frame",
    "hours",
    "month_totals",
    "periods_between",
    "publish_dashboard",
    "read_statistics",
    "read_store",
    "run_buckets",
    "run_figures",
    "run_history_chart",
    "run_history_figure",
    "run_history_frame",
    "runs_per_flow",
    "series_colours",
    "summary",
    "time_limits",
    "top_customers",
    "top_rows",
    "write_charts",
]
