"""The run report: final buckets after loading, the summary markdown and the tables shown as artifacts."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pandas as pd

from schemas.kinds import NUMBER_KEYS
from tasks.artifacts import amounts_markdown, markdown_table
from tasks.invoice_hours.load import FAILED_STATUSES, Outcome
from tasks.invoice_hours.money import minutes_to_hours


def outcomes_frame(outcomes: Sequence[Outcome]) -> pd.DataFrame:
    """One row per document outcome."""
    columns = [
        "reference",
        "kind",
        "status",
        "minutes",
        "amount",
        "afas_keys",
        "message",
        "profit_log_reference",
        "invoice_number",
    ]
    rows = [{c: getattr(o, c) for c in columns} for o in outcomes]
    return pd.DataFrame(rows, columns=columns)


def documents_table(documents: pd.DataFrame, outcomes: Sequence[Outcome]) -> pd.DataFrame:
    """Debtor, project, hours, amount, AFAS number and status per document, as users read them."""
    result = outcomes_frame(outcomes)
    if documents.empty and result.empty:
        return pd.DataFrame(
            columns=[
                "reference",
                "kind",
                "debtor",
                "project",
                "period",
                "hours",
                "amount",
                "afas_number",
                "status",
                "message",
            ]
        )
    planned = documents.set_index("reference") if not documents.empty else pd.DataFrame()
    rows = []
    for outcome in result.itertuples(index=False):
        doc = planned.loc[outcome.reference] if outcome.reference in planned.index else None
        rows.append(
            {
                "reference": outcome.reference,
                "kind": outcome.kind,
                "debtor": "" if doc is None else doc["debtor_id"],
                "project": "" if doc is None else doc["project_id"],
                "period": "" if doc is None else doc["period"],
                "hours": minutes_to_hours(outcome.minutes),
                "amount": outcome.amount,
                "afas_number": afas_number(outcome.afas_keys, outcome.invoice_number),
                "status": outcome.status,
                "message": " ".join(filter(None, [outcome.message, outcome.profit_log_reference])),
            }
        )
    return pd.DataFrame(rows)


def afas_number(keys: dict[str, Any], invoice_number: str) -> str:
    """The number AFAS gave the document (order, entry or realisation), or Koppel's invoice number."""
    for name in NUMBER_KEYS:
        for key, value in (keys or {}).items():
            if key.casefold() == name.casefold() and value:
                return str(value)
    return invoice_number or ""


def planned_outcomes(documents: pd.DataFrame) -> list[Outcome]:
    """Outcomes of a dry run: every document planned, nothing posted."""
    return [
        Outcome(
            reference=d["reference"],
            kind=d["kind"],
            status="dry-run",
            minutes=int(d["minutes"]),
            amount=d["amount"],
        )
        for d in documents.to_dict(orient="records")
    ]


def summary_markdown(context: dict[str, Any], result: dict[str, Any], table: pd.DataFrame) -> str:
    """The run summary shown first in the Prefect UI."""
    buckets = result["buckets"]
    rows = "\n".join(
        f"| {name} | {b['count']:,} | {b['minutes']:,} | {Decimal(b['minutes']) / 60:,.2f} |"
        for name, b in buckets.items()
    )
    failures = table[table["status"].isin(FAILED_STATUSES)] if not table.empty else table
    lines = [
        f"# invoice-hours {context['window']}",
        "",
        f"Mode per administration: {context['modes']}. Dry run: **{context['dry_run']}**.",
        "",
        f"**Conservation:** {result['line']}",
        "",
        f"**Hours:** {context.get('hours_line', '')}",
        "",
        "| bucket | registrations | minutes | hours |",
        "|---|---:|---:|---:|",
        f"| read | {result['read']['count']:,} | {result['read']['minutes']:,} | "
        f"{Decimal(result['read']['minutes']) / 60:,.2f} |",
        rows,
        "",
        f"Documents: {len(table)}.",
        "",
        amounts_markdown(table),
    ]
    if context.get("approval"):
        lines += ["", context["approval"]]
    if context.get("writeback"):  # tasks/invoice_hours/writeback_load.py
        lines += ["", context["writeback"]]
    if context.get("notes"):  # sources, completeness (tasks/invoice_hours/extract.py)
        lines += ["", *context["notes"]]
    if not failures.empty:
        lines += ["", "## Failures", "", markdown_table(failures[["reference", "status", "message"]])]
    return "\n".join(lines)
