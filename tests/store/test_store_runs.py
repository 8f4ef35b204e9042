"""Run records: secrets never stored, history, and per-bucket statistics of a billing month."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine

from store import runs
from tests.store_support import (  # noqa: F401
    db_url_fixture,
    engine_fixture,
    postgres_admin,
    postgres_schema_url,
)


def test_parameters_are_stored_without_secrets(engine: Engine) -> None:
    parameters = {
        "start": datetime(2026, 10, 1, tzinfo=UTC),
        "administrations": (1, 2),
        "afas": {"token": "<token><version>1</version><data>ABC</data></token>", "environment": 12345},
        "topdesk_password": "app-password",
        "note": SecretStr("hidden"),
        "dry_run": False,
    }
    run_id = runs.start_run(engine, "invoice-hours", parameters)
    assert uuid.UUID(run_id)
    stored = runs.run_history(engine).parameters.iloc[0]
    assert stored == {
        "start": "2026-10-01 00:00:00+00:00",
        "administrations": [1, 2],
        "afas": {"token": "[redacted]", "environment": 12345},
        "topdesk_password": "[redacted]",
        "note": "[redacted]",
        "dry_run": False,
    }


def test_finish_run_and_history(engine: Engine) -> None:
    first = runs.start_run(engine, "invoice-hours", {}, run_id="prefect-run-1")
    runs.start_run(engine, "company-sync", {})
    third = runs.start_run(engine, "invoice-hours", {})
    stats = {"invoiced": {"count": 3, "minutes": 135, "amount": Decimal("191.25")}}
    runs.finish_run(engine, first, "completed", stats)
    history = runs.run_history(engine, "invoice-hours")
    assert list(history.id) == [third, "prefect-run-1"]
    assert list(history.status) == ["running", "completed"]
    assert history.statistics.iloc[1] == {
        "invoiced": {"count": 3, "minutes": 135, "amount": Decimal("191.25")}
    }
    assert history.finished_at.isna().tolist() == [True, False]
    assert len(runs.run_history(engine, limit=2)) == 2
    with pytest.raises(runs.UnknownRun, match="no run with id 'nope'"):
        runs.finish_run(engine, "nope", "completed")
    with pytest.raises(ValueError, match="status 'running' is not one of"):
        runs.finish_run(engine, third, "running")
    with pytest.raises(TypeError, match=r"invoiced.amount must be a Decimal"):
        runs.finish_run(engine, third, "completed", {"invoiced": {"amount": 1.5}})


def _run_at(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, when: datetime, status: str, stats: dict
) -> None:
    monkeypatch.setattr(runs, "utcnow", lambda: when)
    run_id = runs.start_run(engine, "invoice-hours", {})
    runs.finish_run(engine, run_id, status, stats)


def test_statistics_of_a_month_sum_completed_runs(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = {
        "invoiced": {"count": 2, "minutes": 90, "amount": Decimal("127.50")},
        "rejected": {"count": 1, "minutes": 15},
    }
    _run_at(engine, monkeypatch, datetime(2026, 11, 3, 8, 0, tzinfo=UTC), "completed", bucket)
    # 23:30 UTC on 31 October is 00:30 on 1 November in Amsterdam: it belongs to November.
    _run_at(engine, monkeypatch, datetime(2026, 10, 31, 23, 30, tzinfo=UTC), "completed", bucket)
    _run_at(engine, monkeypatch, datetime(2026, 11, 4, 8, 0, tzinfo=UTC), "failed", bucket)
    _run_at(engine, monkeypatch, datetime(2026, 10, 31, 22, 30, tzinfo=UTC), "completed", bucket)
    november = runs.statistics(engine, "2026-11")
    assert november.to_dict("records") == [
        {"bucket": "invoiced", "runs": 2, "count": 4, "minutes": 180, "amount": Decimal("255.00")},
        {"bucket": "rejected", "runs": 2, "count": 2, "minutes": 30, "amount": Decimal("0.00")},
    ]
    assert runs.statistics(engine, "2026-10")["runs"].tolist() == [1, 1]
    assert runs.statistics(engine, "2026-12").empty
    with pytest.raises(ValueError, match="not YYYY-MM"):
        runs.statistics(engine, "2026-13")
