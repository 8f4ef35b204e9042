import copy
import json
from decimal import Decimal

import jsonschema
import pandas as pd
import pytest

from sandbox.afas.schemas import spec_dir
from tasks.invoice_hours.payloads import (
    afas_number,
    build_payload,
    build_payloads,
    entry_balance,
    fill_invoice_number,
)
from tasks.invoice_hours.pipeline import bill
from tests.billing_factories import at, config, masters, registration, registrations

SPECS = spec_dir()
ROOTS = {
    "FbDirectInvoice": "sales-and-orders.json",
    "FiEntries": "financial-entries.json",
    "PtRealization": "projects-and-realisation.json",
}


def strict(schema):
    """AFAS's schema without ``required`` (README decision) and without unknown fields."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            node.pop("required", None)
            if node.get("type") == "object" and "properties" in node:
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


def validate_against_afas(connector, payload):
    spec = json.loads((SPECS / ROOTS[connector]).read_text())
    schema = strict(spec["components"]["schemas"][f"{connector}_POST"])
    jsonschema.Draft202012Validator(schema).validate(json.loads(json.dumps(payload)))


def realisation_as_schema(payload):
    """The schema types ``Element`` as one object; several realisations go as a list (README)."""
    return [{"PtRealization": {"Element": element}} for element in payload["PtRealization"]["Element"]]


PROJECTS_BY_UNIT = {1: "direct_invoice", 2: "project_realisation", 3: "sales_booking"}


def mixed_run(**kwargs):
    """One run touching all four document kinds, with a bundle draw and a correction-free plan."""
    projects = masters().projects.assign(UnitId=[1, 3, 1, 2, 1])  # P10001-02 is a sales booking
    rows = [
        registration(registration_id="inv-1", minutes=45, notes="regel\nmet ✓ ëmoji 🎉"),
        registration(
            registration_id="inv-2", minutes=30, ticket_number="I 2610 002", billed_ticket_number="I 2610 002"
        ),
        registration(registration_id="inv-eve", minutes=60, entry_date=at("2026-10-06 19:00")),
        registration(registration_id="sale", minutes=50, project_ref="P10001-02"),
        registration(registration_id="sale-2", minutes=25, project_ref="P10001-02", reason_name="Spoed"),
        registration(registration_id="real", minutes=20, customer_number="10002"),
        registration(registration_id="int-1", minutes=45, customer_number="INT-ICT"),
        registration(registration_id="int-2", minutes=30, customer_number="INT-HR"),
    ]
    extra = '[[surcharges]]\nname = "avond"\ndays = ["tue"]\nstart = "18:00"\nend = "24:00"\npercent = "50"\n'
    cfg = config(extra)
    result = bill(registrations(*rows), masters(projects=projects), cfg, **kwargs)
    return result, cfg, build_payloads(result.documents, result.document_lines, cfg)


def payload_of(result, payloads, kind):
    reference = result.documents.loc[result.documents["kind"].eq(kind), "reference"].item()
    return reference, payloads[reference]


def test_every_payload_validates_against_afas_schemas():
    bundles = pd.DataFrame({"customer_number": ["10001"], "minutes_available": [30]})
    result, _, payloads = mixed_run(bundles=bundles)
    assert set(result.documents["kind"]) == {
        "direct_invoice",
        "sales_booking",
        "project_realisation",
        "internal_entry",
    }
    for payload in payloads.values():
        connector = next(iter(payload))
        if connector == "PtRealization":
            for single in realisation_as_schema(payload):
                validate_against_afas("PtRealization", single)
        else:
            validate_against_afas("FiEntries" if connector == "FiEntryPar" else connector, payload)


def test_an_unknown_field_would_be_caught_by_the_schema_check():
    result, _, payloads = mixed_run()
    _, invoice = payload_of(result, payloads, "direct_invoice")
    broken = copy.deepcopy(invoice)
    broken["FbDirectInvoice"]["Element"]["Fields"]["Project"] = "P1"
    with pytest.raises(jsonschema.ValidationError):
        validate_against_afas("FbDirectInvoice", broken)


def test_direct_invoice_fields():
    bundles = pd.DataFrame({"customer_number": ["10001"], "minutes_available": [30]})
    result, _, payloads = mixed_run(bundles=bundles)
    reference, invoice = payload_of(result, payloads, "direct_invoice")
    element = invoice["FbDirectInvoice"]["Element"]
    assert element["Fields"] == {
        "DbId": "10001",
        "RfCs": reference,  # no purchase-order number known: Koppel's reference, as before
        "Fref": reference,
        "OrDa": "2026-10-06",
        "Unit": 1,
        "PrId": "P10001-01",
    }
    lines = [line["Fields"] for line in element["Objects"][0]["FbDirectInvoiceLines"]["Element"]]
    summary = [(f["ItCd"], f["QuUn"], f["Upri"], f["Ds"]) for f in lines]
    numbers = {
        registration_id: row
        for registration_id, row in result.document_lines.set_index("registration_id").iterrows()
    }
    first_ticket = numbers["inv-1"]["billed_ticket_number"]
    evening_ticket = numbers["inv-eve"]["billed_ticket_number"]
    assert sorted(summary) == sorted(
        [
            ("SUPPORT", 0.25, 95.0, f"{first_ticket} Printer doet het niet"),  # 45 min, 30 from the bundle
            ("SUPPORT", 0.5, 0.0, f"{first_ticket} Printer doet het niet (strippenkaart)"),
            ("SUPPORT", 0.5, 95.0, "I 2610 002 Printer doet het niet"),
            ("SUPPORT", 1.0, 142.5, f"{evening_ticket} Printer doet het niet"),
        ]
    )
    assert all(f["VaIt"] == "1" and f["BiUn"] == "uur" for f in lines)
    total = sum(Decimal(repr(f["QuUn"])) * Decimal(repr(f["Upri"])) for f in lines)
    assert total == result.documents.set_index("reference").loc[reference, "amount"] == Decimal("213.75")


def test_per_registration_grouping_describes_each_registration():
    from tests.billing_factories import CONFIG_TOML

    cfg = config(base=CONFIG_TOML.replace('grouping = "per_ticket_item"', 'grouping = "per_registration"'))
    rows = [
        registration(registration_id="a", minutes=45, notes="regel\nmet\ttab"),
        registration(registration_id="b", minutes=30),
    ]
    result = bill(registrations(*rows), masters(), cfg)
    document = result.documents.iloc[0]
    payload = build_payload(document.to_dict(), result.document_lines, cfg)
    lines = [
        line["Fields"]
        for line in payload["FbDirectInvoice"]["Element"]["Objects"][0]["FbDirectInvoiceLines"]["Element"]
    ]
    ticket_a = result.document_lines.set_index("registration_id").loc["a", "billed_ticket_number"]
    assert lines[0]["Ds"] == f"2026-10-06 {ticket_a} Anne de Vries: regel met tab"
    assert [(f["QuUn"], f["Upri"]) for f in lines] == [(0.75, 95.0), (0.5, 95.0)]


def test_realisation_fields():
    employees = pd.DataFrame({"operator_id": ["op-1"], "employee_id": ["1001"]})
    projects = masters().projects
    rows = [registration(registration_id="real", minutes=20, customer_number="10002")]
    result = bill(registrations(*rows), masters(projects=projects, employees=employees), config())
    payload = build_payloads(result.documents, result.document_lines, config())
    (element,) = next(iter(payload.values()))["PtRealization"]["Element"]
    fields = element["Fields"]
    ticket = result.document_lines.loc[0, "billed_ticket_number"]
    assert fields == {
        "DaTi": "2026-10-06",
        "VaIt": "1",
        "ItCd": "SUPPORT",
        "Qu": 0.35,
        "PrId": "P10002-01",
        "DbId": "10002",
        "XpRe": "real",
        "Ds": f"2026-10-06 {ticket} Anne de Vries: printer hersteld",
        "EmId": "1001",
    }


def test_sales_entry_is_balanced_with_vat_and_gets_its_invoice_number_later():
    result, _, payloads = mixed_run()
    reference, entry = payload_of(result, payloads, "sales_booking")
    element = entry["FiEntryPar"]["Element"]
    assert element["Fields"] == {"Year": 2026, "Peri": 10, "UnId": 3, "JoCo": "20"}
    rows = [row["Fields"] for row in element["Objects"][0]["FiEntries"]["Element"]]
    # 50 min: 0.83 h × 95 = 78.85; 25 min: 0.42 h × 95 = 39.90 (no item mappings: both SUPPORT)
    assert [(r["VaAs"], r["AcNr"], r["AmDe"], r["AmCr"], r.get("VaId")) for r in rows] == [
        ("2", "10001", 143.69, 0.0, None),
        ("1", "8000", 0.0, 118.75, "1"),
        ("1", "1500", 0.0, 24.94, "1"),
    ]
    assert entry_balance(entry) == 0
    assert all(r["BpNr"] == reference for r in rows)
    assert "InId" not in rows[0]
    filled = fill_invoice_number(entry, "KPL26000001")
    assert {
        row["Fields"]["InId"] for row in filled["FiEntryPar"]["Element"]["Objects"][0]["FiEntries"]["Element"]
    } == {"KPL26000001"}
    assert "InId" not in rows[0]  # the planned payload is not changed in place
    validate_against_afas("FiEntries", filled)
    with pytest.raises(ValueError, match="longer than AFAS's 12"):
        fill_invoice_number(entry, "KPL-2026-000000001")


def test_entry_amounts_with_a_half_cent_round_half_up_not_to_even():
    """Behaviour change (issue 18): ``_cents`` quantized without a rounding mode, i.e. banker's rounding.

    A VAT amount of 24.945 went out as 24.94 (half to even); every other amount in Koppel rounds half up, so
    it now goes out as 24.95. 24.935 showed no difference (half-even and half-up both give 24.94).
    """
    result, cfg, _ = mixed_run()
    document = result.documents[result.documents["kind"].eq("sales_booking")].iloc[0].to_dict()
    lines = result.document_lines[result.document_lines["reference"].eq(document["reference"])]

    def vat_line(vat_amount):
        payload = build_payload({**document, "vat_amount": Decimal(vat_amount)}, lines, cfg)
        return [r["Fields"] for r in payload["FiEntryPar"]["Element"]["Objects"][0]["FiEntries"]["Element"]][
            -1
        ]

    assert vat_line("24.945")["AmCr"] == 24.95  # half-even would give 24.94
    assert vat_line("24.935")["AmCr"] == 24.94
    assert vat_line("-24.945")["AmDe"] == 24.95  # away from zero on the other side too


def test_internal_entry_debits_departments_with_cost_centre_and_credits_revenue():
    result, _, payloads = mixed_run()
    _, entry = payload_of(result, payloads, "internal_entry")
    element = entry["FiEntryPar"]["Element"]
    assert element["Fields"] == {"Year": 2026, "Peri": 10, "UnId": 1, "JoCo": "90"}
    rows = element["Objects"][0]["FiEntries"]["Element"]
    assert [(r["Fields"]["AcNr"], r["Fields"]["AmDe"], r["Fields"]["AmCr"]) for r in rows] == [
        ("4300", 71.25, 0.0),
        ("4310", 47.5, 0.0),
        ("8900", 0.0, 118.75),
    ]
    assert rows[0]["Objects"] == [
        {"FiDimEntries": {"Element": [{"Fields": {"DiC1": "100", "AmDe": 71.25, "AmCr": 0.0}}]}}
    ]
    assert "Objects" not in rows[1]  # INT-HR has no cost centre
    assert entry_balance(entry) == 0


def test_payloads_are_plain_json_with_exact_two_decimal_numbers():
    _, _, payloads = mixed_run()
    text = json.dumps(payloads)
    assert "Decimal" not in text
    assert json.loads(text) == payloads


def test_afas_number_refuses_values_it_cannot_carry_exactly():
    assert afas_number(Decimal("118.75")) == 118.75
    assert afas_number(Decimal("-0.10")) == -0.1
    with pytest.raises(ValueError, match="more than 2 decimals"):
        afas_number(Decimal("1.005"))
    with pytest.raises(ValueError, match="does not survive"):
        afas_number(Decimal("123456789012345678.12"))


def test_unknown_document_kind_is_an_error():
    result, cfg, _ = mixed_run()
    with pytest.raises(ValueError, match="unknown document kinds"):
        build_payloads(result.documents.assign(kind="gift"), result.document_lines, cfg)
