"""The diff between desired and billed state per registration (tasks.invoice_hours.reconcile), without a
store."""

from decimal import Decimal

import pandas as pd

from tasks.invoice_hours.payloads import build_payloads, payload_problems
from tasks.invoice_hours.pipeline import Scope, bill
from tests.billing_factories import AMS, config, masters, posted_from, registration, registrations

D = Decimal
OCTOBER = (pd.Timestamp("2026-10-01", tz=AMS), pd.Timestamp("2026-11-01", tz=AMS))
REGULAR = Scope(regular=True, window=OCTOBER)


def run(*rows, cfg=None, **kwargs):
    return bill(registrations(*rows), masters(), cfg or config(), **kwargs)


def test_rerun_bills_nothing_twice():
    rows = [registration(registration_id="a"), registration(registration_id="b", customer_number="INT-ICT")]
    first = run(*rows)
    state, posted = posted_from(first)
    again = run(*rows, state=state, posted=posted, scope=REGULAR)
    assert again.documents.empty
    assert again.conservation["buckets"]["billed before"] == {"count": 2, "minutes": 120}
    assert again.conservation["holds"]


def test_a_change_is_an_exact_reversal_and_a_new_charge_in_one_document():
    first = run(registration(registration_id="a", minutes=60))
    state, posted = posted_from(first, version=3)
    posted["unit_price"] = D("99.00")  # the ledger's record wins over anything recomputed
    again = run(registration(registration_id="a", minutes=90), state=state, posted=posted, scope=REGULAR)
    lines = again.document_lines.set_index("line_kind")
    assert (lines.loc["credit", "amount"], lines.loc["credit", "unit_price"]) == (D("-95.00"), D("99.00"))
    assert lines.loc["credit", "expected_version"] == 3 and lines.loc["charge", "expected_version"] == 3
    assert lines.loc["charge", "amount"] == D("142.50")
    assert len(again.documents) == 1 and bool(again.documents.loc[0, "is_correction"])
    assert again.buckets.set_index("registration_id").loc["a", "bucket"] == "re-charged"
    assert again.conservation["holds"]


def test_a_customer_move_reverses_the_old_and_charges_the_new_customer_in_the_same_run():
    row = registration(registration_id="m", customer_number="10001")
    state, posted = posted_from(run(row), version=4)
    again = run({**row, "customer_number": "10002"}, state=state, posted=posted, scope=REGULAR)
    lines = again.document_lines.set_index("line_kind")
    assert (lines.loc["credit", "debtor_id"], lines.loc["credit", "amount"]) == ("10001", D("-95.00"))
    assert lines.loc["credit", "expected_version"] == 4
    assert lines.loc["charge", "debtor_id"] == "10002" and lines.loc["charge", "expected_version"] == 5
    documents = again.documents.set_index("debtor_id")
    assert bool(documents.loc["10001", "is_correction"]) and not bool(documents.loc["10002", "is_correction"])


def test_a_failed_document_is_not_billed_state_and_nothing_is_planned_for_it():
    first = run(registration(registration_id="a", minutes=60))
    state, posted = posted_from(first, document_status="failed")
    again = run(registration(registration_id="a", minutes=90), state=state, posted=posted, scope=REGULAR)
    assert again.documents.empty
    assert again.buckets.set_index("registration_id").loc["a", "bucket"] == "failed"


def test_deletions_are_credited_only_when_confirmed():
    first = run(registration(registration_id="gone"), registration(registration_id="maybe"))
    state, posted = posted_from(first)
    sure = Scope(regular=True, window=OCTOBER, deleted=frozenset({"gone"}))
    again = bill(
        registrations(registration(registration_id="x")),
        masters(),
        config(),
        state=state,
        posted=posted,
        scope=sure,
    )
    credits = again.document_lines[again.document_lines["line_kind"].eq("credit")]
    assert list(credits["registration_id"]) == ["gone"] and credits.iloc[0]["amount"] == D("-95.00")
    beside = again.buckets.set_index("registration_id")["bucket"]
    assert (beside["gone"], beside["maybe"]) == ("reversed (deleted)", "possibly deleted")
    assert again.conservation["holds"]


def test_a_backfill_never_reverses():
    first = run(registration(registration_id="a", minutes=60))
    state, posted = posted_from(first)
    again = run(registration(registration_id="a", minutes=90), state=state, posted=posted, scope=Scope(False))
    assert again.documents.empty
    assert again.buckets.set_index("registration_id").loc["a", "bucket"] == "left for the regular run"


def test_excluded_after_billing_is_reversed_or_kept():
    row = registration(registration_id="a")
    state, posted = posted_from(run(row))
    rule = '[[exclusions.rules]]\nkind = "registration"\nvalue = "a"\nreason = "goodwill"\n'
    credit = run(row, cfg=config(rule), state=state, posted=posted, scope=REGULAR)
    assert credit.document_lines["amount"].tolist() == [D("-95.00")]
    assert credit.buckets.set_index("registration_id").loc["a", "bucket"] == "reversed after billing"
    keep = run(
        row,
        cfg=config(rule + '[reconciliation]\nafter_billing = "keep"\n'),
        state=state,
        posted=posted,
        scope=REGULAR,
    )
    assert keep.documents.empty
    assert keep.buckets.set_index("registration_id").loc["a", "bucket"] == "kept after billing"


def test_a_realisation_reversal_keeps_its_administration_project_and_item_whatever_the_default():
    row = registration(registration_id="r", customer_number="10002", minutes=50)
    first = run(row)
    assert first.document_lines.loc[0, "kind"] == "project_realisation"
    state, posted = posted_from(first)
    cfg = config().model_copy(
        update={"projects": config().projects.model_copy(update={"default_administration": 2})}
    )
    again = bill(
        registrations(registration(registration_id="other")),
        masters(),
        cfg,
        state=state,
        posted=posted,
        scope=Scope(True, OCTOBER, frozenset({"r"})),
    )
    credit = again.document_lines.set_index("registration_id").loc["r"]
    old = first.document_lines.iloc[0]
    assert (credit["kind"], credit["administration"], credit["project_id"], credit["item_code"]) == (
        old["kind"],
        old["administration"],
        old["project_id"],
        old["item_code"],
    )
    assert credit["quantity"] == -old["quantity"] and credit["amount"] == -old["amount"]
    payloads = build_payloads(again.documents, again.document_lines, cfg)
    assert all(not payload_problems(p) for p in payloads.values())


def test_payload_problems_name_missing_and_non_finite_fields():
    problems = payload_problems({"A": {"Fields": {"PrId": float("nan"), "DbId": None, "Qu": 1.5}}})
    assert problems == ["A.Fields.PrId: nan is not a finite number", "A.Fields.DbId: missing"]
