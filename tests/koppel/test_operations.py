"""Operations: preflight and `koppel check`, when a run is green, run names and keys, finance formatting."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pandas as pd
import pytest
from typer.testing import CliRunner

from koppel.cli import app
from tasks.artifacts import (
    amounts_markdown,
    customer_text,
    euro,
    finance_date,
    finance_documents,
    hours_line,
    plain,
)
from tasks.events import documents_summary, outcomes_summary, read_summary, refusal_lines
from tasks.history import artifact_prefix, period_label, run_name, run_tags
from tasks.invoice_hours.extract import Window
from tasks.invoice_hours.load import Outcome
from tasks.state import run_verdict
from tests.fixtures.worlds import SMALL

BAD_TOKEN = "<token><version>1</version><data>" + "0" * 64 + "</data></token>"


@pytest.fixture(scope="module")
def sandbox(sandboxes):
    """The session's small-world sandbox, reset once for this module (its commands only read)."""
    return sandboxes(SMALL)


def check(sandbox, tmp_path, *args: str, **env: str | None):
    settings = {**sandbox.env(), "KOPPEL_STATE_DB_URL": f"sqlite:///{tmp_path / 'state.db'}", **env}
    return CliRunner().invoke(app, ["check", *args], env=settings)


def test_koppel_check_calls_every_system_once_and_says_ok(sandbox, tmp_path) -> None:
    sandbox.reset_counters()
    result = check(sandbox, tmp_path)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "state database",
        "AFAS",
        "TOPdesk",
        "occupational-health system",
    ]
    assert all(": ok (" in line for line in lines)
    assert sandbox.counters("afas")["endpoints"] == {
        "GET /ProfitRestServices/profitversion": {"count": 1, "statuses": {"200": 1}, "faults": {}}
    }
    assert list(sandbox.counters("topdesk")["endpoints"]) == ["GET /tas/api/version"]
    assert sandbox.counters("oh")["total"] == 1


def test_koppel_check_names_the_system_and_variable_of_a_bad_token_without_showing_it(
    sandbox, tmp_path
) -> None:
    result = check(sandbox, tmp_path, "afas", KOPPEL_AFAS_TOKEN=BAD_TOKEN)
    assert result.exit_code == 2
    [line] = result.output.splitlines()
    assert line.startswith("AFAS refused the credentials: check KOPPEL_AFAS_TOKEN")
    assert "0" * 64 not in result.output


def test_koppel_check_names_a_missing_variable_and_an_unreachable_system(sandbox, tmp_path) -> None:
    result = check(
        sandbox,
        tmp_path,
        "topdesk",
        "occupational-health",
        KOPPEL_TOPDESK_LOGIN=None,
        KOPPEL_OH_URL="http://127.0.0.1:9",
    )
    assert result.exit_code == 2
    lines = result.output.splitlines()
    assert lines[0] == "TOPdesk: KOPPEL_TOPDESK_LOGIN is required but not set"
    assert lines[1].startswith("occupational-health system not reachable: check KOPPEL_OH_URL")


def test_a_run_is_green_only_when_something_was_read_and_nothing_refused_or_uncertain() -> None:
    assert run_verdict(10, ["posted", "recovered", "existing-posted", "dry-run"]).ok
    refused = run_verdict(10, ["posted", "failed", "failed", "uncertain"])
    assert not refused.ok
    assert refused.message == (
        "2 documents refused by AFAS; "
        "1 document uncertain (AFAS did not answer; looked up again by the next run)"
    )
    empty = run_verdict(0, [])
    assert not empty.ok and empty.message == "zero registrations read: check the source and the dates"
    assert run_verdict(5, [], failed_sources=["TOPdesk hours"]).message == "source TOPdesk hours failed"


def test_registrations_possibly_deleted_make_a_run_not_green_and_are_named() -> None:
    assert run_verdict(10, ["posted"], possibly_deleted=0).ok
    three = run_verdict(10, ["posted"], possibly_deleted=3)
    assert not three.ok
    assert three.message == (
        "3 registrations possibly deleted in TOPdesk, not credited: checked again next run"
    )
    one = run_verdict(10, ["failed"], failed_sources=["TOPdesk hours"], possibly_deleted=1)
    assert one.message == (
        "source TOPdesk hours failed; 1 document refused by AFAS; "
        "1 registration possibly deleted in TOPdesk, not credited: checked again next run"
    )


def test_business_events_read_as_sentences() -> None:
    read = pd.DataFrame({"kind": ["incident", "change", "incident", "operations", "change", "problem", "x"]})
    assert read_summary(read, "2026-10-01..2026-10-31") == (
        "7 registrations from 5 sources for 2026-10-01..2026-10-31"
    )
    documents = pd.DataFrame(
        {"kind": ["direct_invoice", "internal_entry"], "amount": [Decimal("1200.50"), Decimal("80.00")]}
    )
    assert documents_summary(documents) == (
        "2 documents, € 1,280.50 excl. VAT (customer revenue € 1,200.50, internal charges € 80.00)"
    )
    outcomes = [
        Outcome("KPL-1", "direct_invoice", "posted", 60, Decimal("85.00")),
        Outcome(
            "KPL-2",
            "direct_invoice",
            "failed",
            30,
            Decimal("42.50"),
            message="Debiteur is geblokkeerd",
            profit_log_reference="ab" * 16,
        ),
    ]
    assert outcomes_summary(outcomes) == "posted 1 (€ 85.00), 1 refused: KPL-2"
    assert refusal_lines(outcomes) == [
        "AFAS refused KPL-2 (direct_invoice, € 42.50): Debiteur is geblokkeerd "
        f"(AFAS log reference {'ab' * 16}); fix it in AFAS, then `koppel resend KPL-2`"
    ]


def test_run_names_tags_and_artifact_keys_name_the_period_and_keep_previews_apart() -> None:
    october = Window(date(2026, 10, 1), date(2026, 10, 31))
    assert period_label(october) == "2026-10"
    assert period_label(Window(date(2026, 8, 1), date(2026, 10, 31))) == "2026-08..2026-10"
    assert period_label(Window(date(2026, 10, 5), date(2026, 10, 31))) == "2026-10-05..2026-10-31"
    params = {"start_date": "2026-10-01", "end_date": "2026-10-31"}
    assert run_name("invoice-hours", params) == "invoice-hours 2026-10"
    assert run_name("invoice-hours", {**params, "dry_run": True}) == "invoice-hours 2026-10 preview"
    assert run_name("invoice-hours", {"start_date": "2026-13-01"}) == "invoice-hours invalid dates"
    assert artifact_prefix("invoice-hours", october, False) == "invoice-hours-2026-10"
    assert artifact_prefix("invoice-hours", october, True) == "invoice-hours-2026-10-preview"
    assert run_tags(Window(date(2026, 9, 20), date(2026, 10, 31)), True) == [
        "period:2026-09",
        "period:2026-10",
        "preview",
    ]


def test_finance_formatting_one_date_format_euros_hours_and_totals() -> None:
    assert finance_date(date(2026, 10, 5)) == "2026-10-05"
    assert finance_date(datetime(2026, 10, 5, 12, 3, tzinfo=UTC)) == "2026-10-05 14:03"  # summer time
    assert plain(pd.Timestamp("2026-12-01T08:00:00Z")) == "2026-12-01 09:00"
    assert euro(Decimal("1234.5")) == "€ 1,234.50" and euro(Decimal("-12")) == "€ -12.00"
    assert (
        hours_line(7200, 7410, 150, 60)
        == "registered 120.00 h → billed 123.50 h (rounding +2.50 h, minimums +1.00 h)"
    )
    assert customer_text("10042", {"10042": "Bakkerij De Vries"}) == "Bakkerij De Vries (10042)"
    assert customer_text("10043", {}) == "10043"
    table = pd.DataFrame(
        {
            "reference": ["KPL-1", "KPL-2", "KPL-3"],
            "kind": ["direct_invoice", "direct_invoice", "internal_entry"],
            "debtor": ["10042", "10043", ""],
            "project": ["", "", ""],
            "period": ["2026-10"] * 3,
            "hours": [Decimal("1.00"), Decimal("0.50"), Decimal("2.00")],
            "amount": [Decimal("85.00"), Decimal("42.50"), Decimal("120.00")],
            "afas_number": ["70001", "", "9001"],
            "status": ["posted", "failed", "posted"],
            "message": ["", "Debiteur is geblokkeerd", ""],
        }
    )
    shown = finance_documents(table, {"10042": "Bakkerij De Vries"})
    assert list(shown.columns[:3]) == ["status", "message", "customer"]
    assert shown.loc[1, "message"] == "Debiteur is geblokkeerd; fix in AFAS, then `koppel resend KPL-2`"
    assert shown.loc[0, "customer"] == "Bakkerij De Vries (10042)"
    assert shown.iloc[-1]["status"] == "Total" and shown.iloc[-1]["amount"] == Decimal("247.50")
    amounts = amounts_markdown(table)
    assert "| posted | 2 | € 85.00 | € 120.00 |" in amounts
    assert "| refused by AFAS | 1 | € 42.50 | € 0.00 |" in amounts


def test_hours_change_separates_rounding_from_ticket_minimums() -> None:
    from tasks.events import hours_change

    priced = pd.DataFrame(
        {"minutes": [50, 7, 60], "billed_minutes": [60, 30, 60], "minimum_topup": [0, 15, 0]}
    )
    assert hours_change(priced) == "registered 1.95 h → billed 2.50 h (rounding +0.30 h, minimums +0.25 h)"
