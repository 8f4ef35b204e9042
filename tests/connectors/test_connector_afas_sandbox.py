"""The AFAS client against the AFAS sandbox over loopback sockets: paging, writes exactly once, errors."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal

import pytest

from connectors.afas.client import AfasClient
from connectors.afas.filters import Filter
from connectors.afas.getconnectors import REGISTRY, GetConnector
from connectors.afas.payloads import Reference, element
from connectors.afas.settings import AfasSettings
from connectors.afas.tokens import authorization_value
from connectors.errors import AuthError, BusinessError
from connectors.http import RetryPolicy
from sandbox.server import Sandbox, running_sandbox
from sandbox.world import generate_world

pytestmark = pytest.mark.anyio

# Generous attempts: with 20 % injected faults, 10 attempts fail together with probability 1e-7.
TEST_POLICY = RetryPolicy(max_attempts=10, base_delay=0.001, max_delay=0.01, max_total_seconds=60)
QUIET = {"fault_rate": 0.0, "lost_response_rate": 0.0, "latency_ms": 0}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with running_sandbox(generate_world(seed=11, scale=600, months=1)) as running:
        yield running


def afas(sandbox: Sandbox, **overrides: object) -> AfasClient:
    values = {
        "environment_number": sandbox.afas_environment,
        "token": sandbox.afas_token,
        "base_url": sandbox.afas_url,
    }
    return AfasClient.from_settings(AfasSettings(**{**values, **overrides}), policy=TEST_POLICY, seed=5)


def afas_text(value: object) -> object:
    """A sandbox value as the GetConnector renders it (datetimes local with ``Z``)."""
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if isinstance(value, datetime) else value


def keys_of(sandbox: Sandbox, connector: str) -> list:
    spec = REGISTRY[connector]
    rows = sandbox.apps["afas"].state.sim.documents(connector)
    return sorted(tuple(afas_text(row[k]) for k in spec.sort_key) for row in rows)


async def settled_count(sandbox: Sandbox, method: str, path: str, expected: int) -> int:
    """The sandbox counts a request after its answer is sent: wait briefly for the last one."""
    counters = sandbox.control["afas"].counters
    for _ in range(100):
        if counters.count(method, path) >= expected:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.02)
    return counters.count(method, path)


async def test_every_registered_getconnector_reads_completely(sandbox):
    async with afas(sandbox) as client:
        for connector, spec in REGISTRY.items():
            small = GetConnector(spec.id, spec.sort_key, keyset=spec.keyset, take=37)
            rows = [row async for row in client.iter_rows(small)]
            got = sorted(tuple(row[k] for k in spec.sort_key) for row in rows)
            assert got == keys_of(sandbox, connector), connector


STYLES = {
    "keyset-string": ("Profit_Debtor", ("DebtorId",), True),
    "keyset-int": ("Profit_Contacts", ("ContactId",), True),
    "skip-composite": ("Profit_OrgPer", ("BcCo",), False),
}


@pytest.mark.parametrize("style", list(STYLES))
@pytest.mark.parametrize("case", ["empty", "one", "page", "page+1", "short"])
async def test_paging_edge_cases(sandbox, style, case):
    connector, key, keyset = STYLES[style]
    every = keys_of(sandbox, connector)
    total = len(every)
    filters = None
    take = {"page": total, "page+1": total - 1, "short": total + 5}.get(case, 10)
    expected = every
    if case == "empty":
        filters, expected = Filter(key[0], "<", every[0][0]), []
    if case == "one":
        filters, expected = Filter(key[0], "=", every[7][0]), [every[7]]
    sandbox.reset_counters("afas")
    async with afas(sandbox) as client:
        spec = GetConnector(connector, key, keyset=keyset, take=take)
        rows = [row async for row in client.iter_rows(spec, filters=filters)]
    assert [tuple(row[k] for k in key) for row in rows] == expected
    calls = len(expected) // take + 1
    path = f"/ProfitRestServices/connectors/{connector}"
    assert (
        await settled_count(sandbox, "GET", path, calls) == calls
    )  # stops on the first short page, one extra call after a full one


@pytest.mark.slow
async def test_25000_rows_once_in_each_paging_style():
    world = generate_world(seed=12, scale=120, months=1)
    with running_sandbox(world) as sandbox:
        sim = sandbox.apps["afas"].state.sim
        template = dict(sim.tables["debtors"].rows[0])
        existing = len(sim.tables["debtors"])
        sim.tables["debtors"].extend(
            {**template, "DebtorId": f"{200000 + n}", "BcCo": f"B{n}"} for n in range(25_000 - existing)
        )
        sim.tables["realizations"].extend(
            {"Identity": n, "XpRe": f"x-{n}", "QuantityUnit": Decimal("0.25")} for n in range(1, 25_001)
        )
        async with afas(sandbox) as client:
            for connector, key, keyset in (
                ("Profit_Debtor", "DebtorId", True),
                ("Profit_Debtor", "DebtorId", False),
                ("Profit_Realization", "Identity", True),
            ):
                spec = GetConnector(connector, (key,), keyset=keyset)
                rows = [row[key] async for row in client.iter_rows(spec)]
                assert len(rows) == 25_000 and len(set(rows)) == 25_000, (connector, keyset)
                assert sorted(rows) == sorted(r[key] for r in sim.documents(connector))


async def test_read_frame_types_and_values(sandbox):
    async with afas(sandbox) as client:
        debtors = await client.read_frame("Profit_Debtor")
        prices = await client.read_frame("Koppel_Sales_Prices")
    assert debtors["Blocked"].dtype == "boolean"
    assert str(debtors["ModifiedDate"].dtype) == "datetime64[ns, Europe/Amsterdam]"
    first = sandbox.apps["afas"].state.sim.tables["debtors"].get(debtors["DebtorId"][0])
    assert debtors["ModifiedDate"][0].tz_localize(None).to_pydatetime() == first["ModifiedDate"]
    assert all(isinstance(price, Decimal) for price in prices["Price"])
    assert prices["DebtorId"].isna().sum() > 0  # general prices have no debtor


def invoice(debtor: str, reference: str, hours: str = "1.50") -> dict:
    line = element(
        {"VaIt": 1, "ItCd": "SUPPORT", "BiUn": "uur", "QuUn": Decimal(hours), "Upri": Decimal("95.00")}
    )
    return element(
        {"DbId": debtor, "RfCs": reference, "OrDa": "2026-10-31", "Unit": 1},
        objects={"FbDirectInvoiceLines": [line]},
    )


def open_debtors(sandbox: Sandbox) -> list[str]:
    rows = sandbox.apps["afas"].state.sim.tables["debtors"].rows
    return [r["DebtorId"] for r in rows if not r["Blocked"]]


async def test_business_error_is_raised_at_once_with_message_and_log_reference(sandbox):
    blocked = next(
        r["DebtorId"] for r in sandbox.apps["afas"].state.sim.tables["debtors"].rows if r["Blocked"]
    )
    sandbox.reset_counters("afas")
    async with afas(sandbox) as client:
        with pytest.raises(BusinessError) as caught:
            await client.insert("FbDirectInvoice", invoice(blocked, "KOPPEL-BLOCKED"))
    error = caught.value
    assert error.external_message == f"Verkooprelatie {blocked} is geblokkeerd."
    assert error.profit_log_reference and len(error.profit_log_reference) == 32
    assert error.profit_log_reference in str(error)
    assert await settled_count(sandbox, "POST", "/ProfitRestServices/connectors/FbDirectInvoice", 1) == 1


async def test_bad_token_gives_one_auth_error(sandbox):
    wrong = "<token><version>1</version><data>" + "0" * 64 + "</data></token>"
    async with afas(sandbox, token=wrong) as client:
        with pytest.raises(AuthError) as caught:
            await client.read_frame("Profit_Administrations")
    text = str(caught.value)
    assert text.count("\n") == 0 and "HTTP 401" in text and "check the token" in text
    assert "0" * 64 not in text


async def test_token_never_logged_or_in_errors(sandbox, caplog):
    for name in (None, "httpx", "httpcore"):
        caplog.set_level(logging.DEBUG, logger=name)
    token = sandbox.afas_token
    data = token.split("<data>")[1].split("</data>")[0]
    forms = [token, data, base64.b64encode(token.encode()).decode(), authorization_value(token)]
    errors: list[Exception] = []
    async with afas(sandbox) as client:
        await client.read_frame("Profit_Administrations")
        try:
            await client.insert("FbDirectInvoice", invoice("99999999", "KOPPEL-NOBODY"))
        except BusinessError as exc:
            errors.append(exc)
        text = caplog.text + "".join(str(e) + repr(e) for e in errors) + repr(client)
    assert "connectors/Profit_Administrations" in caplog.text and errors
    for form in forms:
        assert form not in text


async def test_writes_exactly_once_under_faults_and_lost_responses(sandbox):
    sandbox.set_knobs(
        "afas",
        latency_ms=2,
        fault_rate=0.2,
        fault_kinds=["throttle", "unavailable", "timeout_message", "reset"],
        retry_after_seconds=0,
        lost_response_rate=0.3,
        seed=21,
    )
    debtors = open_debtors(sandbox)
    references = [f"KOPPEL-EXACT-{n:03d}" for n in range(40)]
    try:
        async with afas(sandbox) as client:

            async def post(n: int, reference: str):
                ref = Reference("Koppel_DirectInvoices", "RfCs", reference)
                return await client.insert_once(
                    "FbDirectInvoice", invoice(debtors[n % 20], reference), reference=ref
                )

            results = await asyncio.gather(*(post(n, r) for n, r in enumerate(references)))
    finally:
        sandbox.set_knobs("afas", **QUIET)
    stored = [
        d
        for d in sandbox.apps["afas"].state.sim.documents("Koppel_DirectInvoices")
        if d["RfCs"] in references
    ]
    assert sorted(d["RfCs"] for d in stored) == references  # each document exactly once
    by_reference = {d["RfCs"]: d["OrNu"] for d in stored}
    assert [keys["OrNu"] for keys in results] == [by_reference[r] for r in references]
    counters = sandbox.counters("afas")["endpoints"]["POST /ProfitRestServices/connectors/FbDirectInvoice"]
    assert counters["faults"].get("lost_response", 0) > 0  # the test really lost answers …
    assert any(keys.recovered for keys in results)  # … and recovered them by reference


async def test_reads_exact_under_faults_and_latency(sandbox):
    expected = keys_of(sandbox, "Profit_OrgPer")
    sandbox.set_knobs(
        "afas",
        latency_ms=2,
        fault_rate=0.2,
        fault_kinds=["throttle", "unavailable", "timeout_message", "reset"],
        retry_after_seconds=0,
        seed=4,
    )
    try:
        async with afas(sandbox) as client:
            spec = GetConnector("Profit_OrgPer", ("BcCo",), take=50)
            rows = [(row["BcCo"],) async for row in client.iter_rows(spec)]
            stats = client.stats()["GET connectors/Profit_OrgPer"]
    finally:
        sandbox.set_knobs("afas", **QUIET)
    assert rows == expected
    assert stats["retries"] > 0 and stats["errors"] == stats["retries"]
