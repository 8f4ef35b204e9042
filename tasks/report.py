"""The run report: final buckets after loading, the summary markdown and the tables shown as artifacts."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pandas as pd

from schemas.kinds import NUMBER_KEYS
from tasks.artifacts import amounts_markdown, markdown_table
from tasks.load import Outcome

FAILED_STATUSES = {"failed", "uncertain", "refused"}
ELSEWHERE_STATUSES = {"claimed-elsewhere", "existing-claimed", "existing-uncertain", "existing-failed"}


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


def settle_buckets(buckets: pd.DataFrame, outcomes: Sequence[Outcome]) -> pd.DataFrame:
    """Move registrations of documents that did not post into ``failed`` or ``billed before``.

    Failed or uncertain documents → ``failed`` (with AFAS's message); documents another run claimed or
    holds → ``billed before`` (the other run bills them); re-planned-away registrations likewise.
    """
    buckets = buckets.copy()
    moves = pd.DataFrame([_move(o) for o in outcomes], columns=["reference", "bucket", "reason"])
    moves = moves.dropna(subset=["bucket"]).drop_duplicates("reference").set_index("reference")
    hit = buckets["reference"].isin(moves.index)
    buckets.loc[hit, "bucket"] = buckets.loc[hit, "reference"].map(moves["bucket"])
    buckets.loc[hit, "reason"] = buckets.loc[hit, "reference"].map(moves["reason"])
    held = {rid: o.message for o in outcomes if o.status == "held" for rid in o.registration_ids}
    if held:
        hit = buckets["registration_id"].isin(list(held))
        buckets.loc[hit, "bucket"] = "failed"
        buckets.loc[hit, "reason"] = "held: " + buckets.loc[hit, "registration_id"].map(held)
    taken = {rid for o in outcomes for rid in o.conflicts}
    if taken:
        moved = buckets["registration_id"].isin(taken) & buckets["bucket"].isin(["invoiced", "internal"])
        buckets.loc[moved, "bucket"] = "billed before"
        buckets.loc[moved, "reason"] = "claimed by a concurrent run"
    return buckets


def _move(outcome: Outcome) -> tuple[str, str | None, str | None]:
    """Where the registrations of a document go when it did not post in this run (None: stay)."""
    if outcome.status in FAILED_STATUSES:
        return outcome.reference, "failed", f"{outcome.status}: {outcome.message}"
    if outcome.status == "held":
        return outcome.reference, None, None
    if outcome.status in ELSEWHERE_STATUSES or outcome.status.startswith("existing-"):
        return outcome.reference, "billed before", f"document {outcome.reference} already {outcome.status}"
    return outcome.reference, None, None


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
                "hours": (Decimal(int(outcome.minutes)) / 60).quantize(Decimal("0.01")),
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
    if context.get("notes"):  # sources, completeness (tasks/extract.py)
        lines += ["", *context["notes"]]
    if not failures.empty:
        lines += ["", "## Failures", "", markdown_table(failures[["reference", "status", "message"]])]
    return "\n".join(lines)
