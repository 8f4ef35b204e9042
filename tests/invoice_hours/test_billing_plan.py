from decimal import Decimal

import pandas as pd

from schemas.billing import BillableLines, DocumentLines, PlannedDocuments
from tasks.invoice_hours.join import join_masters
from tasks.invoice_hours.pipeline import bill
from tasks.invoice_hours.plan import (
    build_documents,
    document_order,
    fields_hashes,
    move_into_document_order,
    plan_lines,
)
from tasks.invoice_hours.rules import price
from tasks.invoice_hours.validate import split_valid
from tests.billing_factories import CONFIG_TOML, at, config, masters, registration, registrations

D = Decimal


def run(*rows, cfg=None, **kwargs):
    return bill(registrations(*rows), masters(), cfg or config(), **kwargs)


def test_amounts_are_quantity_times_price_half_up_to_cents():
    result = run(
        registration(registration_id="45", minutes=45),
        registration(registration_id="20", minutes=20),
        registration(registration_id="7", minutes=7),
    )
    lines = result.document_lines.set_index("registration_id")
    # 45 min = 0.75 h; 20 min = 0.33 h (0.3333 half-up); 7 min = 0.12 h (0.1167 half-up)
    assert lines["quantity"].to_dict() == {"45": D("0.75"), "20": D("0.33"), "7": D("0.12")}
    assert lines["amount"].to_dict() == {"45": D("71.25"), "20": D("31.35"), "7": D("11.40")}
    assert all(isinstance(v, Decimal) for v in lines["amount"])
    DocumentLines.validate(result.document_lines)


def test_planned_lines_meet_their_schema():
    # ``bill`` keeps only the lines it posts (``document_lines``); the planned lines are checked here.
    cfg = config()
    valid, _ = split_valid(registrations(registration(registration_id="45", minutes=45)))
    joined, unjoined = join_masters(valid, masters(), cfg)
    assert unjoined.empty, unjoined["reason"].tolist()
    priced, _, _ = price(joined, cfg)
    lines = BillableLines.validate(plan_lines(priced, cfg))
    assert lines["quantity"].tolist() == [D("0.75")] and lines["amount"].tolist() == [D("71.25")]


def test_project_realisation_quantity_is_rounded_half_up_to_a_twentieth_hour():
    result = run(
        registration(registration_id="20", minutes=20, customer_number="10002"),
        registration(registration_id="4", minutes=4, customer_number="10002"),
        registration(registration_id="10", minutes=10, customer_number="10002"),
    )
    lines = result.document_lines.set_index("registration_id")
    assert set(lines["kind"]) == {"project_realisation"}
    # 20 min = 6.67 × 3 min → 7 → 0.35 h; 4 min → 1.33 → 0.05 h; 10 min → 3.33 → 0.15 h
    assert lines["quantity"].to_dict() == {"20": D("0.35"), "4": D("0.05"), "10": D("0.15")}
    assert lines["amount"].to_dict() == {"20": D("33.25"), "4": D("4.75"), "10": D("14.25")}


def test_fields_hash_follows_billed_fields_not_notes():
    base = run(registration(registration_id="x")).document_lines
    same = run(
        registration(registration_id="x", notes="andere notitie", operator_name="Iemand")
    ).document_lines
    longer = run(registration(registration_id="x", minutes=61)).document_lines
    moved = run(registration(registration_id="x", project_ref="P10001-02")).document_lines
    assert base.loc[0, "fields_hash"] == same.loc[0, "fields_hash"]
    assert base.loc[0, "fields_hash"] != longer.loc[0, "fields_hash"]
    assert base.loc[0, "fields_hash"] != moved.loc[0, "fields_hash"]
    assert len(base.loc[0, "fields_hash"]) == 32


def test_fields_hash_is_a_pure_function_of_the_fields():
    lines = run(registration(registration_id="a"), registration(registration_id="b")).document_lines
    again = fields_hashes(lines.iloc[::-1])
    assert again.sort_index().tolist() == lines["fields_hash"].tolist()
    assert lines.loc[0, "fields_hash"] == lines.loc[1, "fields_hash"]  # same billing, different id


def test_documents_per_debtor_project_period_and_kind():
    result = run(
        registration(registration_id="a"),
        registration(registration_id="b", minutes=30),
        registration(registration_id="c", project_ref="P10001-02"),
        registration(registration_id="d", entry_date=at("2026-11-02 10:00")),
        registration(registration_id="e", customer_number="INT-ICT"),
        registration(registration_id="f", customer_number="INT-HR", entry_date=at("2026-10-30 10:00")),
        registration(registration_id="g", customer_number="10002"),
    )
    docs = result.documents.set_index(["kind", "project_id", "period"])
    assert docs["line_count"].to_dict() == {
        ("direct_invoice", "P10001-01", "2026-10"): 2,
        ("direct_invoice", "P10001-02", "2026-10"): 1,
        ("direct_invoice", "P10001-01", "2026-11"): 1,
        ("internal_entry", "", "2026-10"): 2,
        ("project_realisation", "P10002-01", "2026-10"): 1,
    }
    invoice = docs.loc[("direct_invoice", "P10001-01", "2026-10")]
    assert (invoice["amount"], invoice["minutes"], invoice["document_date"]) == (
        D("142.50"),
        90,
        "2026-10-06",
    )
    PlannedDocuments.validate(result.documents)
    DocumentLines.validate(result.document_lines)


def test_reference_format_and_determinism_under_reordering():
    rows = [registration(registration_id=f"r{i}", minutes=10 + i) for i in range(6)]
    rows.append(registration(registration_id="int", customer_number="INT-ICT"))
    first = run(*rows)
    second = run(*reversed(rows))
    assert sorted(first.documents["reference"]) == sorted(second.documents["reference"])
    for reference in first.documents["reference"]:
        assert len(reference) <= 32
        assert reference.startswith("KPL-1-202610-")
    changed = run(*rows[:-2], registration(registration_id="r5", minutes=99), rows[-1])
    invoice_refs = set(first.documents.loc[first.documents["kind"].eq("direct_invoice"), "reference"])
    assert invoice_refs.isdisjoint(changed.documents["reference"])
    internal_ref = first.documents.loc[first.documents["kind"].eq("internal_entry"), "reference"].item()
    assert internal_ref in set(changed.documents["reference"])


def test_large_documents_are_split_into_chunks():
    cfg = config(
        base=CONFIG_TOML.replace(
            'grouping = "per_ticket_item"', 'grouping = "per_ticket_item"\nmax_lines_per_document = 2'
        )
    )
    result = run(*[registration(registration_id=f"r{i}") for i in range(5)], cfg=cfg)
    assert sorted(result.documents["line_count"]) == [1, 2, 2]
    assert result.documents["reference"].is_unique
    assert sorted(result.documents["chunk"]) == [0, 1, 2]
    per_doc = result.document_lines.groupby("reference")["registration_id"].apply(list).tolist()
    assert sorted(per_doc) == [["r0", "r1"], ["r2", "r3"], ["r4"]]


def test_sales_booking_vat_on_the_document_total():
    cfg = config()
    projects = masters().projects.assign(UnitId=[3, 3, 3, 2, 1])
    result = bill(
        registrations(
            registration(registration_id="a", minutes=45),
            registration(registration_id="b", minutes=60, project_ref="P10001-01"),
        ),
        masters(projects=projects),
        cfg,
    )
    doc = result.documents.iloc[0]
    assert (doc["kind"], doc["administration"], doc["needs_invoice_number"]) == ("sales_booking", 3, True)
    # 71.25 + 95.00 = 166.25; VAT 21 % = 34.9125 → 34.91
    assert (doc["amount"], doc["vat_amount"], doc["total"]) == (D("166.25"), D("34.91"), D("201.16"))


def test_empty_plan_gives_empty_documents():
    result = run(registration(minutes=0))
    assert result.priced.empty and result.documents.empty and result.document_lines.empty
    assert "reference" in result.documents.columns


def test_document_lines_carry_what_the_ledger_claim_needs():
    result = run(registration(registration_id="a"))
    line = result.document_lines.iloc[0]
    assert line["line_kind"] == "charge"
    assert pd.isna(line["expected_version"])
    assert line["reference"] == result.documents.loc[0, "reference"]
    assert (line["billed_minutes"], line["amount"], line["customer_number"]) == (60, D("95.00"), "10001")
    assert line["work_date"].date().isoformat() == "2026-10-06"


def test_bill_moves_the_lines_into_the_same_documents_as_build_documents():
    # ``bill`` moves the lines into document order column by column (``move_into_document_order``); the
    # result is what ``build_documents`` gives. Ids that prefix each other ("r1", "r10", "r1-b") order the
    # reference tokens ("r1:charge:…" after "r10:…" and "r1-b:…") as text, not as tuples.
    cfg = config(
        base=CONFIG_TOML.replace(
            'grouping = "per_ticket_item"', 'grouping = "per_ticket_item"\nmax_lines_per_document = 3'
        )
    )
    ids = ["r1", "r10", "r1-b", "r2", "r11", "r100", "r1~0"]
    rows = [registration(registration_id=rid, minutes=10 + i) for i, rid in enumerate(ids)]
    rows.append(registration(registration_id="int", customer_number="INT-ICT"))
    valid, _ = split_valid(registrations(*rows))
    joined, _ = join_masters(valid, masters(), cfg)
    priced, _, _ = price(joined, cfg)
    lines = plan_lines(priced, cfg)
    documents, document_lines = build_documents(lines, cfg)
    result = run(*rows, cfg=cfg)
    pd.testing.assert_frame_equal(result.documents, documents)
    pd.testing.assert_frame_equal(result.document_lines, document_lines)
    own = lines.copy()
    moved_documents, keys, order = document_order(own, cfg)
    moved = move_into_document_order(own, keys, order)
    assert own.columns.empty  # emptied, as its docstring says
    pd.testing.assert_frame_equal(moved_documents, documents)
    pd.testing.assert_frame_equal(moved, document_lines)
