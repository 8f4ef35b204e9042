"""What a sync-companies run shows: counts, every change (before → after), the review list and the errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from tasks.artifacts import markdown_table
from tasks.company_sync.apply import OUTCOME_COLUMNS
from tasks.company_sync.plan import records

CHANGE_COLUMNS = ["entity", "action", "key", "name", "field", "before", "after", "status", "message"]
ERROR_COLUMNS = ["entity", "key", "name", "step", "reason"]
COUNT_COLUMNS = ["entity", "action", "planned", "done", "failed"]
FAILED = ("failed", "uncertain")


def planned_outcomes(actions: pd.DataFrame, status: str) -> pd.DataFrame:
    """Outcomes of a run that writes nothing (dry run, or disabled): every action gets ``status``."""
    rows = [
        {
            "entity": a["entity"],
            "action": a["action"],
            "key": a["key"],
            "topdesk_id": a["topdesk_id"],
            "status": status,
            "message": "",
        }
        for a in records(actions)
    ]
    return pd.DataFrame(rows, columns=OUTCOME_COLUMNS, dtype=object)


def changes_table(actions: pd.DataFrame, outcomes: pd.DataFrame) -> pd.DataFrame:
    """One row per changed field of every action, with the action's status (outcomes align with actions)."""
    rows = []
    for action, result in zip(records(actions), records(outcomes), strict=True):
        for change in action["changes"] or [{"field": "", "before": "", "after": ""}]:
            rows.append(
                {
                    "entity": action["entity"],
                    "action": action["action"],
                    "key": action["key"],
                    "name": action["name"],
                    **change,
                    "status": result["status"],
                    "message": result["message"] or action["reason"],
                }
            )
    return pd.DataFrame(rows, columns=CHANGE_COLUMNS, dtype=object)


def errors_table(rejects: pd.DataFrame, actions: pd.DataFrame, outcomes: pd.DataFrame) -> pd.DataFrame:
    """Rejected AFAS rows (step ``validate``) and failed or uncertain writes (step ``write``)."""
    rows = [
        {"entity": r["entity"], "key": r["key"], "name": r["name"], "step": "validate", "reason": r["reason"]}
        for r in records(rejects)
    ]
    for action, result in zip(records(actions), records(outcomes), strict=True):
        if result["status"] in FAILED:
            reason = f"{action['action']} {result['status']}: {result['message']}"
            rows.append(
                {
                    "entity": action["entity"],
                    "key": action["key"],
                    "name": action["name"],
                    "step": "write",
                    "reason": reason,
                }
            )
    return pd.DataFrame(rows, columns=ERROR_COLUMNS, dtype=object)


def counts_table(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Planned, done and failed writes per entity and action."""
    if outcomes.empty:
        return pd.DataFrame(columns=COUNT_COLUMNS)
    frame = outcomes.assign(
        planned=1,
        done=outcomes["status"].eq("done").astype(int),
        failed=outcomes["status"].isin(FAILED).astype(int),
    )
    totals = frame.groupby(["entity", "action"], sort=True)[["planned", "done", "failed"]].sum()
    return totals.reset_index()[COUNT_COLUMNS]


def statistics(
    outcomes: pd.DataFrame, rejects: pd.DataFrame, review: pd.DataFrame, notes: Mapping[str, int]
) -> dict:
    """Run statistics for the store: ``{bucket: {"count": n}}`` (e.g. ``branch create``, ``rejected``)."""
    stats: dict[str, dict[str, int]] = {}
    for row in records(counts_table(outcomes)):
        stats[f"{row['entity']} {row['action']}"] = {"count": int(row["done"])}
        if row["failed"]:
            stats[f"{row['entity']} {row['action']} failed"] = {"count": int(row["failed"])}
    stats["rejected"] = {"count": len(rejects)}
    stats["review"] = {"count": len(review)}
    stats |= {name: {"count": int(count)} for name, count in notes.items()}
    return stats


def summary_markdown(
    context: Mapping[str, Any],
    counts: pd.DataFrame,
    tables: Mapping[str, pd.DataFrame],
    notes: Mapping[str, int],
) -> str:
    """The run summary: context, write counts, other counts, and how long each list is."""
    lines = [f"# {context['flow']}", ""]
    lines += [f"- **{name}**: {value}" for name, value in context.items() if name != "flow"]
    lines += ["", "## Writes", "", markdown_table(counts)]
    other = pd.DataFrame(sorted(notes.items()), columns=["what", "count"])
    lines += ["", "## Not written", "", markdown_table(other)]
    lines += ["", "## Lists", ""] + [f"- {name}: {len(frame)} rows" for name, frame in tables.items()]
    return "\n".join(lines)
