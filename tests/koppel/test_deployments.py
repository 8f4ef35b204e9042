"""prefect.yaml: every flow deployed with valid parameters and its intended schedules; `make ui` for real."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
AMSTERDAM = ZoneInfo("Europe/Amsterdam")

# flow/deployment -> the schedules it must have (cron or rrule text, active)
EXPECTED = {
    "invoice-hours/monthly": [
        (
            "FREQ=MONTHLY;BYMONTH=2,3,4,5,6,7,8,9,10,11,12;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=1;BYHOUR=7;BYMINUTE=0;BYSECOND=0",
            True,
        ),
        (
            "FREQ=YEARLY;BYMONTH=1;BYMONTHDAY=2,3,4,5,6,7,8;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=1;BYHOUR=7;BYMINUTE=0;BYSECOND=0",
            True,
        ),
    ],
    "invoice-hours/nightly-preview": [("0 6 * * *", True)],
    "backfill/on-demand": [],
    "verify-invoices/weekly": [("0 8 * * 1", True)],
    "import-debtors/nightly": [("0 1 * * *", True)],
    "sync-companies/nightly": [("30 1 * * *", True)],
    "create-missing-debtors/on-demand": [],
    "hr-sync/hourly": [("15 * * * 1-5", True)],
    "absence-to-afas/hourly": [("45 * * * 1-5", False)],
    "statistics/nightly": [("30 5 * * *", True)],
}


def prefect_yaml() -> dict:
    return yaml.safe_load((ROOT / "prefect.yaml").read_text())


def loaded_deployments() -> dict[str, tuple[dict, object]]:
    from prefect.flows import load_flow_from_entrypoint

    found = {}
    for config in prefect_yaml()["deployments"]:
        flow = load_flow_from_entrypoint(str(ROOT / config["entrypoint"]))
        found[f"{flow.name}/{config['name']}"] = (config, flow)
    return found


def schedule_objects(config: dict) -> list:
    from prefect.server.schemas.schedules import CronSchedule, RRuleSchedule

    result = []
    for item in config.get("schedules") or []:
        if "rrule" in item:
            result.append(RRuleSchedule(rrule=item["rrule"], timezone=item["timezone"]))
        else:
            result.append(CronSchedule(cron=item["cron"], timezone=item["timezone"]))
    return result


def fire_times(config: dict, start: datetime, end: datetime) -> list[datetime]:
    times = [
        t for s in schedule_objects(config) for t in asyncio.run(s.get_dates(n=5000, start=start, end=end))
    ]
    return sorted(t.astimezone(AMSTERDAM) for t in times)


def test_prefect_yaml_passes_prefects_model_and_every_deployment_loads() -> None:
    from prefect.cli.deploy._models import PrefectYamlModel

    model = PrefectYamlModel.model_validate(prefect_yaml())
    assert len(model.deployments) == len(EXPECTED)
    found = loaded_deployments()
    assert sorted(found) == sorted(EXPECTED)
    for name, (config, flow) in found.items():
        assert config["work_pool"]["name"] == "koppel", name
        if "parameters" in config:  # the UI form's defaults are valid, one flat parameter each
            assert set(config["parameters"]) <= set(flow.validate_parameters(config["parameters"])), name
        assert config["work_pool"]["job_variables"]["env"]["PREFECT_LOGGING_EXTRA_LOGGERS"] == (
            "connectors,tasks,koppel,store"
        )
        shown = [
            (item.get("cron") or item.get("rrule"), item.get("active", True)) for item in config["schedules"]
        ]
        assert shown == EXPECTED[name], name
        for item in config["schedules"]:
            assert item["timezone"] == "Europe/Amsterdam", name


def test_invoice_parameters_default_to_the_previous_month_and_the_preview_is_a_dry_run() -> None:
    found = loaded_deployments()
    monthly = found["invoice-hours/monthly"][1].validate_parameters(
        found["invoice-hours/monthly"][0]["parameters"]
    )
    assert (monthly["start_date"], monthly["dry_run"]) == (None, False)
    preview = found["invoice-hours/nightly-preview"]
    assert preview[1].validate_parameters(preview[0]["parameters"])["dry_run"] is True
    # the finance form: every parameter described, the technical ones last and saying so
    schema = found["invoice-hours/monthly"][1].parameters.model_dump()["properties"]
    assert all(field.get("description") for field in schema.values())
    order = sorted(schema, key=lambda name: schema[name]["position"])
    assert order[-2:] == ["config_path", "recover_after_minutes"]
    assert all(schema[name]["description"].startswith("Technical:") for name in order[-2:])
    for name in ("start_date", "end_date"):  # a date picker, not a "date | None" switch; empty = last month
        assert (schema[name]["type"], schema[name]["format"], schema[name]["default"]) == (
            "string",
            "date",
            None,
        )
        assert "anyOf" not in schema[name]
    assert "parameters" not in found["backfill/on-demand"][0]  # the user must choose the range


def test_monthly_invoicing_runs_on_the_first_working_day_at_seven() -> None:
    config = loaded_deployments()["invoice-hours/monthly"][0]
    fired = fire_times(config, datetime(2026, 12, 15, tzinfo=UTC), datetime(2029, 1, 15, tzinfo=UTC))
    assert [t.date() for t in fired] == [
        date(2027, 1, 4),  # 1 Jan is a Friday and New Year's Day: Monday the 4th
        date(2027, 2, 1),
        date(2027, 3, 1),
        date(2027, 4, 1),
        date(2027, 5, 3),  # 1 May 2027 is a Saturday
        date(2027, 6, 1),
        date(2027, 7, 1),
        date(2027, 8, 2),  # Sunday the 1st
        date(2027, 9, 1),
        date(2027, 10, 1),
        date(2027, 11, 1),
        date(2027, 12, 1),
        date(2028, 1, 3),  # Saturday 1 Jan 2028
        date(2028, 2, 1),
        date(2028, 3, 1),
        date(2028, 4, 3),  # Saturday 1 April 2028
        date(2028, 5, 1),
        date(2028, 6, 1),
        date(2028, 7, 3),
        date(2028, 8, 1),
        date(2028, 9, 1),
        date(2028, 10, 2),
        date(2028, 11, 1),
        date(2028, 12, 1),
        date(2029, 1, 2),  # Monday 1 Jan 2029 is New Year's Day
    ]
    assert {(t.hour, t.minute) for t in fired} == {(7, 0)}  # Amsterdam time, winter and summer alike


def test_nightly_and_hourly_schedules_in_amsterdam_time() -> None:
    found = loaded_deployments()
    # the week of the switch to summer time (Sunday 28 March 2027)
    start, end = datetime(2027, 3, 22, tzinfo=AMSTERDAM), datetime(2027, 3, 29, tzinfo=AMSTERDAM)
    preview = fire_times(found["invoice-hours/nightly-preview"][0], start, end)
    assert len(preview) == 7 and {(t.hour, t.minute) for t in preview} == {(6, 0)}
    hr = fire_times(found["hr-sync/hourly"][0], start, end)
    assert len(hr) == 5 * 24
    assert {t.weekday() for t in hr} == {0, 1, 2, 3, 4} and {t.minute for t in hr} == {15}
    sync = fire_times(found["sync-companies/nightly"][0], start, end)
    imports = fire_times(found["import-debtors/nightly"][0], start, end)
    assert [s - i for i, s in zip(imports, sync, strict=True)] == [
        timedelta(minutes=30)
    ] * 7  # snapshot first


def test_make_ui_target_runs_the_ui_module() -> None:
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^ui: .*\n\t(.+)$", makefile, flags=re.MULTILINE)
    assert recipe is not None
    assert recipe.group(1).strip() == "@$(BIN)/python -m koppel.ui $(UI_ARGS)"


@pytest.mark.slow
@pytest.mark.system
def test_make_ui_brings_up_a_server_listing_every_deployment_with_its_schedules(tmp_path: Path) -> None:
    from koppel.ui import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    ui = subprocess.Popen(
        [sys.executable, "-m", "koppel.ui", "--port", str(port), "--home", str(tmp_path), "--scale", "100"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = []
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            row = ui.stdout.readline()
            output.append(row)
            if row.startswith("Press Ctrl-C") or ui.poll() is not None:
                break
        text = "".join(output)
        assert f"Koppel UI ready: http://127.0.0.1:{port}" in text, text
        api = f"http://127.0.0.1:{port}/api"
        flows = {f["id"]: f["name"] for f in httpx.post(f"{api}/flows/filter", json={}).json()}
        listed = {
            f"{flows[d['flow_id']]}/{d['name']}": d
            for d in httpx.post(f"{api}/deployments/filter", json={}).json()
        }
        assert sorted(listed) == sorted(EXPECTED)
        for name, expected in EXPECTED.items():
            schedules = listed[name]["schedules"]
            shown = sorted(
                (
                    (s["schedule"].get("cron") or s["schedule"]["rrule"].splitlines()[-1]).removeprefix(
                        "RRULE:"
                    ),
                    s["active"],
                )
                for s in schedules
            )
            assert shown == sorted(expected), name
            assert all(s["schedule"]["timezone"] == "Europe/Amsterdam" for s in schedules)
            assert listed[name]["work_pool_name"] == "koppel"
        pools = httpx.post(f"{api}/work_pools/filter", json={}).json()
        assert [(p["name"], p["type"]) for p in pools if p["name"] == "koppel"] == [("koppel", "process")]
        assert "invoice-hours/monthly" in text and "FREQ=MONTHLY" in text  # printed for the user too
    finally:
        ui.send_signal(signal.SIGTERM)
        rest, _ = ui.communicate(timeout=60)
    assert ui.returncode == 0, "".join(output) + rest
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2)
