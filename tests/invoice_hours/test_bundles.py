"""Prepaid bundles that finance manages: `koppel bundles …`, bundles from the config, balances and alerts."""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from koppel.cli import app
from store import bundles
from tasks.bundles import bundle_alerts
from tasks.invoice_hours.config import BillingConfigError
from tests.billing_factories import config
from tests.invoice_support import OCTOBER
from tests.store_support import db_url_fixture, engine_fixture, postgres_admin, postgres_schema_url  # noqa: F401


@pytest.fixture
def cli(db_url: str):
    """``koppel …`` against the test's state database."""
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args), env={"KOPPEL_STATE_DB_URL": db_url})


def test_add_list_correct_close_and_balance_from_the_command_line(cli, engine: Engine) -> None:
    added = cli("bundles", "add", "10001", "--hours", "2.5", "--from", "2026-01-01", "-d", "order 4711")
    assert added.exit_code == 0, added.output
    bundle_id = int(added.output.split()[2])
    assert "150 min (2.50 h)" in added.output
    assert bundles.draw(engine, "reg-1", "10001", 100, date(2026, 10, 6)) == 100

    listed = cli("bundles", "list")
    assert listed.exit_code == 0 and "order 4711" in listed.output
    status = bundles.bundle_status(engine).iloc[0]
    assert (status["minutes_total"], status["minutes_drawn"], status["minutes_left"]) == (150, 100, 50)

    too_small = cli("bundles", "correct", str(bundle_id), "--hours", "1", "-r", "typo")
    assert too_small.exit_code == 1 and "100 minutes are already drawn" in too_small.output
    corrected = cli(
        "bundles", "correct", str(bundle_id), "--hours", "3", "-r", "order was 3 h", "--by", "fenna"
    )
    assert corrected.exit_code == 0, corrected.output
    assert "150 min (2.50 h) → 180 min (3.00 h)" in corrected.output
    status = bundles.bundle_status(engine).iloc[0]
    assert status["minutes_left"] == 80 and "fenna (order was 3 h)" in status["description"]

    balance = cli("bundles", "balance", "--on", "2026-10-31")
    assert balance.exit_code == 0 and "10001" in balance.output and "1.33" in balance.output

    closed = cli("bundles", "close", str(bundle_id), "--on", "2026-10-31", "-r", "contract ended")
    assert closed.exit_code == 0, closed.output
    assert bundles.draw(engine, "reg-2", "10001", 30, date(2026, 11, 2)) == 0  # after its last day
    assert bundles.draw(engine, "reg-3", "10001", 30, date(2026, 10, 30)) == 30
    assert cli("bundles", "balance", "--on", "2026-11-02").output.count("10001") == 0


def test_command_line_errors_are_one_line(cli) -> None:
    assert cli("bundles", "correct", "999", "--hours", "1", "-r", "x").exit_code == 1
    assert "no bundle with id 999" in cli("bundles", "close", "999", "-r", "x").output
    bad_hours = cli("bundles", "add", "10001", "--hours", "0.001", "--from", "2026-01-01")
    assert bad_hours.exit_code == 2 and "whole number of minutes" in bad_hours.output
    bad_day = cli("bundles", "add", "10001", "--hours", "1", "--from", "1-1-2026")
    assert bad_day.exit_code == 2 and "YYYY-MM-DD" in bad_day.output
    ends_before = cli("bundles", "add", "10001", "--hours", "1", "--from", "2026-02-01", "--to", "2026-01-01")
    assert ends_before.exit_code == 1 and "lies before" in ends_before.output


def spec(**overrides) -> dict:
    base = {
        "name": "10001-2026",
        "customer_number": "10001",
        "minutes": 600,
        "valid_from": date(2026, 1, 1),
        "valid_to": None,
        "description": "strippenkaart",
    }
    return {**base, **overrides}


def test_config_bundles_are_copied_once_and_follow_changes(engine: Engine) -> None:
    assert bundles.sync_config_bundles(engine, [spec()]) == ["added bundle 10001-2026 for 10001: 600 min"]
    assert bundles.sync_config_bundles(engine, [spec()]) == []
    assert bundles.draw(engine, "reg-1", "10001", 500, date(2026, 3, 1)) == 500
    changed = bundles.sync_config_bundles(engine, [spec(minutes=900, valid_to=date(2026, 12, 31))])
    assert len(changed) == 1 and "updated" in changed[0]
    status = bundles.bundle_status(engine)
    assert len(status) == 1
    assert (status.iloc[0]["minutes_total"], status.iloc[0]["minutes_left"]) == (900, 400)
    assert status.iloc[0]["valid_to"] == date(2026, 12, 31)
    with pytest.raises(bundles.BundleError, match=r"bundles\.10001-2026: 500 minutes are already drawn"):
        bundles.sync_config_bundles(engine, [spec(minutes=300)])


def test_the_billing_config_accepts_bundles_and_names_bad_ones() -> None:
    extra = '\n[[bundles]]\nname = "a"\ncustomer_number = "10001"\nhours = "7.5"\nvalid_from = 2026-01-01\n'
    assert config(extra).bundles[0].minutes == 450
    with pytest.raises(BillingConfigError, match="bundles: name 'a' is used twice"):
        config(extra + extra)
    with pytest.raises(BillingConfigError, match=r"bundles\.0.*whole number of minutes"):
        config(extra.replace('"7.5"', '"0.001"'))
    with pytest.raises(BillingConfigError, match=r"bundles\.0\.hours"):
        config(extra.replace('"7.5"', "7.5"))


def status_frame(rows: list[tuple[int, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "bundle_id": i,
                "customer_number": "1",
                "description": "",
                "minutes_total": total,
                "minutes_left": left,
            }
            for i, total, left in rows
        ]
    )


def test_alerts_when_a_run_takes_a_bundle_below_the_threshold_or_to_zero() -> None:
    before = status_frame([(1, 600, 200), (2, 600, 100), (3, 600, 90), (4, 600, 50), (5, 600, 600)])
    after = status_frame([(1, 600, 100), (2, 600, 0), (3, 600, 80), (4, 600, 50), (5, 600, 500), (6, 60, 60)])
    alerts = bundle_alerts(before, after, below_minutes=120).set_index("bundle_id")
    assert alerts.loc[1, "alert"] == "below 120 min"
    assert alerts.loc[2, "alert"] == "used up"
    assert alerts.loc[3, "alert"] == ""  # was below before: told already
    assert alerts.loc[4, "alert"] == "" and alerts.loc[5, "alert"] == ""
    assert alerts.loc[6, "alert"] == ""  # new bundle, untouched
    assert list(alerts["drawn_in_run"]) == [100, 100, 10, 0, 100, 0]


@pytest.mark.prefect
def test_a_config_bundle_is_drawn_by_the_run_shown_and_reported_when_used_up(
    prefect_harness, sandbox, tmp_path, caplog
) -> None:
    from flows.invoice_hours import InvoiceHoursParameters, invoice_hours
    from store.db import connect
    from store.settings import StoreSettings

    dry = invoice_hours(
        **InvoiceHoursParameters(start_date=OCTOBER[0], end_date=OCTOBER[1], dry_run=True).model_dump()
    )
    customer = dry["documents"].sort_values("hours").iloc[-1]["debtor"]
    source = Path(__file__).resolve().parents[2] / "config" / "billing.toml"
    path = tmp_path / "billing.toml"
    path.write_text(
        source.read_text()
        + f'\n[[bundles]]\nname = "big-{customer}"\ncustomer_number = "{customer}"\nhours = "2"\n'
        "valid_from = 2026-01-01\n"
    )
    with caplog.at_level(logging.WARNING, logger="koppel.notifications"):
        result = invoice_hours(
            **InvoiceHoursParameters(
                start_date=OCTOBER[0], end_date=OCTOBER[1], config_path=str(path)
            ).model_dump()
        )
    assert result["conservation"]["holds"]
    engine = connect(StoreSettings())
    status = bundles.bundle_status(engine)
    assert list(status["customer_number"]) == [customer]
    assert status.iloc[0]["minutes_left"] == 0 and status.iloc[0]["minutes_drawn"] == 120
    assert status.iloc[0]["description"] == f"config:big-{customer}"
    assert f"customer {customer}" in caplog.text and "used up" in caplog.text
    posted = result["documents"].groupby("debtor")["amount"].sum()
    planned = dry["documents"].groupby("debtor")["amount"].sum()
    assert posted[customer] < planned[customer]
