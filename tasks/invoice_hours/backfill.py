"""Backfills: one child run of the invoice-hours deployment per calendar month, shared by the workers.

A long range is cut into calendar months (Europe/Amsterdam billing days, ``start``..``end`` inclusive, the
first and last month possibly partial). Each month becomes a flow run of the invoice-hours *deployment*
(``run_deployment``), so any worker of the work pool can pick it up: several workers bill several months
at once, and the ledger keeps every registration billed once even when ranges overlap. The children carry
an idempotency key made of the backfill's own run id and the month, so a retried backfill finds its
children instead of creating them again. The report reads each child's documents back from the store.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.deployments import run_deployment

from koppel.dispatch import synchronous
from store import ledger, runs
from store.db import connect
from store.settings import StoreSettings
from tasks.artifacts import markdown_table, publish_markdown, publish_table
from tasks.invoice_hours.extract import Window
from tasks.secrets import load_settings
from tasks.statistics import RUN_BUCKETS, hours, run_buckets

FLOW = "backfill"
SUCCESS = "COMPLETED"
RUN_HISTORY_LIMIT = 5_000


@dataclass(frozen=True)
class Child:
    """A child flow run as the backfill last saw it."""

    month: Window
    flow_run_id: str
    flow_run_name: str
    state: str  # Prefect state type: SCHEDULED, PENDING, RUNNING, COMPLETED, FAILED, CRASHED, ...
    state_name: str = ""
    message: str = ""

    @property
    def final(self) -> bool:
        """Whether the child has finished (successfully or not)."""
        return self.state in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def child_parameters(month: Window, base: dict[str, Any]) -> dict[str, Any]:
    """The invoice-hours deployment's parameters for one month (flat: merged with its defaults)."""
    return {**base, "start_date": month.first.isoformat(), "end_date": month.last.isoformat()}


def submit_children(
    months: Sequence[Window], deployment: str, base: dict[str, Any], parent_run_id: str
) -> list[Child]:
    """Create one scheduled run of ``deployment`` per month and return at once (workers pick them up).

    Called from the backfill flow itself (not from a task) so that each child is its own node in the run
    graph. The idempotency key makes a retried backfill get its existing children back.
    """
    children = []
    for month in months:
        run = synchronous(
            run_deployment(
                deployment,
                parameters=child_parameters(month, base),
                flow_run_name=f"{deployment.split('/')[0]}-{month.month}",
                timeout=0,
                idempotency_key=f"{FLOW}-{parent_run_id}-{month.month}",
                tags=["backfill"],
            )
        )
        children.append(
            Child(month, str(run.id), run.name, run.state.type.value if run.state else "SCHEDULED")
        )
    return children


def refresh(children: Sequence[Child], read_run: Callable[[str], Any]) -> list[Child]:
    """The children with the state ``read_run(flow_run_id)`` reports now (finished ones are not re-read)."""
    fresh = []
    for child in children:
        if child.final:
            fresh.append(child)
            continue
        run = read_run(child.flow_run_id)
        state = run.state
        fresh.append(
            Child(
                child.month,
                child.flow_run_id,
                child.flow_run_name,
                state.type.value if state else child.state,
                state.name if state else "",
                (state.message or "") if state else "",
            )
        )
    return fresh


@task(name="wait-for-children", cache_policy=NO_CACHE)
def wait_for_children(children: list[Child], poll_seconds: float, wait_minutes: float) -> list[Child]:
    """Poll the children until all have finished or ``wait_minutes`` have passed."""
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + wait_minutes * 60
    with get_client(sync_client=True) as client:
        while True:
            children = refresh(children, lambda run_id: client.read_flow_run(UUID(run_id)))
            if all(child.final for child in children) or time.monotonic() >= deadline:
                return children
            time.sleep(poll_seconds)


def children_table(children: Sequence[Child], documents: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """Per child: month, window, run, state, documents posted/failed, hours and amount posted, buckets."""
    rows = []
    stats = dict(zip(history["id"], history["statistics"], strict=True)) if not history.empty else {}
    for child in children:
        mine = documents[documents["claimed_by_run"].eq(child.flow_run_id)]
        posted = mine[mine["status"].eq("posted")]
        figures = run_buckets(stats.get(child.flow_run_id))
        rows.append(
            {
                "month": child.month.month,
                "window": f"{child.month.first.isoformat()}..{child.month.last.isoformat()}",
                "flow_run": child.flow_run_name,
                "flow_run_id": child.flow_run_id,
                "state": child.state_name or child.state.title(),
                "documents_posted": len(posted),
                "documents_failed": int(mine["status"].isin(["failed", "uncertain"]).sum()),
                "hours_posted": hours(int(posted["minutes"].sum())),
                "amount_posted": sum(posted["amount"], Decimal("0.00")),
                **{b.replace(" ", "_"): int(figures.get(b, {}).get("count", 0)) for b in RUN_BUCKETS},
                "message": child.message if child.state != SUCCESS else "",
            }
        )
    return pd.DataFrame(rows)


def backfill_markdown(label: str, deployment: str, table: pd.DataFrame) -> str:
    """The backfill's summary: one line per child and the totals."""
    done = int(table["state"].eq("Completed").sum()) if not table.empty else 0
    lines = [
        f"# backfill {label}",
        "",
        f"{len(table)} child runs of `{deployment}`, one per month: {done} completed, "
        f"{len(table) - done} not completed.",
        "",
        f"Posted: {int(table['documents_posted'].sum()) if not table.empty else 0} documents, "
        f"{sum(table.get('hours_posted', []), Decimal('0.00')):,.2f} hours, "
        f"{sum(table.get('amount_posted', []), Decimal('0.00')):,.2f} EUR excl. VAT.",
        "",
        markdown_table(table.drop(columns=["flow_run_id"]) if not table.empty else table, limit=120),
    ]
    return "\n".join(lines)


@task(name="report-children", cache_policy=NO_CACHE)
def report_children(label: str, deployment: str, children: list[Child]) -> dict[str, Any]:
    """Publish the children and their outcome (read back from the state store) as artifacts."""
    engine = connect(load_settings(StoreSettings))
    try:
        frames = [ledger.documents(engine, run_id=child.flow_run_id) for child in children]
        history = runs.run_history(engine, "invoice-hours", limit=RUN_HISTORY_LIMIT)
    finally:
        engine.dispose()
    filled = [f for f in frames if not f.empty]
    documents = pd.concat(filled, ignore_index=True) if filled else frames[0]
    table = children_table(children, documents, history)
    publish_markdown(f"{FLOW}-summary", backfill_markdown(label, deployment, table), "Backfill: children")
    publish_table(f"{FLOW}-children", table, "Backfill: one child run per month and its outcome")
    unfinished = [c.month.month for c in children if c.state != SUCCESS]
    return {"children": table, "unsuccessful": unfinished}
