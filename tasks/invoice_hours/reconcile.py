"""Step 6: the diff between what AFAS should hold per registration and what it holds (docs/invoice-hours.md).

**Desired state** per registration read: a planned charge line (``plan_lines``) or *not billable*
(excluded or rejected, with the reason). **Billed state**: the *open* charges of the registration among the
ledger lines of posted documents (``store.ledger.posted_lines``): a charge is open until a posted credit
with the same fields hash negates it. Lines of claimed, uncertain, failed or released documents are not
billed state; a registration whose latest claim is on such a document is *pending* and planned for nothing
until that document settles.

The diff, per registration:

- desired charge, one open charge with the same hash → *billed before*;
- desired charge, no open charge → a new charge (*invoiced* / *internal*);
- desired charge, another open charge → an exact reversal of the open charge + the new charge in the same run
  (*re-charged*); also when the customer changed (the two go to different documents);
- not billable, open charge → reversal (*reversed after billing*) or, with ``after_billing = "keep"``, nothing
  (*kept after billing*); either way with the exclusion's or reject's reason;
- not read, open charge, entry date inside what a regular run read → reversal when the deletion is certain
  (*reversed (deleted)*), else *possibly deleted, not credited* (checked again next run).

A **reversal** is built only from the ledger's record of the posted line: administration, kind (connector),
debtor, project, item, quantity, unit price, amount, accounts, period, all negated exactly. A **backfill**
(explicit dates) never reverses: it reads part of the horizon only, so registrations it would correct are
left for the next regular run (*left for the regular run*).

Versions: every line carries the ``registration_state`` version read. A reversal and its charge sharing one
document key go in one (correction) document with that version; otherwise the reversal's document is claimed
first (``is_correction``) and the charge expects the version after it (``tasks.invoice_hours.load`` claims in
that order).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from tasks.invoice_hours.config import BillingConfig
from tasks.invoice_hours.join import CUSTOMER, INTERNAL, day_numbers
from tasks.invoice_hours.money import as_decimal, cents_to_decimal, decimal_to_cents, round_cents
from tasks.invoice_hours.periods import posting_periods
from tasks.invoice_hours.plan import INTERNAL_ENTRY, hundredths_of_hours

PENDING_STATUSES = {
    "failed": "failed",
    "claimed": "awaiting confirmation",
    "uncertain": "awaiting confirmation",
}
DOCUMENT_KEY_FIELDS = ["kind", "administration", "debtor_key", "project_key", "period"]


@dataclass(frozen=True)
class Scope:
    """What this run's read covers.

    ``regular``: a run without dates, which read every registration of the horizon ``window``; only such
    a run plans reversals. ``deleted``: registrations confirmed gone from TOPdesk (e.g. a 404 on the
    single-registration endpoint); ``checked``: registrations whose presence was checked at all.
    """

    regular: bool = True
    window: tuple[datetime, datetime] | None = None
    deleted: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Reconciled:
    """Lines to post (charges and reversals) and the fate of every registration the diff looked at."""

    to_bill: pd.DataFrame
    decided: pd.DataFrame  # registration_id, bucket, reason, minutes, billed_minutes, amount, reference
    billed_before: pd.DataFrame
    open_charges: pd.DataFrame


def open_charges(posted: pd.DataFrame | None) -> pd.DataFrame:
    """Charges of posted documents not yet negated by a posted credit with the same fields hash."""
    if posted is None or posted.empty:
        return _empty_posted(posted)
    charges = posted[posted["line_kind"].eq("charge")]
    credits = posted[posted["line_kind"].eq("credit")]
    key = ["registration_id", "fields_hash"]
    negated = credits.groupby(key).size().rename("negated")
    rank = charges.groupby(key).cumcount(ascending=True)
    counted = charges.join(negated, on=key)
    keep = rank.to_numpy() >= counted["negated"].fillna(0).astype("int64").to_numpy()
    return charges[keep].reset_index(drop=True)


def _empty_posted(posted: pd.DataFrame | None) -> pd.DataFrame:
    if posted is not None:
        return posted.iloc[0:0]
    return pd.DataFrame(
        {c: pd.Series(dtype="object") for c in ["registration_id", "fields_hash", "document_reference"]}
    )


def reconcile(
    lines: pd.DataFrame,
    not_billable: pd.DataFrame,
    config: BillingConfig,
    *,
    state: pd.DataFrame | None = None,
    posted: pd.DataFrame | None = None,
    scope: Scope | None = None,
    periods: pd.DataFrame | None = None,
    read_ids: pd.Series | None = None,
    draws: pd.DataFrame | None = None,
) -> Reconciled:
    """The diff between ``lines`` / ``not_billable`` (desired) and the ledger (billed); see the module doc.

    ``draws``: the allowance and bundle draws recorded for the registrations (``store.bundles.draw_rows``);
    a reversal negates them too, as zero-priced lines, so the credit mirrors the charge line by line.
    """
    scope = scope or Scope(regular=False)
    opened = open_charges(posted)
    versions, pending = _state_columns(state)
    read: set[str] = set()  # what was read: only the unread open charges need it
    if not opened.empty:
        read = set(read_ids.dropna().astype(str)) if read_ids is not None else set(lines["registration_id"])
        read |= set(not_billable["registration_id"].dropna().astype(str))
    open_by_id = {rid: group for rid, group in opened.groupby("registration_id", sort=False)}
    decided: list[dict[str, Any]] = []
    credits: list[pd.DataFrame] = []
    charge_rows: list[int] = []
    charge_versions: dict[int, Any] = {}
    charge_correction: dict[int, bool] = {}
    billed_rows: list[int] = []
    lines = lines.reset_index(drop=True)
    # Most registrations are neither pending nor billed before: a new charge at the version read, decided
    # in one vectorised pass. Only the others go through the row-by-row diff below (in line order).
    ids = lines["registration_id"]
    special = (ids.isin(list(pending)) | ids.isin(list(open_by_id))).to_numpy()
    for position in np.flatnonzero(~special).tolist():
        charge_rows.append(position)
    plain_versions = ids[~special].map(versions) if versions else None
    special_rows = np.flatnonzero(special)
    for position, line in zip(
        special_rows.tolist(), lines.iloc[special_rows].itertuples(index=False), strict=True
    ):
        rid = line.registration_id
        version = versions.get(rid)
        if rid in pending:
            decided.append(_pending(line, pending[rid]))
            continue
        current = open_by_id.get(rid)
        if current is None:
            charge_rows.append(position)
            charge_versions[position] = version
            charge_correction[position] = False
            continue
        same = current["fields_hash"].eq(line.fields_hash)
        if same.any() and len(current) == 1:
            billed_rows.append(position)
            continue
        if not scope.regular:
            decided.append(
                _row(
                    line,
                    "left for the regular run",
                    "billed differently before; a backfill does not correct: the next regular run does",
                )
            )
            continue
        stale = current[~same]
        old = stale.iloc[[0]]
        credit = reversal(old, config, periods, version, "Creditering van")
        credits.append(credit)
        if len(stale) > 1 or same.any():
            decided.append(
                _row(
                    line,
                    "re-charged",
                    f"several open charges: {old.iloc[0].document_reference} reversed now, the rest next run",
                )
            )
            continue
        together = _same_document(credit.iloc[0], line)
        credits[-1] = credit.assign(is_correction=True)
        charge_rows.append(position)
        charge_versions[position] = version if together else (None if version is None else version + 1)
        charge_correction[position] = together
        decided.append(_row(line, "re-charged", _change_reason(old.iloc[0], line)))
    decided += _not_billable(not_billable, open_by_id, pending, versions, config, periods, scope, credits)
    decided += _unread(opened, read, pending, versions, config, periods, scope, credits)
    credits = [mirror_draws(credit, draws) for credit in credits]
    charge_rows.sort()
    charges = lines.copy(deep=False) if len(charge_rows) == len(lines) else lines.iloc[charge_rows]
    version_of = pd.Series(pd.NA, index=lines.index, dtype="Int64")
    if plain_versions is not None:
        version_of[~special] = plain_versions.astype("Int64")
    correction_of = np.zeros(len(lines), dtype=bool)
    for position, version in charge_versions.items():
        version_of.iloc[position] = version
        correction_of[position] = charge_correction[position]
    charges["expected_version"] = version_of.iloc[charge_rows].set_axis(charges.index)
    charges["is_correction"] = pd.Series(correction_of[charge_rows], index=charges.index, dtype="bool")
    charges["line_kind"] = "charge"
    to_bill = pd.concat([charges, *credits], ignore_index=True) if credits else charges.reset_index(drop=True)
    to_bill = to_bill.astype({"is_correction": "bool", "expected_version": "Int64"})
    billed = lines.iloc[billed_rows]
    billed = billed.assign(
        document_reference=billed["registration_id"].map(
            opened.drop_duplicates("registration_id", keep="last").set_index("registration_id")[
                "document_reference"
            ]
        )
    )
    billed = billed.assign(reason="billed before in " + billed["document_reference"].astype("str"))
    return Reconciled(
        to_bill=to_bill,
        decided=pd.DataFrame(decided, columns=DECIDED_COLUMNS),
        billed_before=billed.reset_index(drop=True),
        open_charges=opened,
    )


DECIDED_COLUMNS = ["registration_id", "bucket", "reason", "minutes", "billed_minutes", "amount", "reference"]


def _state_columns(state: pd.DataFrame | None) -> tuple[dict[str, int], dict[str, tuple[str, str, str]]]:
    """Version per registration, and the pending ones: ``{id: (bucket, reason, document)}``."""
    if state is None or state.empty:
        return {}, {}
    versions = dict(zip(state["registration_id"], state["version"].astype("int64"), strict=True))
    status = state.get("document_status", pd.Series("", index=state.index)).fillna("")
    pending = {}
    for rid, doc_status, reference in zip(
        state["registration_id"], status, state["document_reference"], strict=True
    ):
        if doc_status in PENDING_STATUSES:
            bucket = PENDING_STATUSES[doc_status]
            why = "resend it" if doc_status == "failed" else "looked up in AFAS by its reference first"
            pending[rid] = (bucket, f"document {reference} is {doc_status}: {why}", reference)
    return versions, pending


def _row(line: Any, bucket: str, reason: str, amount: Any = None) -> dict[str, Any]:
    return {
        "registration_id": line.registration_id,
        "bucket": bucket,
        "reason": reason,
        "minutes": getattr(line, "minutes", 0),
        "billed_minutes": getattr(line, "billed_minutes", pd.NA),
        "amount": amount if amount is not None else getattr(line, "amount", None),
        "reference": None,
    }


def _pending(line: Any, pending: tuple[str, str, str]) -> dict[str, Any]:
    return {**_row(line, pending[0], pending[1]), "reference": pending[2]}


def _change_reason(old: Any, line: Any) -> str:
    if str(old.customer_number) != str(line.customer_number):
        return (
            f"customer changed from {old.customer_number} to {line.customer_number}: "
            f"{old.document_reference} reversed and charged to the new customer in this run"
        )
    return f"changed since billed in {old.document_reference}: reversed and charged again"


def _same_document(credit: pd.Series, line: Any) -> bool:
    """Whether the reversal and the new charge share a document key (then one correction document)."""
    internal = line.kind == INTERNAL_ENTRY
    keys_new = (
        line.kind,
        int(line.administration),
        "" if internal else _text(line.debtor_id),
        "" if internal else _text(line.project_id),
        line.period,
    )
    keys_old = (
        credit["kind"],
        int(credit["administration"]),
        "" if internal else _text(credit["debtor_id"]),
        "" if internal else _text(credit["project_id"]),
        credit["period"],
    )
    return keys_new == keys_old


def _text(value: Any) -> str:
    return "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def _not_billable(
    frame: pd.DataFrame,
    open_by_id: dict[str, pd.DataFrame],
    pending: dict[str, tuple[str, str, str]],
    versions: dict[str, int],
    config: BillingConfig,
    periods: pd.DataFrame | None,
    scope: Scope,
    credits: list[pd.DataFrame],
) -> list[dict[str, Any]]:
    """Excluded or rejected registrations that were billed: reversed or kept (``after_billing``)."""
    decided = []
    frame = frame[frame["registration_id"].isin(list(open_by_id))]  # only those billed before
    for row in frame.itertuples(index=False):
        rid = row.registration_id
        if not isinstance(rid, str) or rid not in open_by_id:
            continue
        if rid in pending:
            decided.append(_pending(row, pending[rid]))
            continue
        old = open_by_id[rid].iloc[[0]]
        why = f"{row.bucket_name}: {row.reason}"
        if config.reconciliation.after_billing == "keep":
            decided.append(
                _row(
                    row,
                    "kept after billing",
                    f"{why}; charge in {old.iloc[0].document_reference} kept (after_billing = keep)",
                    amount=None,
                )
            )
        elif not scope.regular:
            decided.append(
                _row(
                    row,
                    "left for the regular run",
                    f"{why}; billed before, a backfill does not reverse",
                    amount=None,
                )
            )
        else:
            credits.append(reversal(old, config, periods, versions.get(rid), "Creditering van"))
            decided.append(
                _row(
                    row,
                    "reversed after billing",
                    f"{why}; {old.iloc[0].document_reference} reversed",
                    amount=None,
                )
            )
    return decided


def _unread(
    opened: pd.DataFrame,
    read: set[str],
    pending: dict[str, tuple[str, str, str]],
    versions: dict[str, int],
    config: BillingConfig,
    periods: pd.DataFrame | None,
    scope: Scope,
    credits: list[pd.DataFrame],
) -> list[dict[str, Any]]:
    """Billed registrations this regular run did not read although their date lies inside its window."""
    if not scope.regular or scope.window is None or opened.empty:
        return []
    first, stop = (
        day_numbers(pd.Series([pd.Timestamp(t).tz_convert(config.timezone)]))[0] for t in scope.window
    )
    days = day_numbers(pd.to_datetime(opened["entry_date"]))
    candidates = opened[(days >= first) & (days < stop) & ~opened["registration_id"].isin(read)]
    decided = []
    for rid, group in candidates.groupby("registration_id", sort=True):
        if rid in pending:
            continue
        old = group.iloc[[0]]
        reference = old.iloc[0].document_reference
        if not config.in_scope(int(old.iloc[0].administration)):
            continue
        base = {
            "registration_id": rid,
            "minutes": 0,
            "billed_minutes": pd.NA,
            "amount": None,
            "reference": None,
        }
        if rid in scope.deleted:
            credits.append(
                reversal(old, config, periods, versions.get(rid), "Vervallen in TOPdesk, creditering van")
            )
            decided.append(
                {
                    **base,
                    "bucket": "reversed (deleted)",
                    "reason": f"deleted in TOPdesk (confirmed); {reference} reversed",
                }
            )
        else:
            decided.append(
                {
                    **base,
                    "bucket": "possibly deleted",
                    "reason": f"not read although billed in {reference}; deletion not certain, not credited "
                    "(checked again next run)",
                }
            )
    return decided


def reversal(
    old: pd.DataFrame, config: BillingConfig, periods: pd.DataFrame | None, version: Any, wording: str
) -> pd.DataFrame:
    """Credit lines negating the posted lines in ``old`` (``posted_lines`` rows) exactly, field by field."""
    kind = old["kind"].astype("str")
    internal = kind.eq(INTERNAL_ENTRY)
    work_date = pd.to_datetime(old["entry_date"]).dt.tz_localize(config.timezone)
    minutes = old["minutes"].astype("int64")
    step = np.where(kind.eq("project_realisation"), 5, 1)
    quantity = old["quantity"] if "quantity" in old else pd.Series(None, index=old.index)
    quantity_hundredths = pd.Series(
        [
            -int(as_decimal(q) * 100) if q is not None and not pd.isna(q) else -int(h)
            for q, h in zip(quantity, hundredths_of_hours(minutes, step), strict=True)
        ],
        index=old.index,
        dtype="int64",
    )
    amount_cents = -decimal_to_cents(old["amount"])
    unit_price = _unit_prices(old, quantity_hundredths, amount_cents)
    period = old["period"].astype("str")
    year = period.str.slice(0, 4).astype("int64")
    number = period.str.slice(5, 7).astype("int64")
    credit = pd.DataFrame(
        {
            "registration_id": old["registration_id"].astype("str"),
            "registration_kind": old.get("registration_kind"),
            "customer_number": old["customer_number"],
            "target": np.where(internal, INTERNAL, CUSTOMER),
            "kind": kind,
            "administration": old["administration"].astype("int64"),
            "debtor_id": old["debtor"].where(~internal, None),
            "project_id": old["project"].fillna("").astype("str"),
            "item_code": old["item_code"],
            "cost_account": old["cost_account"],
            "cost_centre": old["cost_centre"],
            "employee_id": old["employee_id"],
            "ticket_id": old["ticket_id"],
            "ticket_number": old["ticket_number"],
            "billed_ticket_number": old["ticket_number"],
            "ticket_description": "",
            "notes": "registratie " + old["registration_id"].astype("str"),
            "operator_name": "",
            "work_date": work_date,
            "work_day": work_date.dt.strftime("%Y-%m-%d"),
            "period_year": year,
            "period_number": number,
            "period": period,
            "fields_hash": old["fields_hash"].astype("str"),
            "line_kind": "credit",
            "is_correction": True,
            "expected_version": pd.array([version] * len(old), dtype="Int64"),
            "billed_minutes": -minutes,
            "base_minutes": -minutes,
            "chargeable_minutes": -minutes,
            "minutes": 0,
            "drawn_minutes": 0,
            "included_minutes": 0,
            "drawn_hundredths": 0,
            "included_hundredths": 0,
            "drawn_quantity": Decimal("0.00"),
            "quantity_hundredths": quantity_hundredths,
            "quantity": cents_to_decimal(quantity_hundredths),
            "amount_cents": amount_cents,
            "amount": cents_to_decimal(amount_cents),
            "unit_price": unit_price,
            "unit_price_cents": unit_price.map(lambda value: int(value * 100)).astype("int64"),
            "reverses": old["document_reference"].astype("str"),
            "credit_note": wording + " " + old["document_reference"].astype("str"),
        },
        index=old.index,
    )
    return posting_periods(credit, periods, config)


def mirror_draws(credit: pd.DataFrame, draws: pd.DataFrame | None) -> pd.DataFrame:
    """A reversal of a charge that drew minutes: negate them too (at zero), split as recorded.

    The charge billed ``billed = drawn + chargeable``; the ledger keeps billed minutes and the charged
    quantity, the store the draws (allowance or bundle) of the registration. Without draws: unchanged.
    """
    if draws is None or draws.empty or credit.empty:
        return credit
    source = draws["source"] if "source" in draws else pd.Series("bundle", index=draws.index)
    per_id = (
        draws.assign(included=draws["minutes"].where(source.eq("allowance"), 0).astype("int64"))
        .groupby("registration_id")[["minutes", "included"]]
        .sum()
    )
    billed = -credit["billed_minutes"].astype("int64")
    drawn = credit["registration_id"].map(per_id["minutes"]).fillna(0).astype("int64").clip(upper=billed)
    included = credit["registration_id"].map(per_id["included"]).fillna(0).astype("int64").clip(upper=drawn)
    step = np.where(credit["kind"].eq("project_realisation"), 5, 1)
    drawn_hundredths = -hundredths_of_hours(drawn, step)
    return credit.assign(
        drawn_minutes=-drawn,
        included_minutes=-included,
        chargeable_minutes=-(billed - drawn),
        drawn_hundredths=drawn_hundredths,
        included_hundredths=np.maximum(-hundredths_of_hours(included, step), drawn_hundredths),
        drawn_quantity=cents_to_decimal(pd.Series(drawn_hundredths, index=credit.index)),
    )


def _unit_prices(old: pd.DataFrame, quantity: pd.Series, amount_cents: pd.Series) -> pd.Series:
    """The posted unit price; for lines recorded before it was kept, amount ÷ quantity to cents."""
    recorded = old["unit_price"] if "unit_price" in old else pd.Series(None, index=old.index)
    prices = []
    for price, q, a in zip(recorded, quantity, amount_cents, strict=True):
        if price is not None and not pd.isna(price):
            prices.append(as_decimal(price))
        else:
            prices.append(round_cents(Decimal(int(a)) / Decimal(int(q))) if q else Decimal("0.00"))
    return pd.Series(prices, index=old.index, dtype="object")
