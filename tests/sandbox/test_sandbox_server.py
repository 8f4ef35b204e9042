"""Serving the sandbox: start/stop, ports, credentials and env, the CLI, and the three real simulators."""

from __future__ import annotations

import base64
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from starlette.applications import Starlette

from connectors.afas.settings import AfasSettings
from connectors.occupational_health.settings import OccupationalHealthSettings
from connectors.topdesk.settings import TopdeskSettings
from sandbox.knobs import Knobs
from sandbox.occupational_health import default_token
from sandbox.server import SYSTEMS, running_sandbox
from sandbox.world import World, generate_core, generate_world
from tests.sandbox.test_sandbox_knobs import tiny_app

ROOT = Path(__file__).resolve().parents[2]
STAND_INS = {"afas": tiny_app, "topdesk": tiny_app}


def small_world() -> World:
    return generate_core(seed=8, scale=100)


def refuses_connections(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/__sandbox/knobs", timeout=1)
    except httpx.ConnectError:
        return True
    return False


def test_starts_fast_and_stops_twice_in_one_process() -> None:
    seen: list[dict[str, int]] = []
    for _ in range(2):
        started = time.perf_counter()
        with running_sandbox(small_world(), factories=STAND_INS) as sandbox:  # type: ignore[arg-type]
            startup = time.perf_counter() - started
            assert startup < 2.0
            ports = dict(sandbox.ports)
            assert len(set(ports.values())) == 3
            for system in SYSTEMS:
                assert httpx.get(sandbox.root_url(system) + "/__sandbox/knobs", timeout=2).status_code == 200
        seen.append(ports)
        assert all(refuses_connections(port) for port in ports.values())
    assert all(port > 0 for ports in seen for port in ports.values())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_fixed_ports_are_used_and_a_taken_port_fails_loudly() -> None:
    wanted = free_port()
    with running_sandbox(small_world(), factories=STAND_INS, ports={"oh": wanted}) as sandbox:  # type: ignore[arg-type]
        assert sandbox.ports["oh"] == wanted
        assert sandbox.oh_url == f"http://127.0.0.1:{wanted}"
        with (
            pytest.raises(OSError),
            running_sandbox(small_world(), factories=STAND_INS, ports={"topdesk": wanted}),  # type: ignore[arg-type]
        ):
            pass
        assert httpx.get(sandbox.oh_url + "/__sandbox/counters", timeout=2).status_code == 200


def test_env_points_koppels_settings_at_the_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    with running_sandbox(small_world(), factories=STAND_INS) as sandbox:  # type: ignore[arg-type]
        env = sandbox.env()
        assert sorted(env) == [
            "KOPPEL_AFAS_BASE_URL",
            "KOPPEL_AFAS_ENVIRONMENT_NUMBER",
            "KOPPEL_AFAS_ENVIRONMENT_TYPE",
            "KOPPEL_AFAS_TOKEN",
            "KOPPEL_OH_TOKEN",
            "KOPPEL_OH_URL",
            "KOPPEL_TOPDESK_APPLICATION_PASSWORD",
            "KOPPEL_TOPDESK_BASE_URL",
            "KOPPEL_TOPDESK_LOGIN",
        ]
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        afas, topdesk, oh = AfasSettings(), TopdeskSettings(), OccupationalHealthSettings()  # type: ignore[call-arg]
        assert (
            afas.rest_base_url
            == sandbox.afas_url
            == f"http://127.0.0.1:{sandbox.ports['afas']}/ProfitRestServices"
        )
        assert (afas.environment_number, afas.environment_type) == ("12345", "test")
        assert afas.token.get_secret_value() == sandbox.afas_token == tiny_app(small_world()).state.sim.token
        assert topdesk.root == sandbox.topdesk_url == f"http://127.0.0.1:{sandbox.ports['topdesk']}"
        assert (topdesk.login, topdesk.application_password.get_secret_value()) == ("koppel.api", "secret")
        assert str(oh.url).rstrip("/") == sandbox.oh_url
        assert oh.token.get_secret_value() == sandbox.oh_token == default_token(8)


def counted_statuses(sandbox, system: str, endpoint: str, expected: int, timeout: float = 10.0) -> dict:
    """Statuses counted for ``endpoint`` once ``expected`` requests are counted (or the deadline passed)."""
    deadline = time.monotonic() + timeout
    while True:
        tally = sandbox.counters(system)["endpoints"].get(endpoint, {"count": 0, "statuses": {}})
        if tally["count"] >= expected or time.monotonic() > deadline:
            return tally["statuses"]
        time.sleep(0.01)


def test_knobs_and_counters_through_the_sandbox_object() -> None:
    knobs = Knobs(seed=1, fault_rate=1.0, fault_kinds=["throttle"])
    with running_sandbox(small_world(), factories=STAND_INS, oh_knobs=knobs) as sandbox:  # type: ignore[arg-type]
        assert sandbox.knobs("oh") == knobs
        assert sandbox.knobs("afas") == Knobs(seed=8)  # default: no faults, seeded with the world's seed
        oh = f"{sandbox.oh_url}/api/v1/departments"
        assert httpx.get(oh, timeout=2).status_code == 429
        sandbox.set_knobs("oh", fault_rate=0.0)
        assert httpx.get(oh, timeout=2).status_code == 401  # the app itself now: no token sent
        # The sandbox counts a request once the app has answered it (after the client may have read the
        # answer): wait for both counts rather than read them the instant the response arrived.
        counted = counted_statuses(sandbox, "oh", "GET /api/v1/departments", expected=2)
        assert counted == {"429": 1, "401": 1}
        sandbox.reset_counters()
        assert [sandbox.counters(system)["total"] for system in SYSTEMS] == [0, 0, 0]


def test_an_app_without_credentials_is_refused() -> None:
    def bare(world: World, options: object = None) -> Starlette:
        app = Starlette()
        app.state.sim = SimpleNamespace()
        return app

    with (
        pytest.raises(RuntimeError, match="exposes no token"),
        running_sandbox(small_world(), factories={"afas": bare, "topdesk": tiny_app}),  # type: ignore[arg-type]
    ):
        pass


def test_world_command_prints_one_json_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sandbox", "world", "--seed", "4", "--scale", "60"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    [line] = done.stdout.splitlines()
    summary = json.loads(line)
    world = generate_world(seed=4, scale=60)
    assert summary["fingerprint"] == world.fingerprint()
    assert summary["frames"] == {name: len(frame) for name, frame in world.frames().items()}
    assert (summary["seed"], summary["scale"]) == (4, 60)


# --- with the real AFAS and TOPdesk simulators ------------------------------------------------------------


def afas_header(token: str) -> dict[str, str]:
    return {"Authorization": "AfasToken " + base64.b64encode(token.encode()).decode()}


def test_serves_the_three_real_simulators() -> None:
    with running_sandbox(seed=6, scale=60) as sandbox:
        version = httpx.get(
            f"{sandbox.afas_url}/profitversion", headers=afas_header(sandbox.afas_token), timeout=5
        )
        assert version.status_code == 200
        assert "version" in version.json()
        assert httpx.get(f"{sandbox.afas_url}/profitversion", timeout=5).status_code == 401
        auth = (sandbox.topdesk_login, sandbox.topdesk_password)
        topdesk = httpx.get(f"{sandbox.topdesk_url}/tas/api/version", auth=auth, timeout=5)
        assert (topdesk.status_code, topdesk.json()) == (200, {"version": "4.2.6"})
        oh = httpx.get(
            f"{sandbox.oh_url}/api/v1/registered-absences",
            headers={"Authorization": f"Bearer {sandbox.oh_token}"},
            timeout=5,
        )
        assert len(oh.json()["items"]) == 5
        assert sandbox.counters("afas")["endpoints"]["GET /ProfitRestServices/profitversion"]["count"] == 2
        assert sandbox.counters("topdesk")["endpoints"]["GET /tas/api/version"]["statuses"] == {"200": 1}


def test_reset_serves_the_world_afresh_on_the_same_ports() -> None:
    with running_sandbox(seed=6, scale=60) as sandbox:
        ports, env, old_apps = dict(sandbox.ports), sandbox.env(), dict(sandbox.apps)
        topdesk = sandbox.apps["topdesk"].state.sim
        alive = int(topdesk.registrations.alive.sum())
        topdesk.delete_registration(str(sandbox.world.extra["td_registrations"]["id"].iloc[0]))
        sandbox.set_knobs("afas", fault_rate=1.0, latency_ms=5)
        auth = (sandbox.topdesk_login, sandbox.topdesk_password)
        assert httpx.get(f"{sandbox.topdesk_url}/tas/api/version", auth=auth, timeout=5).status_code == 200

        sandbox.reset()

        assert sandbox.ports == ports and sandbox.env() == env
        assert all(sandbox.apps[system] is not old_apps[system] for system in SYSTEMS)
        assert int(sandbox.apps["topdesk"].state.sim.registrations.alive.sum()) == alive
        assert all(sandbox.knobs(system) == Knobs(seed=6) for system in SYSTEMS)
        assert all(sandbox.counters(system)["total"] == 0 for system in SYSTEMS)
        version = httpx.get(
            f"{sandbox.afas_url}/profitversion", headers=afas_header(sandbox.afas_token), timeout=5
        )
        assert version.status_code == 200  # the new app answers, without the faults set before
        assert sandbox.counters("afas")["total"] == 1


# Runs the CLI with tests.sandbox.test_sandbox_knobs (tiny_app as create_app) standing in for AFAS and
# TOPdesk.
STAND_IN_LAUNCHER = (
    "import sys, sandbox.server as server; "
    "server._MODULES.update("
    "afas='tests.sandbox.test_sandbox_knobs', topdesk='tests.sandbox.test_sandbox_knobs'); "
    "from sandbox.__main__ import main; main(sys.argv[1:])"
)


def serve_once(launcher: list[str], check_topdesk: bool) -> None:
    argv = ["serve", "--seed", "6", "--scale", "60", "--latency-ms", "5"]
    process = subprocess.Popen([*launcher, *argv], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        described = json.loads(process.stdout.readline())  # type: ignore[union-attr]
        assert set(described["env"]) >= {"KOPPEL_AFAS_TOKEN", "KOPPEL_TOPDESK_LOGIN", "KOPPEL_OH_URL"}
        assert described["oh_token"] == default_token(6)
        knobs = httpx.get(described["control"]["topdesk"] + "/knobs", timeout=5).json()
        assert (knobs["latency_ms"], knobs["seed"]) == (5, 6)
        oh = httpx.get(
            described["oh_url"] + "/api/v1/registered-absences",
            headers={"Authorization": f"Bearer {described['oh_token']}"},
            timeout=5,
        )
        assert len(oh.json()["items"]) == 5
        if check_topdesk:
            auth = (described["topdesk_login"], described["topdesk_password"])
            version = httpx.get(described["topdesk_url"] + "/tas/api/version", auth=auth, timeout=5)
            assert version.status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert process.stdout.read() == ""  # type: ignore[union-attr]  # exactly one line
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_serve_command_prints_one_json_line_and_stops_on_sigterm() -> None:
    serve_once([sys.executable, "-c", STAND_IN_LAUNCHER], check_topdesk=False)


def test_serve_command_with_the_real_simulators() -> None:
    serve_once([sys.executable, "-m", "sandbox"], check_topdesk=True)


def test_simulator_control_routes_pass_through_the_wrapper_uncounted() -> None:
    from sandbox.world import generate_world

    world = generate_world(seed=5, scale=60)
    incident = world.extra["td_incidents"]["number"].iloc[0]
    with running_sandbox(world) as sandbox, httpx.Client(base_url=sandbox.topdesk_url, timeout=10) as client:
        sandbox.set_knobs("topdesk", fault_rate=1.0, fault_kinds=["unavailable"])
        created = client.post(
            "/__sandbox/topdesk/registrations",
            json={"incident": incident, "minutes": 25, "entryDate": "2026-10-02T10:00:00+00:00"},
        )
        assert created.status_code == 201
        before = client.get("/__sandbox/topdesk/state").json()["registrations"]
        assert client.delete(f"/__sandbox/topdesk/registrations/{created.json()['id']}").status_code == 204
        state = client.get("/__sandbox/topdesk/state").json()
        assert state["registrations"] == before - 1 and state["deleted"] == [created.json()["id"]]
        assert client.get("/__sandbox/elsewhere").status_code == 404
        assert sandbox.counters("topdesk")["total"] == 0
