"""The occupational-health client against the OH simulator (and a mock transport for lost answers)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from connectors.errors import AuthError, ProtocolError, UncertainOutcome
from connectors.http import RetryPolicy
from connectors.occupational_health.client import OhClient
from connectors.occupational_health.endpoints import (
    employment_external_id,
    split_employment_external_id,
)
from connectors.occupational_health.errors import RecordRefused
from connectors.occupational_health.settings import OccupationalHealthSettings
from sandbox import occupational_health as oh_sim
from sandbox.server import Sandbox, running_sandbox
from sandbox.world import generate_world
from schemas.hr import RegisteredAbsences

FAST = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.01, max_total_seconds=10)
DEPARTMENT = {"name": "Servicedesk", "parent_external_id": None, "manager_employee_external_id": "1001"}
EMPLOYEE = {"first_name": "Anne", "last_name": "Jansen", "birth_date": "1985-04-12", "email": "a@x.nl"}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with running_sandbox(generate_world(seed=7, scale=100)) as running:
        yield running


def client_for(sandbox: Sandbox, token: str | None = None, **kwargs) -> OhClient:
    settings = OccupationalHealthSettings(url=sandbox.oh_url, token=token or sandbox.oh_token)
    return OhClient.from_settings(settings, policy=FAST, seed=1, **kwargs)


def run(coroutine):
    return asyncio.run(coroutine)


def test_upsert_creates_then_leaves_an_equal_record_alone_and_updates_a_changed_one(sandbox):
    async def scenario():
        async with client_for(sandbox) as oh:
            first = await oh.upsert("departments", "C-T01", DEPARTMENT)
            again = await oh.upsert("departments", "C-T01", DEPARTMENT)
            changed = await oh.upsert("departments", "C-T01", {**DEPARTMENT, "name": "Eerste lijn"})
            return first, again, changed

    first, again, changed = run(scenario())
    assert first.created and not again.created and not changed.created
    assert (first.record["version"], again.record["version"], changed.record["version"]) == (1, 1, 2)
    assert sandbox.apps["oh"].state.sim.get("departments", "C-T01").body.name == "Eerste lijn"


def test_a_refused_record_is_a_record_refused_error_with_the_field_messages(sandbox):
    body = {"employee_external_id": "C-404", "department_external_id": "C-NOPE", "start_date": "2020-01-01"}

    async def scenario():
        async with client_for(sandbox) as oh:
            await oh.upsert("employments", "C-404-1", body)

    with pytest.raises(RecordRefused) as caught:
        run(scenario())
    fields = [e["field"] for e in caught.value.errors]
    assert fields == ["department_external_id", "employee_external_id"]
    assert caught.value.status == 422
    assert "department 'C-NOPE' does not exist or is inactive" in caught.value.message


def test_deactivate_keeps_the_record_inactive_and_reports_unknown_ones_as_none(sandbox):
    async def scenario():
        async with client_for(sandbox) as oh:
            await oh.upsert("employees", "C-1001", EMPLOYEE)
            gone = await oh.deactivate("employees", "C-1001")
            twice = await oh.deactivate("employees", "C-1001")
            unknown = await oh.deactivate("employees", "C-nobody")
            back = await oh.upsert("employees", "C-1001", EMPLOYEE)
            return gone, twice, unknown, back

    gone, twice, unknown, back = run(scenario())
    assert gone["active"] is False and twice["active"] is False and unknown is None
    assert back.record["active"] is True and back.record["version"] == 3  # reactivated by the PUT


def test_read_frame_pages_to_the_end_and_types_the_columns(sandbox):
    async def scenario():
        async with client_for(sandbox) as oh:
            for n in range(5):
                body = {"employee_external_id": "C-2000", "username": f"u{n}", "blocked": n == 3}
                await oh.upsert("employees", "C-2000", EMPLOYEE)
                await oh.upsert("users", f"C-U{n}", body)
            frame = await oh.read_frame("users", page_size=2)
            return frame, oh.stats()

    frame, stats = run(scenario())
    mine = frame[frame["external_id"].str.startswith("C-U")]
    assert list(mine["external_id"]) == [f"C-U{n}" for n in range(5)]
    assert list(mine["blocked"]) == [False, False, False, True, False]
    assert str(frame["updated_at"].dtype) == "datetime64[ns, UTC]" and str(frame["version"].dtype) == "Int64"
    assert stats["GET api/v1/users"]["count"] == -(-len(frame) // 2)  # ceil: every page read once


def test_registered_absences_since_a_moment_typed_and_conforming(sandbox):
    sim = sandbox.apps["oh"].state.sim
    newest = max(r.updated_at for r in sim.registered.values())

    async def scenario():
        async with client_for(sandbox) as oh:
            everything = await oh.registered_absences(page_size=2)
            recent = await oh.registered_absences(changed_since=newest)
            later = await oh.registered_absences(changed_since=newest + timedelta(seconds=1))
            return everything, recent, later

    everything, recent, later = run(scenario())
    assert set(everything["external_id"]) == set(sim.registered) and len(everything) == 5
    assert len(recent) >= 1 and later.empty and list(later.columns) == list(everything.columns)
    RegisteredAbsences.validate(everything)
    first = everything.iloc[0]
    assert isinstance(first["start_date"], date) and isinstance(first["presence_pct"], Decimal)
    with pytest.raises(ValueError, match="time-zone aware"):
        run(client_for(sandbox).registered_absences(changed_since=datetime(2026, 1, 1)))  # noqa: DTZ001


def test_a_wrong_token_is_an_auth_error_that_never_shows_the_token(sandbox, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "wrong-token-123456"

    async def scenario():
        async with client_for(sandbox, token=secret) as oh:
            assert secret not in repr(oh)
            await oh.ping()

    with pytest.raises(AuthError) as caught:
        run(scenario())
    assert caught.value.status == 401 and secret not in str(caught.value)
    assert secret not in caplog.text


def mock_client(handler) -> OhClient:
    settings = OccupationalHealthSettings(url="http://oh.test", token="mock-token-123456")
    return OhClient.from_settings(settings, policy=FAST, transport=httpx.MockTransport(handler), seed=1)


def test_a_lost_answer_to_a_put_is_sent_again_because_the_upsert_is_idempotent():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(json.loads(request.content))
        if len(calls) == 1:
            raise httpx.ReadError("connection lost after sending")
        return httpx.Response(200, json={"external_id": "1001", **calls[-1], "active": True, "version": 1})

    async def scenario():
        async with mock_client(handler) as oh:
            return await oh.upsert("employees", "1001", EMPLOYEE)

    answer = run(scenario())
    assert len(calls) == 2 and calls[0] == calls[1] == EMPLOYEE
    assert answer.record["version"] == 1 and not answer.created


def test_writes_lost_every_time_end_in_uncertain_outcome_after_three_sends():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        raise httpx.ReadError("lost")

    async def scenario():
        async with mock_client(handler) as oh:
            await oh.deactivate("employees", "1001")

    with pytest.raises(UncertainOutcome):
        run(scenario())
    assert calls == ["DELETE"] * 3


def test_a_next_page_on_another_host_is_not_followed():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json={"items": [{"external_id": "X"}], "next": "http://evil.test/api/v1/users"}
        )

    async def scenario():
        async with mock_client(handler) as oh:
            await oh.read_frame("users")

    with pytest.raises(ProtocolError, match="another host"):
        run(scenario())


def test_bodies_with_unknown_or_missing_fields_are_refused_before_sending():
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("nothing may be sent")

    async def scenario(body):
        async with mock_client(handler) as oh:
            await oh.upsert("employees", "1001", body)

    with pytest.raises(ValueError, match="unknown field"):
        run(scenario({**EMPLOYEE, "salary": "1"}))
    with pytest.raises(ValueError, match="last_name"):
        run(scenario({**EMPLOYEE, "last_name": None}))


def test_employment_external_ids_are_those_of_the_oh_system():
    assert employment_external_id("1001", 2) == oh_sim.employment_external_id("1001", 2) == "1001-2"
    assert split_employment_external_id("E-1001-12") == ("E-1001", "12")
    with pytest.raises(ValueError, match="not '<employee>-<employment>'"):
        split_employment_external_id("1001")


def test_changed_since_is_sent_with_its_offset():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.params["changed_since"])
        return httpx.Response(200, json={"items": [], "next": None})

    async def scenario():
        async with mock_client(handler) as oh:
            return await oh.registered_absences(changed_since=datetime(2026, 11, 1, 8, 30, tzinfo=UTC))

    frame = run(scenario())
    assert frame.empty and seen == ["2026-11-01T08:30:00+00:00"]
