"""Scale-out acceptance: a real Prefect server on PostgreSQL, two process workers, the sandbox, a backfill.

Everything is started here, as separate processes, the way production runs it: ``prefect server start`` on
its own PostgreSQL database, the process work pool ``koppel`` with the invoice-hours and backfill
deployments of prefect.yaml, two ``prefect worker start`` processes, ``python -m sandbox serve``, and the
state database on the same PostgreSQL cluster (another database). The backfill of three months fans out into
one invoice-hours child run per month; the test checks that both workers billed, and that every billable
registration is billed exactly once: in the ledger, and in the AFAS sandbox read back through its
GetConnectors. The expected set comes from the plain billing pipeline run here over the same TOPdesk data.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from koppel.ui import (
    create_pool,
    deploy,
    free_port,
    prefect_env,
    start_server,
    start_worker,
    stop,
    wait_healthy,
)
from store import ledger
from store.db import connect
from store.settings import StoreSettings

pytestmark = [pytest.mark.slow, pytest.mark.system, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]
MONTHS = [("2026-08-01", "2026-08-31"), ("2026-09-01", "2026-09-30"), ("2026-10-01", "2026-10-31")]
SUBMITTED = re.compile(r"Worker '([\w-]+)' submitting flow run '([0-9a-f-]{36})'")


@pytest.fixture
def databases(postgres_url: str) -> Iterator[tuple[str, str]]:
    """Two fresh databases on the throwaway cluster: one for Prefect's server, one for Koppel's state."""
    suffix = uuid.uuid4().hex[:8]
    names = (f"prefect_{suffix}", f"state_{suffix}")
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        for name in names:
            connection.execute(text(f"CREATE DATABASE {name}"))
    base = postgres_url.rsplit("/", 1)[0]
    yield f"{base}/{names[0]}".replace("postgresql+psycopg", "postgresql+asyncpg"), f"{base}/{names[1]}"
    with admin.connect() as connection:
        for name in names:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


@pytest.fixture
def sandbox_env(tmp_path: Path) -> Iterator[dict]:
    """``python -m sandbox serve`` (seeded world: August to October 2026); its KOPPEL_* environment."""
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "serve", "--seed", "11", "--scale", "150"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "sandbox.log").open("wb"),
        text=True,
    )
    try:
        yield json.loads(process.stdout.readline())["env"]
    finally:
        process.terminate()
        process.wait(30)


def api_wait_final(api: str, flow_run_id: str, timeout: float) -> dict:
    """The flow run once it is final; a poll the busy server answers late (or with 503/429) is polled again.

    The server shares the machine with the workers' flow runs (and, under ``make test``, a second pytest
    process): on a loaded 2-core machine one read may take longer than its own time-out.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"{api}/flow_runs/{flow_run_id}", timeout=30)
        except httpx.TimeoutException:
            continue
        if response.status_code not in (429, 503):
            run = response.raise_for_status().json()
            if run["state"]["type"] in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}:
                return run
        time.sleep(2)
    raise TimeoutError(f"flow run {flow_run_id} did not finish in {timeout} s")


def expected_billing(monkeypatch: pytest.MonkeyPatch, env: dict) -> tuple[set[str], int]:
    """Registration ids (and billed minutes) the plain pipeline bills per month with an empty ledger."""
    from connectors.afas.settings import AfasSettings
    from connectors.topdesk.settings import TopdeskSettings
    from koppel.settings import load
    from tasks.invoice_hours.config import load_billing_config
    from tasks.invoice_hours.extract import Window, read_masters, read_registrations
    from tasks.invoice_hours.pipeline import bill

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    config = load_billing_config(ROOT / "config" / "billing.toml").for_administration(None)
    masters, _ = asyncio.run(read_masters(load(AfasSettings)))
    ids, minutes = set(), 0
    for first, last in MONTHS:
        window = Window(date.fromisoformat(first), date.fromisoformat(last))
        read, _ = asyncio.run(read_registrations(load(TopdeskSettings), window))
        lines = bill(read, masters, config).document_lines
        charges = lines[lines["line_kind"].eq("charge")] if "line_kind" in lines else lines
        ids |= set(charges["registration_id"])
        minutes += int(
            charges["billed_minutes"].sum()
        )  # what the ledger records: minutes after rounding rules
    return ids, minutes


def afas_documents(monkeypatch: pytest.MonkeyPatch) -> dict[str, pd.DataFrame]:
    """What AFAS (the sandbox) holds now, read back through the project's GetConnectors."""
    from connectors.afas.client import AfasClient
    from connectors.afas.settings import AfasSettings
    from koppel.settings import load

    async def read() -> dict[str, pd.DataFrame]:
        async with AfasClient.from_settings(load(AfasSettings)) as client:
            names = ("Koppel_DirectInvoices", "Koppel_Realizations", "Koppel_Entries")
            return {name: await client.read_frame(name) for name in names}

    return asyncio.run(read())


def test_three_month_backfill_over_two_workers_bills_every_registration_once(
    databases: tuple[str, str], sandbox_env: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefect_db, state_url = databases
    started = time.monotonic()
    port = free_port()
    env = prefect_env(
        tmp_path / "prefect",
        port,
        {
            "PREFECT_API_DATABASE_CONNECTION_URL": prefect_db,
            "PREFECT_SERVER_UI_ENABLED": "false",
            "PREFECT_WORKER_QUERY_SECONDS": "2",
            "PREFECT_LOGGING_LEVEL": "INFO",
        },
    )
    api = env["PREFECT_API_URL"]
    processes = [start_server(env, tmp_path / "server.log", scheduler=False)]
    try:
        server_seconds = wait_healthy(api, processes[0], tmp_path / "server.log")
        create_pool(env, tmp_path / "deploy.log")
        deploy(env, tmp_path / "deploy.log", ["invoice-hours/monthly", "backfill/on-demand"])
        worker_env = {**env, **sandbox_env, "KOPPEL_STATE_DB_URL": state_url}
        for name in ("worker-a", "worker-b"):
            processes.append(start_worker(worker_env, tmp_path / f"{name}.log", name, limit=2))

        backfill = httpx.get(f"{api}/deployments/name/backfill/on-demand", timeout=10).json()
        parameters = {"start_date": MONTHS[0][0], "end_date": MONTHS[-1][1], "poll_seconds": 2}
        run = httpx.post(
            f"{api}/deployments/{backfill['id']}/create_flow_run",
            json={"parameters": parameters},
            timeout=10,
        ).json()
        finished = api_wait_final(api, run["id"], timeout=300)
        assert finished["state"]["type"] == "COMPLETED", finished["state"]
        elapsed = time.monotonic() - started
        children = httpx.post(
            f"{api}/flow_runs/filter",
            json={"flow_runs": {"parent_flow_run_id": {"any_": [run["id"]]}}},
            timeout=10,
        ).json()
    finally:
        stop(processes)

    # one child per month, all completed, each on one worker, and both workers billed
    windows = sorted((c["parameters"]["start_date"], c["parameters"]["end_date"]) for c in children)
    assert windows == MONTHS
    assert {c["state"]["type"] for c in children} == {"COMPLETED"}
    submitted = {}
    for name in ("worker-a", "worker-b"):
        for worker, flow_run_id in SUBMITTED.findall((tmp_path / f"{name}.log").read_text()):
            assert worker == name
            submitted[flow_run_id] = name
    child_ids = {c["id"] for c in children}
    assert set(submitted) == child_ids | {run["id"]}, submitted
    assert set(submitted[c] for c in child_ids) == {"worker-a", "worker-b"}, "both workers billed a month"

    # the ledger: every document posted by one of the children, every registration charged once
    engine = connect(StoreSettings(db_url=state_url))
    documents = ledger.documents(engine)
    assert set(documents["status"]) == {"posted"}
    assert set(documents["claimed_by_run"]) == child_ids
    lines = pd.concat(
        [ledger.document_lines(engine, ref).assign(reference=ref) for ref in documents["reference"]]
    )
    charges = lines[lines["line_kind"].eq("charge")]
    assert charges["registration_id"].is_unique
    expected_ids, expected_minutes = expected_billing(monkeypatch, sandbox_env)
    assert set(charges["registration_id"]) == expected_ids
    assert int(charges["minutes"].sum()) == expected_minutes
    assert ledger.billed_state(engine)["registration_id"].nunique() == len(expected_ids)

    # AFAS: each invoice, realisation and journal entry exactly once
    afas = afas_documents(monkeypatch)
    kinds = documents.set_index("reference")["kind"]
    invoices = Counter(afas["Koppel_DirectInvoices"]["RfCs"])
    assert set(invoices.values()) == {1}
    assert set(invoices) == set(kinds[kinds.eq("direct_invoice")].index)
    realisations = Counter(afas["Koppel_Realizations"]["XpRe"])
    assert set(realisations.values()) == {1}
    realised = charges[charges["reference"].isin(kinds[kinds.eq("project_realisation")].index)]
    assert set(realisations) == set(realised["registration_id"])
    entries = afas["Koppel_Entries"].groupby("BpNr")["EnNo"].nunique()
    assert set(entries.values) <= {1}
    assert set(entries.index) == set(kinds[kinds.eq("internal_entry")].index)
    engine.dispose()
    sys.stderr.write(
        f"\nscale-out: server up in {server_seconds:.0f} s, backfill done {elapsed:.0f} s after start; "
        f"{len(documents)} documents, {len(expected_ids)} registrations, "
        f"children per worker {Counter(submitted[c] for c in child_ids)}\n"
    )
