"""Serve the three simulators on loopback ports: ``with running_sandbox() as sandbox: ...``.

One background thread runs one asyncio loop with three uvicorn servers (AFAS, TOPdesk, occupational
health), each app wrapped by ``sandbox.knobs.instrument``. The yielded ``Sandbox`` carries the base URLs,
the credentials the apps accept, ``env()`` for Koppel's settings, and run-time control of knobs and counters.
"""

from __future__ import annotations

import asyncio
import importlib
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, cast

import uvicorn

from sandbox.knobs import ASGIApp, InstrumentedApp, Knobs, instrument
from sandbox.world import DEFAULT_SCALE, DEFAULT_SEED, World, generate_world

System = Literal["afas", "topdesk", "oh"]
SYSTEMS: tuple[System, ...] = ("afas", "topdesk", "oh")
AFAS_ENVIRONMENT = "12345"
AppFactory = Callable[[World, Any], ASGIApp]

_MODULES: dict[System, str] = {
    "afas": "sandbox.afas",
    "topdesk": "sandbox.topdesk",
    "oh": "sandbox.occupational_health",
}
# Where each simulator keeps the credentials it accepts (its own seed-derived defaults or its options).
_CREDENTIALS: dict[str, tuple[System, tuple[str, ...]]] = {
    "afas_token": ("afas", ("token",)),
    "afas_client_id": ("afas", ("client_id",)),
    "afas_client_secret": ("afas", ("client_secret",)),
    "afas_private_key": ("afas", ("private_key",)),
    "topdesk_login": ("topdesk", ("login",)),
    "topdesk_password": ("topdesk", ("password",)),
    "oh_token": ("oh", ("token",)),
}
_OPTIONAL_CREDENTIALS = frozenset({"afas_client_id", "afas_client_secret", "afas_private_key"})
_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Sandbox:
    """A running sandbox: where it listens, how to log in, and its knobs and counters."""

    world: World
    host: str
    ports: Mapping[System, int]
    afas_token: str
    afas_environment: str
    afas_client_id: str
    afas_client_secret: str
    afas_private_key: str  # PEM of the sandbox's OAuth key pair (private_key_jwt)
    topdesk_login: str
    topdesk_password: str
    oh_token: str
    apps: Mapping[System, Any]
    control: Mapping[System, InstrumentedApp]

    def root_url(self, system: System) -> str:
        """``http://host:port`` of one system (the control endpoints live under ``/__sandbox`` here)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.ports[system]}"

    @property
    def afas_url(self) -> str:
        """AFAS REST base URL, ending in ``/ProfitRestServices``."""
        return self.root_url("afas") + "/ProfitRestServices"

    @property
    def topdesk_url(self) -> str:
        """TOPdesk tenant root (without ``/tas/api``)."""
        return self.root_url("topdesk")

    @property
    def oh_url(self) -> str:
        """Occupational-health root; its API lives under ``/api/v1``."""
        return self.root_url("oh")

    def env(self) -> dict[str, str]:
        """The ``KOPPEL_*`` environment that points Koppel's settings at this sandbox."""
        return {
            "KOPPEL_AFAS_ENVIRONMENT_NUMBER": self.afas_environment,
            "KOPPEL_AFAS_ENVIRONMENT_TYPE": "test",
            "KOPPEL_AFAS_TOKEN": self.afas_token,
            "KOPPEL_AFAS_BASE_URL": self.afas_url,
            "KOPPEL_TOPDESK_BASE_URL": self.topdesk_url,
            "KOPPEL_TOPDESK_LOGIN": self.topdesk_login,
            "KOPPEL_TOPDESK_APPLICATION_PASSWORD": self.topdesk_password,
            "KOPPEL_OH_URL": self.oh_url,
            "KOPPEL_OH_TOKEN": self.oh_token,
        }

    def afas_env(self, auth: str = "token", **extra: str) -> dict[str, str]:
        """The ``KOPPEL_AFAS_*`` environment for one ``KOPPEL_AFAS_AUTH`` mode (token, client_secret, ...)."""
        env = {key: value for key, value in self.env().items() if key.startswith("KOPPEL_AFAS_")}
        env["KOPPEL_AFAS_AUTH"] = auth
        if auth != "token":
            del env["KOPPEL_AFAS_TOKEN"]
            env["KOPPEL_AFAS_CLIENT_ID"] = self.afas_client_id
        if auth == "client_secret":
            env["KOPPEL_AFAS_CLIENT_SECRET"] = self.afas_client_secret
        if auth == "private_key_jwt":
            env["KOPPEL_AFAS_PRIVATE_KEY"] = self.afas_private_key
        return {**env, **extra}

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary: URLs, credentials, control URLs and the env block."""
        return {
            "afas_url": self.afas_url,
            "topdesk_url": self.topdesk_url,
            "oh_url": self.oh_url,
            "afas_environment": self.afas_environment,
            "afas_token": self.afas_token,
            "afas_client_id": self.afas_client_id,
            "afas_client_secret": self.afas_client_secret,
            "topdesk_login": self.topdesk_login,
            "topdesk_password": self.topdesk_password,
            "oh_token": self.oh_token,
            "control": {system: self.root_url(system) + "/__sandbox" for system in SYSTEMS},
            "seed": self.world.seed,
            "scale": self.world.scale,
            "env": self.env(),
        }

    def knobs(self, system: System) -> Knobs:
        """The knobs in force for one system."""
        return self.control[system].knobs

    def set_knobs(self, system: System, **changes: Any) -> Knobs:
        """Change knobs of one system at run time, e.g. ``set_knobs("afas", fault_rate=0.2)``."""
        return self.control[system].set_knobs(**changes)

    def counters(self, system: System) -> dict[str, Any]:
        """Request counters of one system: ``{"total": n, "endpoints": {"GET /path/{id}": {...}}}``."""
        return self.control[system].counters.snapshot()

    def reset(self, world: World | None = None) -> None:
        """Serve the world afresh on the same ports: new simulator apps, default knobs, zero counters.

        What a new ``running_sandbox(self.world)`` would serve, without restarting the servers (a test session
        keeps one running and resets it between tests). The credentials stay: they derive from the seed.
        """
        if world is not None:  # serve this (equal) copy from now on: nothing a test changed carries over
            object.__setattr__(self, "world", world)
        apps = build_apps(self.world)
        for system in SYSTEMS:
            self.control[system].restart(apps[system], Knobs(seed=self.world.seed))
        cast("dict[System, Any]", self.apps).update(apps)  # the same dict running_sandbox handed over

    def reset_counters(self, system: System | None = None) -> None:
        """Zero the counters of one system, or of all three."""
        for name in (system,) if system else SYSTEMS:
            self.control[name].counters.reset()


def _factory(system: System, factories: Mapping[System, AppFactory] | None) -> AppFactory:
    if factories and system in factories:
        return factories[system]
    try:
        module = importlib.import_module(_MODULES[system])
    except ModuleNotFoundError as exc:
        raise RuntimeError(f"the {system} simulator ({_MODULES[system]}) is not available: {exc}") from exc
    return module.create_app


def _credential(apps: Mapping[System, Any], name: str) -> str:
    system, attributes = _CREDENTIALS[name]
    sim = getattr(getattr(apps[system], "state", None), "sim", None)
    for attribute in attributes:
        value = getattr(sim, attribute, None)
        if isinstance(value, str) and value:
            return value
    if name in _OPTIONAL_CREDENTIALS:  # a stand-in app (tests) may speak classic tokens only
        return ""
    raise RuntimeError(f"the {system} app exposes no {' / '.join(attributes)} on app.state.sim")


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio only sets TCP_NODELAY on such sockets, and without it every response
    # (headers and body written separately) stalls 40 ms on the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _server(app: ASGIApp, host: str) -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        host=host,
        log_level="warning",
        log_config=None,  # leave the host process's logging alone; uvicorn's loggers propagate to root
        access_log=False,
        lifespan="off",
        http="h11",  # sandbox.knobs.drop_connection relies on its request cycle's transport
        ws="none",
        proxy_headers=False,
        timeout_graceful_shutdown=1,  # a request stuck in a `slow` fault must not hold up shutdown
    )
    return uvicorn.Server(config)


class _ServerThread:
    """The background thread and loop serving every app on its own pre-bound socket."""

    def __init__(self, apps: Mapping[System, ASGIApp], host: str, ports: Mapping[System, int]) -> None:
        self.sockets: dict[System, socket.socket] = {}
        try:
            for system in apps:
                self.sockets[system] = _bind(host, ports.get(system, 0))
        except OSError:
            self._close_sockets()
            raise
        self.ports = {system: sock.getsockname()[1] for system, sock in self.sockets.items()}
        self.servers = {system: _server(app, host) for system, app in apps.items()}
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="koppel-sandbox", daemon=True)

    def _close_sockets(self) -> None:
        for sock in self.sockets.values():
            sock.close()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve_all())
        except BaseException as exc:  # handed to the thread that started us, which raises it
            self.error = exc
            raise

    async def _serve_all(self) -> None:
        await asyncio.gather(
            *(server.serve(sockets=[self.sockets[system]]) for system, server in self.servers.items())
        )

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not all(server.started for server in self.servers.values()):
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the sandbox servers did not start") from self.error
            time.sleep(0.005)

    def stop(self) -> None:
        for server in self.servers.values():
            server.should_exit = True
        self._thread.join(_STOP_TIMEOUT_S)
        self._close_sockets()
        if self._thread.is_alive():
            raise RuntimeError(f"the sandbox servers did not stop within {_STOP_TIMEOUT_S:.0f} s")


def build_apps(
    world: World,
    options: Mapping[System, Any] | None = None,
    factories: Mapping[System, AppFactory] | None = None,
) -> dict[System, Any]:
    """The three unwrapped simulator apps for ``world``."""
    options = options or {}
    return {system: _factory(system, factories)(world, options.get(system)) for system in SYSTEMS}


@contextmanager
def running_sandbox(
    world: World | None = None,
    *,
    seed: int = DEFAULT_SEED,
    scale: int = DEFAULT_SCALE,
    afas_knobs: Knobs | None = None,
    topdesk_knobs: Knobs | None = None,
    oh_knobs: Knobs | None = None,
    host: str = "127.0.0.1",
    ports: Mapping[System, int] | None = None,
    options: Mapping[System, Any] | None = None,
    factories: Mapping[System, AppFactory] | None = None,
) -> Iterator[Sandbox]:
    """Serve AFAS, TOPdesk and the OH simulator until the block ends.

    ``world`` defaults to ``generate_world(seed, scale)``; ``ports`` (0 or missing = a free port) fixes
    ports; ``options`` are passed to each ``create_app``; ``factories`` replace a ``create_app`` (tests).
    Knobs default to no latency and no faults, seeded with the world's seed.
    """
    world = world if world is not None else generate_world(seed=seed, scale=scale)
    apps = build_apps(world, options, factories)
    given = {"afas": afas_knobs, "topdesk": topdesk_knobs, "oh": oh_knobs}
    control = {s: instrument(apps[s], given[s] or Knobs(seed=world.seed), s) for s in SYSTEMS}
    thread = _ServerThread(control, host, ports or {})
    thread.start()
    try:
        yield Sandbox(
            world=world,
            host=host,
            ports=dict(thread.ports),
            afas_environment=AFAS_ENVIRONMENT,
            apps=apps,
            control=control,
            **{name: _credential(apps, name) for name in _CREDENTIALS},
        )
    finally:
        thread.stop()
