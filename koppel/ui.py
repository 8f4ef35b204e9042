"""``make ui``: a local Prefect server with every Koppel deployment, a worker and the sandbox behind it.

Starts, in this order: the Prefect server (SQLite under ``.koppel/ui/prefect``; the UI on
``http://127.0.0.1:4200``, or a free port when 4200 is taken), the sandbox (simulated AFAS, TOPdesk and
occupational-health system on loopback, its world ending last month so the defaults have work), the process
work pool ``koppel``, every deployment of ``prefect.yaml`` (``prefect deploy --all``) and one process worker
whose environment points Koppel at the sandbox and at a state database ``.koppel/ui/state.db``. Then it
prints the UI address and the deployments with their schedules, and runs until Ctrl-C (or SIGTERM), when it
stops the worker and the server again.

The process helpers (server, health check, work pool, deploy, worker, stopping) are also used by the
scale-out test, which runs the same stack on PostgreSQL with two workers.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from koppel import clock

ROOT = Path(__file__).resolve().parents[1]
POOL = "koppel"
DEFAULT_PORT = 4200
SERVER_START_TIMEOUT = 180.0  # seconds; the server takes 10-18 s on a quiet 2-core machine, more when busy
PREFECT = [sys.executable, "-m", "prefect"]


def say(text: str = "") -> None:
    """Write a line for the user."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def free_port(preferred: int | None = None) -> int:
    """``preferred`` if nothing listens there, else a free loopback port."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred or 0))
        except OSError:
            sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prefect_env(home: Path, port: int, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of every Prefect process of the stack: its own home, API and UI address."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_API_URL=f"http://127.0.0.1:{port}/api",
        PREFECT_UI_URL=f"http://127.0.0.1:{port}",
        PREFECT_SERVER_API_HOST="127.0.0.1",
        PREFECT_SERVER_API_PORT=str(port),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_LOGGING_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra or {})
    return env


def spawn(args: Sequence[str], env: Mapping[str, str], log: Path, cwd: Path = ROOT) -> subprocess.Popen:
    """Start a long-running Prefect process in its own session, output to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(  # noqa: S603 - our own interpreter and fixed arguments
            list(args), env=dict(env), cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def start_server(env: Mapping[str, str], log: Path, *, scheduler: bool = True) -> subprocess.Popen:
    """``prefect server start`` on the port and database the environment names."""
    args = [*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", env["PREFECT_SERVER_API_PORT"]]
    return spawn([*args, "--scheduler" if scheduler else "--no-scheduler"], env, log)


def wait_healthy(
    api_url: str, process: subprocess.Popen, log: Path, timeout: float = SERVER_START_TIMEOUT
) -> float:
    """Wait until the API answers its health check; return the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(
                f"the Prefect server stopped (exit {process.returncode}); see {log}\n{tail(log)}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                return time.monotonic() - started
        time.sleep(0.5)
    raise TimeoutError(f"the Prefect server did not answer within {timeout:.0f} s; see {log}\n{tail(log)}")


def tail(log: Path, lines: int = 20) -> str:
    """The last lines of a log file (for error messages)."""
    if not log.exists():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def prefect_cli(args: Sequence[str], env: Mapping[str, str], log: Path, timeout: float = 600) -> None:
    """Run a Prefect CLI command to completion (from the repository root), output appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        done = subprocess.run(  # noqa: S603 - our own interpreter and fixed arguments
            [*PREFECT, *args], env=dict(env), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, timeout=timeout
        )
    if done.returncode != 0:
        raise RuntimeError(
            f"`prefect {' '.join(args)}` failed (exit {done.returncode}); see {log}\n{tail(log)}"
        )


def create_pool(env: Mapping[str, str], log: Path, name: str = POOL) -> None:
    """The process work pool the deployments of prefect.yaml run on."""
    prefect_cli(["work-pool", "create", name, "--type", "process", "--overwrite"], env, log)


def deploy(env: Mapping[str, str], log: Path, names: Sequence[str] = ()) -> None:
    """``prefect deploy`` the named deployments of prefect.yaml (``flow/deployment``), or all of them."""
    selection = [arg for name in names for arg in ("--name", name)] or ["--all"]
    prefect_cli(["--no-prompt", "deploy", *selection], env, log)


def start_worker(
    env: Mapping[str, str], log: Path, name: str, limit: int | None = None, pool: str = POOL
) -> subprocess.Popen:
    """A process worker of ``pool``; its flow runs inherit ``env``."""
    args = [*PREFECT, "worker", "start", "--pool", pool, "--name", name, "--type", "process"]
    return spawn([*args, *(["--limit", str(limit)] if limit else [])], env, log)


def stop(processes: Sequence[subprocess.Popen], grace: float = 20.0) -> None:
    """SIGTERM each process group (newest first), then SIGKILL what is still running after ``grace``."""
    for process in reversed(processes):
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in reversed(processes):
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def deployments(api_url: str) -> list[dict[str, Any]]:
    """Every deployment the API knows, as ``{"name": "flow/deployment", "schedules": [...], ...}``, sorted."""
    with httpx.Client(base_url=api_url, timeout=30) as client:
        flows = {f["id"]: f["name"] for f in client.post("/flows/filter", json={}).raise_for_status().json()}
        found = client.post("/deployments/filter", json={}).raise_for_status().json()
    rows = [{**d, "name": f"{flows[d['flow_id']]}/{d['name']}"} for d in found]
    return sorted(rows, key=lambda d: d["name"])


def schedule_text(schedule: Mapping[str, Any]) -> str:
    """One deployment schedule as people read it."""
    spec = schedule["schedule"]
    rrule = (spec.get("rrule") or "").splitlines()[-1:]  # the server adds a DTSTART line; the rule is last
    rule = spec.get("cron") or "".join(rrule).removeprefix("RRULE:") or f"every {spec.get('interval')} s"
    active = "" if schedule.get("active", True) else " (inactive)"
    return f"{rule} [{spec.get('timezone') or 'UTC'}]{active}"


def describe_deployments(api_url: str) -> list[str]:
    """Lines listing each deployment and its schedules."""
    lines = []
    for deployment in deployments(api_url):
        schedules = deployment.get("schedules") or []
        texts = "; ".join(schedule_text(s) for s in schedules) or "on demand"
        lines.append(f"    {deployment['name']:<36} {texts}")
    return lines


@contextlib.contextmanager
def sandbox(seed: int, scale: int) -> Iterator[Any]:
    """The simulators in this process, with a world whose last month is the previous calendar month."""
    from sandbox.server import running_sandbox
    from sandbox.world import generate_world

    anchor = clock.today().replace(day=1)
    with running_sandbox(generate_world(seed=seed, scale=scale, anchor=anchor)) as running:
        yield running


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m koppel.ui", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="UI/API port (taken: a free one)")
    parser.add_argument("--home", type=Path, default=ROOT / ".koppel" / "ui", help="server data, state, logs")
    parser.add_argument("--seed", type=int, default=42, help="sandbox world seed")
    parser.add_argument("--scale", type=int, default=2_000, help="sandbox registrations per month")
    return parser


def _wait_for_stop(processes: Sequence[subprocess.Popen]) -> int:
    """Block until SIGINT/SIGTERM (0) or until one of the processes dies (1)."""
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    while not stopping.wait(1.0):
        for process in processes:
            if process.poll() is not None:
                say(f"A Koppel UI process stopped unexpectedly (exit {process.returncode}): {process.args!r}")
                return 1
    return 0


def up(args: argparse.Namespace) -> int:
    """Bring the stack up, print where it is, run until stopped."""
    home: Path = args.home.resolve()
    port = free_port(args.port)
    env = prefect_env(home / "prefect", port)
    api = env["PREFECT_API_URL"]
    processes: list[subprocess.Popen] = []
    try:
        say(f"Starting the Prefect server on {env['PREFECT_UI_URL']} (SQLite in {home / 'prefect'}) ...")
        processes.append(start_server(env, home / "server.log"))
        took = wait_healthy(api, processes[0], home / "server.log")
        say(f"  up after {took:.0f} s. Starting the sandbox ...")
        with sandbox(args.seed, args.scale) as running:
            create_pool(env, home / "deploy.log")
            say("Deploying every flow of prefect.yaml ...")
            deploy(env, home / "deploy.log")
            worker_env = {**env, **running.env(), "KOPPEL_STATE_DB_URL": f"sqlite:///{home / 'state.db'}"}
            processes.append(start_worker(worker_env, home / "worker.log", "koppel-ui-worker"))
            _ready(env["PREFECT_UI_URL"], api, running, home)
            return _wait_for_stop(processes)
    finally:
        say("Stopping the worker and the server ...")
        stop(processes)


def _ready(ui_url: str, api: str, running: Any, home: Path) -> None:
    say("")
    say(f"Koppel UI ready: {ui_url}")
    say("  deployments (click one, then Run > Custom run to choose your own dates):")
    for line in describe_deployments(api):
        say(line)
    say(f"  sandbox: AFAS {running.afas_url}  TOPdesk {running.topdesk_url}  OH {running.oh_url}")
    say(f"  state database: {home / 'state.db'}; logs: {home}/server.log, worker.log, deploy.log")
    say("Press Ctrl-C to stop.")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m koppel.ui``."""
    args = _parser().parse_args(argv)
    try:
        return up(args)
    except (RuntimeError, TimeoutError) as error:
        say(f"make ui failed: {error}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
