"""Business events of a run, as one line each for the Prefect log (``get_run_logger()`` in the flows).

Plain functions over the frames and outcomes the steps return, so the lines are tested without Prefect:
"read 1,897 registrations from 5 sources", "planned 115 documents, € 48,210.50 (...)", "posted 113,
2 refused: ...", and one WARNING per refused document with AFAS's message, its log reference and what to do.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from decimal import Decimal

import pandas as pd

from tasks.artifacts import amounts_by_kind, euro, hours_line
from tasks.invoice_hours.load import Outcome

DONE = ("posted", "recovered")


def read_summary(read: pd.DataFrame, label: str) -> str:
    """``1,897 registrations from 5 sources for 2026-10-01..2026-10-31``."""
    sources = read["kind"].nunique() if "kind" in read and not read.empty else 0
    return f"{len(read):,} registrations from {sources} source{'s' if sources != 1 else ''} for {label}"


def documents_summary(documents: pd.DataFrame) -> str:
    """``115 documents, € 48,210.50 excl. VAT (customer revenue …, internal charges …)``."""
    if documents.empty:
        return "0 documents (nothing to bill)"
    revenue, internal = amounts_by_kind(documents)
    return (
        f"{len(documents):,} documents, {euro(revenue + internal)} excl. VAT "
        f"(customer revenue {euro(revenue)}, internal charges {euro(internal)})"
    )


def outcomes_summary(outcomes: Sequence[Outcome]) -> str:
    """``posted 113, 2 refused: KPL-1-..., KPL-1-...`` (and uncertain/elsewhere counts when any)."""
    counts = Counter(o.status for o in outcomes)
    posted = sum(counts[s] for s in DONE)
    amount = sum((o.amount for o in outcomes if o.status in DONE), Decimal("0.00"))
    text = f"posted {posted} ({euro(amount)})"
    refused = [o.reference for o in outcomes if o.status == "failed"]
    if refused:
        text += f", {len(refused)} refused: {', '.join(refused[:10])}" + (" ..." if len(refused) > 10 else "")
    others = {s: n for s, n in counts.items() if s not in (*DONE, "failed")}
    if others:
        text += ", " + ", ".join(f"{n} {s}" for s, n in sorted(others.items()))
    return text


def refusal_lines(outcomes: Sequence[Outcome]) -> list[str]:
    """One line per document AFAS refused or did not confirm: message, log reference, what to do."""
    lines = []
    for o in outcomes:
        reference = f" (AFAS log reference {o.profit_log_reference})" if o.profit_log_reference else ""
        if o.status == "failed":
            lines.append(
                f"AFAS refused {o.reference} ({o.kind}, {euro(o.amount)}): {o.message or 'no message'}"
                f"{reference}; fix it in AFAS, then `koppel resend {o.reference}`"
            )
        elif o.status == "uncertain":
            lines.append(
                f"AFAS did not confirm {o.reference} ({o.kind}, {euro(o.amount)}): {o.message or 'no answer'}"
                f"{reference}; the next run looks it up in AFAS before posting anything again"
            )
    return lines


def customer_names(debtors: pd.DataFrame) -> dict[str, str]:
    """AFAS debtor number → name, for the artifacts (``Profit_Debtor``: ``DebtorId``, ``DebtorName``)."""
    if debtors.empty or "DebtorName" not in debtors:
        return {}
    named = debtors.dropna(subset=["DebtorId", "DebtorName"])
    return {str(k).strip(): str(v) for k, v in zip(named["DebtorId"], named["DebtorName"], strict=True)}


def hours_change(priced: pd.DataFrame) -> str:
    """``registered 120.00 h → billed 123.50 h (rounding +2.50 h, minimums +1.00 h)`` of the priced lines."""
    if priced.empty or "billed_minutes" not in priced:
        return hours_line(0, 0, 0, 0)
    registered = int(priced["minutes"].sum())
    billed = int(priced["billed_minutes"].sum())
    minimums = int(priced["minimum_topup"].sum()) if "minimum_topup" in priced else 0
    return hours_line(registered, billed, billed - registered - minimums, minimums)
