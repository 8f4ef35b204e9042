"""Prefect artifacts for every run: markdown summaries, tables and progress.

Table artifacts are JSON: pandas Timestamps, Decimals and NaN do not survive that, so every frame is turned
into plain strings/numbers first. Artifact keys may only hold lowercase letters, digits and dashes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import pandas as pd
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from koppel.clock import AMSTERDAM
from koppel.dispatch import synchronous
from tasks.invoice_hours.money import CENT, minutes_to_hours, round_cents

MAX_TABLE_ROWS = 500  # the UI shows tables, not data dumps; the full set stays in the store
INTERNAL_KINDS = {"internal_entry"}  # documents that charge departments, not customers
POSTED = {"posted", "recovered"}
REFUSED = {"failed"}
UNCERTAIN = {"uncertain", "possibly-deleted"}


def artifact_key(*parts: object) -> str:
    """A valid artifact key from free text: lowercase, dashes, no other characters."""
    text = "-".join(str(part) for part in parts if part not in (None, ""))
    return re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]+", "-", text.lower())).strip("-")


def plain(value: Any) -> Any:
    """A JSON-friendly cell: Decimals as fixed-point strings, timestamps as ISO text, NaN/NA as empty."""
    if value is None or value is pd.NaT:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    if isinstance(value, Decimal):
        return f"{value:.2f}" if value == value.quantize(CENT) else str(value)
    if isinstance(value, pd.Timestamp | datetime | date):
        return finance_date(value)
    if isinstance(value, UUID):
        return str(value)
    if value is pd.NA:
        return ""
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def table_rows(frame: pd.DataFrame, limit: int = MAX_TABLE_ROWS) -> list[dict[str, Any]]:
    """Rows of ``frame`` (at most ``limit``) with every cell made JSON-friendly."""
    head = frame.head(limit)
    return [{str(col): plain(val) for col, val in row.items()} for row in head.to_dict(orient="records")]


def publish_table(key: str, frame: pd.DataFrame, description: str) -> None:
    """Create a table artifact; says in the description when rows were left out."""
    shown = min(len(frame), MAX_TABLE_ROWS)
    if len(frame) > shown:
        description = f"{description} (first {shown} of {len(frame)} rows)"
    create_table_artifact(key=artifact_key(key), table=table_rows(frame), description=description)


def publish_markdown(key: str, markdown: str, description: str) -> None:
    """Create a markdown artifact."""
    create_markdown_artifact(key=artifact_key(key), markdown=markdown, description=description)


def markdown_table(frame: pd.DataFrame, limit: int = 50) -> str:
    """A GitHub-style markdown table of the first ``limit`` rows (cells escaped for pipes)."""
    if frame.empty:
        return "_none_"
    rows = table_rows(frame, limit)
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(str(r[str(c)]).replace("|", "\\|") for c in frame.columns) + " |" for r in rows]
    more = [f"\n_{len(frame) - limit} more rows not shown_"] if len(frame) > limit else []
    return "\n".join([header, rule, *body, *more])


class Progress:
    """A progress artifact that a long step updates as it goes."""

    def __init__(self, key: str, description: str) -> None:
        """Create the artifact at 0 %."""
        created = create_progress_artifact(progress=0.0, key=artifact_key(key), description=description)
        self._id = synchronous(created)

    def update(self, done: int, total: int, description: str | None = None) -> None:
        """Set the progress to ``done`` of ``total`` (and say what is happening now)."""
        percent = 100.0 if total == 0 else round(100.0 * done / total, 1)
        update_progress_artifact(artifact_id=self._id, progress=percent, description=description)


class Phases:
    """A progress artifact over the phases of a run: "phase 2 of 5: reading AFAS master data"."""

    def __init__(self, key: str, phases: list[str]) -> None:
        """Create the artifact at the first phase."""
        self._phases = phases
        self._progress = Progress(key, self._text(0))

    def _text(self, index: int) -> str:
        if index >= len(self._phases):
            return f"done: {len(self._phases)} of {len(self._phases)} phases"
        return f"phase {index + 1} of {len(self._phases)}: {self._phases[index]}"

    def reached(self, phase: str) -> None:
        """Mark the phases before ``phase`` done and ``phase`` as the current one."""
        index = self._phases.index(phase)
        self._progress.update(index, len(self._phases), self._text(index))

    def done(self) -> None:
        """Every phase done."""
        self._progress.update(len(self._phases), len(self._phases), self._text(len(self._phases)))


# --- formatting for finance: one date format, euros, hours ----------------------------------------------


def finance_date(value: date | datetime | pd.Timestamp) -> str:
    """One format everywhere: ``2026-10-05`` for a day, ``2026-10-05 14:03`` (Amsterdam time) for a moment."""
    if isinstance(value, datetime):  # pd.Timestamp is a datetime
        if value.tzinfo is None:  # naive timestamps in Koppel are UTC (the store writes them so)
            value = value.replace(tzinfo=ZoneInfo("UTC"))
        return value.astimezone(AMSTERDAM).strftime("%Y-%m-%d %H:%M")
    return value.strftime("%Y-%m-%d")


def euro(amount: Decimal | int | None) -> str:
    """``€ 1,234.56`` (``€ -12.00`` for credits)."""
    return f"€ {round_cents(Decimal(amount or 0)):,}"


def hours(minutes: int) -> str:
    """``12.50 h``."""
    return f"{minutes_to_hours(minutes):,} h"


def amounts_by_kind(documents: pd.DataFrame) -> tuple[Decimal, Decimal]:
    """Customer revenue and internal charges of ``documents`` (columns ``kind``, ``amount``)."""
    revenue, internal = Decimal("0.00"), Decimal("0.00")
    for kind, amount in zip(documents["kind"], documents["amount"], strict=True):
        if isinstance(amount, Decimal):
            if kind in INTERNAL_KINDS:
                internal += amount
            else:
                revenue += amount
    return revenue, internal


def amounts_markdown(table: pd.DataFrame) -> str:
    """Posted, refused, uncertain and planned amounts, customer revenue apart from internal charges."""
    if table.empty:
        return "No documents."
    groups = [
        ("posted", table["status"].isin(POSTED)),
        ("refused by AFAS", table["status"].isin(REFUSED)),
        ("uncertain", table["status"].isin(UNCERTAIN)),
        ("planned (dry run)", table["status"].eq("dry-run")),
    ]
    rows = [
        "| documents | count | customer revenue | internal charges |",
        "|---|---:|---:|---:|",
    ]
    for label, mask in groups:
        if mask.any():
            revenue, internal = amounts_by_kind(table[mask])
            rows.append(f"| {label} | {int(mask.sum()):,} | {euro(revenue)} | {euro(internal)} |")
    return "Amounts excl. VAT:\n\n" + "\n".join(rows)


def hours_line(registered_minutes: int, billed_minutes: int, rounding: int, minimums: int) -> str:
    """``registered 120.00 h → billed 123.50 h (rounding +2.00 h, minimums +1.50 h)``."""
    return (
        f"registered {hours(registered_minutes)} → billed {hours(billed_minutes)} "
        f"(rounding {_signed(rounding)}, minimums {_signed(minimums)})"
    )


def _signed(minutes: int) -> str:
    return ("+" if minutes >= 0 else "-") + hours(abs(minutes))


def totals_row(frame: pd.DataFrame, label_column: str, sum_columns: list[str]) -> pd.DataFrame:
    """``frame`` with a last row ``Total`` summing ``sum_columns`` (Decimals stay Decimals)."""
    if frame.empty:
        return frame
    total: dict[str, Any] = {column: "" for column in frame.columns}
    total[label_column] = "Total"
    for column in sum_columns:
        values = [v for v in frame[column] if isinstance(v, Decimal | int | float) and not pd.isna(v)]
        total[column] = sum(values, Decimal("0.00") if any(isinstance(v, Decimal) for v in values) else 0)
    return pd.concat([frame, pd.DataFrame([total])], ignore_index=True)


def resend_hint(reference: str) -> str:
    """What finance does about a refused document."""
    return f"fix in AFAS, then `koppel resend {reference}`"


def customer_text(number: Any, names: Mapping[str, str]) -> str:
    """``Bakkerij De Vries (10042)``, or the number alone when AFAS has no name for it."""
    if number is None or (isinstance(number, float) and math.isnan(number)) or str(number) == "":
        return ""
    name = names.get(str(number))
    return f"{name} ({number})" if name else str(number)


def finance_documents(table: pd.DataFrame, names: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The documents table as finance reads it: status and what to do first, customer by name, totals row."""
    if table.empty:
        return table
    names = names or {}
    todo = [
        f"{message}; {resend_hint(reference)}" if status in REFUSED else message
        for status, message, reference in zip(
            table["status"], table["message"], table["reference"], strict=True
        )
    ]
    frame = pd.DataFrame(
        {
            "status": table["status"],
            "message": todo,
            "customer": [customer_text(d, names) for d in table["debtor"]],
            "reference": table["reference"],
            "kind": table["kind"],
            "period": table["period"],
            "project": table["project"],
            "hours": table["hours"],
            "amount": table["amount"],
            "afas_number": table["afas_number"],
        }
    )
    return totals_row(frame, "status", ["hours", "amount"])


def finance_registrations(frame: pd.DataFrame, names: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Rejected or excluded registrations: reason first, customer by name and number, ticket, hours, total."""
    names = names or {}
    result = pd.DataFrame(
        {
            "reason": frame["reason"],
            "customer": [customer_text(c, names) for c in frame["customer_number"]],
            "ticket_number": frame["ticket_number"],
            "entry_date": frame["entry_date_raw"],
            "hours": [minutes_to_hours(m) if not pd.isna(m) else pd.NA for m in frame["minutes"]],
            "operator": frame["operator_name"],
            "kind": frame["kind"],
            "registration_id": frame["registration_id"],
        }
    )
    return totals_row(result, "reason", ["hours"])
