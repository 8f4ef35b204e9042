"""The approval step's plain functions: fingerprint, totals, plan difference; its config keys."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
import pytest

from tasks.approval import fingerprint, in_scope, plan_difference, request_markdown, totals
from tasks.invoice_hours.config import BillingConfigError
from tests.billing_factories import CONFIG_TOML, config


def documents() -> pd.DataFrame:
    return pd.DataFrame(
        [
            ("KPL-1-202610-aaaa", "direct_invoice", 1, "10001", "P1", "2026-10", 19000, 120, False, "", 0),
            ("KPL-1-202610-bbbb", "internal_entry", 1, "", "", "2026-10", 4750, 60, False, "", 0),
            ("KPL-1-202610-cccc", "direct_invoice", 1, "10002", "P2", "2026-10", -9500, -60, True, "", 0),
            ("KPL-2-202610-dddd", "sales_booking", 2, "10003", "P3", "2026-10", 9500, 60, False, "1", 19.95),
        ],
        columns=[
            "reference",
            "kind",
            "administration",
            "debtor_id",
            "project_id",
            "period",
            "amount_cents",
            "minutes",
            "is_correction",
            "vat_code",
            "vat_amount",
        ],
    )


def lines() -> pd.DataFrame:
    return pd.DataFrame(
        [
            ("KPL-1-202610-aaaa", "r1", "charge", "h1", 60, 9500, 1),
            ("KPL-1-202610-aaaa", "r2", "charge", "h2", 60, 9500, 1),
            ("KPL-1-202610-bbbb", "r3", "charge", "h3", 60, 4750, 1),
            ("KPL-1-202610-cccc", "r4", "credit", "h4", -60, -9500, 1),
            ("KPL-2-202610-dddd", "r5", "charge", "h5", 60, 9500, 2),
        ],
        columns=[
            "reference",
            "registration_id",
            "line_kind",
            "fields_hash",
            "billed_minutes",
            "amount_cents",
            "administration",
        ],
    )


def test_the_fingerprint_ignores_row_order_and_sees_every_change() -> None:
    docs, rows = documents(), lines()
    base = fingerprint(docs, rows)
    assert len(base) == 64
    assert fingerprint(docs.iloc[::-1], rows.sample(frac=1, random_state=3)) == base
    for column, value in [("amount_cents", 9501), ("billed_minutes", 61), ("fields_hash", "hx")]:
        changed = rows.copy()
        changed.loc[1, column] = value
        assert fingerprint(docs, changed) != base, column
    assert fingerprint(docs, rows.iloc[1:]) != base  # a line less
    for column, value in [("debtor_id", "10009"), ("vat_code", "3"), ("vat_amount", 0)]:
        extra = docs.copy()
        extra.loc[3, column] = value  # e.g. the debtor's VAT duty changed in AFAS while the run waited
        assert fingerprint(extra, rows) != base, column


def test_totals_split_customer_revenue_internal_charges_and_corrections() -> None:
    figures = totals(in_scope(documents(), [1]))
    assert figures.documents == 3
    assert figures.hours == Decimal("2.00")  # 120 + 60 - 60 minutes
    assert figures.customer_revenue == Decimal("190.00")
    assert figures.internal_charges == Decimal("47.50")
    assert figures.corrections == Decimal("-95.00") and figures.correction_documents == 1
    assert totals(documents().iloc[0:0]).documents == 0


def test_plan_difference_names_new_gone_and_changed_registrations() -> None:
    before = lines()
    after = before[before["registration_id"] != "r2"].copy()
    after.loc[after["registration_id"].eq("r1"), ["billed_minutes", "amount_cents"]] = (75, 11875)
    new = pd.DataFrame([("KPL-x", "r9", "charge", "h9", 15, 2375, 1)], columns=before.columns)
    difference = plan_difference(before, pd.concat([after, new], ignore_index=True))
    found = {row.registration_id: row for row in difference.itertuples()}
    assert set(found) == {"r1", "r2", "r9"}
    assert found["r1"].change == "changed" and found["r1"].amount_after == Decimal("118.75")
    assert found["r2"].change == "gone" and found["r2"].amount_after == ""
    assert found["r9"].change == "new" and found["r9"].minutes_after == 15
    text = request_markdown([1], totals(documents()), "f" * 64, {"documents (4)": ""}, difference)
    assert "The plan changed" in text and "r9" in text and "`" + "f" * 64 + "`" in text


def test_approval_is_off_by_default_and_required_per_administration() -> None:
    assert config().approval_required() == []
    required = config(
        base=CONFIG_TOML.replace('"project_realisation"', '"project_realisation"\napproval = "required"')
    )
    assert required.approval_required() == [2]
    assert required.for_administration(1).approval_required() == []
    assert config().approval_timeout_minutes == 24 * 60


def test_an_unknown_approval_value_names_the_key() -> None:
    text = CONFIG_TOML.replace(
        'mode = "project_realisation"', 'mode = "project_realisation"\napproval = "yes"'
    )
    with pytest.raises(BillingConfigError, match=r"administrations\.2\.approval"):
        config(base=text)
