"""All billing steps in order, as one plain function: for tests, benchmarks and as the flow's reading guide.

The flow (``flows/invoice_hours.py``) runs the same steps as separate tasks; this module fixes their order
and wiring in one place: validate → exclude → join → price → plan lines → reconcile → documents → buckets.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from schemas.billing import Buckets, BundleDraws, Exclusions, PlannedDocuments, Rejects
from schemas.registrations import RawRegistrations
from tasks.invoice_hours.buckets import assemble_buckets, conservation
from tasks.invoice_hours.config import BillingConfig
from tasks.invoice_hours.join import Masters, join_masters
from tasks.invoice_hours.plan import build_documents, document_order, move_into_document_order, plan_lines
from tasks.invoice_hours.reconcile import Reconciled, Scope, open_charges, reconcile
from tasks.invoice_hours.rules import price, split_excluded, split_out_of_scope
from tasks.invoice_hours.validate import split_valid
from tasks.invoice_hours.window import split_outside_window

__all__ = ["PRICED_COLUMNS", "BillingRun", "Masters", "Scope", "bill"]

PRICED_COLUMNS = ["registration_id", "minutes", "billed_minutes", "minimum_topup"]


@dataclass(frozen=True)
class BillingRun:
    """The frames of one billing run that later steps, reports and tests read, and the conservation result.

    Intermediates nobody reads (the valid, kept, joined and priced registrations and their planned lines)
    are released as soon as the next step has them; ``reconciled.to_bill`` is ``document_lines`` (the
    lines to post, sorted, with their document reference) so that a million lines are held once.
    ``priced`` keeps only ``PRICED_COLUMNS`` of the priced registrations, what ``events.hours_change``
    reads; the full priced and planned frames (some 75 columns, ~0.5 GB at a million) are not kept.
    """

    rejects: pd.DataFrame
    excluded: pd.DataFrame
    priced: pd.DataFrame
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
    state: pd.DataFrame | None = None,
    posted: pd.DataFrame | None = None,
    bundles: pd.DataFrame | None = None,
    prior_draws: pd.DataFrame | None = None,
    scope: Scope | None = None,
) -> BillingRun:
    """Plan the billing of ``read`` (a docs/contracts.md §1 frame) against AFAS and the ledger.

    ``state``: ``store.ledger.billed_state`` (versions, the status of each registration's latest document);
    ``posted``: ``store.ledger.posted_lines`` (what AFAS holds); ``scope``: what the read covered.
    """
    scope = scope or Scope(regular=False)
    config = config.with_debtor_vat(masters.debtors)  # VAT code per debtor from its AFAS VAT duty
    valid, invalid = split_valid(read, config.max_minutes_per_registration)
    valid, outside = split_outside_window(valid, *scope.window) if scope.window else (valid, None)
    kept, excluded = split_excluded(valid, config, ignore)
    del valid
    joined, unjoined = join_masters(kept, masters, config)
    del kept
    joined, elsewhere = split_out_of_scope(joined, config)
    excluded = combine_excluded([excluded, elsewhere])
    opened = open_charges(posted)
    history = _ticket_history(opened, read, scope, config)
    billed_ids = opened["registration_id"]
    priced, unpriced, draws = price(
        joined, config, masters.sales_prices, bundles, prior_draws, billed_ids, history
    )
    del joined
    lines = plan_lines(priced, config)
    priced = priced[[column for column in PRICED_COLUMNS if column in priced]].copy()
    rejects = combine_rejects([invalid, unjoined, unpriced])
    not_billable = pd.concat(
        [
            rejects[["registration_id", "minutes", "reason"]].assign(bucket_name="rejected"),
            excluded[["registration_id", "minutes", "reason"]].assign(bucket_name="excluded"),
        ],
        ignore_index=True,
    )
    reconciled = reconcile(
        lines,
        not_billable,
        config,
        state=state,
        posted=posted,
        scope=scope,
        periods=masters.periods,
        read_ids=read["registration_id"],
        draws=prior_draws if prior_draws is not None and "registration_id" in prior_draws else None,
    )
    del lines  # reconciled.to_bill holds the lines to post
    documents, document_lines, reconciled = _documents(reconciled, config)
    buckets = assemble_buckets(
        rejects=[rejects],
        excluded=excluded,
        billed_before=reconciled.billed_before,
        to_bill=document_lines,
        decided=reconciled.decided,
        outside=outside,
    )
    check_outputs(documents, buckets, rejects, excluded, draws)
    return BillingRun(
        rejects=rejects,
        excluded=excluded,
        priced=priced,
        reconciled=reconciled,
        documents=documents,
        document_lines=document_lines,
        draws=draws,
        buckets=buckets,
        conservation=conservation(read, buckets),
    )


def _documents(
    reconciled: Reconciled, config: BillingConfig
) -> tuple[pd.DataFrame, pd.DataFrame, Reconciled]:
    """``build_documents`` of the lines to bill, moved into document order column by column.

    ``bill`` holds the lines nowhere else, so each column is released once it is copied: at a million lines
    the two full copies ``build_documents`` would hold at once were the plan's peak memory.
    """
    lines = reconciled.to_bill
    if lines.empty:
        documents, document_lines = build_documents(lines, config)
        return documents, document_lines, replace(reconciled, to_bill=document_lines)
    reconciled = replace(reconciled, to_bill=lines.iloc[0:0].copy())  # a view would keep every column
    documents, keys, order = document_order(lines, config)
    document_lines = move_into_document_order(lines, keys, order)
    return documents, document_lines, replace(reconciled, to_bill=document_lines)


def _ticket_history(
    opened: pd.DataFrame, read: pd.DataFrame, scope: Scope, config: BillingConfig
) -> pd.DataFrame | None:
    """Open charges of registrations not read that per-ticket rules count (see ``rules.price``).

    A regular run read everything in its window, so only charges dated before it count; a backfill read
    part of the horizon, so every charge of the ticket not read counts.
    """
    if opened.empty or "ticket_id" not in opened:
        return None
    others = opened[~opened["registration_id"].isin(read["registration_id"].dropna())]
    if scope.regular and scope.window is not None:
        start = pd.Timestamp(scope.window[0]).tz_convert(config.timezone).date()
        others = others[pd.to_datetime(others["entry_date"]).dt.date < start]
    return others[others["ticket_id"].notna()]


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
    # ``inplace``: these schemas coerce nothing, so the frames are only read; without it pandera first
    # deep-copies each frame (a million bucket rows at the run's peak memory).
    if not documents.empty:
        PlannedDocuments.validate(documents, inplace=True)
    Buckets.validate(buckets, inplace=True)
    Rejects.validate(rejects, inplace=True)
    Exclusions.validate(excluded, inplace=True)
    if not draws.empty:
        BundleDraws.validate(draws, inplace=True)


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
