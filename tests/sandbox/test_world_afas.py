"""The AFAS side of the seeded world: determinism, coherence of master data and HR, speed."""

from __future__ import annotations

import hashlib
import re
import time
from datetime import date
from decimal import Decimal

import pandas as pd
import pytest
from pandera.errors import SchemaErrors

from sandbox.world import afas as world_afas
from sandbox.world import check_world, generate_core, generate_world
from sandbox.world.afas_frames import FRAMES
from tests.fixtures.worlds import afas_world

AFAS_FRAMES = {
    "afas_debtors",
    "afas_administrations",
    "afas_projects",
    "afas_worktypes",
    "afas_periods",
    "afas_sales_prices",
    "afas_contacts",
    "afas_gl_accounts",
    "afas_journals",
    "afas_vat_codes",
    "afas_allocations",
    "afas_units",
    "afas_countries",
    "hr_org_units",
    "hr_employees",
    "hr_employments",
    "hr_illness",
    "hr_users",
}


def _fingerprint(frames: dict[str, pd.DataFrame]) -> str:
    digest = hashlib.sha256()
    for name in sorted(frames):
        digest.update(name.encode())
        digest.update(frames[name].to_csv(index=False).encode())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def world():
    return afas_world(seed=7, scale=3_000)


def test_render_returns_exactly_the_agreed_frames(world):
    assert set(world_afas.render(world)) == AFAS_FRAMES


def test_same_seed_gives_the_same_frames_byte_for_byte():
    first = world_afas.render(generate_core(seed=11, scale=2_000))
    second = world_afas.render(generate_core(seed=11, scale=2_000))
    other = world_afas.render(generate_core(seed=12, scale=2_000))
    assert _fingerprint(first) == _fingerprint(second)
    assert _fingerprint(first) != _fingerprint(other)
    for name in AFAS_FRAMES:
        assert first[name].to_csv(index=False) == second[name].to_csv(index=False), name


def test_debtors_are_the_customers_known_in_afas_with_their_blocked_flag(world):
    debtors = world.extra["afas_debtors"]
    in_afas = world.customers[world.customers["in_afas"]]
    assert list(debtors["DebtorId"]) == list(in_afas["customer_number"])
    assert list(debtors["Blocked"]) == list(in_afas["blocked"])
    assert debtors["Blocked"].any() and not debtors["Blocked"].all()
    assert not set(debtors["DebtorId"]) & set(
        world.customers.loc[~world.customers["in_afas"], "customer_number"]
    )
    assert str(debtors["CreateDate"].dtype) == "datetime64[ns, Europe/Amsterdam]"
    assert (debtors["ModifiedDate"] >= debtors["CreateDate"]).all()
    assert isinstance(debtors["CreditLimit"].iloc[0], Decimal)


def test_debtor_ibans_pass_the_mod_97_check(world):
    for iban in world.extra["afas_debtors"]["IBAN"]:
        digits = "".join(str(int(ch, 36)) for ch in iban[4:] + iban[:4])
        assert int(digits) % 97 == 1, iban


def test_projects_belong_to_afas_debtors_and_closed_ones_have_a_ready_date(world):
    projects, debtors = world.extra["afas_projects"], world.extra["afas_debtors"]
    assert set(projects["DebtorId"]) <= set(debtors["DebtorId"])
    closed = projects[projects["CheckedOut"]]
    assert len(closed) > 0
    assert closed["DateReady"].notna().all()
    assert projects.loc[~projects["CheckedOut"], "DateReady"].isna().all()
    first_world_day = pd.Timestamp("2026-08-01", tz="Europe/Amsterdam")
    assert (closed["DateReady"] < first_world_day).all()  # closed before the billed months


def test_periods_open_from_the_first_world_month_and_blocked_before():
    core = generate_core(seed=3, scale=200, anchor=date(2026, 2, 1), months=3)
    periods = world_afas.render(core)["afas_periods"]
    assert sorted(periods["Unit"].unique()) == [1, 2]
    assert sorted(periods["Year"].unique()) == [2025, 2026]
    assert len(periods) == 2 * 2 * 12
    one = periods[periods["Unit"] == 1].set_index(["Year", "Period"])["Blocked"]
    assert one[(2025, 10)] and not one[(2025, 11)] and not one[(2026, 1)] and not one[(2026, 2)]
    assert not one[(2026, 12)]
    nov = periods[(periods["Unit"] == 1) & (periods["Year"] == 2025) & (periods["Period"] == 11)].iloc[0]
    assert nov["DateFrom"] == pd.Timestamp("2025-11-01", tz="Europe/Amsterdam")
    assert nov["DateTo"] == pd.Timestamp("2025-11-30", tz="Europe/Amsterdam")


def test_sales_prices_general_per_item_plus_some_debtor_specific(world):
    prices = world.extra["afas_sales_prices"]
    general = prices[prices["DebtorId"].isna()]
    assert list(general["ItemCode"]) == list(world.items["item_code"])
    assert list(general["Price"]) == [Decimal(p) for p in world.items["price"]]
    special = prices[prices["DebtorId"].notna()]
    assert len(special) > 0
    assert set(special["DebtorId"]) <= set(world.extra["afas_debtors"]["DebtorId"])
    by_item = dict(zip(general["ItemCode"], general["Price"], strict=True))
    for row in special.itertuples():
        assert row.Price == (by_item[row.ItemCode] * Decimal("0.90")).quantize(Decimal("0.01"))


def test_contacts_are_persons_of_afas_organisations(world):
    contacts, debtors = world.extra["afas_contacts"], world.extra["afas_debtors"]
    assert set(contacts["DebtorId"]) <= set(debtors["DebtorId"])
    org_of = dict(zip(debtors["DebtorId"], debtors["BcCo"], strict=True))
    assert all(org_of[d] == o for d, o in zip(contacts["DebtorId"], contacts["OrgBcCo"], strict=True))
    assert contacts["BcCo"].is_unique and contacts["ContactId"].is_unique


def test_gl_accounts_hold_what_journal_entries_use(world):
    accounts = world.extra["afas_gl_accounts"]
    for unit in (1, 2):
        numbers = set(accounts.loc[accounts["Unit"] == unit, "AccountNr"])
        assert {"8000", "8010", "8900", "1500", "1510", "1300"} <= numbers
    unit_one = set(accounts.loc[accounts["Unit"] == 1, "AccountNr"])
    assert set(world.departments["cost_account"]) <= unit_one


def test_journals_vat_codes_and_cost_centres_hold_what_the_billing_config_names(world):
    journals = world.extra["afas_journals"]
    assert set(zip(journals["UnitId"], journals["JournalId"], strict=True)) == {
        (unit, code) for unit in (1, 2) for code in ("20", "90")
    }
    assert {"0", "1", "2", "5"} == set(world.extra["afas_vat_codes"]["VatCode"])
    allocations = world.extra["afas_allocations"]
    pairs = set(zip(allocations["Account"], allocations["DimCode"], strict=True))
    assert pairs == set(zip(world.departments["cost_account"], world.departments["cost_centre"], strict=True))


def test_org_units_are_a_tree_led_by_employees(world):
    units, employees = world.extra["hr_org_units"], world.extra["hr_employees"]
    ids = set(units["org_unit_id"])
    assert units["org_unit_id"].is_unique
    assert units["parent_id"].isna().sum() == 1
    assert set(units["parent_id"].dropna()) <= ids
    assert set(units["manager_employee_id"]) <= set(employees["employee_id"])
    assert len(units) == 1 + len(world.departments) + len(world.operator_groups)


def test_every_operator_is_an_employee_and_every_employment_has_a_unit(world):
    employees, employments = world.extra["hr_employees"], world.extra["hr_employments"]
    units = set(world.extra["hr_org_units"]["org_unit_id"])
    assert set(world.operators["employee_number"]) <= set(employees["employee_id"])
    assert employees["employee_id"].is_unique
    assert set(employments["org_unit_id"]) <= units
    assert set(employments["employee_id"]) == set(employees["employee_id"])
    assert not employments.duplicated(["employee_id", "employment_id"]).any()
    assert list(employments.columns) == world_afas.EMPLOYMENT_COLUMNS


def test_employments_show_flex_constructions_renumbering_and_leavers(world):
    employments = world.extra["hr_employments"]
    open_ = employments[employments["end_date"].isna()]
    flex = open_.groupby("employee_id").size()
    assert (flex == 2).sum() >= 1  # two concurrent employments: a flex construction
    assert (employments["employment_id"] != employments["sequence_number"]).any()
    assert (employments["employment_id"] == employments["sequence_number"]).mean() > 0.7
    ended = employments[employments["end_date"].notna()]
    assert len(ended) > 0 and (ended["end_date"] > ended["start_date"]).all()


def test_salaries_are_decimal_and_consistent(world):
    row = world.extra["hr_employments"].iloc[0]
    monthly = row["salary_monthly"]
    assert isinstance(monthly, Decimal) and monthly == monthly.quantize(Decimal("0.01"))
    assert row["salary_four_weekly"] == (monthly * 12 / 13).quantize(Decimal("0.01"))
    assert row["sv_wage"] == (monthly * Decimal("1.08")).quantize(Decimal("0.01"))


def test_illness_spans_thirty_months_and_references_real_employments(world):
    illness, employments = world.extra["hr_illness"], world.extra["hr_employments"]
    pairs = set(zip(employments["employee_id"], employments["employment_id"], strict=True))
    assert all(p in pairs for p in zip(illness["employee_id"], illness["employment_id"], strict=True))
    anchor = pd.Timestamp(world.anchor, tz="Europe/Amsterdam")
    assert illness["start_date"].min() >= anchor - pd.DateOffset(months=30)
    assert illness["start_date"].max() < anchor
    assert illness["start_date"].max() - illness["start_date"].min() > pd.Timedelta(days=600)
    assert illness["end_date"].isna().any()  # some absences are still open
    closed = illness[illness["end_date"].notna()]
    assert (closed["end_date"] >= closed["start_date"]).all()
    assert all(re.fullmatch(r"\{[0-9A-F-]{36}\}", g) for g in illness["guid"])
    assert illness["absence_id"].is_unique


def test_users_are_managers_and_some_staff_with_environment_prefixed_ids(world):
    users = world.extra["hr_users"]
    managers = set(world.extra["hr_org_units"]["manager_employee_id"])
    assert managers <= set(users["employee_id"])
    assert users["user_id"].is_unique
    assert all(re.fullmatch(r"12345\.[a-z0-9]+", u) for u in users["user_id"])
    assert users["upn"].str.endswith("@koppel.example.nl").all()


@pytest.mark.slow
def test_the_largest_world_renders_its_afas_side_quickly():
    core = generate_core(seed=1, scale=1_000_000)
    started = time.perf_counter()
    frames = world_afas.render(core)
    elapsed = time.perf_counter() - started
    assert len(frames["afas_debtors"]) > 15_000
    assert len(frames["hr_employees"]) == 2_400
    assert elapsed < 10, elapsed


def test_most_debtors_are_domestic_and_a_few_reverse_charge(world):
    duties = world.extra["afas_debtors"]["VatDuty"]
    assert set(duties) == {world_afas.VAT_DUTY_DOMESTIC, world_afas.VAT_DUTY_REVERSE}
    assert (duties == world_afas.VAT_DUTY_DOMESTIC).mean() > 0.8


@pytest.mark.parametrize(("seed", "scale"), [(7, 3_000), (4, 400), (1, 20)])
def test_every_frame_meets_its_schema(seed: int, scale: int) -> None:
    world = generate_world(seed=seed, scale=scale, check=True)  # raises on a frame that drifted
    assert {name for name in world.extra if name.startswith(("afas_", "hr_"))} == set(FRAMES) == AFAS_FRAMES


def test_a_frame_that_drifts_from_its_schema_fails_the_check() -> None:
    world = generate_world(seed=4, scale=60)
    moved = world.extra["afas_debtors"]
    world.extra["afas_debtors"] = moved[[*moved.columns[1:], moved.columns[0]]]
    with pytest.raises(SchemaErrors, match="DebtorId"):
        check_world(world)
    world.extra["afas_debtors"] = moved.assign(CreditLimit=moved["CreditLimit"].map(float))
    with pytest.raises(SchemaErrors, match="CreditLimit"):
        check_world(world)
    world.extra["afas_debtors"] = moved
    world.customers["admin_id"] = world.customers["admin_id"].astype(str)  # the core is checked as well
    with pytest.raises(SchemaErrors, match="admin_id"):
        check_world(world)
    world.customers["admin_id"] = world.customers["admin_id"].astype("int64")
    world.extra["afas_budgets"] = moved
    with pytest.raises(ValueError, match="without a schema: afas_budgets"):
        check_world(world)
