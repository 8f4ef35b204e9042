"""AFAS price list sanity: refused rows name connector and row; no negative or absurd price is used."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd

from tasks.invoice_hours.prices import screen_prices


def test_bad_prices_are_refused_per_row_and_good_ones_kept():
    prices = pd.DataFrame(
        {
            "ItemCode": ["SUP", "SUP", "SUP", "SUP", "SUP", "SUP", None, "CON"],
            "DebtorId": [None, "10001", "10002", "10003", "10004", "10005", None, None],
            "Price": [95.5, -12, None, 1e15, float("inf"), "abc", 80, "0"],
            "DateStart": [None] * 8,
        }
    )
    good, rejects = screen_prices(prices, Decimal(1000))
    assert good["Price"].tolist() == [Decimal("95.5")]
    assert rejects["row"].tolist() == [2, 3, 4, 5, 6, 7, 8]
    assert set(rejects["connector"]) == {"Koppel_Sales_Prices"}
    reasons = rejects["reason"].tolist()
    assert reasons[0] == "AFAS Koppel_Sales_Prices row 2: Price: must be > 0 (-12)"
    assert reasons[1] == "AFAS Koppel_Sales_Prices row 3: Price: missing"
    assert "exceeds the maximum of 1000" in reasons[2]
    assert "not finite" in reasons[3] and "not an amount ('abc')" in reasons[4]
    assert reasons[5].endswith("ItemCode: missing") and reasons[6].endswith("must be > 0 (0)")


def test_a_negative_or_null_price_list_never_plans_a_negative_charge():
    from tasks.invoice_hours.pipeline import bill
    from tests.billing_factories import (
        CONFIG_TOML,
        config,
        masters,
        registration,
        registrations,
        sales_prices,
    )

    text = CONFIG_TOML.replace("[rates.items]", '[rates]\nsource = "afas"\n[rates.items]')
    cfg = config(base=text.replace('SUPPORT = "95.00"\n', ""))  # no fallback rate from the file
    prices = sales_prices().assign(Price=[Decimal("-90.00"), None, Decimal("1e15"), Decimal("120.00")])
    read = registrations(
        registration(registration_id="general", customer_number="10002"),
        registration(registration_id="own", customer_number="10001"),
    )
    run = bill(read, masters(sales_prices=prices), cfg)
    assert run.priced.empty and run.documents.empty  # nothing planned at a refused price
    assert set(run.rejects["registration_id"]) == {"general", "own"}
    assert set(run.rejects["reason"]) == {"no price: item 'SUPPORT'"}
    assert run.conservation["holds"]


def test_a_refused_debtor_price_is_not_replaced_by_the_general_price_or_the_configured_rate():
    from tasks.invoice_hours.pipeline import bill
    from tests.billing_factories import (
        CONFIG_TOML,
        config,
        masters,
        registration,
        registrations,
        sales_prices,
    )

    cfg = config(base=CONFIG_TOML.replace("[rates.items]", '[rates]\nsource = "afas"\n[rates.items]'))
    prices = sales_prices().assign(
        Price=[Decimal("90.00"), Decimal("-80.00"), Decimal("99.00"), Decimal("120.00")]
    )
    read = registrations(
        registration(registration_id="general", customer_number="10002"),
        registration(registration_id="own", customer_number="10001"),
    )
    run = bill(read, masters(sales_prices=prices), cfg)
    assert run.rejects["registration_id"].tolist() == ["own"]  # its agreed price was refused
    assert run.document_lines.set_index("registration_id").loc["general", "rate"] == Decimal("90.00")
    assert (run.document_lines["amount"].map(Decimal) > 0).all()
