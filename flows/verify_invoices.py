"""verify-invoices: read Koppel's posted documents of a period back from AFAS and compare with the ledger.

Differences (a document deleted or doubled in AFAS, a line edited) are published per document in the
``verify-invoices-differences`` artifact and fail the run; nothing is corrected automatically.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

from prefect import flow
from pydantic import Field

from koppel.notifications import notify_failure
from tasks.artifacts import publish_markdown, publish_table
from tasks.invoice_hours.horizon import today
from tasks.verification import verify_documents


class VerificationFailed(Exception):
    """AFAS does not hold what the ledger says was posted."""


def previous_period(on: date | None = None) -> str:
    """``YYYY-MM`` of the month before ``on`` (default: today, Europe/Amsterdam)."""
    last = (on or today()).replace(day=1) - timedelta(days=1)
    return f"{last:%Y-%m}"


Period = Annotated[str | None, Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")]


@flow(name="verify-invoices", validate_parameters=True, on_failure=[notify_failure])
def verify_invoices(period: Period = None) -> dict[str, Any]:
    """Compare every posted document of the period (default the previous month) with what AFAS holds.

    Args:
        period: The AFAS period YYYY-MM to verify. Empty: the previous month.

    """
    period = period or previous_period()
    checked, differences = verify_documents(period)
    verdict = "no differences" if differences.empty else f"**{len(differences)} difference(s)**"
    publish_markdown(
        "verify-invoices-summary",
        f"# Verification of {period}\n\n{checked} posted documents read back from AFAS: {verdict}.",
        "AFAS against the ledger",
    )
    publish_table("verify-invoices-differences", differences, "Documents AFAS holds differently")
    if not differences.empty:
        raise VerificationFailed(f"{len(differences)} difference(s) between AFAS and the ledger in {period}")
    return {"period": period, "checked": checked, "differences": differences}
