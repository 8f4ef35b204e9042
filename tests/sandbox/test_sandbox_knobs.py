"""The sandbox wrapper: latency, injected faults per flavour, lost responses, counters, control endpoints.

A tiny Starlette app stands in for all three simulators, served over real loopback sockets by
``running_sandbox``, so these tests exercise the wrapper alone.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.knobs import (
    AFAS_MAINTENANCE,
    AFAS_OVERLOAD,
    AFAS_TIMEOUT_EN,
    AFAS_TIMEOUT_NL,
    Knobs,
    applicable_kinds,
    instrument,
    normalise_path,
)
from sandbox.server import SYSTEMS, Sandbox, running_sandbox
from sandbox.world import World, generate_core


def tiny_app(world: World, options: object = None) -> Starlette:
    """A stand-in simulator: GET /items/{id}, POST /items (201 + body), PUT /items (200, empty body)."""
    state = SimpleNamespace(
        token="<token><version>1</version><data>" + "0f" * 32 + "</data></token>",
        login="koppel.api",
        password="secret",
        writes=[],
    )

    async def get_item(request: Request) -> Response:
        return JSONResponse({"id": request.path_params["key"]})

    async def post_item(request: Request) -> Response:
        state.writes.append(("POST", await request.json()))
        return JSONResponse({"created": len(state.writes)}, status_code=201)

    async def put_item(request: Request) -> Response:
        state.writes.append(("PUT", await request.json()))
        return Response(status_code=200)

    app = Starlette(
        routes=[
            Route("/items/{key}", get_item, methods=["GET"]),
            Route("/items", post_item, methods=["POST"]),
            Route("/items", put_item, methods=["PUT"]),
        ]
    )
    app.state.sim = state
    return app


create_app = tiny_app  # lets the CLI test load this module in place of a simulator


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    world = generate_core(seed=3, scale=100)
    factories = dict.fromkeys(SYSTEMS, tiny_app)
    with running_sandbox(world, factories=factories) as running:
        yield running


@pytest.fixture(autouse=True)
def clean(sandbox: Sandbox) -> Iterator[None]:
    for system in SYSTEMS:
        sandbox.control[system].set_knobs(**Knobs(seed=11).model_dump())
        sandbox.apps[system].state.sim.writes.clear()
    sandbox.reset_counters()
    yield


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as http:
        yield http


def url(sandbox: Sandbox, system: str, path: str) -> str:
    return sandbox.root_url(system) + path  # type: ignore[arg-type]


def test_latency_is_added_to_every_request(sandbox: Sandbox, client: httpx.Client) -> None:
    sandbox.set_knobs("oh", latency_ms=60)
    times = []
    for _ in range(5):
        started = time.perf_counter()
        assert client.get(url(sandbox, "oh", "/items/1")).status_code == 200
        times.append(time.perf_counter() - started)
    assert min(times) >= 0.060
    assert sorted(times)[2] < 0.060 + 0.25  # median: the delay, not much more
    sandbox.set_knobs("oh", latency_ms=0, jitter_ms=40)
    jittered = []
    for _ in range(8):
        started = time.perf_counter()
        client.get(url(sandbox, "oh", "/items/1"))
        jittered.append(time.perf_counter() - started)
    assert max(jittered) < 0.040 + 0.25
    assert max(jittered) - min(jittered) > 0.005  # the delays differ


def expected_faults(seed: int, rate: float, requests: int) -> list[bool]:
    """The wrapper's own draw order: four values per request, the first decides the fault."""
    rng = random.Random(seed)
    outcome = []
    for _ in range(requests):
        u_fault, _, _, _ = (rng.random() for _ in range(4))
        outcome.append(u_fault < rate)
    return outcome


def test_fault_rate_is_close_to_configured_and_reproducible(sandbox: Sandbox, client: httpx.Client) -> None:
    sandbox.set_knobs("topdesk", seed=5, fault_rate=0.3, fault_kinds=["throttle"])
    statuses = [client.get(url(sandbox, "topdesk", f"/items/{i}")).status_code for i in range(400)]
    expected = expected_faults(seed=5, rate=0.3, requests=400)
    assert statuses == [429 if faulted else 200 for faulted in expected]
    assert 0.25 * 400 <= statuses.count(429) <= 0.35 * 400
    counted = sandbox.counters("topdesk")["endpoints"]["GET /items/{id}"]
    assert counted["statuses"] == {"200": statuses.count(200), "429": statuses.count(429)}
    assert counted["faults"] == {"throttle": statuses.count(429)}

    sandbox.set_knobs("topdesk", seed=5)  # a new seed restarts the sequence
    again = [client.get(url(sandbox, "topdesk", f"/items/{i}")).status_code for i in range(400)]
    assert again == statuses


AFAS_REFERENCE = re.compile(r"^[0-9a-f]{32}$")


@pytest.mark.parametrize(
    ("system", "kind", "status", "body", "retry_after"),
    [
        (
            "afas",
            "throttle",
            503,
            {"error": {"code": "503", "message": AFAS_OVERLOAD}, "retry_after": 2},
            None,
        ),
        (
            "afas",
            "unavailable",
            503,
            {"error": {"code": "503", "message": AFAS_MAINTENANCE}, "retry_after": 2},
            "2",
        ),
        ("topdesk", "throttle", 429, [{"message": "Too many requests"}], "2"),
        ("topdesk", "unavailable", 503, [{"message": "Service unavailable"}], "2"),
        ("oh", "throttle", 429, {"error": "too_many_requests"}, "2"),
        ("oh", "unavailable", 503, {"error": "service_unavailable"}, "2"),
    ],
)
def test_answering_faults_have_the_systems_shape(
    sandbox: Sandbox,
    client: httpx.Client,
    system: str,
    kind: str,
    status: int,
    body: object,
    retry_after: str | None,
) -> None:
    sandbox.set_knobs(system, fault_rate=1.0, fault_kinds=[kind], retry_after_seconds=2)  # type: ignore[arg-type]
    for method in ("GET", "POST"):
        path = "/items/7" if method == "GET" else "/items"
        response = client.request(method, url(sandbox, system, path), json={"n": 1})
        assert response.status_code == status
        assert response.json() == body
        assert response.headers.get("retry-after") == retry_after
        assert response.headers["content-type"].startswith("application/json")
    assert sandbox.apps[system].state.sim.writes == []  # type: ignore[index]  # a fault means not executed


def test_afas_timeout_message_in_dutch_and_english(sandbox: Sandbox, client: httpx.Client) -> None:
    sandbox.set_knobs("afas", fault_rate=1.0, fault_kinds=["timeout_message"])
    dutch = client.get(url(sandbox, "afas", "/items/1"), headers={"Accept-Language": "nl-nl"})
    english = client.get(url(sandbox, "afas", "/items/1"), headers={"Accept-Language": "en-us"})
    assert dutch.status_code == english.status_code == 500
    assert dutch.json()["externalMessage"] == AFAS_TIMEOUT_NL
    assert english.json()["externalMessage"] == AFAS_TIMEOUT_EN
    assert dutch.json()["errorNumber"] == -2147180999
    references = {dutch.json()["profitLogReference"], english.json()["profitLogReference"]}
    assert len(references) == 2
    assert all(AFAS_REFERENCE.match(ref) for ref in references)


def test_timeout_message_is_afas_only_and_writes_get_only_pre_app_faults() -> None:
    every = Knobs(fault_kinds=["slow", "reset", "timeout_message", "unavailable", "throttle"])
    assert every.fault_kinds == ("throttle", "unavailable", "timeout_message", "reset", "slow")
    assert applicable_kinds(every, "afas", "GET") == every.fault_kinds
    assert applicable_kinds(every, "topdesk", "GET") == ("throttle", "unavailable", "reset", "slow")
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        assert applicable_kinds(every, "afas", method) == ("throttle", "unavailable")
    assert applicable_kinds(Knobs(fault_kinds=["reset", "slow"]), "oh", "PUT") == ()


def test_writes_are_never_reset_slowed_or_timed_out(sandbox: Sandbox, client: httpx.Client) -> None:
    sandbox.set_knobs("oh", fault_rate=1.0, fault_kinds=["reset", "slow", "timeout_message"], slow_ms=5_000)
    for i in range(20):
        assert client.post(url(sandbox, "oh", "/items"), json={"i": i}).status_code == 201
    assert len(sandbox.apps["oh"].state.sim.writes) == 20
    assert sandbox.counters("oh")["endpoints"]["POST /items"]["faults"] == {}


def test_reset_drops_the_connection_before_any_response(sandbox: Sandbox, client: httpx.Client) -> None:
    sandbox.set_knobs("topdesk", fault_rate=1.0, fault_kinds=["reset"])
    with pytest.raises(httpx.TransportError):
        client.get(url(sandbox, "topdesk", "/items/1"))
    sandbox.set_knobs("topdesk", fault_rate=0.0)
    assert client.get(url(sandbox, "topdesk", "/items/1")).json() == {"id": "1"}
    counted = sandbox.counters("topdesk")["endpoints"]["GET /items/{id}"]
    assert counted == {"count": 2, "statuses": {"reset": 1, "200": 1}, "faults": {"reset": 1}}


def test_slow_fault_exceeds_a_short_client_timeout(sandbox: Sandbox) -> None:
    sandbox.set_knobs("afas", fault_rate=1.0, fault_kinds=["slow"], slow_ms=400)
    with httpx.Client(timeout=0.1) as impatient, pytest.raises(httpx.ReadTimeout):
        impatient.get(url(sandbox, "afas", "/items/1"))
    with httpx.Client(timeout=3) as patient:
        started = time.perf_counter()
        assert patient.get(url(sandbox, "afas", "/items/1")).status_code == 200
        assert time.perf_counter() - started >= 0.4
    # The server stopped waiting as soon as the impatient client hung up, instead of answering nobody.
    counted = sandbox.counters("afas")["endpoints"]["GET /items/{id}"]
    assert counted == {"count": 2, "statuses": {"client_gone": 1, "200": 1}, "faults": {"slow": 2}}


def test_requests_beyond_max_concurrency_get_the_throttle_answer(
    sandbox: Sandbox, client: httpx.Client
) -> None:
    sandbox.set_knobs("afas", max_concurrency=2, latency_ms=300)
    with ThreadPoolExecutor(max_workers=5) as pool:
        responses = list(
            pool.map(lambda i: client.post(url(sandbox, "afas", "/items"), json={"i": i}), range(5))
        )
    assert sorted(r.status_code for r in responses) == [201, 201, 503, 503, 503]
    refused = [r for r in responses if r.status_code == 503]
    assert all(r.json()["error"]["message"] == AFAS_OVERLOAD for r in refused)
    assert len(sandbox.apps["afas"].state.sim.writes) == 2  # refused writes were not executed
    counted = sandbox.counters("afas")["endpoints"]["POST /items"]
    assert counted == {"count": 5, "statuses": {"201": 2, "503": 3}, "faults": {"concurrency": 3}}
    sandbox.set_knobs("afas", max_concurrency=None, latency_ms=0)
    assert client.get(url(sandbox, "afas", "/items/1")).status_code == 200


def test_lost_response_commits_the_write_and_fails_the_client(sandbox: Sandbox, client: httpx.Client) -> None:
    sandbox.set_knobs("afas", lost_response_rate=1.0)
    with pytest.raises(httpx.RemoteProtocolError):  # headers came, the body did not
        client.post(url(sandbox, "afas", "/items"), json={"invoice": "A"})
    with pytest.raises(httpx.RemoteProtocolError):  # an empty 200 is withheld entirely
        client.put(url(sandbox, "afas", "/items"), json={"invoice": "B"})
    assert client.get(url(sandbox, "afas", "/items/1")).status_code == 200  # reads are never lost
    assert sandbox.apps["afas"].state.sim.writes == [("POST", {"invoice": "A"}), ("PUT", {"invoice": "B"})]
    endpoints = sandbox.counters("afas")["endpoints"]
    assert endpoints["POST /items"] == {"count": 1, "statuses": {"201": 1}, "faults": {"lost_response": 1}}
    assert endpoints["PUT /items"]["faults"] == {"lost_response": 1}


def test_lost_response_rate_applies_to_that_share_of_writes(sandbox: Sandbox, client: httpx.Client) -> None:
    sandbox.set_knobs("oh", lost_response_rate=0.5, seed=9)
    lost = 0
    for i in range(60):
        try:
            client.post(url(sandbox, "oh", "/items"), json={"i": i})
        except httpx.RemoteProtocolError:
            lost += 1
    assert 18 <= lost <= 42
    assert len(sandbox.apps["oh"].state.sim.writes) == 60  # every write was executed
    assert sandbox.counters("oh")["endpoints"]["POST /items"]["faults"] == {"lost_response": lost}


def test_control_endpoints_change_knobs_at_run_time(sandbox: Sandbox, client: httpx.Client) -> None:
    knobs_url = url(sandbox, "topdesk", "/__sandbox/knobs")
    assert client.get(knobs_url).json() == Knobs(seed=11).model_dump(mode="json")
    changed = client.put(knobs_url, json={"fault_rate": 1.0, "fault_kinds": ["unavailable"]})
    assert changed.status_code == 200
    assert changed.json()["fault_rate"] == 1.0
    assert sandbox.knobs("topdesk").fault_kinds == ("unavailable",)
    assert client.get(url(sandbox, "topdesk", "/items/1")).status_code == 503
    assert client.get(knobs_url).status_code == 200  # control endpoints are never faulted

    invalid = client.put(knobs_url, json={"fault_rate": 1.5})
    assert invalid.status_code == 422
    assert invalid.json()["detail"][0]["loc"] == ["fault_rate"]
    assert client.put(knobs_url, json={"no_such_knob": 1}).status_code == 422
    assert client.put(knobs_url, json=[1, 2]).status_code == 400
    assert client.put(knobs_url, content=b"{not json").status_code == 400
    assert sandbox.knobs("topdesk").fault_rate == 1.0  # rejected changes leave the knobs alone
    assert client.get(url(sandbox, "topdesk", "/__sandbox/nothing")).status_code == 404


def test_counters_count_per_endpoint_and_reset(sandbox: Sandbox, client: httpx.Client) -> None:
    for key in ("12", "13", "I 2301 104", "8d2f1b8e-3c4a-4b5e-9f60-1a2b3c4d5e6f"):
        client.get(url(sandbox, "oh", f"/items/{key}"))
    client.get(url(sandbox, "oh", "/nothing/here"))
    client.post(url(sandbox, "oh", "/items"), json={})
    client.get(url(sandbox, "oh", "/__sandbox/counters"))  # not counted
    counted = client.get(url(sandbox, "oh", "/__sandbox/counters")).json()
    assert counted == {
        "total": 6,
        "endpoints": {
            "GET /items/{id}": {"count": 4, "statuses": {"200": 4}, "faults": {}},
            "GET /nothing/here": {"count": 1, "statuses": {"404": 1}, "faults": {}},
            "POST /items": {"count": 1, "statuses": {"201": 1}, "faults": {}},
        },
    }
    assert sandbox.control["oh"].counters.count("GET", "/items/99") == 4
    assert sandbox.counters("topdesk")["total"] == 0  # each system counts its own
    reset = client.post(url(sandbox, "oh", "/__sandbox/counters/reset"))
    assert reset.json() == {"total": 0, "endpoints": {}}
    assert sandbox.counters("oh")["total"] == 0


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (
            "/tas/api/incidents/id/8d2f1b8e-3c4a-4b5e-9f60-1a2b3c4d5e6f/timespent",
            "/tas/api/incidents/id/{id}/timespent",
        ),
        ("/tas/api/incidents/number/I 2301 104", "/tas/api/incidents/number/{id}"),
        ("/tas/api/incidents/timeregistrations", "/tas/api/incidents/timeregistrations"),
        (
            "/services/reporting/v2/odata/ChangeTimeRegistrations",
            "/services/reporting/v2/odata/ChangeTimeRegistrations",
        ),
        ("/ProfitRestServices/connectors/Profit_Debtor", "/ProfitRestServices/connectors/Profit_Debtor"),
        (
            "/ProfitRestServices/connectors/T4E_HelloID_Users_v2",
            "/ProfitRestServices/connectors/T4E_HelloID_Users_v2",
        ),
        (
            "/ProfitRestServices/connectors/FbDirectInvoice/@OrNu/INV-A",
            "/ProfitRestServices/connectors/FbDirectInvoice/@OrNu/{id}",
        ),
        (
            "/ProfitRestServices/connectors/FiEntries/FiEntryPar/@UnId,EnNo/1,123",
            "/ProfitRestServices/connectors/FiEntries/FiEntryPar/@UnId,EnNo/{id}",
        ),
        ("/api/v1/departments/INT-ICT", "/api/v1/departments/{id}"),
        ("/api/v1/employments/1001-1", "/api/v1/employments/{id}"),
        ("/api/v1/registered-absences", "/api/v1/registered-absences"),
        ("/x/P10001-01/y/00ff00ff00ff00ff00ff", "/x/{id}/y/{id}"),
    ],
)
def test_paths_are_normalised_for_counting(path: str, expected: str) -> None:
    assert normalise_path(path) == expected


def test_in_process_transports_see_an_exception_for_a_reset() -> None:
    app = instrument(tiny_app(generate_core(seed=1, scale=100)), Knobs(fault_rate=1.0, fault_kinds=["reset"]))

    async def call() -> None:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://sandbox"
        ) as http:
            await http.get("/items/1")

    with pytest.raises(ConnectionResetError):
        asyncio.run(call())
    assert app.counters.snapshot()["endpoints"]["GET /items/{id}"]["statuses"] == {"reset": 1}


def test_instrument_rejects_an_unknown_flavour() -> None:
    with pytest.raises(ValueError, match="unknown flavour"):
        instrument(tiny_app(generate_core(seed=1, scale=100)), Knobs(), "sap")  # type: ignore[arg-type]
