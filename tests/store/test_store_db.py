"""Engines, migrations and the column types that keep money exact and time explicit."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.exc import OperationalError

from store.db import (
    alembic_config,
    connect,
    create_engine_for,
    current_revision,
    downgrade,
    migrate,
    write_transaction,
)
from store.models import documents, metadata, runs
from store.settings import StoreSettings
from tests.store_support import (  # noqa: F401
    db_url_fixture,
    engine_fixture,
    postgres_admin,
    postgres_schema_url,
    sqlite_url,
)

ROOT = Path(__file__).resolve().parents[2]
TABLES = {
    "alembic_version",
    "bundle_draws",
    "bundles",
    "documents",
    "exclusions",
    "invoice_counters",
    "ledger_lines",
    "registration_state",
    "runs",
    "snapshot_changes",
    "snapshots",
    "writebacks",
}


def test_migration_creates_exactly_the_model_schema(engine: Engine) -> None:
    assert set(inspect(engine).get_table_names()) == TABLES
    assert current_revision(engine) == "0003"
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def test_migrate_twice_is_a_no_op(engine: Engine) -> None:
    migrate(engine)
    assert current_revision(engine) == "0003"


def test_downgrade_removes_every_table(db_url: str) -> None:
    engine = connect(StoreSettings(db_url=db_url))
    downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    assert current_revision(engine) is None
    migrate(engine)
    assert set(inspect(engine).get_table_names()) == TABLES
    engine.dispose()


def test_connect_works_from_another_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    engine = connect(StoreSettings(db_url="sqlite:///nested/state.db"))
    assert (tmp_path / "nested" / "state.db").exists()
    assert current_revision(engine) == "0003"
    engine.dispose()


def test_migrate_from_a_fresh_interpreter_outside_the_project(tmp_path: Path) -> None:
    # Only the package location is known, as for an installed package; the cwd is elsewhere.
    script = (
        "from store.db import connect, current_revision;"
        "from store.settings import StoreSettings;"
        f"print(current_revision(connect(StoreSettings(db_url='{sqlite_url(tmp_path)}'))))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd="/",
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.strip() == "0003"


def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(tmp_path: Path) -> None:
    engine = connect(StoreSettings(db_url=sqlite_url(tmp_path)))
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


def test_sqlite_write_transaction_takes_the_write_lock_up_front(tmp_path: Path) -> None:
    engine = connect(StoreSettings(db_url=sqlite_url(tmp_path)))
    other = create_engine_for(StoreSettings(db_url=sqlite_url(tmp_path)), sqlite_busy_timeout_ms=200)
    # A second writer cannot even begin while the first holds the lock (it waits 0.2 s, then gives up).
    with write_transaction(engine), pytest.raises(OperationalError, match="locked"), write_transaction(other):
        pass
    with write_transaction(other) as connection:
        assert connection.execute(text("SELECT 1")).scalar() == 1
    engine.dispose()
    other.dispose()


def _run_row(started_at: datetime) -> dict[str, object]:
    return {"id": "r1", "flow_name": "f", "started_at": started_at, "parameters": {}, "status": "running"}


def test_timestamps_come_back_utc_aware(engine: Engine) -> None:
    amsterdam_evening = datetime(2026, 3, 29, 1, 30, tzinfo=timezone(timedelta(hours=1)))
    with write_transaction(engine) as connection:
        connection.execute(runs.insert().values(**_run_row(amsterdam_evening)))
    with engine.connect() as connection:
        stored = connection.execute(select(runs.c.started_at)).scalar_one()
    assert stored == datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
    assert stored.utcoffset() == timedelta(0)


def test_naive_timestamps_are_refused(engine: Engine) -> None:
    with pytest.raises(Exception, match="naive datetime"), write_transaction(engine) as connection:
        connection.execute(runs.insert().values(**_run_row(datetime(2026, 1, 1, 12, 0))))  # noqa: DTZ001


def _document_row(reference: str, amount: object) -> dict[str, object]:
    now = datetime(2026, 10, 1, tzinfo=UTC)
    return {
        "reference": reference,
        "kind": "internal_entry",
        "administration": 1,
        "period": "2026-10",
        "status": "claimed",
        "payload": {"amount": Decimal("1234.56"), "lines": [Decimal("-0.01"), 3]},
        "minutes": 0,
        "amount": amount,
        "claimed_by_run": "r",
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
    }


@pytest.mark.parametrize(
    "amount", ["0.00", "0.01", "-0.01", "1234567.89", "9999999999999999.99", "-9999999999999999.99", "7"]
)
def test_money_round_trips_exactly(engine: Engine, amount: str) -> None:
    with write_transaction(engine) as connection:
        connection.execute(documents.insert().values(**_document_row("D1", Decimal(amount))))
    with engine.connect() as connection:
        row = connection.execute(select(documents.c.amount, documents.c.payload)).one()
    assert row.amount == Decimal(amount)
    assert str(row.amount) == str(Decimal(amount).quantize(Decimal("0.01")))
    assert row.payload == {"amount": Decimal("1234.56"), "lines": [Decimal("-0.01"), 3]}
    assert isinstance(row.payload["amount"], Decimal)


@pytest.mark.parametrize(
    ("amount", "error"),
    [(1.5, "must be a Decimal"), (Decimal("0.001"), "more than 2 decimals"), (Decimal("1e16"), "exceeds")],
)
def test_money_refuses_floats_sub_cents_and_overflow(engine: Engine, amount: object, error: str) -> None:
    with pytest.raises(Exception, match=error), write_transaction(engine) as connection:
        connection.execute(documents.insert().values(**_document_row("D1", amount)))
    with engine.connect() as connection:
        assert connection.execute(select(documents.c.reference)).all() == []


def test_alembic_commands_work_on_the_configured_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The path env.py takes without a passed-in connection (alembic's own commands, e.g. when a
    # developer autogenerates the next revision): the URL comes from KOPPEL_STATE_DB_URL.
    monkeypatch.setenv("KOPPEL_STATE_DB_URL", sqlite_url(tmp_path))
    command.upgrade(alembic_config(), "head")
    command.check(alembic_config())  # raises if the models and the migrations disagree
    engine = create_engine_for(StoreSettings())
    assert current_revision(engine) == "0003"
    engine.dispose()
