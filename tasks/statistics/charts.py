"""Dashboard charts: PNG images drawn with matplotlib.

An Agg canvas: no display, no global pyplot state, safe in worker threads. Charts are drawn from floats; the
tables keep the exact Decimals.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

import pandas as pd

from koppel.clock import AMSTERDAM
from tasks.statistics.tables import FAILED_STATUSES, INTERNAL, OTHER, top_customers

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

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

    low, high = time_limits(moments)
    # the numbers matplotlib's date converter would make of them; its stubs take floats only
    axes.set_xlim(mdates.date2num(low), mdates.date2num(high))
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
