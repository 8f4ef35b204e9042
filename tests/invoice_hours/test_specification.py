"""Hours specifications: per customer document, lines and totals; the files agree with what AFAS holds."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

import pytest

from tasks.invoice_hours.pipeline import bill
from tasks.invoice_hours.specification import TOTAL_LABEL, specifications, write_specification
from tests.billing_factories import config, masters, registration, registrations
from tests.invoice_support import OCTOBER, afas_invoices, decimal

ROUNDING = '\n[rounding]\nunit_minutes = 15\ndirection = "up"\nminimum_minutes_per_ticket = 30\n'


def on_ticket(number: str, title: str, minutes: int) -> dict:
    ticket = {"ticket_id": number, "billed_ticket_id": number, "ticket_number": number}
    return registration(minutes=minutes, billed_ticket_number=number, ticket_description=title, **ticket)


def test_a_specification_lists_every_registration_and_totals_the_document() -> None:
    rows = registrations(
        on_ticket("I 1", "VPN", 7),
        on_ticket("I 1", "VPN", 50),
        on_ticket("I 2", "Printer", 20),
    )
    run = bill(rows, masters(), config(ROUNDING))
    specs = specifications(run.documents, run.document_lines)
    assert set(specs) == set(run.documents["reference"])
    document = run.documents.iloc[0]
    spec = specs[document["reference"]]
    lines, total = spec[spec["ticket"] != TOTAL_LABEL], spec[spec["ticket"] == TOTAL_LABEL].iloc[0]
    assert len(lines) == 3 and list(lines["ticket"]) == ["I 1", "I 1", "I 2"]
    assert list(lines["title"]) == ["VPN", "VPN", "Printer"]
    assert list(lines["minutes"]) == [7, 50, 20]
    # 7 → 15 and 50 → 60 (ticket I 1 has 75 ≥ 30); 20 → 30 (rounding, and the per-ticket minimum)
    assert list(lines["billed_minutes"]) == [15, 60, 30]
    assert list(lines["rounding"]) == [8, 10, 10]
    assert total["amount"] == document["amount"]
    assert total["billed_minutes"] == document["minutes"]
    assert sum(lines["amount"], Decimal(0)) == total["amount"]
    assert all(rate == Decimal("95.00") for rate in lines["rate"])


def test_internal_entries_get_no_specification() -> None:
    rows = registrations(registration(customer_number="INT-ICT"), registration())
    run = bill(rows, masters(), config())
    kinds = dict(zip(run.documents["reference"], run.documents["kind"], strict=True))
    assert "internal_entry" in kinds.values()
    assert {kinds[r] for r in specifications(run.documents, run.document_lines)} == {"direct_invoice"}


def test_the_files_hold_the_same_lines_and_total(tmp_path: Path) -> None:
    from openpyxl import load_workbook

    run = bill(registrations(registration(minutes=45), registration(minutes=61)), masters(), config())
    document = run.documents.iloc[0]
    frame = specifications(run.documents, run.document_lines)[document["reference"]]
    csv_path, xlsx_path = write_specification(tmp_path, document, frame)
    with csv_path.open(newline="") as handle:
        written = list(csv.DictReader(handle))
    assert [row["registration"] for row in written[:-1]] == list(frame["registration"][:-1])
    assert Decimal(written[-1]["amount"]) == document["amount"]
    sheet = load_workbook(xlsx_path).active
    values = [row for row in sheet.iter_rows(values_only=True) if row and row[0] == TOTAL_LABEL]
    assert decimal(values[0][-1]) == document["amount"]
    assert sheet["B1"].value == document["reference"]


@pytest.mark.prefect
def test_specification_totals_equal_what_afas_holds_per_document(prefect_harness, sandbox, tmp_path) -> None:
    from openpyxl import load_workbook

    from flows.invoice_hours import InvoiceHoursParameters, invoice_hours

    source = Path(__file__).resolve().parents[2] / "config" / "billing.toml"
    folder = tmp_path / "specs"
    path = tmp_path / "billing.toml"
    path.write_text(source.read_text() + f'\n[specifications]\nfolder = "{folder}"\n')
    result = invoice_hours(
        **InvoiceHoursParameters(
            start_date=OCTOBER[0], end_date=OCTOBER[1], config_path=str(path)
        ).model_dump()
    )
    table = result["documents"]
    customer = table[table["kind"].ne("internal_entry")]
    assert set(customer["status"]) == {"posted"} and len(customer) > 5
    assert (customer["specification"] != "").all()
    assert (table.loc[table["kind"].eq("internal_entry"), "specification"] == "").all()

    sim = sandbox.apps["afas"].state.sim
    invoices = afas_invoices(sim)
    realisations = {row["XpRe"]: row for row in sim.documents("Koppel_Realizations")}
    for document in customer.itertuples():
        sheet = load_workbook(document.specification).active
        rows = list(sheet.iter_rows(values_only=True))
        header = 8  # below the 7 heading rows and a blank one
        columns = list(rows[header])
        lines = [dict(zip(columns, row, strict=True)) for row in rows[header + 1 :]]
        total = lines.pop()
        assert total["ticket"] == TOTAL_LABEL
        if document.kind == "direct_invoice":
            (posted,) = invoices[document.reference]
            held = sum(decimal(decimal(x["QuUn"]) * decimal(x["Upri"])) for x in posted["lines"])
            assert decimal(total["amount"]) == held, document.reference
        else:
            assert document.kind == "project_realisation"
            for line in lines:
                assert decimal(realisations[line["registration"]]["QuantityUnit"]) == decimal(line["hours"])
            held = sum(decimal(realisations[line["registration"]]["QuantityUnit"]) for line in lines)
            assert decimal(total["hours"]) == held
        assert decimal(total["amount"]) == document.amount
        assert Path(document.specification).with_suffix(".csv").exists()
