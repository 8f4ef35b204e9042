"""The dashboard: hours and amounts per customer and month, rejects over time, AFAS failures, all flows' runs.

Next to invoicing it shows the HR and company runs (runs, changes sent, rejects per run).

Everything is read back from the state store (``store.ledger.documents`` and ``store.runs.run_history``),
so the dashboard shows what Koppel really posted, whichever worker posted it. The plain functions turn
those frames into the dashboard's tables and PNG charts (matplotlib, Agg canvas: no display, no global
pyplot state, safe in worker threads); the two tasks at the bottom read the store and publish artifacts.
Charts are drawn from floats; the tables keep Decimals, so the amounts a user reads are exact.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from prefect import task
from prefect.artifacts import create_image_artifact
from prefect.cache_policies import NO_CACHE
from sqlalchemy import Engine

from koppel.clock import AMSTERDAM
from store import ledger, runs
from store.db import connect
from store.settings import StoreSettings
from tasks.artifacts import artifact_key, markdown_table, publish_markdown, publish_table
from tasks.invoice_hours.money import minutes_to_hours
from tasks.secrets import load_settings

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FLOW = "statistics"
BILLING_FLOW = "invoice-hours"
INTERNAL = "(internal)"
OTHER = "other customers"
FAILED_STATUSES = ("failed", "uncertain")
RUN_BUCKETS = ("invoiced", "internal", "excluded", "rejected", "billed before", "failed")
RUN_HISTORY_LIMIT = 5_000  # a year of nightly previews plus monthly and manual runs fits well within this
# The HR and company flows shown next to invoicing; hourly hr-sync runs make ~9,000 a year, hence their limit.
SYNC_FLOWS = ("hr-sync", "sync-companies", "create-missing-debtors", "import-debtors")
SYNC_HISTORY_LIMIT = 10_000
# Last word of a statistics key that counts a change the flow made in the other system (see ``run_figures``).
CHANGE_WORDS = frozenset(
    {"created", "updated", "deactivated", "create", "update", "archive", "unarchive", "link"}
    | {"added", "changed", "removed"}
)
_PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def check_period(period: str) -> str:
    """``period`` if it is ``YYYY-MM``, else a ValueError naming the expected format."""
    if not _PERIOD.match(period):
        raise ValueError(f"period {period!r} is not a month in the format YYYY-MM (e.g. 2026-10)")
    return period


def periods_between(first: str, last: str) -> list[str]:
    """Every month from ``first`` to ``last`` inclusive, as ``YYYY-MM``."""
    start, end = pd.Period(check_period(first), "M"), pd.Period(check_period(last), "M")
    if end < start:
        raise ValueError(f"last period {last} lies before first period {first}")
    return [str(p) for p in pd.period_range(start, end, freq="M")]


def default_periods(today: date, months: int = 12) -> tuple[str, str]:
    """The ``months`` months up to and including the current one."""
    last = pd.Period(today, "M")
    return str(last - (months - 1)), str(last)


def hours(minutes: int) -> Decimal:
    """Minutes as hours with two decimals (exact: minutes are whole numbers)."""
    return minutes_to_hours(minutes)


def customer_label(frame: pd.DataFrame) -> pd.Series:
    """The customer a document is for: its AFAS debtor, or ``(internal)`` for internal charges."""
    debtor = frame["debtor"].astype("object").where(frame["debtor"].notna(), None)
    internal = frame["kind"].eq("internal_entry") | debtor.isna() | debtor.eq("")
    return debtor.where(~internal, INTERNAL).astype(str)


def customer_months(documents: pd.DataFrame) -> pd.DataFrame:
    """Posted documents summed per customer and billing period: documents, minutes, hours, amount."""
    columns = ["customer", "period", "documents", "minutes", "hours", "amount"]
    posted = documents[documents["status"].eq("posted")]
    if posted.empty:
        return pd.DataFrame(columns=columns)
    frame = posted.assign(customer=customer_label(posted))
    grouped = frame.groupby(["customer", "period"], sort=True)
    result = grouped.agg(documents=("reference", "count"), minutes=("minutes", "sum")).reset_index()
    amounts = grouped["amount"].agg(lambda values: sum(values, Decimal("0.00")))
    result["amount"] = list(amounts)
    result["hours"] = [hours(m) for m in result["minutes"]]
    return result[columns]


def month_totals(per_customer: pd.DataFrame, periods: Sequence[str]) -> pd.DataFrame:
    """Documents, hours and amount per billing period (every period listed, zero when nothing posted)."""
    rows = []
    for period in periods:
        month = per_customer[per_customer["period"].eq(period)]
        rows.append(
            {
                "period": period,
                "customers": int(month["customer"].nunique()),
                "documents": int(month["documents"].sum()),
                "hours": hours(int(month["minutes"].sum())),
                "amount": sum(month["amount"], Decimal("0.00")),
            }
        )
    return pd.DataFrame(rows, columns=["period", "customers", "documents", "hours", "amount"])


def top_customers(per_customer: pd.DataFrame, limit: int) -> list[str]:
    """The ``limit`` customers with the highest total amount (ties by name)."""
    if per_customer.empty:
        return []
    totals = per_customer.groupby("customer")["amount"].agg(lambda v: sum(v, Decimal("0.00")))
    ranked = sorted(totals.items(), key=lambda item: (-item[1], item[0]))
    return [name for name, _ in ranked[:limit]]


def run_buckets(statistics: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The per-bucket figures of one run's stored statistics.

    The store's contract is ``{bucket: {"count", "minutes", "amount"}}``; runs that stored the buckets under a
    ``conservation`` key are read the same way.
    """
    statistics = dict(statistics or {})
    nested = statistics.get("conservation")
    if isinstance(nested, Mapping) and all(isinstance(v, Mapping) for v in nested.values()):
        statistics = dict(nested)
    return {str(k): dict(v) for k, v in statistics.items() if isinstance(v, Mapping)}


def run_history_frame(history: pd.DataFrame, first: str, last: str) -> pd.DataFrame:
    """Completed, non-dry invoice-hours runs started in the periods: per run the count of each bucket."""
    columns = ["run_id", "started", "period", *RUN_BUCKETS]
    if history.empty:
        return pd.DataFrame(columns=columns)
    started = history["started_at"].dt.tz_convert(AMSTERDAM)
    period = started.dt.strftime("%Y-%m")
    dry = history["parameters"].map(lambda p: bool(_nested_get(p, "dry_run")))
    billing = history["flow_name"].eq(BILLING_FLOW) if "flow_name" in history.columns else True
    keep = history["status"].eq("completed") & ~dry & period.between(first, last) & billing
    rows = []
    for run_id, when, month, stats in zip(
        history["id"][keep], started[keep], period[keep], history["statistics"][keep], strict=True
    ):
        figures = run_buckets(stats)
        counts = {b: int(figures.get(b, {}).get("count", 0)) for b in RUN_BUCKETS}
        rows.append({"run_id": run_id, "started": when, "period": month, **counts})
    return pd.DataFrame(rows, columns=columns).sort_values("started", ignore_index=True)


def run_figures(flow: str, statistics: Mapping[str, Any] | None) -> tuple[int, int]:
    """``(changes sent, rejects)`` of one run from its stored statistics.

    invoice-hours: registrations invoiced or charged internally, and rejected. The HR and company flows store
    ``{"<entity>:<outcome>" or "<entity> <action>": {"count": n}}``: a key whose last word is a change
    (``created``, ``update``, ``archive``, ``link``, ``added``, …) counts as changes; ``rejected``,
    ``failed`` and keys ending in ``failed`` count as rejects; the rest (``review``, ``skipped``) neither.
    """
    figures = run_buckets(statistics)
    count = {key: int(value.get("count", 0) or 0) for key, value in figures.items()}
    if flow == BILLING_FLOW:
        return count.get("invoiced", 0) + count.get("internal", 0), count.get("rejected", 0)
    changes = rejects = 0
    for key, n in count.items():
        last = re.split(r"[: ]", key)[-1]
        if key in ("rejected", "failed") or last == "failed":
            rejects += n
        elif last in CHANGE_WORDS:
            changes += n
    return changes, rejects


def flow_runs_frame(history: pd.DataFrame, first: str, last: str) -> pd.DataFrame:
    """Completed, non-dry runs of every flow started in the periods: flow, started, changes sent, rejects."""
    columns = ["run_id", "flow", "started", "period", "changes", "rejects"]
    if history.empty:
        return pd.DataFrame(columns=columns)
    started = history["started_at"].dt.tz_convert(AMSTERDAM)
    period = started.dt.strftime("%Y-%m")
    dry = history["parameters"].map(lambda p: bool(_nested_get(p, "dry_run")))
    keep = (history["status"].eq("completed") & ~dry & period.between(first, last)).to_numpy()
    rows = []
    for run_id, flow, when, month, stats in zip(
        history["id"][keep],
        history["flow_name"][keep],
        started[keep],
        period[keep],
        history["statistics"][keep],
        strict=True,
    ):
        changes, rejects = run_figures(flow, stats)
        rows.append(
            {"run_id": run_id, "flow": flow, "started": when, "period": month}
            | {"changes": changes, "rejects": rejects}
        )
    return pd.DataFrame(rows, columns=columns).sort_values(["started", "flow"], ignore_index=True)


def runs_per_flow(flow_runs: pd.DataFrame) -> pd.DataFrame:
    """Per flow and month: runs, changes sent and rejects (invoicing, HR and companies side by side)."""
    columns = ["flow", "period", "runs", "changes", "rejects"]
    if flow_runs.empty:
        return pd.DataFrame(columns=columns)
    grouped = flow_runs.groupby(["flow", "period"], sort=True)
    table = grouped.agg(runs=("run_id", "count"), changes=("changes", "sum"), rejects=("rejects", "sum"))
    return table.reset_index()[columns]


def _nested_get(parameters: Any, name: str) -> Any:
    """A parameter of a stored run: top level, or inside the flow's single ``parameters`` model."""
    if not isinstance(parameters, Mapping):
        return None
    if name in parameters:
        return parameters[name]
    inner = parameters.get("parameters")
    return inner.get(name) if isinstance(inner, Mapping) else None


def afas_failures(documents: pd.DataFrame) -> pd.DataFrame:
    """Documents AFAS refused (``failed``) or that may not have landed (``uncertain``), newest first."""
    columns = [
        "reference",
        "kind",
        "debtor",
        "period",
        "status",
        "attempts",
        "error_message",
        "profit_log_reference",
        "updated_at",
    ]
    failed = documents[documents["status"].isin(FAILED_STATUSES)]
    return failed[columns].sort_values(
        ["updated_at", "reference"], ascending=[False, True], ignore_index=True
    )


def failures_per_period(failures: pd.DataFrame, periods: Sequence[str]) -> pd.DataFrame:
    """Failed and uncertain documents per billing period (every period listed)."""
    rows = [
        {
            "period": period,
            **{
                status: int((failures["period"].eq(period) & failures["status"].eq(status)).sum())
                for status in FAILED_STATUSES
            },
        }
        for period in periods
    ]
    return pd.DataFrame(rows, columns=["period", *FAILED_STATUSES])


# --- charts ------------------------------------------------------------------------------------------------

CHART_SIZE = (9.0, 4.5)  # inches; at 90 dpi about 810 x 405 pixels, readable in the Prefect UI
CHART_DPI = 90


def _figure(rows: int = 1) -> tuple[Figure, list[Axes]]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MplFigure

    figure = MplFigure(figsize=(CHART_SIZE[0], CHART_SIZE[1] * rows), layout="constrained")
    FigureCanvasAgg(figure)
    return figure, list(figure.subplots(rows, 1, squeeze=False)[:, 0])


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=CHART_DPI, metadata={"Software": None})
    return buffer.getvalue()


def _no_data(axes: Axes, title: str) -> None:
    axes.set_title(title)
    axes.text(0.5, 0.5, "no data in this range", ha="center", va="center", transform=axes.transAxes)
    axes.set_xticks([])
    axes.set_yticks([])


INTERNAL_COLOUR = "#404040"  # dark grey: internal charges are no customer
OTHER_COLOUR = "#c8c8c8"  # light grey: the customers not shown by name
_GREYS = {INTERNAL_COLOUR, OTHER_COLOUR, "#7f7f7f", "#c7c7c7", "#636363", "#969696", "#bdbdbd", "#d9d9d9"}


def customer_palette() -> list[str]:
    """Distinct colours for named customers (matplotlib's tab20, tab20b, tab20c), greys left out."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    colours = [to_hex(colormaps[name](i)) for name in ("tab20", "tab20b", "tab20c") for i in range(20)]
    unique = list(dict.fromkeys(colours))
    return [c for c in unique if c not in _GREYS]


def series_colours(names: Sequence[str]) -> dict[str, str]:
    """A colour per series: ``(internal)`` and ``other customers`` their own greys, every customer another."""
    palette, colours = customer_palette(), {}
    customers = [n for n in names if n not in (INTERNAL, OTHER)]
    for index, name in enumerate(customers):
        colours[name] = palette[index % len(palette)]
    fixed = {INTERNAL: INTERNAL_COLOUR, OTHER: OTHER_COLOUR}
    return {name: fixed.get(name) or colours[name] for name in names}


def time_limits(moments: Sequence[datetime]) -> tuple[datetime, datetime]:
    """x-axis limits around ``moments``: a day either side of a single day's runs, else 5 % of the span."""
    low, high = min(moments), max(moments)
    span = high - low
    pad = timedelta(days=1) if span < timedelta(days=1) else span * 0.05
    return low - pad, high + pad


def _stacked(
    axes: Axes,
    periods: Sequence[str],
    series: Mapping[str, Sequence[float]],
    title: str,
    unit: str,
    colours: Mapping[str, str] | None = None,
) -> None:
    bottom = [0.0] * len(periods)
    for name, values in series.items():
        colour = colours.get(name) if colours else None
        axes.bar(periods, values, bottom=bottom, label=name, color=colour)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    axes.set_title(title)
    axes.set_ylabel(unit)
    axes.tick_params(axis="x", labelrotation=45)


def customer_series(
    per_customer: pd.DataFrame, periods: Sequence[str], customers: Sequence[str], value: str
) -> dict[str, list[float]]:
    """Per shown customer (and ``other customers``) the value per period, as floats for plotting."""
    series: dict[str, list[float]] = {}
    rest = per_customer[~per_customer["customer"].isin(customers)]
    for name, frame in [
        *((c, per_customer[per_customer["customer"].eq(c)]) for c in customers),
        (OTHER, rest),
    ]:
        by_period = {p: float(sum(frame.loc[frame["period"].eq(p), value], Decimal(0))) for p in periods}
        if name != OTHER or any(by_period.values()):
            series[name] = [by_period[p] for p in periods]
    return series


def customer_chart(per_customer: pd.DataFrame, periods: Sequence[str], top: int) -> bytes:
    """Stacked bars per month: hours (top) and amount excl. VAT (bottom), biggest customers by amount."""
    figure, (upper, lower) = _figure(rows=2)
    if per_customer.empty:
        _no_data(upper, "Hours per customer per month")
        _no_data(lower, "Amount per customer per month")
        return _png(figure)
    customers = top_customers(per_customer, top)
    hours_series = customer_series(per_customer, periods, customers, "hours")
    amount_series = customer_series(per_customer, periods, customers, "amount")
    colours = series_colours([*customers, OTHER])
    _stacked(upper, periods, hours_series, "Hours per customer per month", "hours", colours)
    _stacked(lower, periods, amount_series, "Amount per customer per month", "EUR excl. VAT", colours)
    upper.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _png(figure)


def _time_axis(axes: Axes, moments: Sequence[datetime]) -> None:
    """Limits that fit the runs (one run does not span years) and dates written in Amsterdam time."""
    from matplotlib import dates as mdates

    axes.set_xlim(*time_limits(moments))
    locator = mdates.AutoDateLocator(tz=AMSTERDAM, maxticks=8)
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=AMSTERDAM))


def run_history_figure(history: pd.DataFrame) -> Figure:
    """The figure of ``run_history_chart`` (its axes can be inspected)."""
    figure, (axes,) = _figure()
    title = "Exclusions, rejects and failures per invoice-hours run"
    if history.empty:
        _no_data(axes, title)
        return figure
    when = [stamp.to_pydatetime() for stamp in history["started"]]
    for bucket, style in (("excluded", "o-"), ("rejected", "s-"), ("failed", "^-")):
        axes.plot(when, history[bucket].astype(int).tolist(), style, label=bucket)
    axes.set_title(title)
    axes.set_ylabel("registrations")
    axes.legend(fontsize="small")
    _time_axis(axes, when)
    return figure


def run_history_chart(history: pd.DataFrame) -> bytes:
    """Registrations excluded, rejected and failed in each invoice-hours run, over time."""
    return _png(run_history_figure(history))


def flow_runs_figure(flow_runs: pd.DataFrame) -> Figure:
    """Changes sent (top) and rejects (bottom) of every run, one series per flow."""
    figure, (upper, lower) = _figure(rows=2)
    if flow_runs.empty:
        _no_data(upper, "Changes sent per run")
        _no_data(lower, "Rejects per run")
        return figure
    flows = sorted(set(flow_runs["flow"]))
    colours = dict(zip(flows, customer_palette(), strict=False))
    for axes, column, title in (
        (upper, "changes", "Changes sent per run"),
        (lower, "rejects", "Rejects per run"),
    ):
        for flow in flows:
            mine = flow_runs[flow_runs["flow"].eq(flow)]
            when = [stamp.to_pydatetime() for stamp in mine["started"]]
            axes.plot(when, mine[column].astype(int).tolist(), "o-", label=flow, color=colours[flow])
        axes.set_title(title)
        axes.set_ylabel("records" if column == "changes" else "rows")
        _time_axis(axes, [stamp.to_pydatetime() for stamp in flow_runs["started"]])
    upper.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return figure


def failures_chart(per_period: pd.DataFrame) -> bytes:
    """AFAS documents failed or uncertain per billing period."""
    figure, (axes,) = _figure()
    title = "AFAS failures per billing period"
    if per_period.empty or not per_period[list(FAILED_STATUSES)].to_numpy().any():
        _no_data(axes, title)
        return _png(figure)
    series = {s: per_period[s].astype(float).tolist() for s in FAILED_STATUSES}
    _stacked(axes, per_period["period"].tolist(), series, title, "documents")
    axes.legend(fontsize="small")
    return _png(figure)


def data_uri(png: bytes) -> str:
    """A PNG as a ``data:`` URI, so the Prefect UI shows it without a file server."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


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


# --- Prefect tasks ------------------------------------------------------------------------------------------


def read_store(engine: Engine, periods: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Documents of the billing periods and the run history of invoice-hours and the HR and company flows."""
    frames = [ledger.documents(engine, period=period) for period in periods]
    filled = [frame for frame in frames if not frame.empty]
    documents = pd.concat(filled, ignore_index=True) if filled else frames[0]
    histories = [runs.run_history(engine, BILLING_FLOW, limit=RUN_HISTORY_LIMIT)]
    histories += [runs.run_history(engine, flow, limit=SYNC_HISTORY_LIMIT) for flow in SYNC_FLOWS]
    filled = [frame for frame in histories if not frame.empty]
    return documents, pd.concat(filled, ignore_index=True) if filled else histories[0]


@task(name="read-statistics", cache_policy=NO_CACHE)
def read_statistics(periods: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read the documents of ``periods`` and the invoice-hours run history from the state store."""
    engine = connect(load_settings(StoreSettings))
    try:
        return read_store(engine, periods)
    finally:
        engine.dispose()


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


# --- figures for the command line (``koppel statistics``) -------------------------------------------------


def document_counts(documents: pd.DataFrame) -> pd.DataFrame:
    """Documents, hours and amount per kind and status."""
    columns = ["kind", "status", "documents", "hours", "amount"]
    if documents.empty:
        return pd.DataFrame(columns=columns)
    grouped = documents.groupby(["kind", "status"], sort=True)
    result = grouped.agg(documents=("reference", "count"), minutes=("minutes", "sum")).reset_index()
    result["hours"] = [hours(m) for m in result["minutes"]]
    result["amount"] = list(grouped["amount"].agg(lambda values: sum(values, Decimal("0.00"))))
    return result[columns]


def top_rows(per_customer: pd.DataFrame, limit: int) -> pd.DataFrame:
    """The rows of the ``limit`` customers with the highest amounts, highest first."""
    keep = top_customers(per_customer, limit)
    order = {name: rank for rank, name in enumerate(keep)}
    chosen = per_customer[per_customer["customer"].isin(keep)]
    return chosen.sort_values("customer", key=lambda c: c.map(order), ignore_index=True)


def bucket_totals(history: pd.DataFrame) -> pd.DataFrame:
    """Registrations per bucket summed over the runs of ``run_history_frame`` (and how many runs)."""
    if history.empty:
        return pd.DataFrame(columns=["bucket", "registrations", "runs"])
    rows = [{"bucket": b, "registrations": int(history[b].sum()), "runs": len(history)} for b in RUN_BUCKETS]
    return pd.DataFrame(rows)
