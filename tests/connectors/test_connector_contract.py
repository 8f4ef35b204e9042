"""One contract suite for every connector against its sandbox counterpart (design.md, "Style to follow").

Each connector joins by describing itself as a ``Contract``: how to build a client (with wrong
credentials too), one standard read (paged to the last page), an empty read, the expected ids, the
pandera schema its frame must meet, and a cheap probe request for the fault tests. The
occupational-health client joins later with its own ``Contract``. The AFAS client runs the suite once per
authentication mode (classic token, OAuth client secret in the body and as Basic, private-key JWT) against a
Hybrid app connector.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest

from connectors.afas.client import AfasClient
from connectors.afas.filters import Filter
from connectors.afas.settings import AfasSettings
from connectors.errors import AuthError, Unavailable
from connectors.http import RetryPolicy
from connectors.occupational_health.client import OhClient
from connectors.occupational_health.settings import OccupationalHealthSettings
from connectors.topdesk.client import TopdeskClient
from connectors.topdesk.settings import TopdeskSettings
from connectors.topdesk.timeregistrations import TimeRegistrationOptions, read_time_registrations
from koppel.keygen import generate
from sandbox.afas.state import AfasOptions
from sandbox.server import Sandbox, running_sandbox
from sandbox.world import generate_world
from schemas.afas import Debtors
from schemas.hr import RegisteredAbsences
from schemas.registrations import RawRegistrations

pytestmark = pytest.mark.anyio

WEEK = (datetime(2026, 10, 5, tzinfo=UTC), datetime(2026, 10, 12, tzinfo=UTC))
NOTHING = (datetime(2001, 1, 1, tzinfo=UTC), datetime(2001, 2, 1, tzinfo=UTC))
Sleep = Callable[[float], Awaitable[None]]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    options = {"afas": AfasOptions(auth_mode="hybrid")}
    with running_sandbox(generate_world(seed=23, scale=900, months=1), options=options) as running:
        yield running


async def counted(sandbox: Sandbox, system: str, path: str, total: int) -> dict[str, Any]:
    """The sandbox's counters of ``GET path``, once ``total`` requests are in (it counts after answering)."""
    for _ in range(100):
        entry = sandbox.counters(system)["endpoints"].get(f"GET {path}", {"count": 0})
        if entry["count"] >= total:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.02)
    return sandbox.counters(system)["endpoints"][f"GET {path}"]


def policy(attempts: int = 6) -> RetryPolicy:
    return RetryPolicy(max_attempts=attempts, base_delay=0.001, max_delay=0.01, max_total_seconds=30)


DEFAULT_POLICY = policy()


@dataclass(frozen=True)
class Contract:
    """What the suite needs to know about one connector."""

    system: str
    client: Callable[..., Any]  # (sandbox, *, bad_credentials, policy, sleep) -> async context manager
    read: Callable[[Any, int], Awaitable[pd.DataFrame]]  # paged to the last page with this page size
    read_empty: Callable[[Any], Awaitable[pd.DataFrame]]
    expected_ids: Callable[[Sandbox], set[str]]
    ids: Callable[[pd.DataFrame], set[str]]
    schema: Any
    probe: Callable[[Any], Awaitable[None]]  # one cheap GET
    probe_path: str
    throttle_status: int  # what the sandbox's "throttle" fault answers with
    auth_hint: str = "check the token / app connector / permissions"  # in every auth failure


def afas_client(
    sandbox: Sandbox, *, bad_credentials=False, policy=DEFAULT_POLICY, sleep=None, mode="token"
) -> AfasClient:
    auth = "client_secret" if mode.startswith("client_secret") else mode
    env = sandbox.afas_env(auth)
    values: dict[str, Any] = {
        "environment_number": sandbox.afas_environment,
        "base_url": sandbox.afas_url,
        "auth": auth,
        "token": "0" * 64 if bad_credentials else sandbox.afas_token,
        "client_id": env.get("KOPPEL_AFAS_CLIENT_ID"),
        "client_secret": "not-the-secret" if bad_credentials else env.get("KOPPEL_AFAS_CLIENT_SECRET"),
        "client_secret_method": "basic" if mode.endswith("basic") else "body",
        "private_key": generate("not-the-key", kind="ec").private_key_pem
        if bad_credentials
        else env.get("KOPPEL_AFAS_PRIVATE_KEY"),
    }
    return AfasClient.from_settings(AfasSettings(**values), policy=policy, sleep=sleep, seed=1)


def topdesk_client(
    sandbox: Sandbox, *, bad_credentials=False, policy=DEFAULT_POLICY, sleep=None
) -> TopdeskClient:
    password = "not-the-password" if bad_credentials else sandbox.topdesk_password
    settings = TopdeskSettings(
        base_url=sandbox.topdesk_url, login=sandbox.topdesk_login, application_password=password
    )
    return TopdeskClient.from_settings(settings, policy=policy, sleep=sleep, seed=1, check_version=False)


def topdesk_expected(sandbox: Sandbox) -> set[str]:
    x = sandbox.world.extra
    # Partial and archived incidents are read by default.
    frames = [x["td_registrations"], x["td_om_registrations"], x["td_odata_registrations"]]
    ids: set[str] = set()
    for frame in frames:
        when = pd.to_datetime(frame["entryDate"], utc=True)
        ids |= set(frame.loc[(when >= WEEK[0]) & (when < WEEK[1]), "id"])
    return ids


async def topdesk_probe(client: TopdeskClient) -> None:
    await client.check_version()


def oh_client(sandbox: Sandbox, *, bad_credentials=False, policy=DEFAULT_POLICY, sleep=None) -> OhClient:
    token = "not-the-oh-token" if bad_credentials else sandbox.oh_token
    settings = OccupationalHealthSettings(url=sandbox.oh_url, token=token)
    return OhClient.from_settings(settings, policy=policy, sleep=sleep, seed=1)


def oh_read(client: OhClient, size: int) -> Awaitable[pd.DataFrame]:
    # A fresh OH system holds only the five seeded registered absences: scale the page size down so
    # that the standard sizes (100, 1000) still page (100 → pages of 1) or read all at once (1000 → 10).
    return client.registered_absences(page_size=max(1, size // 100))


def afas_contract(mode: str, auth_hint: str) -> Contract:
    return Contract(
        system="afas",
        client=functools.partial(afas_client, mode=mode),
        read=lambda c, size: c.read_frame("Profit_Debtor", page_size=size),
        read_empty=lambda c: c.read_frame("Profit_Debtor", filters=Filter("DebtorId", "=", "no-such-debtor")),
        expected_ids=lambda s: {r["DebtorId"] for r in s.apps["afas"].state.sim.documents("Profit_Debtor")},
        ids=lambda f: set(f["DebtorId"]),
        schema=Debtors,
        probe=lambda c: c.profit_version(),
        probe_path="/ProfitRestServices/profitversion",
        throttle_status=503,
        auth_hint=auth_hint,
    )


CONTRACTS = [
    afas_contract("token", "KOPPEL_AFAS_TOKEN"),
    afas_contract("client_secret", "KOPPEL_AFAS_CLIENT_SECRET"),
    afas_contract("client_secret_basic", "KOPPEL_AFAS_CLIENT_SECRET"),
    afas_contract("private_key_jwt", "KOPPEL_AFAS_PRIVATE_KEY"),
    Contract(
        system="topdesk",
        client=topdesk_client,
        read=lambda c, size: read_time_registrations(c, *WEEK, TimeRegistrationOptions(page_size=size)),
        read_empty=lambda c: read_time_registrations(c, *NOTHING),
        expected_ids=topdesk_expected,
        ids=lambda f: set(f["registration_id"]),
        schema=RawRegistrations,
        probe=topdesk_probe,
        probe_path="/tas/api/version",
        throttle_status=429,
    ),
    Contract(
        system="oh",
        client=oh_client,
        read=oh_read,
        read_empty=lambda c: c.registered_absences(changed_since=datetime(2100, 1, 1, tzinfo=UTC)),
        expected_ids=lambda s: set(s.apps["oh"].state.sim.registered),
        ids=lambda f: set(f["external_id"]),
        schema=RegisteredAbsences,
        probe=lambda c: c.ping(),
        probe_path="/api/v1/departments",
        throttle_status=429,
    ),
]


CONTRACT_IDS = [
    "afas",
    "afas-client-secret",
    "afas-client-secret-basic",
    "afas-private-key-jwt",
    "topdesk",
    "oh",
]


@pytest.fixture(params=CONTRACTS, ids=CONTRACT_IDS)
def contract(request: pytest.FixtureRequest) -> Contract:
    return request.param


async def test_auth_failure_is_one_clear_auth_error(sandbox, contract):
    async with contract.client(sandbox, bad_credentials=True) as client:
        with pytest.raises(AuthError) as caught:
            await contract.probe(client)
    # OAuth: the token endpoint answers 400 invalid_client (401 for failed Basic), before any resource call.
    assert caught.value.status in (400, 401) and "\n" not in str(caught.value)
    if contract.system != "topdesk":
        assert contract.auth_hint in str(caught.value)
    else:  # names TOPdesk's settings, not AFAS's token
        assert "KOPPEL_TOPDESK_APPLICATION_PASSWORD" in str(caught.value) and "token /" not in str(
            caught.value
        )


async def test_paging_to_the_last_page(sandbox, contract):
    async with contract.client(sandbox) as client:
        frame = await contract.read(client, 7 if contract.system == "afas" else 100)
        stats = client.stats()
    assert contract.ids(frame) == contract.expected_ids(sandbox)
    assert len(frame) == len(contract.ids(frame))  # every row once
    assert max(s["count"] for s in stats.values()) > 3  # several pages were really read


async def test_empty_result(sandbox, contract):
    async with contract.client(sandbox) as client:
        frame = await contract.read_empty(client)
    assert frame.empty and len(frame.columns) > 3
    contract.schema.validate(frame)


@pytest.mark.parametrize("kind", ["throttle", "unavailable"])
async def test_transient_fault_then_success(sandbox, contract, kind):
    async def calm_down(_: float) -> None:
        sandbox.set_knobs(contract.system, fault_rate=0.0)  # the fault lasts exactly one request

    sandbox.reset_counters(contract.system)
    async with contract.client(sandbox, sleep=calm_down) as client:
        await contract.probe(client)  # warm: an OAuth client holds its access token from here on
        warm = sum(s["retries"] for s in client.stats().values())
        await counted(sandbox, contract.system, contract.probe_path, 1)  # the warm-up is counted late
        sandbox.set_knobs(contract.system, fault_rate=1.0, fault_kinds=[kind], retry_after_seconds=0)
        sandbox.reset_counters(contract.system)
        try:
            await contract.probe(client)
            stats = client.stats()
        finally:
            sandbox.set_knobs(contract.system, fault_rate=0.0)
    status = contract.throttle_status if kind == "throttle" else 503
    entry = await counted(sandbox, contract.system, contract.probe_path, 2)
    assert entry["statuses"] == {str(status): 1, "200": 1} and entry["faults"] == {kind: 1}
    assert sum(s["retries"] for s in stats.values()) - warm == 1


async def test_server_error_exhaustion_is_unavailable(sandbox, contract):
    sandbox.reset_counters(contract.system)
    async with contract.client(sandbox, policy=policy(attempts=3)) as client:
        await contract.probe(client)  # warm: an OAuth client holds its access token from here on
        await counted(sandbox, contract.system, contract.probe_path, 1)  # the warm-up is counted late
        sandbox.set_knobs(contract.system, fault_rate=1.0, fault_kinds=["unavailable"], retry_after_seconds=0)
        sandbox.reset_counters(contract.system)
        try:
            with pytest.raises(Unavailable) as caught:
                await contract.probe(client)
        finally:
            sandbox.set_knobs(contract.system, fault_rate=0.0)
    assert caught.value.last_status == 503 and "gave up after 3 attempts" in str(caught.value)
    assert (await counted(sandbox, contract.system, contract.probe_path, 3))["count"] == 3


async def test_returned_frame_conforms_to_its_schema(sandbox, contract):
    async with contract.client(sandbox) as client:
        frame = await contract.read(client, 1000)
    validated = contract.schema.validate(frame, lazy=True)
    assert len(validated) == len(frame) > 0
