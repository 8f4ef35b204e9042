"""hr-sync and absence-to-afas end to end against the sandbox (AFAS + occupational-health simulators)."""

from __future__ import annotations

import asyncio
from datetime import date

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.exceptions import ParameterTypeError

from connectors.afas.client import AfasClient
from connectors.afas.payloads import element
from connectors.afas.settings import AfasSettings
from connectors.occupational_health.endpoints import ORDER
from flows.absence_to_afas import absence_to_afas
from flows.hr_sync import HrSyncParameters, hr_sync
from sandbox.occupational_health import AbsenceIn, EmployeeIn, OhOptions
from sandbox.server import running_sandbox
from sandbox.world import generate_world
from tests.fixtures.worlds import HR
from tests.invoice_support import use_sandbox
from tests.run_support import finished

pytestmark = pytest.mark.prefect

WRITES = ("PUT", "DELETE", "POST")


def small_world():
    """14 employees (two of them in a flex construction), 10 departments, 18 absences, 8 user accounts."""
    return generate_world(seed=7, scale=100)


@pytest.fixture
def sandbox(sandboxes, monkeypatch, tmp_path):
    """The session's HR-world sandbox (tests/fixtures/worlds.py), settings at it, a fresh state database."""
    running = sandboxes(HR)
    use_sandbox(monkeypatch, running, tmp_path)
    return running


def config_file(tmp_path, text: str) -> str:
    path = tmp_path / "hr.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def oh(sandbox):
    return sandbox.apps["oh"].state.sim


def afas(sandbox):
    return sandbox.apps["afas"].state.sim


def received(sandbox, start: int = 0) -> list[tuple[str, str, str]]:
    return [(r.method, r.resource, r.external_id) for r in oh(sandbox).received[start:]]


def sync(clean: bool = True, **kwargs):
    """An hr-sync run's result; ``clean``: it must end green (every change the OH system was sent, taken)."""
    result = finished(hr_sync, **HrSyncParameters(from_date="2024-11-21", **kwargs).model_dump())
    assert (result["not_clean"] is None) == clean, result["not_clean"]
    return result


def afas_update(sandbox, fields: dict) -> None:
    settings = AfasSettings(
        environment_number=sandbox.afas_environment, token=sandbox.afas_token, base_url=sandbox.afas_url
    )

    async def put() -> None:
        async with AfasClient.from_settings(settings) as client:
            await client.update("HrIllness", element(fields))

    asyncio.run(put())


def artifact(key: str):
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    return found[-1] if found else None


def reopen_latest_absence(sandbox, employee: str) -> str:
    """Reopen ``employee``'s latest absence in AFAS (an AFAS user empties its end date); its start date."""
    latest = max(afas(sandbox).tables["illness"].where(EmployeeId=employee), key=lambda r: r["StartDate"])
    start = latest["StartDate"].date().isoformat()
    afas_update(sandbox, {"EmId": employee, "DaBe": start, "DaEn": ""})
    return str(latest["AbsenceId"])


@pytest.mark.slow  # three flow runs, the first one warms Prefect up: about 10 s
def test_first_run_sends_everything_in_order_second_nothing_and_a_closed_absence_follows(
    prefect_harness, sandbox
):
    still_sick = reopen_latest_absence(sandbox, "1002")
    first = sync()
    writes = received(sandbox)
    assert {method for method, _, _ in writes} == {"PUT"}
    entities = [resource for _, resource, _ in writes]
    assert entities == sorted(
        entities, key=ORDER.index
    )  # departments, employees, employments, absences, users
    counts = first["counts"].set_index("entity")
    created = oh(sandbox).outcomes
    for entity in ORDER:
        assert counts.loc[entity, "created"] == counts.loc[entity, "to_oh"] == created[(entity, "created")]
        assert counts.loc[entity, "failed"] == 0 and counts.loc[entity, "rejected"] == 0
    assert counts.loc["departments", "created"] == 10 and counts.loc["users", "created"] == 7
    assert set(first["flex"]["employee_id"]) == {"1001", "1008"}  # concurrent employments: held back
    assert oh(sandbox).get("employees", "1001") is None and oh(sandbox).get("employees", "1002") is not None
    employment = oh(sandbox).get("employments", "1002-1").body
    assert employment.salary is None and employment.salary_kind is None  # salary column off by default
    summary = artifact("hr-sync-summary")
    assert summary is not None and "1001-1, 1001-2" in summary.data

    second = sync()
    assert received(sandbox, len(writes)) == []
    assert second["changes"].empty

    open_absence = oh(sandbox).get("absences", still_sick).body
    assert open_absence.end_date is None
    afas_update(sandbox, {"EmId": "1002", "DaBe": open_absence.start_date.isoformat(), "DaEn": "2026-11-20"})
    before = len(oh(sandbox).received)
    third = sync()
    assert received(sandbox, before) == [("PUT", "absences", still_sick)]
    assert oh(sandbox).get("absences", still_sick).body.end_date == date(2026, 11, 20)
    assert third["counts"].set_index("entity").loc["absences", "read"].startswith("changed since")


@pytest.mark.slow  # four flow runs: about 5 s
def test_a_row_deleted_in_afas_is_deactivated_by_the_full_comparison(prefect_harness, sandbox):
    sync()
    absence = next(iter(oh(sandbox).records["absences"]))
    afas(sandbox).tables["illness"].remove([afas(sandbox).tables["illness"].get(int(absence))])
    before = len(oh(sandbox).received)
    assert sync(mode="incremental")["changes"].empty  # an incremental read cannot see a deletion
    dry = sync(mode="full", dry_run=True)
    assert dry["changes"][["external_id", "action", "outcome"]].values.tolist() == [
        [absence, "deactivate", "planned"]
    ]
    assert len(oh(sandbox).received) == before  # a dry run sends nothing (and stores nothing)
    full = sync(mode="full")
    assert received(sandbox, before) == [("DELETE", "absences", absence)]
    assert oh(sandbox).get("absences", absence).active is False
    assert full["changes"]["outcome"].tolist() == ["deactivated"]


def test_the_salary_column_is_sent_only_when_enabled(prefect_harness, sandbox, tmp_path):
    sync(config_path=config_file(tmp_path, 'salary = "sv_wage"\n'))
    world = small_world().extra["hr_employments"].set_index(["employee_id", "employment_id"])
    employment = oh(sandbox).get("employments", "1002-1").body
    assert employment.salary_kind == "sv_wage"
    assert employment.salary == world.loc[("1002", 1), "sv_wage"]
    before = len(oh(sandbox).received)
    off = sync(config_path=config_file(tmp_path, 'salary = "off"\n'))  # the config changed: full read
    assert {r.resource for r in oh(sandbox).received[before:]} == {"employments"}
    assert oh(sandbox).get("employments", "1002-1").body.salary is None
    assert off["counts"].set_index("entity").loc["employments", "read"] == "full (configuration changed)"


def test_a_malformed_from_date_is_refused_with_the_expected_format(prefect_harness, sandbox):
    with pytest.raises(ParameterTypeError, match=r"from_date must be a date written YYYY-MM-DD") as caught:
        hr_sync(from_date="21-11-2024")
    assert "21-11-2024" in str(caught.value)
    assert oh(sandbox).received == []


@pytest.mark.slow  # one hr-sync and three absence-to-afas runs: about 5 s
def test_absence_registered_in_oh_appears_once_in_afas_also_after_a_rerun(prefect_harness, sandbox, tmp_path):
    path = config_file(tmp_path, "[absence_to_afas]\nenabled = true\nlook_back_days = 365\n")
    sync(config_path=path)  # the employee and employment exist in the OH system
    afas(sandbox).tables["illness"].remove(afas(sandbox).tables["illness"].where(EmployeeId="1002"))
    mine = oh(sandbox).register_absence(
        AbsenceIn(
            employee_external_id="1002",
            employment_external_id="1002-1",
            start_date=date(2026, 11, 16),
            expected_end=date(2026, 11, 23),
        )
    )
    first = finished(absence_to_afas, config_path=path)
    outcomes = first["absences"].set_index("external_id")
    assert outcomes.loc[mine.external_id, "outcome"] == "inserted"
    refused = outcomes[outcomes["outcome"] == "rejected"]  # the world's bad absences: not green
    assert mine.external_id not in refused.index
    assert first["not_clean"] == f"{len(refused)} absence{'s' if len(refused) != 1 else ''} refused by AFAS"
    rows = afas(sandbox).tables["illness"].where(EmployeeId="1002")
    assert [(r["StartDate"].date(), r["DvId"], r["EndDate"]) for r in rows] == [(date(2026, 11, 16), 1, None)]

    again = finished(absence_to_afas, config_path=path)
    # the overlap window reads it again; AFAS already has it, so nothing is posted
    assert again["absences"].set_index("external_id").loc[mine.external_id, "outcome"] == "unchanged"
    assert len(afas(sandbox).tables["illness"].where(EmployeeId="1002")) == 1
    oh(sandbox).update_registered_absence(mine.external_id, end_date=date(2026, 11, 19))
    closed = finished(absence_to_afas, config_path=path)
    assert closed["absences"].set_index("external_id").loc[mine.external_id, "outcome"] == "updated"
    rows = afas(sandbox).tables["illness"].where(EmployeeId="1002")
    assert len(rows) == 1 and rows[0]["EndDate"].date() == date(2026, 11, 19)


def test_absence_to_afas_is_off_by_default(prefect_harness, sandbox):
    assert absence_to_afas() == {"enabled": False}
    assert oh(sandbox).received == []
    assert all(p.connector != "HrIllness" for p in afas(sandbox).posted)


def writes_per_entity(sandbox, start: int = 0) -> dict[str, int]:
    """OH writes (PUT and DELETE) per resource since ``start``."""
    counts: dict[str, int] = {}
    for method, resource, _ in received(sandbox, start):
        if method in WRITES:
            counts[resource] = counts.get(resource, 0) + 1
    return counts


@pytest.mark.slow  # three flow runs: about 6 s
def test_each_xs_option_sends_exactly_its_entities(prefect_harness, sandbox, tmp_path):
    werknemer = config_file(tmp_path, 'options = ["werknemer"]\nmanager_accounts = false\n')
    first = sync(config_path=werknemer)
    assert set(writes_per_entity(sandbox)) == {"departments", "employees", "employments"}
    counts = first["counts"].set_index("entity")
    assert counts.loc["absences", "to_oh"] == counts.loc["users", "to_oh"] == "not sent (option)"
    assert not oh(sandbox).records["absences"] and not oh(sandbox).records["users"]

    before = len(oh(sandbox).received)
    verzuim = config_file(tmp_path, 'options = ["verzuim"]\nmanager_accounts = false\n')
    sync(config_path=verzuim)
    absences = writes_per_entity(sandbox, before)
    assert set(absences) == {"absences"} and absences["absences"] == len(oh(sandbox).records["absences"]) > 0

    before = len(oh(sandbox).received)
    sync(config_path=config_file(tmp_path, 'options = ["werknemer"]\n'))  # manager accounts switched on
    assert set(writes_per_entity(sandbox, before)) == {"users"}


def test_no_department_goes_out_with_a_held_back_manager(prefect_harness, sandbox):
    result = sync()
    held = set(result["held"][result["held"]["entity"] == "employees"]["key"])
    assert held == {"1001", "1008"}
    managers = {r.body.manager_employee_external_id for r in oh(sandbox).records["departments"].values()}
    assert not managers & held
    assert set(afas(sandbox).tables["org_units"].column("ManagerId")) & held, "the world has a flex manager"
    assert not result["without_manager"].empty


def test_a_name_with_a_prefix_round_trips_from_afas_to_the_oh_system(prefect_harness, sandbox):
    sync()
    served = {r["EmployeeId"]: r for r in afas(sandbox).tables["employees"]}
    with_prefix = [e for e, r in served.items() if r["Prefix"]]
    assert with_prefix, "the world has employees with a tussenvoegsel"
    world = small_world().extra["hr_employees"].set_index("employee_id")
    for employee in with_prefix:
        record = oh(sandbox).get("employees", employee)
        if record is None:
            continue  # held back (flex construction)
        body = record.body
        assert (body.first_name, body.name_prefix, body.last_name) == (
            served[employee]["FirstName"],
            served[employee]["Prefix"],
            served[employee]["LastName"],
        )
        assert f"{body.name_prefix} {body.last_name}" == world.loc[employee, "last_name"]  # nothing lost
    before = len(oh(sandbox).received)
    sync()
    assert received(sandbox, before) == []  # the parts compare equal on the next run: nothing resent


@pytest.mark.slow  # four flow runs: about 8 s
def test_initial_sync_reports_seeded_differences_and_changes_nothing_until_confirmed(
    prefect_harness, sandbox, tmp_path, monkeypatch
):
    sync()  # the OH customer's data from before Koppel (in another state database)
    monkeypatch.setenv("KOPPEL_STATE_DB_URL", f"sqlite:///{tmp_path / 'fresh.db'}")
    state = oh(sandbox)
    changed = next(k for k, r in sorted(state.records["employees"].items()) if r.active)
    state.records["employees"][changed].body = state.records["employees"][changed].body.model_copy(
        update={"last_name": "Anders ingevoerd"}
    )
    state.upsert("employees", "OH-9001", EmployeeIn(last_name="Extern", birth_date=date(1990, 1, 1)))
    missing = sorted(state.records["absences"])[0]
    del state.records["absences"][missing]
    expected = {
        ("employees", changed, "differs", "last_name", "update"),
        ("employees", "OH-9001", "only in OH", "", "deactivate"),
        ("absences", missing, "only in AFAS", None, "create"),
    }

    before = len(state.received)
    report = sync(config_path=config_file(tmp_path, 'initial_sync = "report"\n'))
    assert len(state.received) == before  # zero writes until confirmed
    found = {
        (
            r.entity,
            r.external_id,
            r.difference,
            r.fields if r.difference != "only in AFAS" else None,
            r.when_confirmed,
        )
        for r in report["differences"].itertuples(index=False)
    }
    assert found == expected
    assert artifact("hr-sync-initial-differences") is not None
    again = sync(config_path=config_file(tmp_path, 'initial_sync = "report"\n'))
    assert len(state.received) == before and len(again["differences"]) == len(expected)  # nothing stored

    confirmed = sync(config_path=config_file(tmp_path, 'initial_sync = "confirmed"\n'))
    assert sorted(received(sandbox, before)) == sorted(
        [("PUT", "employees", changed), ("DELETE", "employees", "OH-9001"), ("PUT", "absences", missing)]
    )
    assert set(confirmed["changes"]["outcome"]) <= {"created", "updated", "deactivated"}
    assert state.get("employees", changed).body.last_name != "Anders ingevoerd"
    assert state.get("employees", "OH-9001").active is False

    after = len(state.received)
    assert sync()["changes"].empty  # the regular sync goes on from what the OH system now holds
    assert len(state.received) == after


@pytest.mark.slow  # two flow runs in a sandbox whose OH account requires the employer key: about 6 s
def test_two_employers_records_arrive_with_their_employer_key(prefect_harness, monkeypatch, tmp_path):
    with running_sandbox(small_world(), options={"oh": OhOptions(employer_required=True)}) as strict:
        for key, value in strict.env().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("KOPPEL_STATE_DB_URL", f"sqlite:///{tmp_path / 'state.db'}")
        state = oh(strict)
        single = sync(clean=False, config_path=config_file(tmp_path, ""))
        refused = single["changes"][single["changes"]["outcome"] == "rejected"]
        assert single["not_clean"] == f"{len(refused)} changes refused by the occupational-health system"
        assert set(refused["entity"]) == {"employees", "employments", "absences", "users"}
        assert "employer_external_id" in refused["message"].iloc[0]  # the account insists on the key

        several = 'several_employers = true\n[employments.columns]\nemployer_id = "EmployerId"\n'
        result = sync(config_path=config_file(tmp_path, several))
        assert not (result["changes"]["outcome"] == "rejected").any()
        employments = {
            f"{r['EmployeeId']}-{r['DvId']}": r["EmployerId"] for r in afas(strict).tables["employments"]
        }
        sent = {k: r.body.employer_external_id for k, r in state.records["employments"].items()}
        assert sent and sent == {k: employments[k] for k in sent}
        assert set(sent.values()) == {"1", "2"}  # both employers in one OH customer account
        for key, record in state.records["absences"].items():
            assert record.body.employer_external_id == sent[record.body.employment_external_id], key
        for key, record in state.records["employees"].items():
            if record.active:
                mine = {v for k, v in sent.items() if k.startswith(f"{key}-")}
                assert record.body.employer_external_id in mine, key
        assert all(r.body.employer_external_id for r in state.records["users"].values())
        assert state.records["departments"]  # shared by the employers: no key
