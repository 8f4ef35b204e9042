"""Contract hours (monthly allowances): included at zero, overage charged, use remembered, given back.

The end-to-end test reads AFAS back per document; the plain tests cover the order of application, the
carry-over and item restriction, the config errors and the mirrored reversal.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from store import bundles
from store.db import connect
from store.settings import StoreSettings
from tasks.invoice_hours.allowances import allowance_months, draw_pools
from tasks.invoice_hours.config import BillingConfigError
from tasks.invoice_hours.reconcile import mirror_draws
from tests.billing_factories import at, config
from tests.invoice_support import afas_invoices, decimal
from tests.reconcile_support import oracle, pin_today, regular, single_registration_tickets

CONFIG = Path(__file__).resolve().parents[2] / "config" / "billing.toml"
INCLUDED_TEXT = "(inbegrepen: contracturen)"


# --- plain functions ------------------------------------------------------------------------------------


def allowance_config(extra: str = ""):
    return config(
        '\n[[allowances]]\nname = "c1"\ncustomer_number = "10001"\nhours_per_month = "1"\n'
        "valid_from = 2026-09-01\n" + extra
    )


def frame(*rows) -> pd.DataFrame:
    table = pd.DataFrame(rows)
    return table.assign(
        target="customer", work_date=table["entry_date"].dt.tz_convert("Europe/Amsterdam")
    ).reset_index(drop=True)


def line(rid: str, minutes: int, when: str, customer: str = "10001", item: str = "SUPPORT") -> dict:
    return {
        "registration_id": rid,
        "customer_number": customer,
        "billed_minutes": minutes,
        "entry_date": at(when),
        "item_code": item,
    }


def pools(*rows) -> pd.DataFrame:
    columns = [
        "bundle_id",
        "customer_number",
        "valid_from",
        "valid_to",
        "minutes_available",
        "source",
        "allowance",
    ]
    return pd.DataFrame(rows, columns=columns)


def test_allowance_first_then_bundle_earliest_registration_first() -> None:
    cfg = allowance_config()
    table = pools(
        (7, "10001", date(2026, 1, 1), None, 100, "bundle", ""),
        (8, "10001", date(2026, 10, 1), date(2026, 10, 31), 60, "allowance", "c1"),
    )
    lines = frame(line("b", 45, "2026-10-07 09:00"), line("a", 45, "2026-10-06 09:00"))
    drawn, included, draws = draw_pools(lines, table, None, None, cfg)
    assert dict(zip(lines["registration_id"], drawn, strict=True)) == {"a": 45, "b": 45}
    assert dict(zip(lines["registration_id"], included, strict=True)) == {"a": 45, "b": 15}
    assert sorted(zip(draws["registration_id"], draws["bundle_id"], draws["minutes"], strict=True)) == [
        ("a", 8, 45),
        ("b", 7, 30),
        ("b", 8, 15),
    ]


def test_item_restriction_and_carry_over_months() -> None:
    cfg = allowance_config('items = ["SUPPORT"]\ncarry_over_months = 1\n')
    months = allowance_months(cfg, date(2026, 10, 1), date(2026, 10, 31))
    assert [(m["month"], m["valid_to"]) for m in months] == [
        (date(2026, 9, 1), date(2026, 10, 31)),  # September's unused minutes are still usable in October
        (date(2026, 10, 1), date(2026, 11, 30)),
    ]
    table = pools(
        (1, "10001", date(2026, 9, 1), date(2026, 10, 31), 20, "allowance", "c1"),
        (2, "10001", date(2026, 10, 1), date(2026, 11, 30), 60, "allowance", "c1"),
    )
    lines = frame(line("other", 30, "2026-10-01 09:00", item="PROJECT"), line("sup", 90, "2026-10-02 09:00"))
    _drawn, included, draws = draw_pools(lines, table, None, None, cfg)
    assert dict(zip(lines["registration_id"], included, strict=True)) == {"other": 0, "sup": 80}
    # the carried-over month first (it expires first), then October's own
    assert list(zip(draws["bundle_id"], draws["minutes"], strict=True)) == [(1, 20), (2, 60)]


def test_earlier_draws_are_kept_capped_and_not_reused_for_another_customer() -> None:
    cfg = allowance_config()
    table = pools((8, "10001", date(2026, 10, 1), date(2026, 10, 31), 0, "allowance", "c1"))
    prior = pd.DataFrame(
        {
            "registration_id": ["shrunk", "moved"],
            "bundle_id": [8, 8],
            "customer_number": ["10001", "10001"],
            "valid_from": [date(2026, 10, 1)] * 2,
            "valid_to": [date(2026, 10, 31)] * 2,
            "source": ["allowance"] * 2,
            "allowance": ["c1"] * 2,
            "minutes": [45, 15],
        }
    )
    lines = frame(
        line("shrunk", 30, "2026-10-06 09:00"), line("moved", 15, "2026-10-06 10:00", customer="10002")
    )
    drawn, included, _ = draw_pools(lines, table, prior, pd.Series(["shrunk", "moved"]), cfg)
    assert list(drawn) == [30, 0] and list(included) == [30, 0]


def test_allowance_config_errors_name_the_key() -> None:
    with pytest.raises(BillingConfigError, match=r"allowances\.0\.hours_per_month"):
        config('\n[[allowances]]\nname = "x"\ncustomer_number = "1"\nvalid_from = 2026-01-01\n')
    with pytest.raises(BillingConfigError, match=r"allowances\.0\.items: 'NOPE' is not an item"):
        allowance_config('items = ["NOPE"]\n')
    with pytest.raises(BillingConfigError, match=r"allowances: name 'c1' is used twice"):
        allowance_config(
            '\n[[allowances]]\nname = "c1"\ncustomer_number = "2"\nhours_per_month = 1\n'
            "valid_from = 2026-01-01\n"
        )
    with pytest.raises(BillingConfigError, match=r"allowances\.0.*whole number of minutes"):
        config(
            '\n[[allowances]]\nname = "a"\ncustomer_number = "1"\nhours_per_month = "0.001"\n'
            "valid_from = 2026-01-01\n"
        )


def test_a_reversal_negates_the_included_minutes_at_zero() -> None:
    credit = pd.DataFrame(
        {
            "registration_id": ["r"],
            "kind": ["direct_invoice"],
            "billed_minutes": [-90],
            "chargeable_minutes": [-90],
        }
    )
    draws = pd.DataFrame(
        {"registration_id": ["r", "r"], "source": ["allowance", "bundle"], "minutes": [60, 15]}
    )
    mirrored = mirror_draws(credit, draws).iloc[0]
    assert (mirrored["drawn_minutes"], mirrored["included_minutes"], mirrored["chargeable_minutes"]) == (
        -75,
        -60,
        -15,
    )
    assert (mirrored["drawn_hundredths"], mirrored["included_hundredths"]) == (-125, -100)


# --- end to end against the sandbox -------------------------------------------------------------------


@pytest.fixture
def sandbox(sandbox, monkeypatch):
    """The session's small-world sandbox (tests/conftest.py), with today pinned."""
    pin_today(monkeypatch)
    return sandbox


def write_config(tmp_path, extra: str, name: str = "billing.toml") -> str:
    path = tmp_path / name
    path.write_text(CONFIG.read_text() + "\n" + extra)
    return str(path)


def afas_of(sandbox, references) -> dict[str, list[dict]]:
    """AFAS's invoice lines per reference (read back from the sandbox)."""
    held = afas_invoices(sandbox.apps["afas"].state.sim)
    return {ref: [line for doc in held.get(ref, []) for line in doc["lines"]] for ref in references}


def net(lines: list[dict]) -> Decimal:
    return sum((decimal(decimal(x["QuUn"]) * decimal(x["Upri"])) for x in lines), Decimal("0.00"))


def customer_net(sandbox, documents: pd.DataFrame, customer: str) -> Decimal:
    references = documents.loc[
        documents["debtor"].eq(customer) & documents["status"].eq("posted"), "reference"
    ]
    return sum((net(lines) for lines in afas_of(sandbox, set(references)).values()), Decimal("0.00"))


def included_hours(sandbox, references) -> Decimal:
    lines = [x for found in afas_of(sandbox, references).values() for x in found]
    return sum((decimal(x["QuUn"]) for x in lines if INCLUDED_TEXT in str(x["Ds"])), Decimal("0.00"))


@pytest.mark.prefect
def test_allowance_billed_at_zero_overage_charged_remembered_and_given_back(
    prefect_harness, sandbox, monkeypatch, tmp_path
) -> None:
    engine = connect(StoreSettings())
    dry = regular(dry_run=True)
    docs = dry["documents"].set_index("reference")
    invoiced = dry["buckets"][dry["buckets"]["bucket"].eq("invoiced")]
    invoiced = invoiced.assign(
        debtor=invoiced["reference"].map(docs["debtor"]), kind=invoiced["reference"].map(docs["kind"])
    )
    regs = sandbox.world.extra["td_registrations"].set_index("id")
    october = regs["entryDate"].dt.tz_convert("Europe/Amsterdam").dt.month.eq(10)
    invoiced = invoiced[invoiced["kind"].eq("direct_invoice") & invoiced["registration_id"].map(october)]
    customer = invoiced.groupby("debtor")["billed_minutes"].sum().sort_values().index[-1]
    theirs = invoiced[invoiced["debtor"].eq(customer)]
    theirs = theirs.assign(entry=theirs["registration_id"].map(regs["entryDate"]))
    last = theirs.sort_values(["entry", "registration_id"]).iloc[-1]
    # all of the customer's October minutes but half of its last registration's: included and overage
    allowance = int(theirs["billed_minutes"].sum()) - (int(last["billed_minutes"]) + 1) // 2
    extra = (
        f'[[allowances]]\nname = "contract-{customer}"\ncustomer_number = "{customer}"\n'
        f'hours_per_month = "{Decimal(allowance) / 60}"\nvalid_from = 2026-10-01\n'
    )
    path = write_config(tmp_path, extra)
    desired = oracle(monkeypatch, tmp_path, config_path=path)

    first = regular(config_path=path)
    assert first["conservation"]["holds"] and first["not_clean"] is None
    documents = first["documents"]
    posted = documents[documents["status"].eq("posted") & documents["kind"].eq("direct_invoice")]
    # AFAS holds per document exactly what was planned, and per customer what one clean run charges
    for reference, lines in afas_of(sandbox, set(posted["reference"])).items():
        assert net(lines) == posted.set_index("reference").loc[reference, "amount"], reference
    charged = first["buckets"][first["buckets"]["bucket"].eq("invoiced")]
    mine = charged[charged["reference"].isin(posted.loc[posted["debtor"].eq(customer), "reference"])]
    assert customer_net(sandbox, documents, customer) == sum(
        (desired[r] for r in mine["registration_id"]), Decimal("0.00")
    )
    status = bundles.bundle_status(engine, customer, allowances=True)
    assert list(status["minutes_drawn"]) == [allowance] and list(status["minutes_left"]) == [0]
    references = set(posted.loc[posted["debtor"].eq(customer), "reference"])
    included = included_hours(sandbox, references)
    assert abs(included * 60 - allowance) <= len(mine)  # per-line rounding to 0.01 h, at most ±0.6 min each
    assert bundles.bundle_status(engine).empty  # allowances are not prepaid bundles

    # a second run and an overlapping backfill grant nothing twice
    assert regular(config_path=path)["documents"]["status"].eq("posted").sum() == 0
    from tests.reconcile_support import backfill

    assert backfill(date(2026, 10, 15), date(2026, 10, 31), config_path=path)["documents"].empty
    assert list(bundles.bundle_status(engine, customer, allowances=True)["minutes_drawn"]) == [allowance]

    # a registration that drew from the allowance, alone on its ticket, is excluded after billing
    alone = set(single_registration_tickets(sandbox.world)["id"])
    drew = bundles.draw_rows(engine, sorted(set(mine["registration_id"]) & alone))
    victim = drew.sort_values("registration_id").iloc[0]
    before = customer_net(sandbox, documents, customer)
    excluded = write_config(
        tmp_path,
        extra + f'\n[[exclusions.rules]]\nkind = "registration"\nvalue = "{victim.registration_id}"\n'
        'reason = "goodwill"\n',
        "excluded.toml",
    )
    third = regular(config_path=excluded)
    bucket = third["buckets"].set_index("registration_id").loc[victim.registration_id, "bucket"]
    assert bucket == "reversed after billing"
    credit_refs = set(third["documents"].loc[third["documents"]["status"].eq("posted"), "reference"])
    credit_lines = [x for lines in afas_of(sandbox, credit_refs).values() for x in lines]
    zero = [x for x in credit_lines if INCLUDED_TEXT in str(x["Ds"])]
    assert zero and all(decimal(x["Upri"]) == 0 and decimal(x["QuUn"]) < 0 for x in zero)
    victim_charge = mine.set_index("registration_id").loc[victim.registration_id, "amount"]
    both = pd.concat([documents, third["documents"]])
    assert customer_net(sandbox, both, customer) == before - victim_charge  # the credit mirrors the charge
    left = bundles.bundle_status(engine, customer, allowances=True)
    assert list(left["minutes_left"]) == [int(victim.minutes)]  # given back to the allowance
    assert bundles.draw_rows(engine, [victim.registration_id]).empty


@pytest.mark.prefect
def test_bundle_minutes_come_back_when_a_registration_is_changed_or_deleted(
    prefect_harness, sandbox, tmp_path
) -> None:
    engine = connect(StoreSettings())
    dry = regular(dry_run=True)
    docs = dry["documents"].set_index("reference")
    alone = single_registration_tickets(sandbox.world).set_index("id")
    invoiced = dry["buckets"][dry["buckets"]["bucket"].eq("invoiced")]
    invoiced = invoiced[invoiced["reference"].map(docs["kind"]).eq("direct_invoice")]
    invoiced = invoiced.assign(debtor=invoiced["reference"].map(docs["debtor"]))
    candidates = invoiced[invoiced["registration_id"].isin(alone.index) & invoiced["minutes"].ge(60)]
    customer = candidates["debtor"].value_counts().index[0]
    changed, deleted = sorted(candidates.loc[candidates["debtor"].eq(customer), "registration_id"])[:2]
    bundle = f'[[bundles]]\nname = "big"\ncustomer_number = "{customer}"\nhours = "1000"\n'
    bundle += "valid_from = 2026-01-01\n"
    path = write_config(tmp_path, bundle)

    first = regular(config_path=path)
    assert first["not_clean"] is None
    assert customer_net(sandbox, first["documents"], customer) == Decimal("0.00")  # all prepaid
    drawn = bundles.draw_rows(engine, [changed, deleted]).set_index("registration_id")["minutes"]
    size = bundles.bundle_status(engine, customer).iloc[0]
    assert size["minutes_drawn"] == int(invoiced.loc[invoiced["debtor"].eq(customer), "billed_minutes"].sum())

    topdesk = sandbox.apps["topdesk"].state.sim
    topdesk.set_registration_minutes(changed, 10)  # billed 30 now (rounding up, ticket minimum)
    topdesk.delete_registration(deleted)
    second = regular(config_path=path)
    buckets = second["buckets"].set_index("registration_id")["bucket"]
    assert (buckets[changed], buckets[deleted]) == ("re-charged", "reversed (deleted)")
    after = bundles.bundle_status(engine, customer).iloc[0]
    now_changed = int(bundles.draw_rows(engine, [changed])["minutes"].sum())
    assert bundles.draw_rows(engine, [deleted]).empty
    assert after["minutes_drawn"] == size["minutes_drawn"] - drawn[deleted] - (drawn[changed] - now_changed)
    assert 0 < now_changed < drawn[changed]
    documents = pd.concat([first["documents"], second["documents"]])
    assert customer_net(sandbox, documents, customer) == Decimal("0.00")  # credits mirror the prepaid lines
    new = second["documents"][second["documents"]["status"].eq("posted")]
    lines = [x for found in afas_of(sandbox, set(new["reference"])).values() for x in found]
    prepaid = [x for x in lines if "(strippenkaart)" in str(x["Ds"])]
    assert all(decimal(x["Upri"]) == 0 for x in prepaid)
    net_hours = sum((decimal(x["QuUn"]) for x in prepaid), Decimal("0.00"))
    expected = -Decimal(int(drawn[deleted]) + int(drawn[changed]) - now_changed) / 60
    assert abs(net_hours - expected) <= Decimal("0.02")  # per-line rounding to 0.01 h
