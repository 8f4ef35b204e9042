"""AFAS master sanity: hourly prices from ``Koppel_Sales_Prices`` are believed only when they make sense.

A price list row whose ``Price`` is missing, not a number, not finite, zero or negative, or above the
configured maximum (``[price_checks] max_hourly_price``) is refused: it becomes a reject naming the AFAS
connector, the row (1-based, as served) and the field, and it is left out of the price list, so a
registration that would have used it is rejected "no price" instead of billed at a wrong or negative
price. A run never plans a negative charge from a price list.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import pandas as pd

from tasks.invoice_hours.money import as_decimal

CONNECTOR = "Koppel_Sales_Prices"
REJECT_COLUMNS = ["connector", "row", "ItemCode", "DebtorId", "Price", "reason"]


def price_problem(value: object, maximum: Decimal) -> tuple[Decimal | None, str | None]:
    """``(price, None)`` for a believable price, else ``(None, reason)``."""
    if value is None or (isinstance(value, float) and value != value):
        return None, "Price: missing"
    try:
        price = as_decimal(value)
    except (ValueError, InvalidOperation, TypeError):
        return None, f"Price: not an amount ({str(value)[:40]!r})"
    if not price.is_finite():
        return None, f"Price: not finite ({price})"
    if price <= 0:
        return None, f"Price: must be > 0 ({price})"
    if price > maximum:
        return None, f"Price: {price} exceeds the maximum of {maximum} per hour ([price_checks])"
    return price, None


def screen_prices(sales_prices: pd.DataFrame, maximum: Decimal) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return ``(believable, rejects)``: believable rows with ``Price`` as ``Decimal``; rejects per row."""
    checked = [price_problem(value, maximum) for value in sales_prices["Price"].tolist()]
    reasons = pd.Series([r for _, r in checked], index=sales_prices.index, dtype="object")
    item = sales_prices["ItemCode"]
    no_item = item.isna() | (item.astype("str").str.strip() == "")
    reasons = reasons.mask(no_item & reasons.isna(), "ItemCode: missing")
    bad = reasons.notna().to_numpy()
    good = sales_prices[~bad].assign(Price=[p for (p, _), b in zip(checked, bad, strict=True) if not b])
    rejected = sales_prices[bad]
    rejects = pd.DataFrame(
        {
            "connector": CONNECTOR,
            "row": [int(i) + 1 for i in range(len(sales_prices)) if bad[i]],
            "ItemCode": rejected["ItemCode"].astype("str").tolist(),
            "DebtorId": rejected["DebtorId"].astype("str").tolist(),
            "Price": [str(v) for v in rejected["Price"].tolist()],
            "reason": [f"AFAS {CONNECTOR} row {i + 1}: {r}" for i, r in enumerate(reasons) if bad[i]],
        },
        columns=REJECT_COLUMNS,
    )
    return good, rejects


def refused_debtor_prices(frame: pd.DataFrame, sales_prices: pd.DataFrame, maximum: Decimal) -> pd.Series:
    """True for registrations whose debtor has a refused price row for their item.

    Such a registration gets no price at all (rejected "no price"): falling back to the general price or
    the configured rate would bill a customer with an agreed price at another one.
    """
    checked = [price_problem(value, maximum)[1] is not None for value in sales_prices["Price"].tolist()]
    debtor = sales_prices["DebtorId"]
    specific = debtor.notna() & (debtor.astype("str").str.strip() != "")
    refused = sales_prices[pd.Series(checked, index=sales_prices.index) & specific]
    keys = set(
        refused["ItemCode"].astype("str").str.strip() + "|" + refused["DebtorId"].astype("str").str.strip()
    )
    wanted = frame["item_code"].astype("str") + "|" + frame["debtor_id"].astype("str").fillna("")
    return wanted.isin(keys) & frame["debtor_id"].notna()


def believable_prices(sales_prices: pd.DataFrame, maximum: Decimal) -> pd.DataFrame:
    """Only the believable rows of the price list (``screen_prices`` reports the others)."""
    return screen_prices(sales_prices, maximum)[0]
