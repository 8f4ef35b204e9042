"""The management CLI against a real store (SQLite and the throwaway PostgreSQL): each command and error."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from koppel.cli import app
from store import exclusions, ledger, runs
from tests.store_support import (  # noqa: F401 - fixtures
    db_url_fixture,
    document,
    engine_fixture,
    line,
    postgres_admin,
    postgres_schema_url,
)

LOG_REFERENCE = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def cli(db_url: str) -> Iterator[callable]:
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args), env={"KOPPEL_STATE_DB_URL": db_url})

    yield invoke


@pytest.fixture
def billed(engine: Engine) -> Engine:
    """A run that posted INV-1 (registrations r-1, r-2) and had INV-2 (r-3) refused by AFAS."""
    run = runs.start_run(engine, "invoice-hours", {"parameters": {"dry_run": False}})
    posted = document(
        "INV-1", [line("r-1", minutes=90, amount="127.50"), line("r-2", minutes=30)], period="2026-09"
    )
    ledger.claim(engine, run, replace(posted, debtor="10001"))
    ledger.mark_posted(engine, "INV-1", {"OrNu": "70000001"})
    ledger.claim(engine, run, document("INV-2", [line("r-3", minutes=60, amount="85.00")], period="2026-09"))
    ledger.mark_failed(engine, "INV-2", "Debiteur 10001 is geblokkeerd.", LOG_REFERENCE)
    runs.finish_run(
        engine,
        run,
        "completed",
        {
            "invoiced": {"count": 2, "minutes": 120},
            "failed": {"count": 1, "minutes": 60},
            "rejected": {"count": 4},
        },
    )
    return engine


def test_exclusions_add_list_remove(cli, engine: Engine) -> None:
    added = cli("exclusions", "add", "customer", " 10042 ", "--reason", "prepaid contract", "--by", "finance")
    assert added.exit_code == 0, added.output
    assert "customer '10042' (prepaid contract)" in added.output
    [entry] = exclusions.list_exclusions(engine)
    assert (entry.kind, entry.value, entry.reason, entry.created_by) == (
        "customer",
        "10042",
        "prepaid contract",
        "finance",
    )
    cli("exclusions", "add", "operator", "op-7", "-r", "trainee")

    listed = cli("exclusions", "list")
    assert listed.exit_code == 0
    rows = [row.split() for row in listed.output.strip().splitlines()[1:]]
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (str(entry.id), "customer", "10042"),
        (str(entry.id + 1), "operator", "op-7"),
    ]
    only = cli("exclusions", "list", "--kind", "operator")
    assert "op-7" in only.output and "10042" not in only.output

    removed = cli("exclusions", "remove", str(entry.id))
    assert removed.exit_code == 0
    assert f"removed exclusion {entry.id}: customer '10042'" in removed.output
    assert [e.value for e in exclusions.list_exclusions(engine)] == ["op-7"]


def test_exclusions_errors_are_one_clear_line(cli, engine: Engine) -> None:
    cli("exclusions", "add", "customer", "10042", "-r", "prepaid", "--by", "me")
    duplicate = cli("exclusions", "add", "customer", "10042", "-r", "again", "--by", "me")
    assert duplicate.exit_code == 1
    assert duplicate.stderr.strip() == "error: customer '10042' is already excluded"
    wrong_kind = cli("exclusions", "add", "planet", "mars", "-r", "x", "--by", "me")
    assert wrong_kind.exit_code == 1 and "unknown exclusion kind 'planet'" in wrong_kind.stderr
    unknown = cli("exclusions", "remove", "999")
    assert unknown.exit_code == 1
    assert unknown.stderr.strip() == "error: no exclusion with id 999; `koppel exclusions list` shows the ids"
    assert len(exclusions.list_exclusions(engine)) == 1
    empty = cli("exclusions", "list", "--kind", "ticket")
    assert empty.exit_code == 0 and "(no exclusions)" in empty.output


def test_ledger_shows_a_document_and_its_lines(cli, billed: Engine) -> None:
    posted = cli("ledger", "INV-1")
    assert posted.exit_code == 0, posted.output
    assert "document INV-1: direct_invoice, administration 1, period 2026-09" in posted.output
    assert "status posted; invoice number -; AFAS keys OrNu=70000001" in posted.output
    assert "debtor 10001, project P-100, 120 min (2.00 h), amount 170.00" in posted.output
    assert "lines (2):" in posted.output and "r-1" in posted.output and "r-2" in posted.output

    failed = cli("ledger", "INV-2")
    assert "status failed" in failed.output
    assert "error: Debiteur 10001 is geblokkeerd." in failed.output
    assert f"AFAS log reference: {LOG_REFERENCE}" in failed.output


def test_ledger_shows_a_registration_and_unknown_ids_fail(cli, billed: Engine) -> None:
    shown = cli("ledger", "r-1")
    assert shown.exit_code == 0, shown.output
    assert "registration r-1: billed in INV-1 (posted), 90 min (1.50 h), amount 127.50" in shown.output
    assert "history (1 lines):" in shown.output and "charge" in shown.output

    unknown = cli("ledger", "nope-42")
    assert unknown.exit_code == 1
    assert (
        unknown.stderr.strip()
        == "error: 'nope-42' is neither a document reference nor a registration in the ledger"
    )


def test_resend_frees_a_failed_document_by_reference_or_registration(cli, billed: Engine) -> None:
    by_registration = cli("resend", "r-3")
    assert by_registration.exit_code == 0, by_registration.output
    assert "released INV-2 (period 2026-09): 1 registrations are billed again" in by_registration.output
    assert ledger.document(billed, "INV-2").status == "released"
    assert ledger.billed_state(billed, ["r-3"]).empty  # free for the next run
    assert cli("ledger", "r-3").output.startswith("registration r-3: not billed now")

    again = cli("resend", "INV-2")
    assert again.exit_code == 0
    assert "INV-2 is released already; nothing to do" in again.output


def test_resend_of_a_posted_document_is_a_no_op_and_unknown_is_an_error(cli, billed: Engine) -> None:
    posted = cli("resend", "INV-1")
    assert posted.exit_code == 0
    assert "INV-1 is posted already; nothing to do" in posted.output
    assert ledger.document(billed, "INV-1").status == "posted"
    unknown = cli("resend", "XYZ-1")
    assert (
        unknown.exit_code == 1
        and "'XYZ-1' is neither a document reference nor a registration" in unknown.stderr
    )


def test_statistics_sums_up_a_billing_month(cli, billed: Engine) -> None:
    from koppel.clock import AMSTERDAM

    shown = cli("statistics", "2026-09")
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert lines[0] == "Billing period 2026-09"
    counts = [row.split() for row in lines if row.strip().startswith("direct_invoice")]
    assert counts == [
        ["direct_invoice", "failed", "1", "1.00", "85.00"],
        ["direct_invoice", "posted", "1", "2.00", "170.00"],
    ]
    assert any(row.split() == ["10001", "2026-09", "1", "120", "2.00", "170.00"] for row in lines)
    assert ["INV-2", "failed", "Debiteur", "10001", "is", "geblokkeerd.", LOG_REFERENCE] in [
        r.split() for r in lines
    ]

    from datetime import datetime

    this_month = datetime.now(tz=AMSTERDAM).strftime("%Y-%m")
    runs_shown = cli("statistics", this_month)
    buckets = {
        row.split()[0]: row.split()[1:] for row in runs_shown.output.splitlines() if row.startswith("  ")
    }
    assert buckets["rejected"] == ["4", "1"] and buckets["invoiced"] == ["2", "1"]

    empty = cli("statistics", "2020-01")
    assert empty.exit_code == 0 and "(no documents)" in empty.output and "(no runs)" in empty.output
    wrong = cli("statistics", "2026-9")
    assert wrong.exit_code == 2 and "YYYY-MM" in wrong.output


def test_console_script_reports_a_bad_state_url_in_one_line(tmp_path) -> None:
    env = {**os.environ, "KOPPEL_STATE_DB_URL": "mysql://nope"}
    result = subprocess.run(
        [sys.executable, "-m", "koppel", "ledger", "INV-1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "Invalid settings: KOPPEL_STATE_DB_URL must be a sqlite:/// or postgresql+psycopg:// URL (got 'mysql://nope')"
    ]
