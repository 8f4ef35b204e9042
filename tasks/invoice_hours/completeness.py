"""Completeness against TOPdesk's own totals: per incident read, do its registrations add up to it.

The connector reads, for every incident with a registration in the run, TOPdesk's totals (minutes:
``timeSpent`` and, where given, ``timeSpentFirstLine``/``timeSpentSecondLine``/``timeSpentPartial``/
``timeSpentLinkedPartials``) and the minutes of ALL that incident's registrations, whatever their date.
The incident's own total is the sum of its line totals where given, else ``timeSpent`` minus its linked
partials. A ticket whose registrations do not add up to it (or has registrations that cannot be read as
whole minutes) is listed with the difference.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

LINE_TOTALS = ("timeSpentFirstLine", "timeSpentSecondLine", "timeSpentPartial")
COLUMNS = [
    "ticket_id", "ticket_number", "topdesk_minutes", "registered_minutes", "unaccounted_minutes",
    "unreadable_rows", "reason",
]  # fmt: skip


def own_total(totals: pd.DataFrame) -> pd.Series:
    """TOPdesk's total of each incident's own registrations (minutes), ``<NA>`` when it gives none."""
    lines = totals[list(LINE_TOTALS)].apply(pd.to_numeric, errors="coerce")
    any_line = lines.notna().any(axis=1)
    overall = pd.to_numeric(totals["timeSpent"], errors="coerce")
    linked = pd.to_numeric(totals["timeSpentLinkedPartials"], errors="coerce").fillna(0)
    return lines.sum(axis=1).where(any_line, overall - linked).astype("Float64")


def mismatches(totals: pd.DataFrame) -> pd.DataFrame:
    """Tickets whose registrations do not add up to TOPdesk's total, with the difference."""
    if totals.empty:
        return pd.DataFrame(columns=COLUMNS)
    expected = own_total(totals)
    registered = pd.to_numeric(totals["registered_minutes"]).astype("Int64")
    odd = pd.to_numeric(totals["unreadable_rows"]).astype("Int64")
    difference = (expected - registered).round().astype("Int64")
    wrong = (difference.fillna(1) != 0) | (odd > 0)
    reason = pd.Series("registrations add up to a different total", index=totals.index)
    reason = reason.mask(expected.isna(), "TOPdesk gives no total")
    reason = reason.mask(odd > 0, odd.astype("str") + " registration(s) not in whole minutes")
    frame = pd.DataFrame(
        {
            "ticket_id": totals["ticket_id"],
            "ticket_number": totals["ticket_number"],
            "topdesk_minutes": expected.round().astype("Int64"),
            "registered_minutes": registered,
            "unaccounted_minutes": difference,
            "unreadable_rows": odd,
            "reason": reason,
        }
    )
    return frame[wrong.to_numpy()].sort_values("ticket_number", na_position="last").reset_index(drop=True)


def completeness_summary(totals: pd.DataFrame, found: pd.DataFrame) -> dict[str, Any]:
    """Counts and the summary line."""
    unaccounted = int(found["unaccounted_minutes"].fillna(0).abs().sum()) if not found.empty else 0
    odd = int((pd.to_numeric(found["unreadable_rows"]) > 0).sum()) if not found.empty else 0
    line = (
        f"{len(found):,} tickets whose registrations do not add up to TOPdesk's total: "
        f"{unaccounted:,} minutes unaccounted (of {len(totals):,} incidents checked)"
    )
    if odd:  # their minutes are read and rejected (not lost); the difference is what TOPdesk counted for them
        line += (
            f"; {odd:,} of them hold registrations not in whole minutes, rejected as a unit mismatch "
            "(see the rejects)"
        )
    return {
        "checked": len(totals),
        "tickets": len(found),
        "unaccounted_minutes": unaccounted,
        "tickets_with_unreadable_rows": odd,
        "line": line,
    }
