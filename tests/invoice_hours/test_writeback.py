"""Write-back pieces without Prefect: the notes from ledger lines, and one row's protocol against the
TOPdesk simulator (httpx over ASGI) with a SQLite ledger: read-back, 404, lost answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pandas as pd
import pytest
from sqlalchemy import Engine

from connectors.http import RetryPolicy
from connectors.topdesk.client import TopdeskClient
from connectors.topdesk.settings import TopdeskSettings
from sandbox.topdesk import create_app
from sandbox.topdesk.ticket_writes import actions_of, knobs
from sandbox.world import generate_core
from sandbox.world import topdesk as world_topdesk
from store import ledger
from store import writeback as store
from store.db import connect
from store.settings import StoreSettings
from tasks.invoice_hours.config import parse_billing_config
from tasks.invoice_hours.writeback import KindWriteback, Writeback, notes
from tasks.invoice_hours.writeback_load import enabled, write_one
from tests.store_support import charges

REFERENCE = "KPL-1-202610-aaaa"
POLICY = RetryPolicy(max_attempts=4, base_delay=0.001, max_delay=0.01, max_total_seconds=10)


def posted_lines(**changes: object) -> pd.DataFrame:
    base = {
        "document_reference": [REFERENCE, REFERENCE, "KPL-1-202610-cccc", REFERENCE],
        "ticket_id": ["t1", "t1", "t1", "t2"],
        "ticket_number": ["I 1", "I 1", "I 1", "C 2"],
        "registration_kind": ["incident", "incident", "incident", "change"],
        "line_kind": ["charge", "charge", "credit", "charge"],
        "minutes": [30, 45, -75, 60],
        "reverses": [None, None, REFERENCE, None],
        "kind": ["direct_invoice"] * 4,
        "period": ["2026-10"] * 4,
    }
    return pd.DataFrame({**base, **changes})


def test_one_note_per_document_and_ticket_with_its_minutes() -> None:
    config = Writeback(incident=KindWriteback(memo=True, optional_field="optionalFields1.text2"))
    numbers = {REFERENCE: "2026000123", "KPL-1-202610-cccc": "2026000124"}
    made = {(n.document_reference, n.ticket_id): n for n in notes(posted_lines(), numbers, config)}
    assert set(made) == {(REFERENCE, "t1"), ("KPL-1-202610-cccc", "t1")}  # changes are off
    charge = made[(REFERENCE, "t1")]
    assert charge.memo == (
        f"[Koppel {REFERENCE}] Koppel: AFAS invoice 2026000123 (reference {REFERENCE}), "
        "period 2026-10: 75 minutes billed."
    )
    assert charge.field_value == f"Koppel {REFERENCE} 2026-10 75 min"
    credit = made[("KPL-1-202610-cccc", "t1")]
    assert credit.memo is not None and f"75 minutes credited, reverses {REFERENCE}" in credit.memo
    assert credit.field_value == "Koppel KPL-1-202610-cccc 2026-10 -75 min (credit)"
    assert notes(posted_lines(), {}, config) == []  # documents not posted get no note
    only_field = Writeback(change=KindWriteback(optional_field="optionalFields2.text5"))
    [change] = notes(posted_lines(), numbers, only_field)
    assert (change.memo, change.field_path) == (None, "optionalFields2.text5")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def app():
    world = generate_core(seed=3, scale=500)
    world.extra.update(world_topdesk.render(world))
    return create_app(world)


@pytest.fixture
async def client(app) -> AsyncIterator[TopdeskClient]:
    sim = app.state.sim
    settings = TopdeskSettings(
        base_url="https://acme.topdesk.test", login=sim.login, application_password=sim.password
    )
    transport = httpx.ASGITransport(app=app)
    async with TopdeskClient.from_settings(settings, policy=POLICY, transport=transport) as topdesk:
        yield topdesk


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = connect(StoreSettings(db_url=f"sqlite:///{tmp_path / 'state.db'}"))
    ledger.claim(engine, "run-0", charges(REFERENCE, ["r1"]))
    ledger.mark_posted(engine, REFERENCE, {"OrNu": "1"})
    return engine


def note(ticket: str) -> store.Note:
    return store.Note(REFERENCE, ticket, "incident", "I 1", f"[Koppel {REFERENCE}]", "memo", None, None)


def due(engine: Engine, note: store.Note) -> store.Due:
    store.enqueue(engine, [note])
    [item] = [i for i in store.due(engine, "run-1") if i.note == note]
    return item


@pytest.mark.anyio
async def test_a_lost_answer_is_read_back_and_not_written_twice(app, client, engine) -> None:
    ticket = str(app.state.sim.incidents.ids[1])
    mine = store.Note(
        REFERENCE, ticket, "incident", "I 1", f"[Koppel {REFERENCE}]", f"[Koppel {REFERENCE}] x", None, None
    )
    knobs(app.state.sim).lose_next = 1
    result = await write_one(client, engine, due(engine, mine), "run-1")
    assert (result.status, result.attempts) == ("written", 1)
    assert len(actions_of(app.state.sim, "incident", ticket)) == 1


@pytest.mark.anyio
async def test_a_retry_reads_back_first_and_an_unknown_ticket_fails_with_404(app, client, engine) -> None:
    ticket = str(app.state.sim.incidents.ids[2])
    mine = store.Note(
        REFERENCE, ticket, "incident", "I 1", f"[Koppel {REFERENCE}]", f"[Koppel {REFERENCE}] y", None, None
    )
    item = due(engine, mine)
    assert store.claim(engine, item, "dead-run")  # a run claimed it, wrote it, and died
    await client.send("PATCH", f"tas/api/incidents/id/{ticket}", {"action": mine.memo})
    [again] = [i for i in store.due(engine, "run-1") if i.note == mine]
    assert again.needs_read_back
    result = await write_one(client, engine, again, "run-1")
    assert result.status == "written" and len(actions_of(app.state.sim, "incident", ticket)) == 1

    gone = note("00000000-0000-0000-0000-000000000000")
    failed = await write_one(client, engine, due(engine, gone), "run-1")
    assert failed.status == "failed" and failed.message.startswith("404: ")
    rows = store.state(engine).set_index("ticket_id")
    assert rows.loc[gone.ticket_id, "status"] == "failed"
    assert "not found" in rows.loc[gone.ticket_id, "error_message"]


@pytest.mark.anyio
async def test_an_incident_gets_its_memo_and_field_in_one_request(app, client, engine) -> None:
    sim, ticket = app.state.sim, str(app.state.sim.incidents.ids[3])
    marker = f"[Koppel {REFERENCE}]"
    mine = store.Note(
        REFERENCE, ticket, "incident", "I 1", marker, f"{marker} z", "optionalFields1.text2", "v"
    )
    before = knobs(sim).writes
    result = await write_one(client, engine, due(engine, mine), "run-1")
    assert result.status == "written" and knobs(sim).writes == before + 1
    assert knobs(sim).incident_fields[ticket]["optionalFields1"]["text2"] == "v"
    assert [a["memoText"] for a in actions_of(sim, "incident", ticket)] == [f"{marker} z"]


def test_rows_of_a_kind_turned_off_wait() -> None:
    base = (Path(__file__).resolve().parents[2] / "config" / "billing.toml").read_text()
    config = parse_billing_config(base + "[writeback.change]\nmemo = true\n")
    rows = [
        store.Due(note("t1"), "failed", 1),
        store.Due(replace(note("t2"), registration_kind="change"), "pending", 0),
    ]
    assert [item.note.ticket_id for item in enabled(rows, config)] == ["t2"]
