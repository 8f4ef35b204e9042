"""What an hr-sync run reports: counts per entity, the changes sent, rejected rows, flex constructions.

The changes table names the fields that changed, never their values: bodies hold personal data (and the
salary when enabled), which has no place in a Prefect artifact.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from connectors.occupational_health.endpoints import ORDER
from tasks.artifacts import markdown_table
from tasks.hr_sync.pipeline import SyncPlan
from tasks.hr_sync.send import OUTCOME_COLUMNS

OUTCOMES = ("created", "updated", "deactivated", "not_found", "rejected", "failed", "skipped", "planned")
CHANGES_TABLE = ["entity", "external_id", "action", "change", "fields", "outcome", "message"]


def planned_outcomes(changes: pd.DataFrame) -> pd.DataFrame:
    """The changes of a dry run, each with outcome ``planned``."""
    return changes.assign(outcome="planned", message="").reindex(columns=OUTCOME_COLUMNS)


def send_rejects(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Records the OH system refused (422), as rejects with its reasons."""
    refused = outcomes[outcomes["outcome"] == "rejected"] if not outcomes.empty else outcomes
    return pd.DataFrame(
        {
            "entity": refused["entity"],
            "key": refused["external_id"],
            "reason": [
                f"{e} {k}: refused by the OH system: {m}"
                for e, k, m in zip(refused["entity"], refused["external_id"], refused["message"], strict=True)
            ],
            "step": "send",
        },
        dtype=object,
    )


def counts(plan: SyncPlan, outcomes: pd.DataFrame) -> pd.DataFrame:
    """One row per entity: rows read, in the mirror, rejected, held, sendable, and the outcomes."""
    rows = []
    for entity in ORDER:
        mine = outcomes[outcomes["entity"] == entity] if not outcomes.empty else outcomes
        tally = mine["outcome"].value_counts().to_dict() if not mine.empty else {}
        rejected = plan.rejects[plan.rejects["entity"] == entity]
        held = plan.desired.held[plan.desired.held["entity"] == entity]
        rows.append(
            {
                "entity": entity,
                "read": plan.specs[entity].describe(),
                "rows_read": plan.read[entity],
                "in_afas": len(plan.mirror[entity]),
                "rejected": len(rejected) + int(tally.get("rejected", 0)),
                "held": len(held),
                "to_oh": len(plan.desired.records[entity]) if entity in plan.sent else "not sent (option)",
                **{name: int(tally.get(name, 0)) for name in OUTCOMES if name != "rejected"},
            }
        )
    return pd.DataFrame(rows)


def changes_table(outcomes: pd.DataFrame) -> pd.DataFrame:
    """The changes sent (or planned) with their outcome, without the bodies."""
    return outcomes.reindex(columns=CHANGES_TABLE)


def summary_markdown(
    context: dict[str, Any],
    table: pd.DataFrame,
    flex: pd.DataFrame,
    rejects: int,
    without_manager: pd.DataFrame | None = None,
) -> str:
    """The run's summary as markdown."""
    lines = [
        "# hr-sync",
        "",
        f"- absence window from: **{context['window_start']}**",
        f"- mode: **{context['mode']}**"
        + (" (dry run: nothing sent, nothing stored)" if context["dry_run"] else ""),
        f"- salary column: **{context['salary']}**",
        f"- XS options: **{context.get('options', '')}**; sent: **{context.get('sent', '')}**",
        f"- rejected rows: **{rejects}** (see the rejects table)",
        "",
        "## Per entity",
        "",
        markdown_table(table),
        "",
        "## Flex constructions (not supported: held back, not sent)",
        "",
        markdown_table(flex) if not flex.empty else "_none_",
        "",
        "## Departments sent without their manager (the manager is held back)",
        "",
        markdown_table(without_manager)
        if without_manager is not None and not without_manager.empty
        else "_none_",
    ]
    return "\n".join(lines)
