"""The dashboard: tables and charts from a real SQLite store, and the statistics flow's artifacts."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.image import imread
from sqlalchemy import Engine

from koppel.clock import AMSTERDAM
from store import ledger, runs
from store.db import connect
from store.settings import StoreSettings
from tasks.statistics import (
    INTERNAL,
    OTHER,
    build_dashboard,
    customer_months,
    customer_series,
    dashboard_markdown,
    flow_runs_frame,
    periods_between,
    read_store,
    run_buckets,
    run_figures,
    run_history_figure,
    runs_per_flow,
    series_colours,
    summary,
    time_limits,
    top_customers,
)
from tests.store_support import document, line

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NOW_PERIOD = datetime.now(tz=AMSTERDAM).strftime("%Y-%m")


def post(
    engine: Engine,
    run_id: str,
    reference: str,
    *,
    debtor: str | None,
    minutes: int,
    amount: str,
    period: str = "2026-08",
    kind: str = "direct_invoice",
) -> None:
    lines = [line(f"{reference}-r1", minutes=minutes, amount=amount)]
    claim = replace(document(reference, lines, kind=kind, period=period), debtor=debtor)
    ledger.claim(engine, run_id, claim)
    ledger.mark_posted(engine, reference, {"OrNu": reference})


def fail(engine: Engine, run_id: str, reference: str, *, uncertain: bool = False) -> None:
    ledger.claim(engine, run_id, document(reference, [line(f"{reference}-r1")], period="2026-09"))
    if uncertain:
        ledger.mark_uncertain(engine, reference, "read time-out")
    else:
        ledger.mark_failed(engine, reference, "Debiteur 10009 is geblokkeerd", "ab" * 16)


def finished_run(
    engine: Engine,
    statistics: dict,
    *,
    dry_run: bool = False,
    status: str = "completed",
    flow: str = "invoice-hours",
) -> str:
    run_id = runs.start_run(engine, flow, {"parameters": {"dry_run": dry_run}})
    runs.finish_run(engine, run_id, status, statistics)
    return run_id


def bucket(count: int, minutes: int) -> dict:
    return {"count": count, "minutes": minutes, "amount": Decimal("0.00")}


@pytest.fixture
def store(tmp_path: Path) -> Engine:
    engine = connect(StoreSettings(db_url=f"sqlite:///{tmp_path / 'state.db'}"))
    run = runs.start_run(engine, "invoice-hours", {"parameters": {"dry_run": False}})
    post(engine, run, "INV-A1", debtor="10001", minutes=90, amount="127.50")
    post(engine, run, "INV-A2", debtor="10001", minutes=30, amount="42.50")
    post(engine, run, "INV-B1", debtor="10002", minutes=60, amount="80.00")
    post(engine, run, "INT-1", debtor=None, minutes=45, amount="0.00", kind="internal_entry")
    post(engine, run, "INV-A3", debtor="10001", minutes=120, amount="170.00", period="2026-09")
    fail(engine, run, "INV-X1")
    fail(engine, run, "INV-X2", uncertain=True)
    runs.finish_run(engine, run, "completed", {"excluded": bucket(4, 200), "rejected": bucket(2, 15)})
    finished_run(engine, {"conservation": {"excluded": bucket(7, 300), "rejected": bucket(1, 5)}})
    finished_run(engine, {"excluded": bucket(99, 9)}, dry_run=True)
    finished_run(engine, {"excluded": bucket(55, 9)}, status="failed")
    yield engine
    engine.dispose()


def test_periods_between_lists_every_month_and_refuses_bad_input() -> None:
    assert periods_between("2026-11", "2027-02") == ["2026-11", "2026-12", "2027-01", "2027-02"]
    with pytest.raises(ValueError, match="YYYY-MM"):
        periods_between("2026-13", "2027-01")
    with pytest.raises(ValueError, match="before"):
        periods_between("2026-10", "2026-09")


def test_customer_months_sums_posted_documents_exactly(store: Engine) -> None:
    documents, _ = read_store(store, ["2026-08", "2026-09"])
    frame = customer_months(documents)
    rows = {(r.customer, r.period): r for r in frame.itertuples(index=False)}
    assert set(rows) == {
        ("10001", "2026-08"),
        ("10002", "2026-08"),
        (INTERNAL, "2026-08"),
        ("10001", "2026-09"),
    }
    first = rows[("10001", "2026-08")]
    assert (first.documents, first.minutes, first.hours, first.amount) == (
        2,
        120,
        Decimal("2.00"),
        Decimal("170.00"),
    )
    assert rows[(INTERNAL, "2026-08")].hours == Decimal("0.75")
    assert rows[("10001", "2026-09")].amount == Decimal(
        "170.00"
    )  # failed/uncertain documents are not counted


def test_top_customers_and_other_series() -> None:
    frame = pd.DataFrame(
        {
            "customer": ["a", "b", "c", "a"],
            "period": ["2026-08", "2026-08", "2026-08", "2026-09"],
            "hours": [Decimal("1.00"), Decimal("2.00"), Decimal("3.00"), Decimal("4.00")],
            "amount": [Decimal("10"), Decimal("300"), Decimal("20"), Decimal("5")],
        }
    )
    assert top_customers(frame, 2) == ["b", "c"]
    series = customer_series(frame, ["2026-08", "2026-09"], ["b", "c"], "hours")
    assert series == {"b": [2.0, 0.0], "c": [3.0, 0.0], OTHER: [1.0, 4.0]}


def test_run_buckets_reads_flat_and_nested_statistics() -> None:
    assert run_buckets({"excluded": {"count": 3}})["excluded"]["count"] == 3
    assert run_buckets({"conservation": {"rejected": {"count": 2}}})["rejected"]["count"] == 2
    assert run_buckets(None) == {}


def test_dashboard_tables_charts_and_markdown(store: Engine) -> None:
    periods = periods_between("2026-08", max(NOW_PERIOD, "2026-09"))
    documents, history = read_store(store, periods)
    dashboard = build_dashboard(documents, history, periods, top=1)

    totals = dashboard.totals.set_index("period")
    assert totals.loc["2026-08", "hours"] == Decimal("3.75")
    assert totals.loc["2026-08", "amount"] == Decimal("250.00")
    assert totals.loc["2026-09", "documents"] == 1
    assert len(dashboard.totals) == len(periods)  # months without documents are listed with zeros

    # completed, non-dry runs only; the nested statistics shape is read too
    assert sorted(dashboard.history["excluded"].tolist()) == [4, 7]
    assert sorted(dashboard.history["rejected"].tolist()) == [1, 2]

    failures = dashboard.failures.set_index("reference")
    assert set(failures.index) == {"INV-X1", "INV-X2"}
    assert failures.loc["INV-X1", "profit_log_reference"] == "ab" * 16
    assert failures.loc["INV-X2", "status"] == "uncertain"
    per_period = dashboard.failures_per_period.set_index("period")
    assert (per_period.loc["2026-09", "failed"], per_period.loc["2026-09", "uncertain"]) == (1, 1)

    for name, png in dashboard.charts.items():
        assert png.startswith(PNG_SIGNATURE), name
    height, width, _ = imread(io.BytesIO(dashboard.charts["hours-and-amounts"])).shape
    assert (width, height) == (810, 810)  # two panels: hours above amounts
    height, width, _ = imread(io.BytesIO(dashboard.charts["afas-failures"])).shape
    assert (width, height) == (810, 405)

    markdown = dashboard_markdown(dashboard)
    assert "**3.75 hours**" not in markdown  # the headline adds up every period
    assert "**5.75 hours**, **420.00 EUR**" in markdown
    assert markdown.count("](data:image/png;base64,") == 4
    assert "abababab" in markdown  # the AFAS log reference of the failed document is shown

    result = summary(dashboard, ["x.png"])
    assert (result["documents"], result["customers"], result["afas_failures"]) == (5, 3, 2)
    assert result["amount"] == Decimal("420.00")


def test_empty_store_gives_empty_charts_not_errors(tmp_path: Path) -> None:
    engine = connect(StoreSettings(db_url=f"sqlite:///{tmp_path / 'empty.db'}"))
    documents, history = read_store(engine, ["2026-08"])
    dashboard = build_dashboard(documents, history, ["2026-08"])
    assert dashboard.totals.to_dict("records") == [
        {
            "period": "2026-08",
            "customers": 0,
            "documents": 0,
            "hours": Decimal("0.00"),
            "amount": Decimal("0.00"),
        }
    ]
    assert all(png.startswith(PNG_SIGNATURE) for png in dashboard.charts.values())
    assert "_none_" in dashboard_markdown(dashboard)


@pytest.mark.prefect
def test_statistics_flow_publishes_artifacts(
    prefect_harness: None, store: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from flows.statistics import StatisticsParameters, statistics

    monkeypatch.setenv("KOPPEL_STATE_DB_URL", f"sqlite:///{tmp_path / 'state.db'}")
    charts = tmp_path / "charts"
    state = statistics(
        **StatisticsParameters(
            first_period="2026-08", last_period="2026-09", charts_dir=str(charts)
        ).model_dump(),
        return_state=True,
    )
    result = state.result()
    assert result["amount"] == Decimal("420.00") and result["afas_failures"] == 2
    assert sorted(p.name for p in charts.iterdir()) == [
        "afas-failures.png",
        "exclusions-and-rejects.png",
        "hours-and-amounts.png",
        "runs-per-flow.png",
    ]
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])
            )
        )
    by_key = {a.key: a for a in artifacts}
    assert len(by_key) == len(artifacts) == 10  # six tables/markdown and four charts, no key shared
    assert {a.type for a in artifacts} == {"markdown", "table", "image"}
    assert "**5.75 hours**" in by_key["statistics-dashboard"].data
    assert by_key["statistics-chart-hours-and-amounts"].data.startswith("data:image/png;base64,")
    assert "INV-X1" in str(by_key["statistics-afas-failures"].data)


def count(n: int) -> dict:
    return {"count": n}


def test_hr_and_company_runs_appear_next_to_invoicing(store: Engine) -> None:
    hr = {"employees:created": count(12), "users:updated": count(2), "absences:rejected": count(1)}
    hr |= {"absences:failed": count(1), "rejected": count(3), "users:not_found": count(4)}
    finished_run(store, hr, flow="hr-sync")
    finished_run(store, {"employees:created": count(99)}, flow="hr-sync", dry_run=True)
    companies = {"branch create": count(5), "person update": count(7), "person update failed": count(2)}
    companies |= {"rejected": count(1), "review": count(6)}
    finished_run(store, companies, flow="sync-companies")
    finished_run(
        store,
        {"debtor create": count(1), "skipped": count(3), "failed": count(0)},
        flow="create-missing-debtors",
    )

    documents, history = read_store(store, [NOW_PERIOD])
    flows = flow_runs_frame(history, NOW_PERIOD, NOW_PERIOD)
    figures = {r.flow: (r.changes, r.rejects) for r in flows.itertuples(index=False)}
    assert figures["hr-sync"] == (14, 4)  # created + updated; 3 rejected + 1 failed (not the 422 twice)
    assert figures["sync-companies"] == (12, 3)
    assert figures["create-missing-debtors"] == (1, 0)
    assert len(flows[flows["flow"].eq("hr-sync")]) == 1  # the dry run is left out

    table = runs_per_flow(flows).set_index("flow")
    assert table.loc["invoice-hours", "runs"] == 2 and table.loc["hr-sync", "changes"] == 14
    assert table.loc["invoice-hours", "rejects"] == 3  # the fixture's two invoice runs: rejected 2 + 1
    dashboard = build_dashboard(documents, history, [NOW_PERIOD])
    assert "hr-sync" in dashboard_markdown(dashboard) and "sync-companies" in dashboard_markdown(dashboard)
    assert list(dashboard.history["run_id"]) == list(flows[flows["flow"].eq("invoice-hours")]["run_id"])


def test_run_figures_of_invoicing_are_billed_and_rejected_registrations() -> None:
    stats = {"invoiced": count(10), "internal": count(4), "rejected": count(2), "excluded": count(9)}
    assert run_figures("invoice-hours", stats) == (14, 2)


def test_internal_and_other_customers_never_share_a_colour() -> None:
    names = [*(f"1000{i}" for i in range(40)), INTERNAL, OTHER]
    colours = series_colours(names)
    assert len(set(colours.values())) == len(names)  # every series its own colour, also with 40 customers
    assert colours[INTERNAL] != colours[OTHER]
    assert series_colours([INTERNAL, "10001", OTHER])[INTERNAL] == colours[INTERNAL]  # stable meaning


def test_a_one_point_chart_spans_days_not_years() -> None:
    moment = datetime(2026, 11, 2, 7, 0, tzinfo=AMSTERDAM)
    low, high = time_limits([moment])
    assert high - low == timedelta(days=2) and low < moment < high
    later = moment + timedelta(days=100)
    low, high = time_limits([moment, later])
    assert (moment - low) == (high - later) == timedelta(days=5)

    history = pd.DataFrame(
        {"started": [pd.Timestamp(moment)], "excluded": [3], "rejected": [1], "failed": [0]}
    )
    figure = run_history_figure(history)
    left, right = figure.axes[0].get_xlim()  # matplotlib date numbers: days
    assert right - left <= 2.0
    figure.canvas.draw()
    labels = [t.get_text() for t in figure.axes[0].get_xticklabels()]
    assert not any("2025" in t or "2028" in t for t in labels)
