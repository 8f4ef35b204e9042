"""create-missing-debtors: billable branches, the plan, the AFAS payload, and inserting exactly once."""

from __future__ import annotations

import asyncio

import pandas as pd
import pytest

from connectors.afas.client import AfasClient
from connectors.afas.settings import AfasSettings
from koppel.settings import load
from sandbox.afas.schemas import parse_body
from tasks.company_sync.config import CreateDebtors
from tasks.company_sync.debtors import (
    billable_branches,
    insert_debtor,
    organisation_number,
    plan_missing_debtors,
    sales_relation,
    skip_list,
)

BRANCH_ID = "6e249ce7-716c-48bf-9970-0ca7da61f58d"


def test_organisation_numbers_are_stable_and_fit_afas() -> None:
    assert organisation_number(BRANCH_ID) == "TD6E249CE7716C4"
    assert organisation_number(BRANCH_ID, "X") == "X6E249CE7716C48"
    hashed = organisation_number("branch-17")
    assert len(hashed) == 15 and hashed == organisation_number("branch-17") != organisation_number(
        "branch-18"
    )


def test_billable_branches_count_positive_minutes_only() -> None:
    registrations = pd.DataFrame(
        {
            "branch_id": ["a", "a", "b", "b", "c", None, "d"],
            "minutes": pd.array([30, 45, 0, -15, None, 60, 15], dtype="Int64"),
        }
    )
    result = billable_branches(registrations)
    assert result.values.tolist() == [["a", 75, 2], ["d", 15, 1]]


def branches() -> pd.DataFrame:
    rows = [
        ("b1", "Has debtor", "10001", False),
        ("b2", "Only in TOPdesk", "10002", False),
        ("b3", "Particulieren", "", False),
        ("b4", "Interne ICT", "INT-ICT", False),
        ("b5", "Old", "", True),
        ("b6", "Created before a crash", "", False),
    ]
    return pd.DataFrame(rows, columns=["id", "name", "clientReferenceNumber", "archived"])


def test_the_plan_creates_links_and_skips_with_reasons() -> None:
    billable = pd.DataFrame({"branch_id": [f"b{i}" for i in range(1, 8)], "minutes": 60, "registrations": 1})
    debtors = pd.DataFrame({"DebtorId": ["10001", "10050"], "BcCo": ["1000001", organisation_number("b6")]})
    skip = skip_list(
        CreateDebtors(never_create=["b3"]), ["INT-ICT"], pd.DataFrame(columns=["kind", "value", "reason"])
    )
    plan = plan_missing_debtors(branches(), billable, debtors, skip).set_index("branch_id")
    assert "b1" not in plan.index  # it has a debtor
    assert plan["action"].to_dict() == {
        "b2": "create",
        "b3": "skip",
        "b4": "skip",
        "b5": "skip",
        "b6": "link",
        "b7": "skip",
    }
    assert plan.loc["b6", "debtor_number"] == "10050"
    assert plan.loc["b3", "reason"] == "listed in create_debtors.never_create"
    assert plan.loc["b4", "reason"] == "internal department (billing configuration)"
    assert plan.loc["b5", "reason"].startswith("archived branch")
    assert plan.loc["b7", "reason"] == "branch not found in TOPdesk"
    assert plan.loc["b2", "organisation_number"] == organisation_number("b2")


def test_the_ignore_list_keeps_branches_and_customers_out() -> None:
    ignore = pd.DataFrame(
        {
            "kind": ["branch", "customer", "operator"],
            "value": ["b2", "99", "x"],
            "reason": ["test", "demo", "n/a"],
        }
    )
    skip = skip_list(CreateDebtors(), [], ignore)
    assert skip == {"b2": "on the ignore list (branch): test", "99": "on the ignore list (customer): demo"}


def branch_row(**changes) -> dict:
    row = {
        "id": BRANCH_ID,
        "name": "Proefklant Noord",
        "phone": "050-1234567",
        "email": "info@proef.nl",
        "vatNumber": "NL123456789B01",
        "address.street": "Kerkstraat",
        "address.number": "12 A",
        "address.postcode": "9711 AB",
        "address.city": "Groningen",
        "address.country.name": "België",
    }
    return row | changes


def test_the_sales_relation_payload_passes_afas_schema_and_matches_on_its_number() -> None:
    payload = sales_relation(branch_row(), organisation_number(BRANCH_ID), CreateDebtors())
    (parsed,) = parse_body("KnSalesRelationOrg", "POST", {"KnSalesRelationOrg": {"Element": payload}})
    assert parsed.fields == {"CuId": "EUR", "IsDb": True, "PaCd": "30", "VaDu": "1", "VaId": "NL123456789B01"}
    (org,) = parsed.children("KnOrganisation")
    assert (org.fields["MatchOga"], org.fields["BcCo"], org.fields["AutoNum"]) == (
        "0",
        "TD6E249CE7716C4",
        False,
    )
    assert org.fields["Nm"] == "Proefklant Noord" and BRANCH_ID in org.fields["Re"]
    (address,) = org.children("KnBasicAddressAdr")
    assert address.fields == {
        "CoId": "B", "PbAd": False, "Ad": "Kerkstraat", "HmNr": 12, "HmAd": "A",
        "ZpCd": "9711 AB", "Rs": "Groningen", "ResZip": False,
    }  # fmt: skip
    bare = sales_relation(
        branch_row(**{"address.street": None, "address.city": None, "vatNumber": None}),
        "TD1",
        CreateDebtors(),
    )
    assert "Objects" not in bare["Objects"]["KnOrganisation"]["Element"] and "VaId" not in bare["Fields"]


@pytest.fixture
def sandbox(tiny_sandbox):
    return tiny_sandbox


def test_a_second_insert_for_the_same_branch_finds_the_first_debtor(sandbox) -> None:
    number = organisation_number(BRANCH_ID)
    payload = sales_relation(branch_row(), number, CreateDebtors())

    async def twice() -> tuple[str, str]:
        async with AfasClient.from_settings(load(AfasSettings)) as client:
            return await insert_debtor(client, payload, number), await insert_debtor(client, payload, number)

    sim = sandbox.apps["afas"].state.sim
    before = len(sim.tables["debtors"])
    first, second = asyncio.run(twice())
    assert first == second and len(sim.tables["debtors"]) == before + 1
    assert "al verkooprelatie" in sim.errors[-1]["message"]  # AFAS refused the second one
    assert sim.tables["debtors"].get(first)["BcCo"] == number


def test_a_lost_answer_is_looked_up_not_posted_again(sandbox) -> None:
    number = organisation_number(BRANCH_ID)
    sandbox.set_knobs("afas", lost_response_rate=1.0)

    async def once() -> str:
        async with AfasClient.from_settings(load(AfasSettings)) as client:
            return await insert_debtor(client, sales_relation(branch_row(), number, CreateDebtors()), number)

    sim = sandbox.apps["afas"].state.sim
    before = len(sim.tables["debtors"])
    debtor = asyncio.run(once())
    assert len(sim.tables["debtors"]) == before + 1 and sim.tables["debtors"].get(debtor)["BcCo"] == number
    posts = sandbox.counters("afas")["endpoints"]["POST /ProfitRestServices/connectors/KnSalesRelationOrg"]
    assert posts["count"] == 1 and posts["faults"] == {"lost_response": 1}
