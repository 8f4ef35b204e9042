from decimal import Decimal

import pandas as pd
import pytest

from schemas.billing import BundleDraws, Exclusions
from tasks.invoice_hours.join import join_masters
from tasks.invoice_hours.plan import plan_lines
from tasks.invoice_hours.rules import price, split_excluded
from tasks.invoice_hours.validate import split_valid
from tests.billing_factories import at, config, masters, registration, registrations, sales_prices

D = Decimal


def excluded_by(*rows, extra="", ignore=None):
    valid, _ = split_valid(registrations(*rows))
    kept, excluded = split_excluded(valid, config(extra), ignore)
    return kept, excluded


def priced(*rows, extra="", **kwargs):
    valid, rejects = split_valid(registrations(*rows))
    assert rejects.empty
    cfg = config(extra)
    joined, unjoined = join_masters(valid, masters(), cfg)
    assert unjoined.empty, unjoined["reason"].tolist()
    frame, unpriced, draws = price(joined, cfg, **kwargs)
    return frame.set_index("registration_id", drop=False), unpriced, draws


def amounts(frame, cfg_extra=""):
    lines = plan_lines(frame.reset_index(drop=True), config(cfg_extra))
    return dict(zip(lines["registration_id"], lines["amount"], strict=True))


# --- exclusions ------------------------------------------------------------------------------------------

RULE = '[[exclusions.rules]]\nkind = "{kind}"\nvalue = "{value}"\nreason = "{reason}"\n'


@pytest.mark.parametrize(
    ("kind", "value", "overrides"),
    [
        ("ticket", "I 2610 900", {"ticket_number": "I 2610 900"}),
        ("ticket", "main-1", {"billed_ticket_id": "main-1"}),
        ("operator", "bram bakker", {"operator_name": "Bram Bakker"}),
        ("operator_group", "Ontwikkeling", {"operator_group_name": "Ontwikkeling"}),
        ("category", "Werkplek", {"category": "Werkplek"}),
        ("category", "Werkplek / Wachtwoord reset", {"subcategory": "Wachtwoord reset"}),
        ("reason", "Garantie", {"reason_name": "Garantie"}),
        ("branch", "br-9", {"branch_id": "br-9"}),
        ("customer", "10002", {"customer_number": "10002"}),
        ("registration", "reg-x", {"registration_id": "reg-x"}),
    ],
)
def test_each_configured_exclusion_kind(kind, value, overrides):
    rule = RULE.format(kind=kind, value=value, reason="niet factureren")
    neutral = {"category": "Netwerk", "subcategory": "VPN", "registration_id": "keep"}
    hit = {"registration_id": "hit", **overrides}
    kept, excluded = excluded_by(registration(**neutral), registration(**hit), extra="[exclusions]\n" + rule)
    assert list(kept["registration_id"]) == ["keep"]
    assert list(excluded["registration_id"]) == [overrides.get("registration_id", "hit")]
    label = kind.replace("_", " ")
    assert excluded.loc[0, "reason"] == f"niet factureren (billing.toml: {label} '{value}')"
    Exclusions.validate(excluded)


def test_easy_task_matches_only_its_subcategory():
    rule = RULE.format(kind="category", value="Werkplek / Wachtwoord reset", reason="eenvoudig")
    kept, excluded = excluded_by(
        registration(registration_id="printer", subcategory="Printer"),
        registration(registration_id="reset", subcategory="Wachtwoord reset"),
        extra="[exclusions]\n" + rule,
    )
    assert list(kept["registration_id"]) == ["printer"]
    assert list(excluded["registration_id"]) == ["reset"]


def test_database_ignore_list_comes_first_and_says_so():
    ignore = pd.DataFrame(
        {"kind": ["operator", "ticket"], "value": ["op-1", "I 2610 777"], "reason": ["stagiair", "klacht"]}
    )
    rule = RULE.format(kind="reason", value="Normaal tarief", reason="config")
    kept, excluded = excluded_by(
        registration(registration_id="a"),
        registration(registration_id="b", operator_id="op-2", ticket_number="I 2610 777"),
        registration(registration_id="c", operator_id="op-2", reason_name="Meerwerk"),
        extra="[exclusions]\n" + rule,
        ignore=ignore,
    )
    assert list(kept["registration_id"]) == ["c"]
    assert dict(zip(excluded["registration_id"], excluded["reason"], strict=True)) == {
        "a": "stagiair (ignore list: operator 'op-1')",
        "b": "klacht (ignore list: ticket 'I 2610 777')",
    }


def test_below_minimum_duration_is_excluded():
    kept, excluded = excluded_by(
        registration(registration_id="short", minutes=1),
        registration(registration_id="long", minutes=2),
        extra="[exclusions]\nbelow_minutes = 2\n",
    )
    assert list(kept["registration_id"]) == ["long"]
    assert excluded.loc[0, "reason"] == "below the minimum of 2 minutes (billing.toml)"


def test_excluded_rows_keep_their_columns():
    rule = RULE.format(kind="customer", value="10001", reason="x")
    _, excluded = excluded_by(registration(notes="ñøtes"), extra="[exclusions]\n" + rule)
    assert excluded.loc[0, "notes"] == "ñøtes"
    assert excluded.loc[0, "step"] == "rules"


def test_unknown_ignore_kind_is_an_error():
    ignore = pd.DataFrame({"kind": ["planet"], "value": ["mars"], "reason": ["?"]})
    with pytest.raises(ValueError, match="unknown exclusion kinds"):
        excluded_by(registration(), ignore=ignore)


# --- items and rates --------------------------------------------------------------------------------------

ITEMS = """
[items.by_reason]
"Spoed" = "SPOED"
[items.by_category]
"Servers" = "CONSULT"
[items.by_operator_group]
"Consultancy" = "CONSULT"
"""


def test_item_by_reason_then_category_then_group_then_default():
    from tests.billing_factories import CONFIG_TOML

    base = CONFIG_TOML.replace('default = "SUPPORT"', 'default = "SUPPORT"' + ITEMS)
    rows = [
        registration(
            registration_id="r", reason_name="Spoed", category="Servers", operator_group_name="Consultancy"
        ),
        registration(registration_id="c", category="Servers", operator_group_name="Tweede lijn"),
        registration(registration_id="g", operator_group_name="Consultancy"),
        registration(registration_id="d"),
    ]
    valid, _ = split_valid(registrations(*rows))
    cfg = config(base=base)
    joined, _ = join_masters(valid, masters(), cfg)
    frame, _, _ = price(joined, cfg)
    assert dict(zip(frame["registration_id"], frame["item_code"], strict=True)) == {
        "r": "SPOED",
        "c": "CONSULT",
        "g": "CONSULT",
        "d": "SUPPORT",
    }
    assert list(frame["item_source"]) == ["reason", "category", "operator_group", "default"]
    assert list(frame["rate"]) == [D("145.00"), D("125.00"), D("125.00"), D("95.00")]


def test_rate_precedence_customer_override_then_group_then_item():
    extra = (
        '[rates.operator_groups]\n"Netwerkbeheer" = "115.00"\n[rates.customers."10001"]\nSUPPORT = "80.00"\n'
    )
    extra += '[rates.customers."10002"]\n"*" = "70.00"\n'
    frame, _, _ = priced(
        registration(registration_id="override", operator_group_name="Netwerkbeheer"),
        registration(registration_id="wild", customer_number="10002"),
        registration(registration_id="group", customer_number="10001", operator_group_name="Netwerkbeheer"),
        extra=extra.replace('"10001"]\nSUPPORT', '"10001"]\nCONSULT'),
    )
    assert frame.loc["override", "rate"] == D("115.00")  # no SUPPORT override for 10001 any more
    assert frame.loc["wild", ("rate")] == D("70.00")
    assert frame.loc["wild", "rate_source"] == "customer override"
    assert frame.loc["group", "rate_source"] == "operator group"
    frame, _, _ = priced(registration(registration_id="exact"), extra=extra)
    assert (frame.loc["exact", "rate"], frame.loc["exact", "rate_source"]) == (
        D("80.00"),
        "customer override",
    )


AFAS_RATES = '[rates]\nsource = "afas"\n'


def test_afas_price_list_debtor_price_then_general_price_by_date():
    from tests.billing_factories import CONFIG_TOML

    cfg = config(base=CONFIG_TOML.replace("[rates.items]", AFAS_RATES + "[rates.items]"))
    rows = [
        registration(registration_id="own", customer_number="10001"),
        registration(registration_id="general", customer_number="10002"),
        registration(registration_id="later", customer_number="10002", entry_date=at("2026-10-20 10:00")),
    ]
    valid, _ = split_valid(registrations(*rows))
    joined, _ = join_masters(valid, masters(), cfg)
    frame, _, _ = price(joined, cfg, sales_prices=sales_prices())
    frame = frame.set_index("registration_id")
    assert (frame.loc["own", "rate"], frame.loc["own", "rate_source"]) == (D("80.00"), "AFAS debtor price")
    assert (frame.loc["general", "rate"], frame.loc["general", "rate_source"]) == (D("90.00"), "AFAS price")
    assert frame.loc["later", "rate"] == D("99.00")  # price change of 2026-10-15


def test_afas_source_without_any_price_rejects_the_registration():
    from tests.billing_factories import CONFIG_TOML

    text = CONFIG_TOML.replace("[rates.items]", AFAS_RATES + "[rates.items]").replace(
        'SUPPORT = "95.00"\n', ""
    )
    cfg = config(base=text.replace('default = "SUPPORT"', 'default = "ONSITE"'))
    valid, _ = split_valid(registrations(registration(registration_id="x")))
    joined, _ = join_masters(valid, masters(), cfg)
    frame, rejects, _ = price(joined, cfg, sales_prices=sales_prices())
    assert frame.empty
    assert list(rejects["reason"]) == ["no price: item 'ONSITE'"]
    assert rejects.loc[0, "registration_id"] == "x"


def test_sales_prices_given_as_floats_are_read_by_their_decimal_text():
    from tests.billing_factories import CONFIG_TOML

    cfg = config(base=CONFIG_TOML.replace("[rates.items]", AFAS_RATES + "[rates.items]"))
    prices = sales_prices().assign(Price=[90.1, 80.05, 99.0, 120.0])
    valid, _ = split_valid(registrations(registration(registration_id="own")))
    joined, _ = join_masters(valid, masters(), cfg)
    frame, _, _ = price(joined, cfg, sales_prices=prices)
    assert frame.loc[0, "rate"] == D("80.05")


def test_internal_rate_and_no_customer_override_for_departments():
    from tests.billing_factories import CONFIG_TOML

    text = CONFIG_TOML.replace(
        "[administrations.1.internal.departments.INT-ICT]",
        '[administrations.1.internal]\nrate = "60.00"\n[administrations.1.internal.departments.INT-ICT]',
    )
    cfg = config(base=text)
    valid, _ = split_valid(
        registrations(
            registration(registration_id="int", customer_number="INT-ICT", entry_date=at("2026-10-10 11:00"))
        )
    )
    joined, _ = join_masters(valid, masters(), cfg)
    frame, _, _ = price(joined, cfg)
    assert (frame.loc[0, "rate"], frame.loc[0, "rate_source"]) == (D("60.00"), "internal rate")
    assert frame.loc[0, "surcharge_percent"] == D("0")  # internal hours carry no weekend surcharge


# --- surcharges -------------------------------------------------------------------------------------------

SURCHARGES = """
[[surcharges]]
name = "avond"
days = ["mon", "tue", "wed", "thu", "fri"]
start = "18:00"
end = "24:00"
percent = "50"
[[surcharges]]
name = "nacht"
days = ["mon", "tue", "wed", "thu", "fri"]
start = "22:00"
end = "06:00"
percent = "75"
[[surcharges]]
name = "weekend"
days = ["sat", "sun"]
start = "00:00"
end = "24:00"
percent = "100"
"""


def test_surcharge_windows_in_amsterdam_time():
    frame, _, _ = priced(
        registration(registration_id="day", entry_date=at("2026-10-06 17:59")),
        registration(
            registration_id="evening", entry_date=pd.Timestamp("2026-10-06T16:30:00Z")
        ),  # 18:30 CEST
        registration(registration_id="night", entry_date=at("2026-10-07 23:15")),
        registration(registration_id="early", entry_date=at("2026-10-08 05:59")),
        registration(registration_id="saturday", entry_date=at("2026-10-10 10:00")),
        extra=SURCHARGES,
    )
    assert frame["surcharge"].fillna("-").to_dict() == {
        "day": "-",
        "evening": "avond",
        "night": "nacht",  # 75 % beats the evening's 50 %
        "early": "nacht",
        "saturday": "weekend",
    }
    assert frame["unit_price"].to_dict() == {
        "day": D("95.00"),
        "evening": D("142.50"),
        "night": D("166.25"),
        "early": D("166.25"),
        "saturday": D("190.00"),
    }
    assert amounts(frame, SURCHARGES) == {
        "day": D("95.00"),
        "evening": D("142.50"),
        "night": D("166.25"),
        "early": D("166.25"),
        "saturday": D("190.00"),
    }


def test_unit_price_is_rounded_half_up_to_cents():
    extra = '[[surcharges]]\nname = "odd"\ndays = ["tue"]\nstart = "00:00"\nend = "24:00"\npercent = "12.5"\n'
    frame, _, _ = priced(registration(registration_id="odd", minutes=20), extra=extra)
    # 95.00 × 1.125 = 106.875 → 106.88; 20 min = 0.33 h → 0.33 × 106.88 = 35.2704 → 35.27
    assert frame.loc["odd", "unit_price"] == D("106.88")
    assert amounts(frame, extra) == {"odd": D("35.27")}


# --- rounding and minimum per ticket ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("direction", "billed", "amount"),
    [
        ("up", [15, 15, 30, 45], ["23.75", "23.75", "47.50", "71.25"]),
        ("down", [0, 15, 15, 30], ["0.00", "23.75", "23.75", "47.50"]),
        ("nearest", [0, 15, 30, 45], ["0.00", "23.75", "47.50", "71.25"]),
    ],
)
def test_rounding_per_registration(direction, billed, amount):
    extra = f'[rounding]\nunit_minutes = 15\ndirection = "{direction}"\n'
    rows = [registration(registration_id=f"m{m}", minutes=m) for m in (1, 15, 23, 38)]
    frame, _, _ = priced(*rows, extra=extra)
    assert list(frame["billed_minutes"]) == billed
    assert [str(v) for v in amounts(frame, extra).values()] == amount


def test_minimum_per_ticket_tops_up_the_earliest_registration():
    extra = "[rounding]\nminimum_minutes_per_ticket = 30\n"
    frame, _, _ = priced(
        registration(
            registration_id="late",
            ticket_id="T1",
            billed_ticket_id="T1",
            minutes=5,
            entry_date=at("2026-10-06 15:00"),
        ),
        registration(
            registration_id="early",
            ticket_id="T1",
            billed_ticket_id="T1",
            minutes=10,
            entry_date=at("2026-10-06 09:00"),
        ),
        registration(registration_id="big", ticket_id="T2", billed_ticket_id="T2", minutes=45),
        registration(
            registration_id="int", ticket_id="T3", billed_ticket_id="T3", minutes=5, customer_number="INT-ICT"
        ),
        extra=extra,
    )
    assert frame["minimum_topup"].to_dict() == {"late": 0, "early": 15, "big": 0, "int": 0}
    assert frame["billed_minutes"].to_dict() == {"late": 5, "early": 25, "big": 45, "int": 5}
    assert sum(frame.loc[["late", "early"], "billed_minutes"]) == 30


# --- prepaid hour bundles ---------------------------------------------------------------------------------


def test_bundle_draws_earliest_registrations_first_and_bills_the_rest():
    bundles = pd.DataFrame({"customer_number": ["10001"], "minutes_available": [90]})
    frame, _, draws = priced(
        registration(registration_id="first", minutes=60, entry_date=at("2026-10-06 09:00")),
        registration(registration_id="second", minutes=60, entry_date=at("2026-10-06 11:00")),
        registration(registration_id="third", minutes=30, entry_date=at("2026-10-07 11:00")),
        registration(registration_id="other", minutes=60, customer_number="10002"),
        bundles=bundles,
    )
    assert frame["drawn_minutes"].to_dict() == {"first": 60, "second": 30, "third": 0, "other": 0}
    assert frame["chargeable_minutes"].to_dict() == {"first": 0, "second": 30, "third": 30, "other": 60}
    assert amounts(frame) == {
        "first": D("0.00"),
        "second": D("47.50"),
        "third": D("47.50"),
        "other": D("95.00"),
    }
    assert dict(zip(draws["registration_id"], draws["minutes"], strict=True)) == {"first": 60, "second": 30}
    BundleDraws.validate(draws)


def test_prior_draws_are_kept_and_billed_registrations_do_not_draw_anew():
    bundles = pd.DataFrame({"customer_number": ["10001"], "minutes_available": [120]})
    prior = pd.DataFrame({"registration_id": ["kept"], "minutes": [20]})
    frame, _, draws = priced(
        registration(registration_id="kept", minutes=60, entry_date=at("2026-10-06 09:00")),
        registration(registration_id="billed", minutes=60, entry_date=at("2026-10-06 10:00")),
        registration(registration_id="new", minutes=60, entry_date=at("2026-10-06 11:00")),
        bundles=bundles,
        prior_draws=prior,
        billed_ids=pd.Series(["billed"]),
    )
    assert frame["drawn_minutes"].to_dict() == {"kept": 20, "billed": 0, "new": 60}
    # every draw the charged registrations hold after the plan: the kept one and the new one
    assert dict(zip(draws["registration_id"], draws["minutes"], strict=True)) == {"kept": 20, "new": 60}


def test_bundle_validity_window_and_order_of_bundles():
    bundles = pd.DataFrame(
        {
            "customer_number": ["10001", "10001"],
            "minutes_available": [30, 60],
            "valid_from": [pd.Timestamp("2026-10-07"), pd.Timestamp("2026-01-01")],
            "valid_to": [None, pd.Timestamp("2026-10-06")],
        }
    )
    frame, _, _ = priced(
        registration(registration_id="mon", minutes=45, entry_date=at("2026-10-05 09:00")),
        registration(registration_id="tue", minutes=45, entry_date=at("2026-10-06 09:00")),
        registration(registration_id="wed", minutes=45, entry_date=at("2026-10-07 09:00")),
        bundles=bundles,
    )
    # the old bundle (60, until 6 Oct) covers Monday fully and 15 min of Tuesday; the new one starts 7 Oct
    assert frame["drawn_minutes"].to_dict() == {"mon": 45, "tue": 15, "wed": 30}


def test_zero_billed_minutes_never_draw():
    bundles = pd.DataFrame({"customer_number": ["10001"], "minutes_available": [60]})
    extra = '[rounding]\nunit_minutes = 15\ndirection = "down"\n'
    frame, _, draws = priced(registration(registration_id="tiny", minutes=5), bundles=bundles, extra=extra)
    assert frame.loc["tiny", "drawn_minutes"] == 0 and draws.empty
