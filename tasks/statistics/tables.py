"""Dashboard tables: plain functions turning the store's documents and run history into frames.

Periods, per-customer and per-month totals, run buckets and figures, runs per flow, AFAS failures, and the
figures of ``koppel statistics``. Decimals stay Decimals: the amounts a user reads are exact.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

import pandas as pd

from koppel.clock import AMSTERDAM
from tasks.invoice_hours.money import minutes_to_hours

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
