from decimal import Decimal

import pandas as pd
import pytest

from tasks.billing.payloads import build_payloads
from tasks.billing.pipeline import bill
from tasks.billing.reconcile import full_days, reconcile
from tests.billing_factories import AMS, at, config, masters, registration, registrations

D = Decimal
OCTOBER = (pd.Timestamp("2026-10-01", tz=AMS), pd.Timestamp("2026-11-01", tz=AMS))


def ledger_from(result, version=1, status="billed", extra_columns=()):
    """What the store's billed_state would return after claiming every document of ``result``."""
    lines = result.document_lines[result.document_lines["line_kind"].eq("charge")]
    state = pd.DataFrame(
        {
            "registration_id": lines["registration_id"],
            "fields_hash": lines["fields_hash"],
            "document_reference": lines["reference"],
            "status": status,
            "version": version,
            "minutes": lines["billed_minutes"],
            "amount": lines["amount"],
            "entry_date": lines["work_date"].dt.date,
            "customer_number": lines["customer_number"],
        }
    )
    for column in extra_columns:
        state[column] = lines[column]
    return state.reset_index(drop=True)


def run(*rows, **kwargs):
    return bill(registrations(*rows), masters(), config(), **kwargs)


def test_rerun_bills_nothing_twice():
    rows = [registration(registration_id="a"), registration(registration_id="b", customer_number="INT-ICT")]
    first = run(*rows)
    again = run(*rows, ledger=ledger_from(first), run_range=OCTOBER)
    assert again.documents.empty
    assert again.reconciled.to_bill.empty
    billed = again.reconciled.billed_before.set_index("registration_id")["reason"].to_dict()
    refs = first.document_lines.set_index("registration_id")["reference"].to_dict()
    assert billed == {rid: f"billed before in {refs[rid]}" for rid in ("a", "b")}
    assert again.conservation["buckets"]["billed before"] == {"count": 2, "minutes": 120}
    assert again.conservation["holds"]


def test_a_changed_registration_becomes_exactly_one_correction():
    first = run(registration(registration_id="a", minutes=60), registration(registration_id="b"))
    ledger = ledger_from(first, version=3)
    again = run(
        registration(registration_id="a", minutes=90), registration(registration_id="b"), ledger=ledger
    )
    lines = again.document_lines
    assert list(lines["registration_id"]) == ["a", "a"]
    credit = lines[lines["line_kind"].eq("credit")].iloc[0]
    charge = lines[lines["line_kind"].eq("charge")].iloc[0]
    assert (credit["amount"], credit["billed_minutes"], credit["expected_version"]) == (D("-95.00"), -60, 3)
    assert credit["fields_hash"] == first.lines.set_index("registration_id").loc["a", "fields_hash"]
    assert (charge["amount"], charge["billed_minutes"], charge["expected_version"]) == (D("142.50"), 90, 3)
    assert credit["reference"] == charge["reference"]
    assert len(again.documents) == 1
    doc = again.documents.iloc[0]
    assert doc["is_correction"] and doc["amount"] == D("47.50")
    assert doc["reference"] not in set(first.documents["reference"])
    assert again.conservation["buckets"]["invoiced"]["count"] == 1
    assert again.conservation["buckets"]["billed before"]["count"] == 1
    assert list(again.reconciled.corrected_ids) == ["a"]


def test_correction_payload_credits_the_old_line_and_charges_the_new():
    first = run(registration(registration_id="a", minutes=60))
    again = run(registration(registration_id="a", minutes=90), ledger=ledger_from(first))
    payload = build_payloads(again.documents, again.document_lines, config())
    lines = next(iter(payload.values()))["FbDirectInvoice"]["Element"]["Objects"][0]["FbDirectInvoiceLines"][
        "Element"
    ]
    assert [(line["Fields"]["QuUn"], line["Fields"]["Upri"]) for line in lines] == [(1.5, 95.0), (-1.0, 95.0)]
    assert lines[1]["Fields"]["Ds"].startswith("Creditering: ")


def test_a_project_change_is_corrected_in_one_document_with_the_old_line_copied():
    sixty = registration(registration_id="a", project_ref="P10001-02", minutes=20)
    first = run(sixty)
    ledger = ledger_from(first, extra_columns=("project_id", "unit_price", "quantity", "item_code"))
    ledger["unit_price"] = Decimal("99.00")  # a price the new billing would not compute
    again = run({**sixty, "project_ref": None}, ledger=ledger)
    lines = again.document_lines.set_index("line_kind")
    assert len(again.documents) == 1  # the ledger claims credit and charge together
    assert set(lines["reference"]) == {again.documents.loc[0, "reference"]}
    assert again.documents.loc[0, "project_id"] == "P10001-01"
    assert (lines.loc["credit", "quantity"], lines.loc["credit", "unit_price"]) == (D("-0.33"), D("99.00"))
    assert lines.loc["credit", "amount"] == D("-31.35")  # exactly what was billed, not 0.33 × 99
    assert lines.loc["charge", "amount"] == D("31.35")


def test_a_customer_change_credits_the_old_customer_now_and_bills_the_new_one_next_run():
    row = registration(registration_id="m", customer_number="10001")
    first = run(row)
    ledger = ledger_from(first, version=4)
    moved = {**row, "customer_number": "10002"}
    again = run(moved, ledger=ledger, run_range=OCTOBER)
    lines = again.document_lines
    assert lines["line_kind"].tolist() == ["credit"]
    assert (lines.loc[0, "debtor_id"], lines.loc[0, "amount"], lines.loc[0, "expected_version"]) == (
        "10001",
        D("-95.00"),
        4,
    )
    bucket = again.buckets.set_index("registration_id").loc["m"]
    assert bucket["bucket"] == "invoiced"
    assert bucket["reason"] == (
        "customer changed from 10001 to 10002: "
        "credited in this run, billed to the new customer in the next run"
    )
    assert again.conservation["holds"]
    credited = ledger.assign(status="credited", version=5, document_reference=lines.loc[0, "reference"])
    third = run(moved, ledger=credited, run_range=OCTOBER)
    charge = third.document_lines.iloc[0]
    assert (charge["line_kind"], charge["debtor_id"], charge["expected_version"]) == ("charge", "10002", 5)


def test_a_vanished_registration_is_credited_inside_the_range_only():
    first = run(
        registration(registration_id="stays"),
        registration(registration_id="gone", minutes=30),
        registration(registration_id="gone-int", customer_number="INT-ICT"),
    )
    ledger = ledger_from(first)
    again = run(registration(registration_id="stays"), ledger=ledger, run_range=OCTOBER)
    credits = again.document_lines.set_index("registration_id")
    assert credits["line_kind"].to_dict() == {"gone": "credit", "gone-int": "credit"}
    assert credits.loc["gone", "amount"] == D("-47.50")
    assert credits.loc["gone-int", "kind"] == "internal_entry"
    assert credits.loc["gone", "debtor_id"] == "10001"
    assert len(again.reconciled.vanished) == 2
    # vanished registrations were not read: they are beside the equation, which still holds
    assert again.conservation["holds"]
    assert again.conservation["read"]["count"] == 1
    outside = run(
        registration(registration_id="stays"),
        ledger=ledger,
        run_range=(OCTOBER[1], OCTOBER[1] + pd.Timedelta(days=30)),
    )
    assert outside.reconciled.to_bill.empty
    unknown_range = run(registration(registration_id="stays"), ledger=ledger)
    assert unknown_range.reconciled.to_bill.empty


def test_only_whole_days_read_count_for_vanished_credits():
    start = pd.Timestamp("2026-10-06T12:00", tz=AMS)
    end = pd.Timestamp("2026-10-08T12:00", tz=AMS)
    first_day, stop_day = full_days((start, end), AMS)
    assert (
        pd.Timestamp(first_day, unit="D").date().isoformat(),
        pd.Timestamp(stop_day, unit="D").date().isoformat(),
    ) == (
        "2026-10-07",
        "2026-10-08",
    )
    first = run(registration(registration_id="tue", entry_date=at("2026-10-06 15:00")))
    again = run(registration(registration_id="other"), ledger=ledger_from(first), run_range=(start, end))
    assert again.reconciled.vanished.empty  # 6 Oct was read only from noon: no proof it is gone


def test_credited_registration_is_billed_again_with_its_version():
    first = run(registration(registration_id="a"))
    again = run(registration(registration_id="a"), ledger=ledger_from(first, version=2, status="credited"))
    line = again.document_lines.iloc[0]
    assert (line["line_kind"], line["expected_version"], line["is_correction"]) == ("charge", 2, False)


def test_realisation_external_keys_stay_unique_across_versions():
    rows = [registration(registration_id="r", customer_number="10002", minutes=30)]
    first = run(*rows)
    again = run(
        registration(registration_id="r", customer_number="10002", minutes=45),
        ledger=ledger_from(first, version=1),
    )
    payloads = build_payloads(again.documents, again.document_lines, config())
    elements = next(iter(payloads.values()))["PtRealization"]["Element"]
    keys = {e["Fields"]["XpRe"]: e["Fields"]["Qu"] for e in elements}
    assert keys == {"r~v2": 0.75, "r~c1": -0.5}
    first_payload = build_payloads(first.documents, first.document_lines, config())
    assert next(iter(first_payload.values()))["PtRealization"]["Element"][0]["Fields"]["XpRe"] == "r"


def test_ledger_without_required_columns_is_refused():
    with pytest.raises(ValueError, match="ledger state lacks columns"):
        reconcile(run(registration()).lines, pd.DataFrame({"registration_id": []}), config())


def test_billed_before_reason_shows_a_document_that_did_not_post():
    first = run(registration(registration_id="a"), registration(registration_id="b", minutes=30))
    ledger = ledger_from(first).assign(document_status=["posted", "failed"])
    again = run(
        registration(registration_id="a"), registration(registration_id="b", minutes=30), ledger=ledger
    )
    reasons = again.reconciled.billed_before.set_index("registration_id")["reason"]
    reference = first.documents.loc[0, "reference"]
    assert reasons.to_dict() == {
        "a": f"billed before in {reference}",
        "b": f"billed before in {reference} (document failed)",
    }
