"""The completeness check against TOPdesk's own totals, as plain functions."""

from __future__ import annotations

import pandas as pd

from tasks.invoice_hours.completeness import completeness_summary, mismatches


def totals(*rows: tuple[str, int, int, int]) -> pd.DataFrame:
    """(ticket, TOPdesk's first-line total, minutes of readable registrations, unreadable rows)."""
    return pd.DataFrame(
        [
            {
                "ticket_id": ticket,
                "ticket_number": f"I {ticket}",
                "registered_minutes": registered,
                "unreadable_rows": odd,
                "timeSpent": own,
                "timeSpentFirstLine": own,
                "timeSpentSecondLine": 0,
                "timeSpentPartial": 0,
                "timeSpentLinkedPartials": 0,
            }
            for ticket, own, registered, odd in rows
        ]
    )


def test_a_ticket_whose_registrations_add_up_is_not_listed() -> None:
    frame = totals(("1", 60, 60, 0), ("2", 90, 75, 0), ("3", 40, 0, 1))
    found = mismatches(frame)
    assert list(found["ticket_id"]) == ["2", "3"]
    assert list(found["unaccounted_minutes"]) == [15, 40]
    assert found.set_index("ticket_id").loc["3", "reason"] == "1 registration(s) not in whole minutes"


def test_the_summary_says_which_differences_come_from_rejected_unit_mismatches() -> None:
    frame = totals(("1", 60, 60, 0), ("2", 90, 75, 0), ("3", 40, 0, 1))
    summary = completeness_summary(frame, mismatches(frame))
    assert summary["tickets"] == 2 and summary["unaccounted_minutes"] == 55
    assert summary["tickets_with_unreadable_rows"] == 1
    assert summary["line"] == (
        "2 tickets whose registrations do not add up to TOPdesk's total: 55 minutes unaccounted "
        "(of 3 incidents checked); 1 of them hold registrations not in whole minutes, rejected as a unit "
        "mismatch (see the rejects)"
    )
    clean = totals(("1", 60, 60, 0))
    assert completeness_summary(clean, mismatches(clean))["line"].startswith("0 tickets")
