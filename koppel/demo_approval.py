"""``make demo DEMO_ARGS=--approval``: the approval step of invoice-hours, in a real Prefect UI.

Starts a Prefect server with its UI (``.koppel/demo-ui``, port 4210 or a free one), the sandbox, and runs
invoice-hours once with ``approval = "required"`` for administration 1. The run plans, publishes its
preview tables and pauses; this prints the link to the paused run and how to approve it, waits (at most
``APPROVAL_TIMEOUT_MINUTES``) and then prints what was posted. Interactive on purpose: plain ``make demo``
stays non-interactive.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

from koppel.demo import (
    APPROVAL_TIMEOUT_MINUTES,
    DEMO_DB,
    demo_config,
    print_details,
    print_specifications,
    run_flow,
    say,
)

UI_HOME = Path(".koppel/demo-ui")


def paused_run(api_url: str) -> dict | None:
    """The newest paused flow run on the server, if any."""
    body = {"flow_runs": {"state": {"type": {"any_": ["PAUSED"]}}}, "sort": "START_TIME_DESC", "limit": 1}
    with contextlib.suppress(httpx.HTTPError):
        found = httpx.post(f"{api_url}/flow_runs/filter", json=body, timeout=5).json()
        return found[0] if found else None
    return None


def announce_when_paused(api_url: str, ui_url: str, done: threading.Event) -> None:
    """Print the link and the steps as soon as the run pauses (runs beside the flow)."""
    while not done.is_set():
        run = paused_run(api_url)
        if run is not None:
            say(
                f"\n>> The run '{run['name']}' waits for approval "
                f"(at most {APPROVAL_TIMEOUT_MINUTES} minutes).\n"
                f"   1. Open {ui_url}/runs/flow-run/{run['id']}\n"
                "   2. Look at the artifacts invoice-hours-approval-documents and -lines (the preview).\n"
                "   3. Press Resume: the form shows the totals and the fingerprint.\n"
                "   4. Choose approve (or reject), fill in your name and a comment, leave the fingerprint\n"
                "      as it is, and submit. The run then plans again and posts only if nothing changed."
            )
            return
        done.wait(1.0)


def approval_demo() -> int:
    """Start the Prefect server and the sandbox, run invoice-hours with approval; 0 when it ended cleanly."""
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        PREFECT_UI_URL,
        temporary_settings,
    )

    from koppel.ui import free_port, prefect_env, start_server, stop, wait_healthy
    from sandbox.server import running_sandbox
    from sandbox.world import generate_world

    UI_HOME.mkdir(parents=True, exist_ok=True)
    port = free_port(4210)
    env = prefect_env((UI_HOME / "prefect").resolve(), port)
    log = UI_HOME / "server.log"
    say(f"Koppel approval demo: starting a Prefect server with its UI on port {port} (log {log}) ...")
    server = start_server(env, log, scheduler=False)
    done = threading.Event()
    try:
        wait_healthy(env["PREFECT_API_URL"], server, log)
        ui_url = env["PREFECT_UI_URL"]
        say(f"  Prefect UI {ui_url}")
        anchor = datetime.now(tz=ZoneInfo("Europe/Amsterdam")).date().replace(day=1)
        DEMO_DB.parent.mkdir(exist_ok=True)
        DEMO_DB.unlink(missing_ok=True)
        demo_config(approval=True)
        world = generate_world(seed=42, scale=2_000, anchor=anchor, months=2)
        settings = {
            PREFECT_API_URL: env["PREFECT_API_URL"],
            PREFECT_UI_URL: ui_url,
            PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None,
        }
        with running_sandbox(world) as sandbox, temporary_settings(settings):
            os.environ.update(sandbox.env())
            os.environ["KOPPEL_STATE_DB_URL"] = f"sqlite:///{DEMO_DB}"
            watcher = threading.Thread(
                target=announce_when_paused, args=(env["PREFECT_API_URL"], ui_url, done), daemon=True
            )
            watcher.start()
            started = time.monotonic()
            result = run_flow("run with approval (administration 1)")
            done.set()
            say(f"  decided and finished after {time.monotonic() - started:.0f} s")
            say(f"  {result['context'].get('approval') or 'no approval recorded'}")
            if not result["documents"].empty:
                print_details(result)
                print_specifications(result)
        return 0 if result["conservation"]["holds"] else 1
    finally:
        done.set()
        stop([server])
