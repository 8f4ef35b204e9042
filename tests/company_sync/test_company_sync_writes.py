"""Company sync: TOPdesk writes (failures stay alone), the AFAS snapshot history and the run report."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pandas as pd
import pytest

from connectors.topdesk.client import TopdeskClient
from connectors.topdesk.settings import TopdeskSettings
from koppel.settings import load
from store.db import connect
from store.settings import StoreSettings
from store.snapshots import SnapshotError
from tasks.company_sync import history
from tasks.company_sync.apply import Writer, resolve_reason
from tasks.company_sync.plan import action
from tasks.company_sync.report import changes_table, counts_table, errors_table, planned_outcomes, statistics


@pytest.fixture
def sandbox(tiny_sandbox):
    return tiny_sandbox


def run_writer(actions: list[dict], reason_id: str | None) -> pd.DataFrame:
    async def go() -> pd.DataFrame:
        async with TopdeskClient.from_settings(load(TopdeskSettings)) as client:
            return await Writer(client, reason_id, "no archiving reason configured", 2).run(
                pd.DataFrame(actions)
            )

    return asyncio.run(go())


def test_a_refused_write_fails_alone_and_persons_follow_their_new_branch(sandbox) -> None:
    sim = sandbox.apps["topdesk"].state.sim
    existing = next(b for b in sim.branches.by_id.values() if not b["archived"])
    new_person = {"employeeNumber": "90001", "surName": "Bos"}
    actions = [
        action("person", "create", "90001", "Bos", body=new_person, branch_key="77001"),
        action(
            "branch", "create", "77001", "Nieuw", body={"clientReferenceNumber": "77001", "name": "Nieuw"}
        ),
        action(
            "branch",
            "update",
            existing["clientReferenceNumber"],
            "x",
            topdesk_id=existing["id"],
            body={"name": "Y" * 61},
        ),
        action("branch", "archive", "1", "x", topdesk_id=existing["id"]),
        action(
            "person",
            "create",
            "90002",
            "Kok",
            body={"employeeNumber": "90002", "surName": "Kok"},
            branch_key="77999",
        ),
    ]
    outcomes = run_writer(actions, reason_id=None)
    assert outcomes["status"].tolist() == ["done", "done", "failed", "failed", "failed"]
    assert 'The value for the field "name" can only be 60 characters long.' in outcomes.loc[2, "message"]
    assert outcomes.loc[3, "message"] == "no archiving reason configured"
    assert outcomes.loc[4, "message"] == "the branch of debtor 77999 was not created in this run"
    created = sim.branches.by_id[outcomes.loc[1, "topdesk_id"]]
    assert created["clientReferenceNumber"] == "77001"
    assert sim.persons.by_id[outcomes.loc[0, "topdesk_id"]]["branch"] == created["id"]
    assert existing["name"] != "Y" * 61 and existing["archived"] is False


def test_archiving_reasons_resolve_by_id_or_name() -> None:
    reasons = pd.DataFrame({"id": ["r1", "r2"], "name": ["Klant vertrokken", "Niet meer actief in AFAS"]})
    assert resolve_reason(reasons, "r1") == ("r1", "")
    assert resolve_reason(reasons, "Niet meer actief in AFAS") == ("r2", "")
    missing, why = resolve_reason(reasons, "Weg")
    assert (
        missing is None
        and "'Weg' not found in TOPdesk (it has: Klant vertrokken, Niet meer actief in AFAS)" in why
    )


def debtors(*rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["DebtorId", "DebtorName", "Blocked"])


def test_the_import_records_changes_and_remembers_numbers_afas_no_longer_has(tmp_path) -> None:
    engine = connect(StoreSettings(db_url=f"sqlite:///{tmp_path / 'state.db'}"))
    contacts = pd.DataFrame({"ContactId": [1, 2], "PerNumber": ["50001", "50002"], "FullName": ["A", "B"]})
    day = datetime(2026, 11, 2, tzinfo=UTC)
    changes, left_out = history.import_relations(
        engine, debtors(("1", "A", False), ("2", "B", False), (None, "C", False)), contacts, day
    )
    assert left_out == {"afas_debtors": 1, "afas_contacts": 0}
    assert history.change_summary(changes).values.tolist() == [
        ["afas_contacts", "added", 2],
        ["afas_debtors", "added", 2],
    ]
    changes, _ = history.import_relations(
        engine, debtors(("1", "A2", True)), contacts.head(1), day.replace(day=3)
    )
    table = history.changes_table(changes)
    assert table.values.tolist() == [
        ["afas_debtors", "1", "changed", "Blocked", "False", "True"],
        ["afas_debtors", "1", "changed", "DebtorName", "A", "A2"],
        ["afas_debtors", "2", "removed", "(row)", "B", ""],
        ["afas_contacts", "2", "removed", "(row)", "B", ""],
    ]
    assert history.known_values(engine, history.DEBTORS, "DebtorId") == {"1", "2"}
    assert history.known_values(engine, history.CONTACTS, "PerNumber") == {"50001", "50002"}
    with pytest.raises(SnapshotError, match="empty snapshot of afas_debtors refused"):
        history.import_relations(engine, debtors(), None)


def test_the_report_shows_each_field_change_with_its_status_and_every_error() -> None:
    actions = pd.DataFrame(
        [
            action(
                "branch",
                "update",
                "1",
                "A",
                topdesk_id="b1",
                changes=[{"field": "name", "before": "A", "after": "A2"}],
            ),
            action(
                "branch",
                "archive",
                "2",
                "B",
                topdesk_id="b2",
                changes=[{"field": "archived", "before": "false", "after": "true"}],
                reason="gone from AFAS",
            ),
        ]
    )
    outcomes = planned_outcomes(actions, "done")
    outcomes.loc[1, ["status", "message"]] = ["failed", "TOPdesk said no"]
    table = changes_table(actions, outcomes)
    assert table[["action", "field", "before", "after", "status", "message"]].values.tolist() == [
        ["update", "name", "A", "A2", "done", ""],
        ["archive", "archived", "false", "true", "failed", "TOPdesk said no"],
    ]
    rejects = pd.DataFrame(
        [{"entity": "debtor", "key": None, "name": "C", "field": "name", "reason": "debtor without DebtorId"}]
    )
    errors = errors_table(rejects, actions, outcomes)
    assert errors[["step", "reason"]].values.tolist() == [
        ["validate", "debtor without DebtorId"],
        ["write", "archive failed: TOPdesk said no"],
    ]
    assert counts_table(outcomes).values.tolist() == [
        ["branch", "archive", 1, 0, 1],
        ["branch", "update", 1, 1, 0],
    ]
    stats = statistics(outcomes, rejects, pd.DataFrame(), {"branch unchanged": 7})
    assert stats == {
        "branch archive": {"count": 0},
        "branch archive failed": {"count": 1},
        "branch update": {"count": 1},
        "rejected": {"count": 1},
        "review": {"count": 0},
        "branch unchanged": {"count": 7},
    }


def test_a_person_keyed_by_an_optional_field_is_created_once_after_a_lost_answer(sandbox) -> None:
    sim = sandbox.apps["topdesk"].state.sim
    branch = next(b for b in sim.branches.by_id.values() if not b["archived"])
    body = {"optionalFields1.text1": "P-4711", "surName": "Vries", "prefixes": "de"}
    row = action(
        "person", "create", "P-4711", "de Vries", body=body, branch_key=branch["clientReferenceNumber"]
    )
    row["branch_id"] = branch["id"]

    async def go() -> pd.DataFrame:
        async with TopdeskClient.from_settings(load(TopdeskSettings)) as client:
            writer = Writer(client, None, "no reason", 1, person_key="optionalFields1.text1")
            return await writer.run(pd.DataFrame([row]))

    sandbox.set_knobs("topdesk", lost_response_rate=1.0)  # the POST lands, its answer is lost
    outcomes = asyncio.run(go())
    sandbox.set_knobs("topdesk", lost_response_rate=0.0)
    assert outcomes["status"].tolist() == ["done"], outcomes["message"].tolist()
    mine = [
        p for p in sim.persons.by_id.values() if (p.get("optionalFields1") or {}).get("text1") == "P-4711"
    ]
    assert len(mine) == 1 and mine[0]["prefixes"] == "de"
