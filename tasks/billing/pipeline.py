"""All billing steps in order, as one plain function: for tests, benchmarks and as the flow's reading guide.

The flow (``flows/invoice_hours.py``) runs the same steps as separate tasks; this module fixes their order
and wiring in one place: validate → exclude → join → price → plan lines → reconcile → documents → buckets.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from schemas.billing import Buckets, BundleDraws, Exclusions, PlannedDocuments, Rejects
from schemas.registrations import RawRegistrations
from tasks.billing.buckets import assemble_buckets, conservation
from tasks.billing.config import BillingConfig
from tasks.billing.join import Masters, join_masters
from tasks.billing.plan import build_documents, plan_lines
from tasks.billing.reconcile import Reconciled, reconcile
from tasks.billing.rules import price, split_excluded, split_out_of_scope
from tasks.billing.validate import split_valid
from tasks.billing.window import split_outside_window

__all__ = ["BillingRun", "Masters", "bill"]


@dataclass(frozen=True)
class BillingRun:
    """Every intermediate frame of one billing run, and the conservation result."""

    valid: pd.DataFrame
    rejects: pd.DataFrame
    excluded: pd.DataFrame
    priced: pd.DataFrame
    lines: pd.DataFrame
    reconciled: Reconciled
    documents: pd.DataFrame
    document_lines: pd.DataFrame
    draws: pd.DataFrame
    buckets: pd.DataFrame
    conservation: dict[str, Any]


def bill(
    read: pd.DataFrame,
    masters: Masters,
    config: BillingConfig,
    *,
    ignore: pd.DataFrame | None = None,
    ledger: pd.DataFrame | None = None,
    bundles: pd.DataFrame | None = None,
    prior_draws: pd.DataFrame | None = None,
    run_range: tuple[datetime, datetime] | None = None,
) -> BillingRun:
    """Plan the billing of ``read`` (a docs/contracts.md §1 frame) against AFAS and the ledger state."""
    valid, invalid = split_valid(read, config.max_minutes_per_registration)
    valid, outside = split_outside_window(valid, *run_range) if run_range else (valid, None)
    kept, excluded = split_excluded(valid, config, ignore)
    joined, unjoined = join_masters(kept, masters, config)
    joined, elsewhere = split_out_of_scope(joined, config)
    excluded = combine_excluded([excluded, elsewhere])
    billed_ids = None if ledger is None else ledger.loc[ledger["status"].eq("billed"), "registration_id"]
    priced, unpriced, draws = price(joined, config, masters.sales_prices, bundles, prior_draws, billed_ids)
    lines = plan_lines(priced, config)
    reconciled = reconcile(lines, ledger, config, read["registration_id"], run_range, masters.periods)
    documents, document_lines = build_documents(reconciled.to_bill, config)
    rejects = combine_rejects([invalid, unjoined, unpriced])
    buckets = assemble_buckets(
        rejects=[rejects],
        excluded=excluded,
        billed_before=reconciled.billed_before,
        to_bill=document_lines,
        moved=reconciled.moved,
        outside=outside,
    )
    check_outputs(documents, buckets, rejects, excluded, draws)
    return BillingRun(
        valid=valid,
        rejects=rejects,
        excluded=excluded,
        priced=priced,
        lines=lines,
        reconciled=reconciled,
        documents=documents,
        document_lines=document_lines,
        draws=draws,
        buckets=buckets,
        conservation=conservation(read, buckets),
    )


def check_outputs(
    documents: pd.DataFrame,
    buckets: pd.DataFrame,
    rejects: pd.DataFrame,
    excluded: pd.DataFrame,
    draws: pd.DataFrame,
) -> None:
    """Post-conditions before anything is claimed: the small frames against their schemas.

    The per-registration line frames (``BillableLines``, ``DocumentLines``) are checked in the tests:
    their per-element ``Decimal`` checks cost about a second per 250,000 lines.
    """
    if not documents.empty:
        PlannedDocuments.validate(documents)
    Buckets.validate(buckets)
    Rejects.validate(rejects)
    Exclusions.validate(excluded)
    if not draws.empty:
        BundleDraws.validate(draws)


def combine_excluded(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Exclusions before and after the join in one frame: the §1 columns plus ``reason`` and ``step``."""
    return combine_rejects(frames)


def combine_rejects(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Rejects of every step in one frame: the §1 columns plus ``reason`` and ``step``."""
    columns = [*RawRegistrations.to_schema().columns, "reason", "step"]
    parts = [frame[columns] for frame in frames if not frame.empty]
    if not parts:
        return frames[0][columns].iloc[0:0]
    return pd.concat(parts, ignore_index=True)
