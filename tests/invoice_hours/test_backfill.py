"""Backfill: months, child parameters, waiting and the report; the flow against the session's Prefect API.

The flow test has no workers: a stand-in thread plays them, finishing each child run the backfill created
(after writing what that child would have billed into the store), so the real waiting and reporting run.
The real thing, with a Prefect server on PostgreSQL and two process workers, is
tests/system/test_scale_out.py.
"""

from __future__ import annotations

import contextvars
import threading
import time
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from pydantic import ValidationError

from flows.backfill import BackfillParameters
from store import ledger, runs
from store.db import connect
from store.settings import StoreSettings
from tasks.invoice_hours.backfill import Child, child_parameters, children_table, refresh
from tasks.invoice_hours.extract import Window
from tests.store_support import document, line


def test_month_windows_cut_at_calendar_months() -> None:
    months = Window(date(2026, 11, 15), date(2027, 2, 3)).months()
    assert [(m.first, m.last) for m in months] == [
        (date(2026, 11, 15), date(2026, 11, 30)),
        (date(2026, 12, 1), date(2026, 12, 31)),
        (date(2027, 1, 1), date(2027, 1, 31)),
        (date(2027, 2, 1), date(2027, 2, 3)),
    ]
    assert [(m.first, m.last) for m in Window(date(2028, 2, 1), date(2028, 2, 29)).months()] == [
        (date(2028, 2, 1), date(2028, 2, 29))
    ]
    assert Window(date(2026, 5, 31), date(2026, 5, 31)).months()[0].month == "2026-05"
    with pytest.raises(ValueError, match="before start_date"):
        Window(date(2026, 5, 2), date(2026, 5, 1)).months()


def test_parameters_refuse_bad_ranges_and_pass_options_to_children() -> None:
    with pytest.raises(ValidationError, match="37 months is more than 36"):
        BackfillParameters(start_date=date(2024, 1, 1), end_date=date(2027, 1, 1))
    with pytest.raises(ValidationError, match="before start_date"):
        BackfillParameters(start_date=date(2026, 2, 1), end_date=date(2026, 1, 1))
    p = BackfillParameters(
        start_date=date(2026, 8, 1), end_date=date(2026, 10, 31), dry_run=True, administration=2
    )
    month = Window(date(2026, 9, 1), date(2026, 9, 30))
    assert child_parameters(month, p.invoice_parameters()) == {
        "dry_run": True,
        "administration": 2,
        "config_path": "config/billing.toml",
        "recover_after_minutes": 15.0,
        "start_date": "2026-09-01",
        "end_date": "2026-09-30",
    }


def test_refresh_reads_only_unfinished_children() -> None:
    month = Window(date(2026, 9, 1), date(2026, 9, 30))
    done = Child(month, "a", "invoice-hours-2026-09", "COMPLETED", "Completed")
    waiting = Child(month, "b", "invoice-hours-2026-09", "SCHEDULED")
    state = SimpleNamespace(type=SimpleNamespace(value="FAILED"), name="Failed", message="AFAS down")
    asked = []

    def read_run(run_id: str) -> SimpleNamespace:
        asked.append(run_id)
        return SimpleNamespace(state=state)

    fresh = refresh([done, waiting], read_run)
    assert asked == ["b"]
    assert fresh[0] == done
    assert (fresh[1].state, fresh[1].state_name, fresh[1].message, fresh[1].final) == (
        "FAILED",
        "Failed",
        "AFAS down",
        True,
    )


def bill_as_child(engine, run_id: str, month: str, amount: str) -> None:
    """What an invoice-hours child would leave in the store: its run, one posted and one failed document."""
    runs.start_run(engine, "invoice-hours", {"parameters": {"dry_run": False}}, run_id=run_id)
    posted = document(f"INV-{month}", [line(f"r-{month}", minutes=120, amount=amount)], period=month)
    ledger.claim(engine, run_id, posted)
    ledger.mark_posted(engine, posted.reference, {"OrNu": "1"})
    failed = replace(document(f"BAD-{month}", [line(f"x-{month}")], period=month))
    ledger.claim(engine, run_id, failed)
    ledger.mark_failed(engine, failed.reference, "Periode geblokkeerd", "ff" * 16)
    stats = {"invoiced": {"count": 1, "minutes": 120}, "rejected": {"count": 3, "minutes": 40}}
    runs.finish_run(engine, run_id, "completed", stats)


def test_children_table_reads_each_childs_documents_and_buckets(tmp_path: Path) -> None:
    engine = connect(StoreSettings(db_url=f"sqlite:///{tmp_path / 'state.db'}"))
    bill_as_child(engine, "run-aug", "2026-08", "170.00")
    months = Window(date(2026, 8, 1), date(2026, 9, 30)).months()
    children = [
        Child(months[0], "run-aug", "invoice-hours-2026-08", "COMPLETED", "Completed"),
        Child(months[1], "run-sep", "invoice-hours-2026-09", "CRASHED", "Crashed", "worker lost"),
    ]
    documents = pd.concat([ledger.documents(engine, run_id=c.flow_run_id) for c in children])
    table = children_table(children, documents, runs.run_history(engine)).set_index("month")
    aug, sep = table.loc["2026-08"], table.loc["2026-09"]
    assert (aug["documents_posted"], aug["documents_failed"], aug["hours_posted"], aug["amount_posted"]) == (
        1,
        1,
        Decimal("2.00"),
        Decimal("170.00"),
    )
    assert (aug["invoiced"], aug["rejected"], aug["state"], aug["message"]) == (1, 3, "Completed", "")
    assert (sep["documents_posted"], sep["state"], sep["message"]) == (0, "Crashed", "worker lost")
    engine.dispose()


class FakeWorkers:
    """Plays the workers: finishes every child run of the backfill, failing the months in ``fail``."""

    def __init__(self, engine, fail: set[str]) -> None:
        self.engine, self.fail, self.done = engine, fail, {}
        self.since = datetime.now(tz=UTC)  # children left scheduled by other tests are not ours
        self.stop = threading.Event()
        context = contextvars.copy_context()  # the session's Prefect API settings live in context variables
        self.thread = threading.Thread(target=context.run, args=(self._loop,), daemon=True)

    def __enter__(self) -> FakeWorkers:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)

    def _loop(self) -> None:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
        from prefect.states import Completed, Failed

        with get_client(sync_client=True) as client:
            while not self.stop.wait(0.2):
                found = client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=["backfill"]))
                )
                for run in found:
                    if str(run.id) in self.done or not run.state.is_scheduled() or run.created < self.since:
                        continue
                    month = run.parameters["start_date"][:7]
                    self.done[str(run.id)] = run.parameters
                    if month in self.fail:
                        client.set_flow_run_state(run.id, Failed(message="AFAS maintenance"), force=True)
                        continue
                    bill_as_child(self.engine, str(run.id), month, "99.50")
                    client.set_flow_run_state(run.id, Completed(), force=True)


@pytest.fixture
def deployed(prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """invoice-hours registered as deployment ``invoice-hours/monthly`` (no work pool: FakeWorkers run it)."""
    from flows.invoice_hours import invoice_hours

    invoice_hours.to_deployment(name="monthly").apply()
    url = f"sqlite:///{tmp_path / 'state.db'}"
    monkeypatch.setenv("KOPPEL_STATE_DB_URL", url)
    engine = connect(StoreSettings(db_url=url))
    yield engine
    engine.dispose()


def artifacts_of(flow_run_id) -> dict:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {a.key: a for a in found}


@pytest.mark.prefect
def test_backfill_flow_runs_one_child_per_month_and_reports_them(deployed) -> None:
    from flows.backfill import backfill

    params = BackfillParameters(
        start_date=date(2026, 8, 10), end_date=date(2026, 10, 31), poll_seconds=0.2, wait_minutes=2
    )
    started = time.monotonic()
    with FakeWorkers(deployed, fail=set()) as workers:
        state = backfill(**params.model_dump(), return_state=True)
    assert state.is_completed(), state.message
    assert time.monotonic() - started < 60
    windows = sorted((p["start_date"], p["end_date"]) for p in workers.done.values())
    assert windows == [
        ("2026-08-10", "2026-08-31"),
        ("2026-09-01", "2026-09-30"),
        ("2026-10-01", "2026-10-31"),
    ]
    table = state.result()["children"].set_index("month")
    assert table["state"].tolist() == ["Completed"] * 3
    assert table["amount_posted"].tolist() == [Decimal("99.50")] * 3
    assert table["flow_run"].tolist() == [
        "invoice-hours-2026-08",
        "invoice-hours-2026-09",
        "invoice-hours-2026-10",
    ]
    artifacts = artifacts_of(state.state_details.flow_run_id)
    summary = artifacts["backfill-summary"].data
    assert "3 child runs of `invoice-hours/monthly`, one per month: 3 completed, 0 not completed." in summary
    assert "Posted: 3 documents, 6.00 hours, 298.50 EUR excl. VAT." in summary
    assert len(artifacts["backfill-children"].data) > 0


@pytest.mark.prefect
def test_backfill_fails_when_a_child_fails_and_names_the_month(
    deployed, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from flows.backfill import BackfillFailed, backfill

    monkeypatch.delenv("KOPPEL_NOTIFY_BLOCK", raising=False)

    params = BackfillParameters(
        start_date=date(2026, 8, 1), end_date=date(2026, 9, 30), poll_seconds=0.2, wait_minutes=2
    )
    with FakeWorkers(deployed, fail={"2026-09"}), caplog.at_level("WARNING", logger="koppel.notifications"):
        state = backfill(**params.model_dump(), return_state=True)
    assert state.is_failed()
    [notified] = [r.getMessage() for r in caplog.records if r.name == "koppel.notifications"]
    assert "Koppel: backfill run" in notified and "child runs of 2026-09 did not complete" in notified
    with pytest.raises(BackfillFailed, match="child runs of 2026-09 did not complete"):
        state.result()
    summary = artifacts_of(state.state_details.flow_run_id)["backfill-summary"].data
    assert "1 completed, 1 not completed" in summary and "AFAS maintenance" in summary


@pytest.mark.prefect
def test_backfill_stops_waiting_after_wait_minutes(deployed) -> None:
    from flows.backfill import BackfillFailed, backfill

    params = BackfillParameters(
        start_date=date(2026, 8, 1), end_date=date(2026, 8, 31), poll_seconds=0.2, wait_minutes=0.01
    )
    state = backfill(**params.model_dump(), return_state=True)  # no workers at all: the child stays scheduled
    with pytest.raises(BackfillFailed, match="2026-08"):
        state.result()
    table = artifacts_of(state.state_details.flow_run_id)["backfill-children"].data
    assert "Scheduled" in str(table)
