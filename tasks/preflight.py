"""Preflight: before a flow reads anything, check every setting it needs and call each system once.

A wrong token, URL or missing variable then fails the run within seconds, with one line naming the system
and the variable to fix, instead of after a long TOPdesk read. ``koppel check`` runs the same checks from a
shell. The calls are the cheapest authenticated ones each client has: AFAS ``profitversion``, TOPdesk
``/tas/api/version``, one page of one department of the occupational-health system.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx
from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic_settings import BaseSettings

from connectors.afas.client import AfasClient
from connectors.afas.settings import AfasSettings
from connectors.errors import AuthError, ConnectorError, Unavailable
from connectors.occupational_health.client import OhClient
from connectors.occupational_health.settings import OccupationalHealthSettings
from connectors.topdesk.client import TopdeskClient
from connectors.topdesk.settings import TopdeskSettings
from koppel.settings import SettingsError, env_name, secret_fields
from store.settings import StoreSettings

log = logging.getLogger(__name__)

SettingsLoader = Callable[[type[BaseSettings]], BaseSettings]
S = TypeVar("S", bound=BaseSettings)


class PreflightFailed(RuntimeError):
    """A system a flow needs is not configured or not reachable; one line per system."""


@dataclass(frozen=True)
class Check:
    """The outcome of checking one system: ``ok`` and one line for people."""

    system: str
    ok: bool
    line: str


async def _afas(settings: AfasSettings) -> str:
    async with AfasClient.from_settings(settings) as client:
        return f"Profit {await client.profit_version()}"


async def _topdesk(settings: TopdeskSettings) -> str:
    async with TopdeskClient.from_settings(settings) as client:
        return f"Incident API {client.version or await client.check_version()}"


async def _oh(settings: OccupationalHealthSettings) -> str:
    async with OhClient.from_settings(settings) as client:
        await client.ping()
        return "departments readable"


async def _state(settings: StoreSettings) -> str:
    from store.db import connect

    engine = await asyncio.to_thread(connect, settings)
    try:
        return f"{engine.dialect.name} database migrated"
    finally:
        engine.dispose()


@dataclass(frozen=True)
class System(Generic[S]):
    """A system Koppel talks to: its settings and the one call that proves them."""

    name: str
    settings: type[S]
    call: Callable[[S], Awaitable[str]]


SYSTEMS: dict[str, System[Any]] = {
    "afas": System("AFAS", AfasSettings, _afas),
    "topdesk": System("TOPdesk", TopdeskSettings, _topdesk),
    "occupational-health": System("occupational-health system", OccupationalHealthSettings, _oh),
    "state": System("state database", StoreSettings, _state),
}


def _credential_names(cls: type[BaseSettings]) -> str:
    names = [env_name(cls, field) for field in secret_fields(cls)]
    return " / ".join(names) or "its settings"


def _address_names(cls: type[BaseSettings]) -> str:
    fields = [f for f in cls.model_fields if f not in secret_fields(cls) and "concurrency" not in f]
    fields = [f for f in fields if "timeout" not in f and f != "language"]
    return ", ".join(env_name(cls, field) for field in fields)


async def check_system(key: str, loader: SettingsLoader) -> Check:
    """Load the settings of one system and make its one call; never raises for an expected failure."""
    system = SYSTEMS[key]
    try:
        settings = loader(system.settings)
    except SettingsError as error:
        return Check(key, False, f"{system.name}: {str(error).removeprefix('Invalid settings: ')}")
    try:
        detail = await system.call(settings)
    except AuthError as error:
        line = f"{system.name} refused the credentials: check {_credential_names(system.settings)} ({error})"
        return Check(key, False, line)
    except Unavailable as error:
        line = f"{system.name} not reachable: check {_address_names(system.settings)} ({error})"
        return Check(key, False, line)
    except ConnectorError as error:
        line = f"{system.name} did not answer as expected: check {_address_names(system.settings)} ({error})"
        return Check(key, False, line)
    except (OSError, httpx.HTTPError) as error:
        line = f"{system.name} not reachable: check {_address_names(system.settings)} ({error})"
        return Check(key, False, line)
    return Check(key, True, f"{system.name}: ok ({detail})")


async def check_systems(keys: Sequence[str], loader: SettingsLoader) -> list[Check]:
    """Check ``keys`` (in order, so the first failure named is the first system a flow would touch)."""
    return [await check_system(key, loader) for key in keys]


@task(name="preflight", cache_policy=NO_CACHE, retries=0)
def preflight(systems: Sequence[str]) -> list[str]:
    """First task of every flow: check settings and call each system once; fail with one line per problem."""
    from prefect import get_run_logger

    from tasks.secrets import load_settings

    logger = get_run_logger()
    checks = asyncio.run(check_systems(list(systems), load_settings))
    for check in checks:
        (logger.info if check.ok else logger.error)("preflight: %s", check.line)
    failed = [check.line for check in checks if not check.ok]
    if failed:
        raise PreflightFailed("; ".join(failed))
    return [check.line for check in checks]
