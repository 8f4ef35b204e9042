"""Create missing customers while invoicing: the create-missing-debtors step inside invoice-hours.

With ``[create_debtors] while_invoicing = true`` (and the guard ``enabled = true``), invoice-hours runs the
same guarded, exactly-once step as the create-missing-debtors flow (``tasks/company_sync/debtors.py``) for
the branches of the registrations it has just read, before planning. The registrations of a branch that got
(or was linked to) a debtor then carry that debtor number, and the AFAS masters are read afterwards, so the
hours bill in the same run instead of being rejected as ``unknown customer``.

Exactly once across crashes holds as in the flow: the organisation number derived from the branch id is
kept by AFAS on the debtor, so a rerun after a crash between the AFAS insert and the TOPdesk write-back
finds the debtor (``link``) instead of creating a second one.
"""

from __future__ import annotations

import pandas as pd

from tasks.company_sync.debtors import billable_branches
from tasks.company_sync.fields import text


def billable_of(registrations: pd.DataFrame) -> pd.DataFrame:
    """Per branch: minutes and registrations with a positive duration (``debtors.billable_branches``)."""
    return billable_branches(registrations.reindex(columns=["branch_id", "minutes"]))


def relink(registrations: pd.DataFrame, outcomes: pd.DataFrame) -> pd.DataFrame:
    """``registrations`` with ``customer_number`` = the new debtor of every branch written back (``done``)."""
    if outcomes.empty:
        return registrations
    done = outcomes[outcomes["status"].eq("done")]
    numbers = {text(b): text(d) for b, d in zip(done["branch_id"], done["debtor_number"], strict=True)}
    if not numbers:
        return registrations
    branch = registrations["branch_id"].map(lambda v: text(v))
    hit = branch.isin(list(numbers)).to_numpy()
    out = registrations.copy()
    out.loc[hit, "customer_number"] = branch[hit].map(numbers).to_numpy()
    return out
