"""Operations against a real Prefect server with its scheduler on, the way `make ui` and production run.

One server (SQLite, scheduler loop every 2 s), the sandbox served as its own process, the process work pool
``koppel`` with every deployment of prefect.yaml and one process worker. Checks, in order:

1. every deployment with an active schedule gets Scheduled runs at the expected Europe/Amsterdam times (the
   monthly invoicing on the first working day at 07:00), and the inactive one none;
2. ``prefect deployment run 'invoice-hours/nightly-preview' --params '{"start_date": ..., "end_date": ...}'``
   keeps the deployment's ``dry_run: true`` (flat parameters merge): AFAS holds no document afterwards, read
   back through the project's GetConnectors; the run is named ``invoice-hours 2026-09 preview``, tagged with
   its period, writes the preview's own artifact keys, and its log in the API holds the business events and
   a warning of Koppel's own ``connectors`` logger (forwarded by PREFECT_LOGGING_EXTRA_LOGGERS).
"""

from __future__ import annotations

import itertools
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest

from koppel.ui import (
    create_pool,
    deploy,
    free_port,
    prefect_cli,
    prefect_env,
    start_server,
    start_worker,
    stop,
    wait_healthy,
)
from tests.system.test_scale_out import afas_documents, api_wait_final, sandbox_env  # noqa: F401 - fixture

pytestmark = [pytest.mark.slow, pytest.mark.system]

AMSTERDAM = ZoneInfo("Europe/Amsterdam")


def first_working_days(after: datetime, count: int) -> list[datetime]:
    """The next ``count`` first working days (Mon-Fri; in January after New Year's Day) at 07:00 Amsterdam."""
    found, month = [], after.astimezone(AMSTERDAM).date().replace(day=1)
    while len(found) < count:
        day = month.replace(day=2) if month.month == 1 else month
        while day.weekday() >= 5:
            day += timedelta(days=1)
        moment = datetime(day.year, day.month, day.day, 7, tzinfo=AMSTERDAM)
        if moment > after:
            found.append(moment)
        month = (month + timedelta(days=32)).replace(day=1)
    return found


def test_first_working_days_skip_weekends_and_new_years_day() -> None:
    days = first_working_days(datetime(2026, 12, 4, tzinfo=UTC), 4)
    assert [d.date() for d in days] == [
        date(2027, 1, 4),
        date(2027, 2, 1),
        date(2027, 3, 1),
        date(2027, 4, 1),
    ]
    assert {(d.hour, d.minute) for d in days} == {(7, 0)}


def read_all(api: str, path: str, body: dict) -> list[dict]:
    """Every row a Prefect ``…/filter`` endpoint holds, page by page (a page holds at most 200)."""
    rows: list[dict] = []
    while True:
        page = api_call("POST", f"{api}/{path}", json={**body, "limit": 200, "offset": len(rows)})
        rows.extend(page.json())
        if len(page.json()) < 200:
            return rows


def scheduled_runs(api: str) -> dict[str, list[datetime]]:
    """Scheduled flow runs per ``flow/deployment``, their start times in Amsterdam, sorted."""
    from koppel.ui import deployments

    names = {d["id"]: d["name"] for d in deployments(api)}
    runs = read_all(api, "flow_runs/filter", {"flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}}})
    found: dict[str, list[datetime]] = {name: [] for name in names.values()}
    for run in runs:
        if run.get("deployment_id") in names and run.get("auto_scheduled"):
            when = datetime.fromisoformat(run["expected_start_time"]).astimezone(AMSTERDAM)
            found[names[run["deployment_id"]]].append(when)
    return {name: sorted(times) for name, times in found.items()}


def wait_for_schedules(api: str, names: set[str], timeout: float = 180) -> dict[str, list[datetime]]:
    deadline = time.monotonic() + timeout
    while True:
        found = scheduled_runs(api)
        if all(len(found.get(name, [])) >= 3 for name in names) or time.monotonic() > deadline:
            return found
        time.sleep(2)


def api_call(method: str, url: str, gone_is_fine: bool = False, **kwargs: Any) -> httpx.Response:
    """One call to the test's Prefect server, again after a 503 or 429 (as Prefect's client does) or time-out.

    A busy server on a loaded machine (the scheduler and a worker share its SQLite database) answers 503.
    """
    for attempt in range(10):
        try:
            response = httpx.request(method, url, timeout=30, **kwargs)
        except httpx.TimeoutException:  # answered too late: ask again, as after a 503
            if attempt == 9:
                raise
            time.sleep(1 + attempt)
            continue
        if gone_is_fine and response.status_code == 404:
            return response
        if response.status_code not in (429, 503) or attempt == 9:
            return response.raise_for_status()
        time.sleep(1 + attempt)
    raise AssertionError("unreachable")


def switch_schedules_off(api: str) -> None:
    """Stop the scheduler creating runs the worker would take, and remove those it made."""
    from koppel.ui import deployments

    for deployment in deployments(api):
        for schedule in deployment.get("schedules") or []:
            api_call(
                "PATCH",
                f"{api}/deployments/{deployment['id']}/schedules/{schedule['id']}",
                json={"active": False},
            )
    runs = read_all(api, "flow_runs/filter", {"flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}}})
    for run in runs:
        api_call("DELETE", f"{api}/flow_runs/{run['id']}", gone_is_fine=True)


def run_logs(api: str, flow_run_id: str, quiet_seconds: float = 6, timeout: float = 90) -> list[dict]:
    """All the run's log lines, once the flow process has sent them.

    They are shipped in the background, in batches, and may still arrive after the run's final state: wait
    until no new line has come for ``quiet_seconds`` (a batch goes every two seconds). Read page by page: a
    run with throttled answers logs hundreds of retry warnings, more than one page.
    """
    deadline = time.monotonic() + timeout
    body = {"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "sort": "TIMESTAMP_ASC"}
    logs = read_all(api, "logs/filter", body)
    unchanged_since = time.monotonic()
    while time.monotonic() - unchanged_since < quiet_seconds and time.monotonic() < deadline:
        time.sleep(1)
        latest = read_all(api, "logs/filter", body)
        if len(latest) != len(logs):
            logs, unchanged_since = latest, time.monotonic()
    return logs


def test_schedules_fire_and_an_adhoc_preview_with_dates_stays_a_dry_run(
    sandbox_env: dict,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = free_port()
    env = prefect_env(
        tmp_path / "prefect",
        port,
        {
            "PREFECT_SERVER_UI_ENABLED": "false",
            "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
            "PREFECT_WORKER_QUERY_SECONDS": "2",
            "PREFECT_LOGGING_LEVEL": "INFO",
        },
    )
    api = env["PREFECT_API_URL"]
    started = datetime.now(tz=UTC)
    processes = [start_server(env, tmp_path / "server.log", scheduler=True)]
    try:
        wait_healthy(api, processes[0], tmp_path / "server.log")
        create_pool(env, tmp_path / "deploy.log")
        deploy(env, tmp_path / "deploy.log")

        # 1. the scheduler creates runs at the intended Amsterdam times
        active = {
            "invoice-hours/monthly",
            "invoice-hours/nightly-preview",
            "import-debtors/nightly",
            "sync-companies/nightly",
            "hr-sync/hourly",
            "statistics/nightly",
        }
        found = wait_for_schedules(api, active)
        monthly = found["invoice-hours/monthly"]
        assert monthly[:3] == first_working_days(started, 3), monthly
        assert set(monthly) <= set(first_working_days(started, 40))
        daily = {
            "invoice-hours/nightly-preview": (6, 0),
            "import-debtors/nightly": (1, 0),
            "sync-companies/nightly": (1, 30),
            "statistics/nightly": (5, 30),
        }
        for name, at in daily.items():
            times = found[name]
            assert len(times) >= 3 and {(t.hour, t.minute) for t in times} == {at}, (name, times)
            assert [b - a for a, b in itertools.pairwise(times)][:2] == [timedelta(days=1)] * 2
        hourly = found["hr-sync/hourly"]
        assert (
            len(hourly) >= 3
            and {t.minute for t in hourly} == {15}
            and {t.weekday() for t in hourly}
            <= {
                0,
                1,
                2,
                3,
                4,
            }
        )
        assert found["absence-to-afas/hourly"] == []  # its schedule is inactive
        assert found["backfill/on-demand"] == [] and found["create-missing-debtors/on-demand"] == []
        switch_schedules_off(api)

        # 2. an ad-hoc preview with its own dates keeps dry_run from the deployment
        topdesk = urlsplit(sandbox_env["KOPPEL_TOPDESK_BASE_URL"])
        httpx.patch(  # a few throttled TOPdesk answers: the connectors' retry warnings must reach the UI
            f"{topdesk.scheme}://{topdesk.netloc}/__sandbox/knobs",
            json={"fault_rate": 0.3, "fault_kinds": ["throttle"]},
            timeout=10,
        ).raise_for_status()
        worker_env = {**env, **sandbox_env, "KOPPEL_STATE_DB_URL": f"sqlite:///{tmp_path / 'state.db'}"}
        processes.append(start_worker(worker_env, tmp_path / "worker.log", "ops-worker"))
        params = '{"start_date": "2026-09-01", "end_date": "2026-09-30"}'
        prefect_cli(
            ["deployment", "run", "invoice-hours/nightly-preview", "--params", params],
            env,
            tmp_path / "run.log",
        )
        [run] = httpx.post(f"{api}/flow_runs/filter", json={}, timeout=30).json()
        finished = api_wait_final(api, run["id"], timeout=300)
        logs = run_logs(api, run["id"])
        keys = {a["key"] for a in httpx.post(f"{api}/artifacts/filter", json={}, timeout=30).json()}
    finally:
        stop(processes)

    assert finished["state"]["type"] == "COMPLETED", (
        finished["state"],
        (tmp_path / "worker.log").read_text(),
    )
    assert finished["parameters"]["dry_run"] is True
    assert (finished["parameters"]["start_date"], finished["parameters"]["end_date"]) == (
        "2026-09-01",
        "2026-09-30",
    )
    assert finished["name"] == "invoice-hours 2026-09 preview"
    assert {"period:2026-09", "preview"} <= set(finished["tags"])
    for key, value in sandbox_env.items():
        monkeypatch.setenv(key, value)
    for key, documents in afas_documents(monkeypatch).items():  # AFAS, read back: nothing posted
        assert documents.empty, key
    messages = [(entry["name"], entry["level"], entry["message"]) for entry in logs]
    assert any(m.startswith("read ") and "registrations from 5 sources" in m for _, _, m in messages), (
        messages
    )
    assert any(m.startswith("planned ") and "documents, € " in m for _, _, m in messages), messages
    assert any(
        name.startswith("connectors") and level == 30 and "retry" in m for name, level, m in messages
    ), messages
    assert "invoice-hours-2026-09-preview-summary" in keys and "invoice-hours-2026-09-summary" not in keys
