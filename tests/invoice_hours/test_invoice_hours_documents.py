"""invoice-hours end to end, read back from the AFAS sandbox: VAT per debtor and revenue per item in
balanced sales entries, the customer's order number in ``RfCs`` (Koppel's reference in ``Fref``), ``EmId``
on realisations and the reject of an operator without an AFAS employee."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pandas as pd
import pytest

from flows.invoice_hours import invoice_hours
from sandbox.world import afas as world_afas
from store import ledger
from store.db import connect
from store.settings import StoreSettings
from tests.invoice_support import OCTOBER, decimal, entries_by_reference

pytestmark = pytest.mark.prefect
BILLING_TOML = Path(__file__).resolve().parents[2] / "config" / "billing.toml"
CENT = Decimal("0.01")


def write_config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "billing-test.toml"
    path.write_text(text)
    return str(path)


def run(config_path: str):
    return invoice_hours(start_date=OCTOBER[0], end_date=OCTOBER[1], config_path=config_path)


def test_sales_entries_carry_vat_per_debtor_and_revenue_per_item_and_invoices_the_order_number(
    prefect_harness, sandbox, tmp_path
) -> None:
    sim = sandbox.apps["afas"].state.sim
    debtors = pd.DataFrame(sim.documents("Profit_Debtor")).set_index("DebtorId")
    projects = pd.DataFrame(sim.documents("Profit_Projects"))
    admin_1 = set(projects.loc[projects["UnitId"].eq(1), "DebtorId"])
    admin_2 = sorted(set(projects.loc[projects["UnitId"].eq(2), "DebtorId"]))
    reverse = {d for d in admin_1 if debtors.loc[d, "VatDuty"] == world_afas.VAT_DUTY_REVERSE}
    nine = sorted(admin_1 - reverse)[0]
    text = BILLING_TOML.read_text().replace('mode = "direct_invoice"', 'mode = "sales_booking"', 1)
    text = text.replace('mode = "project_realisation"', 'mode = "direct_invoice"')
    text += (
        '\n[administrations.1.accounts.revenue_by_item]\nSPOED = "8010"\n'
        '\n[administrations.1.vat]\nby_vat_duty = { "3" = "5" }\n'
        f'\n[administrations.1.vat.debtors]\n"{nine}" = "2"\n'
        '\n[administrations.1.vat.codes.2]\nrate = "0.09"\naccount = "1510"\n'
        '\n[administrations.1.vat.codes.5]\nrate = "0"\nreverse_charge = true\n'
        f'\n[customer_references.debtors]\n"{admin_2[0]}" = "PO 2026-118"\n'
    )
    result = run(write_config(tmp_path, text))
    assert result["conservation"]["holds"]
    assert set(result["documents"]["status"]) == {"posted"}

    engine = connect(StoreSettings())
    docs = ledger.documents(engine, status="posted")
    entries = entries_by_reference(sim)
    codes_seen = set()
    for doc in docs[docs["kind"].eq("sales_booking")].itertuples():
        lines = pd.DataFrame(entries[doc.reference])
        code = "5" if doc.debtor in reverse else ("2" if doc.debtor == nine else "1")
        codes_seen.add(code)
        assert lines["AmDe"].map(decimal).sum() == lines["AmCr"].map(decimal).sum()  # balanced
        revenue = lines[lines["AcNr"].isin(["8000", "8010"])]
        vat = lines[lines["VaAs"].eq("1") & ~lines["AcNr"].isin(["8000", "8010"])]
        net = revenue["AmCr"].map(decimal).sum() - revenue["AmDe"].map(decimal).sum()
        assert net == doc.amount and set(revenue["VaId"]) == {code}
        rate = {"1": Decimal("0.21"), "2": Decimal("0.09"), "5": Decimal(0)}[code]
        due = (net * rate).quantize(CENT, rounding=ROUND_HALF_UP)
        debtor_line = lines[lines["VaAs"].eq("2")]
        assert debtor_line["AmDe"].map(decimal).sum() - debtor_line["AmCr"].map(decimal).sum() == net + due
        if code == "5":
            assert vat.empty  # reverse charge: no VAT amount, the code on the revenue lines
        else:
            assert vat["AcNr"].tolist() == [{"1": "1500", "2": "1510"}[code]]
            assert vat["AmCr"].map(decimal).sum() - vat["AmDe"].map(decimal).sum() == due
        payload = ledger.document(engine, doc.reference).payload
        planned = payload["FiEntryPar"]["Element"]["Objects"][0]["FiEntries"]["Element"]
        spoed = [r["Fields"] for r in planned if r["Fields"]["Ds"] == "Uren SPOED"]
        assert all(r["AcNr"] == "8010" for r in spoed)
        assert len(revenue[revenue["AcNr"].eq("8010")]) == len(spoed)  # SPOED on its own account
    assert codes_seen == {"1", "2", "5"}

    headers = pd.DataFrame(sim.documents("Koppel_DirectInvoices"))
    invoices = docs[docs["kind"].eq("direct_invoice")]
    assert sorted(headers["Fref"]) == sorted(invoices["reference"])
    for header in headers.to_dict("records"):
        expected = "PO 2026-118" if header["DbId"] == admin_2[0] else header["Fref"]
        assert header["RfCs"] == expected


def test_realisations_carry_emid_and_an_operator_without_employee_is_rejected_and_shown(
    prefect_harness, sandbox, tmp_path
) -> None:
    operators = sandbox.world.operators
    unmapped = operators.iloc[0]
    mapped = operators.iloc[1:]
    text = BILLING_TOML.read_text().replace(
        'mode = "project_realisation"', 'mode = "project_realisation"\nrequire_employee = true'
    )
    text += "\n[employees.operators]\n" + "".join(
        f'"{row.id}" = "{row.employee_number}"\n' for row in mapped.itertuples()
    )
    result = run(write_config(tmp_path, text))
    assert result["conservation"]["holds"]
    buckets = result["buckets"]
    rejected = buckets[buckets["reason"].fillna("").str.startswith("operator has no AFAS employee")]
    assert len(rejected) > 0 and set(rejected["bucket"]) == {"rejected"}
    assert rejected["reason"].str.endswith(f"({unmapped.id})").all()

    sim = sandbox.apps["afas"].state.sim
    realisations = pd.DataFrame(sim.documents("Koppel_Realizations"))
    assert len(realisations) > 0
    employees = dict(zip(mapped["id"], mapped["employee_number"].astype(str), strict=True))
    frames = [
        f for f in sandbox.world.extra.values() if {"id", "operator.id"} <= set(getattr(f, "columns", []))
    ]
    operator_of = pd.concat([f[["id", "operator.id"]] for f in frames]).set_index("id")["operator.id"]
    for row in realisations.to_dict("records"):
        operator = operator_of[row["XpRe"].split("~")[0]]
        assert row["EmployeeId"] == employees[operator]  # never the unmapped operator


def test_the_purchase_order_number_from_the_incident_lands_in_rfcs(
    prefect_harness, monkeypatch, tmp_path
) -> None:
    from sandbox.server import running_sandbox
    from tests.invoice_support import small_world, use_sandbox

    world = small_world()
    incidents = world.extra["td_incidents"]
    branches = world.extra["td_branches"].set_index("id")["clientReferenceNumber"]
    customer = incidents["callerBranch.id"].map(branches)
    debtors = world.extra["afas_debtors"]
    projects = world.extra["afas_projects"]
    billable = set(projects.loc[projects["UnitId"].eq(1) & ~projects["CheckedOut"], "DebtorId"])
    billable &= set(debtors.loc[~debtors["Blocked"], "DebtorId"])
    chosen = customer[customer.isin(billable)].value_counts().index[0]  # the busiest invoiced customer
    incidents["optionalFields1.text2"] = customer.where(customer.eq(chosen)).map(
        lambda c: f"PO-{c}" if isinstance(c, str) else ""
    )
    text = BILLING_TOML.read_text() + '\n[topdesk]\norder_field = "optionalFields1.text2"\n'
    with running_sandbox(world) as sandbox:
        use_sandbox(monkeypatch, sandbox, tmp_path)
        result = run(write_config(tmp_path, text))
        assert result["conservation"]["holds"]
        headers = sandbox.apps["afas"].state.sim.documents("Koppel_DirectInvoices")
    ours = [h for h in headers if h["DbId"] == chosen]
    assert ours and all(h["RfCs"] == f"PO-{chosen}" for h in ours)  # from TOPdesk, not from the config
    others = [h for h in headers if h["DbId"] != chosen]
    assert others and all(h["RfCs"] == h["Fref"] for h in others)  # no order number: Koppel's reference
