"""Step 6: reconcile planned lines with the ledger: never bill twice, never re-bill silently.

The ledger state (``store.ledger.billed_state``) says per registration what was billed last: its
``fields_hash``, document, ``status`` (``billed`` | ``credited``), ``version``, minutes and amount. Then:

- billed with the same hash → bucket *billed before* (nothing is posted);
- billed with another hash → one correction: a credit line of exactly the old amount and a new charge line,
  both in one correction document and both carrying the version read, so a concurrent claim conflicts;
- the same, but billed to another customer → a credit to the old customer now; the new charge follows in
  the next run (the ledger then says ``credited``), since one document cannot serve two debtors;
- billed, no longer in TOPdesk, and its date inside the days this run read completely → a credit line;
- never billed, or credited since → a normal charge.

Optional ledger columns make credits exact copies of the old lines: ``item_code``, ``unit_price`` and
``quantity`` (else the new line's item and amount ÷ hours), and for credits outside a correction document
``administration``, ``debtor_id``, ``project_id``, ``kind``, ``cost_account``, ``cost_centre`` (else the
configuration's defaults: customer number = debtor, no project, the department's accounts).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pandas as pd

from tasks.billing.config import BillingConfig
from tasks.billing.join import CUSTOMER, INTERNAL, day_numbers, lookup_periods, period_labels
from tasks.billing.money import as_decimal, cents_to_decimal, decimal_to_cents
from tasks.billing.plan import INTERNAL_ENTRY, hundredths_of_hours

LEDGER_COLUMNS = [
    "registration_id",
    "fields_hash",
    "document_reference",
    "status",
    "version",
    "minutes",
    "amount",
    "entry_date",
    "customer_number",
]


@dataclass(frozen=True)
class Reconciled:
    """What to post (``to_bill``: charge and credit lines) and what was billed before."""

    to_bill: pd.DataFrame
    billed_before: pd.DataFrame
    corrected_ids: pd.Series
    vanished: pd.DataFrame
    moved: pd.DataFrame  # planned lines of registrations whose customer changed, with a ``reason``


def reconcile(
    lines: pd.DataFrame,
    ledger: pd.DataFrame | None,
    config: BillingConfig,
    read_ids: pd.Series | None = None,
    run_range: tuple[datetime, datetime] | None = None,
    periods: pd.DataFrame | None = None,
) -> Reconciled:
    """Compare planned lines with the ledger state; see the module docstring for the outcomes."""
    ledger = empty_ledger() if ledger is None else ledger
    missing = sorted(set(LEDGER_COLUMNS) - set(ledger.columns))
    if missing:
        raise ValueError(f"ledger state lacks columns: {', '.join(missing)}")
    state = ledger.drop_duplicates("registration_id", keep="last").set_index("registration_id")
    known = lines["registration_id"].map(state["status"])
    same = lines["fields_hash"].eq(lines["registration_id"].map(state["fields_hash"]))
    version = lines["registration_id"].map(state["version"]).astype("Int64")
    before = known.eq("billed") & same
    changed = known.eq("billed") & ~same
    moved = changed & lines["customer_number"].ne(lines["registration_id"].map(state["customer_number"]))
    charging = ~before & ~moved
    charges = lines[charging].assign(
        expected_version=version[charging], is_correction=changed[charging], line_kind="charge"
    )
    credits = correction_credits(lines[changed & ~moved], state)
    moved_credits = moved_customer_credits(lines[moved], state, config, periods)
    vanished = vanished_credits(ledger, config, read_ids, run_range, periods)
    billed = lines[before].assign(
        document_reference=lines.loc[before, "registration_id"].map(state["document_reference"]).astype("str")
    )
    billed = billed.assign(
        reason=_billed_before_reasons(billed, state), document_status=_document_status(billed, state)
    )
    to_bill = pd.concat([charges, credits, moved_credits, vanished], ignore_index=True)
    return Reconciled(
        to_bill=to_bill,
        billed_before=billed.reset_index(drop=True),
        corrected_ids=lines.loc[changed, "registration_id"].reset_index(drop=True),
        vanished=vanished,
        moved=_moved_reasons(lines[moved], state),
    )


def _moved_reasons(moved: pd.DataFrame, state: pd.DataFrame) -> pd.DataFrame:
    """Registrations whose customer changed since billing: credited now, charged to the new one next run."""
    old_customer = moved["registration_id"].map(state["customer_number"]).astype("str")
    reason = (
        "customer changed from "
        + old_customer
        + " to "
        + moved["customer_number"].astype("str")
        + ": credited in this run, billed to the new customer in the next run"
    )
    return moved.assign(reason=reason).reset_index(drop=True)


def _document_status(billed: pd.DataFrame, state: pd.DataFrame) -> pd.Series:
    """Status of the document that billed each registration (``""`` when the ledger does not say)."""
    if "document_status" not in state.columns:
        return pd.Series("", index=billed.index, dtype="str")
    return billed["registration_id"].map(state["document_status"]).fillna("").astype("str")


def _billed_before_reasons(billed: pd.DataFrame, state: pd.DataFrame) -> pd.Series:
    """``billed before in <reference>``, plus the document's status when it is not simply posted."""
    reason = "billed before in " + billed["document_reference"]
    if billed.empty:
        return reason
    status = _document_status(billed, state)
    unusual = status.ne("") & status.ne("posted")
    return reason.mask(unusual, reason + " (document " + status + ")")


def empty_ledger() -> pd.DataFrame:
    """A ledger state with nothing billed yet."""
    return pd.DataFrame({column: pd.Series(dtype="object") for column in LEDGER_COLUMNS})


def correction_credits(changed: pd.DataFrame, state: pd.DataFrame) -> pd.DataFrame:
    """A credit of exactly the old amount per changed registration, in the same document as its charge.

    The ledger claims a correction's credit and charge together (one document, one expected version), so
    the credit takes the new line's document (debtor, project, period) and the old line's item and price.
    """
    if changed.empty:
        return changed.iloc[0:0].assign(line_kind=pd.Series(dtype="str"))
    old = state.loc[changed["registration_id"]].set_index(changed.index)
    credit = changed.copy()
    if "item_code" in old.columns:
        credit["item_code"] = old["item_code"].where(old["item_code"].notna(), credit["item_code"])
    return _credit_values(credit, old, "Creditering van")


def moved_customer_credits(
    moved: pd.DataFrame, state: pd.DataFrame, config: BillingConfig, periods: pd.DataFrame | None
) -> pd.DataFrame:
    """Credits, to the old customer, of registrations whose customer changed since they were billed.

    Their new charge waits for the next run (the ledger then says ``credited``): the two lines belong to
    different debtors, so they cannot share the one document a correction is claimed in.
    """
    if moved.empty:
        return pd.DataFrame()
    old = state.loc[moved["registration_id"]].reset_index()
    context = _vanished_context(old, config, periods)
    return _credit_values(context, old, "Klant gewijzigd, creditering van")


def _credit_values(credit: pd.DataFrame, old: pd.DataFrame, wording: str) -> pd.DataFrame:
    """Negate the old billing: minutes, quantity, amount; keep the old hash and version."""
    amount_cents = -decimal_to_cents(old["amount"])
    minutes = old["minutes"].astype("int64")
    step = np.where(credit["kind"].eq("project_realisation"), 5, 1)
    quantity = (
        -decimal_to_cents(old["quantity"]) if "quantity" in old else -hundredths_of_hours(minutes, step)
    )
    quantity = pd.Series(np.asarray(quantity), index=credit.index, dtype="int64")
    values = {
        "line_kind": "credit",
        "is_correction": True,
        "expected_version": old["version"].astype("Int64"),
        "fields_hash": old["fields_hash"].astype("str"),
        "billed_minutes": -minutes,
        "chargeable_minutes": -minutes,
        "drawn_minutes": 0,
        "drawn_hundredths": 0,
        "drawn_quantity": Decimal("0.00"),
        "quantity_hundredths": quantity,
        "quantity": cents_to_decimal(quantity),
        "amount_cents": amount_cents,
        "amount": cents_to_decimal(amount_cents),
        "unit_price": _old_unit_prices(old, quantity, amount_cents),
        "credit_note": wording + " " + old["document_reference"].astype("str"),
    }
    credit = credit.assign(**values)
    credit["unit_price_cents"] = credit["unit_price"].map(lambda value: int(value * 100)).astype("int64")
    return credit


def _old_unit_prices(old: pd.DataFrame, quantity: pd.Series, amount_cents: pd.Series) -> pd.Series:
    """The old hourly price: from the ledger when it has one, else amount ÷ quantity to cents."""
    if "unit_price" in old:
        return old["unit_price"].map(as_decimal)
    derived = [
        (Decimal(a) / Decimal(q)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP) if q else Decimal("0.00")
        for a, q in zip(amount_cents, quantity, strict=True)
    ]
    return pd.Series(derived, index=old.index, dtype="object")


def vanished_credits(
    ledger: pd.DataFrame,
    config: BillingConfig,
    read_ids: pd.Series | None,
    run_range: tuple[datetime, datetime] | None,
    periods: pd.DataFrame | None,
) -> pd.DataFrame:
    """Credits for billed registrations that TOPdesk no longer returns for days this run read completely."""
    if run_range is None or read_ids is None or ledger.empty:
        return pd.DataFrame()
    first_day, stop_day = full_days(run_range, config.timezone)
    days = day_numbers(local_dates(ledger["entry_date"], config.timezone))
    gone = (
        ledger["status"].eq("billed")
        & ~ledger["registration_id"].isin(read_ids)
        & (days >= first_day)
        & (days < stop_day)
    )
    if not gone.any():
        return pd.DataFrame()
    old = ledger[gone].drop_duplicates("registration_id", keep="last")
    context = _vanished_context(old, config, periods)
    in_scope = context["administration"].map(config.in_scope).astype(bool)
    old, context = old[in_scope.to_numpy()], context[in_scope]
    if old.empty:
        return pd.DataFrame()
    return _credit_values(context, old, "Vervallen in TOPdesk, creditering van")


def full_days(run_range: tuple[datetime, datetime], timezone: str) -> tuple[int, int]:
    """First and stop (exclusive) local day numbers that lie entirely inside ``[start, end)``."""
    start = pd.Timestamp(run_range[0]).tz_convert(timezone)
    end = pd.Timestamp(run_range[1]).tz_convert(timezone)
    first = start.normalize() if start == start.normalize() else start.normalize() + timedelta(days=1)
    as_day = np.datetime64(first.tz_localize(None).date(), "D").astype("int64")
    stop = np.datetime64(end.normalize().tz_localize(None).date(), "D").astype("int64")
    return int(as_day), int(stop)


def _vanished_context(old: pd.DataFrame, config: BillingConfig, periods: pd.DataFrame | None) -> pd.DataFrame:
    """Billing context of a registration only the ledger still knows."""
    departments = config.department_table()
    customer = old["customer_number"].astype("str")
    internal = customer.isin(list(departments))
    default_admin = config.projects.default_administration
    admin = _column(old, "administration", customer.map({c: a for c, (a, _) in departments.items()}))
    admin = admin.fillna(default_admin).astype("int64")
    modes = {a: c.mode.value for a, c in config.administrations.items()}
    kind = _column(old, "kind", admin.map(modes).mask(internal, INTERNAL_ENTRY))
    accounts = {code: department.cost_account for code, (_, department) in departments.items()}
    centres = {code: department.cost_centre for code, (_, department) in departments.items()}
    work_date = local_dates(old["entry_date"], config.timezone)
    frame = pd.DataFrame(
        {
            "registration_id": old["registration_id"],
            "customer_number": customer,
            "target": np.where(internal, INTERNAL, CUSTOMER),
            "administration": admin,
            "kind": kind.astype("str"),
            "debtor_id": _column(old, "debtor_id", customer.mask(internal, None)).astype("str"),
            "project_id": _column(old, "project_id", pd.Series(None, index=old.index)).astype("str"),
            "item_code": _column(old, "item_code", pd.Series(config.items.default, index=old.index)),
            "cost_account": _column(old, "cost_account", customer.map(accounts)),
            "cost_centre": _column(old, "cost_centre", customer.map(centres)),
            "work_date": work_date,
            "work_day": work_date.dt.strftime("%Y-%m-%d"),
            "notes": "registratie " + old["registration_id"].astype("str"),
        },
        index=old.index,
    )
    return frame.assign(**_credit_periods(frame, periods))


def _column(old: pd.DataFrame, column: str, fallback: pd.Series) -> pd.Series:
    if column not in old.columns:
        return fallback
    return old[column].where(old[column].notna(), fallback)


def _credit_periods(frame: pd.DataFrame, periods: pd.DataFrame | None) -> dict[str, pd.Series]:
    """AFAS period of the old entry date; the calendar month when no period table is given."""
    if periods is not None:
        found = lookup_periods(frame["administration"], frame["work_date"], periods)
        year = found["year"].fillna(frame["work_date"].dt.year).astype("int64")
        number = found["number"].fillna(frame["work_date"].dt.month).astype("int64")
    else:
        year = frame["work_date"].dt.year.astype("int64")
        number = frame["work_date"].dt.month.astype("int64")
    return {"period_year": year, "period_number": number, "period": period_labels(year, number)}


def local_dates(values: pd.Series, timezone: str) -> pd.Series:
    """Ledger entry dates (dates, naive or tz-aware datetimes) as local midnights in ``timezone``."""
    stamps = pd.to_datetime(values)
    if isinstance(stamps.dtype, pd.DatetimeTZDtype):
        return stamps.dt.tz_convert(timezone).dt.normalize()
    return stamps.dt.normalize().dt.tz_localize(timezone)
