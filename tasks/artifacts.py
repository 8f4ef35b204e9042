"""Prefect artifacts for every run: markdown summaries, tables and progress.

Table artifacts are JSON: pandas Timestamps, Decimals and NaN do not survive that, so every frame is turned
into plain strings/numbers first. Artifact keys may only hold lowercase letters, digits and dashes.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import pandas as pd
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

MAX_TABLE_ROWS = 500  # the UI shows tables, not data dumps; the full set stays in the store


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
        return f"{value:.2f}" if value == value.quantize(Decimal("0.01")) else str(value)
    if isinstance(value, pd.Timestamp | datetime | date):
        return value.isoformat()
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
        self._id = create_progress_artifact(progress=0.0, key=artifact_key(key), description=description)

    def update(self, done: int, total: int) -> None:
        """Set the progress to ``done`` of ``total``."""
        percent = 100.0 if total == 0 else round(100.0 * done / total, 1)
        update_progress_artifact(artifact_id=self._id, progress=percent)
