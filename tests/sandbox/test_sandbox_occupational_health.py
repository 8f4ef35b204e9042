"""The occupational-health simulator: auth, idempotent upserts, deactivation, references, paging,
absences registered on the OH side."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import httpx
import pandas as pd
import pytest

from sandbox.occupational_health import (
    MAX_PAGE_SIZE,
    AbsenceIn,
    OhOptions,
    OhState,
    create_app,
    default_token,
    employment_external_id,
    seed_registered_absences,
)
from sandbox.server import Sandbox, running_sandbox
from sandbox.world import World, generate_core
from tests.sandbox.test_sandbox_knobs import tiny_app

TOKEN = "test-token"
DEPT = {"name": "Servicedesk", "parent_external_id": None, "manager_employee_external_id": "1001"}
EMPLOYEE = {"first_name": "Anne", "last_name": "Jansen", "birth_date": "1985-04-12", "email": "a@x.nl"}
EMPLOYMENT = {
    "employee_external_id": "1001",
    "department_external_id": "T01",
    "start_date": "2020-01-01",
    "hours_per_week": 36,
    "salary": "3500.00",
    "salary_kind": "monthly",
}


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def tick(self, minutes: int = 1) -> None:
        self.now += timedelta(minutes=minutes)


def hr_world(employments: int = 8) -> World:
    world = generate_core(seed=5, scale=100)
    world.extra["hr_employments"] = pd.DataFrame(
        {
            "employee_id": [str(1001 + i) for i in range(employments)],
            "employment_id": [1 + (i % 2) for i in range(employments)],
            "end_date": [pd.NaT] * employments,
        }
    )
    return world


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    factories = {"afas": tiny_app, "topdesk": tiny_app}
    options = {"oh": OhOptions(token=TOKEN)}
    with running_sandbox(hr_world(), factories=factories, options=options) as running:  # type: ignore[arg-type]
        yield running


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state(sandbox: Sandbox, clock: Clock) -> OhState:
    fresh = OhState(token=TOKEN, clock=clock)
    sandbox.apps["oh"].state.sim = fresh  # every test starts empty; the app reads its state per request
    return fresh


@pytest.fixture
def client(sandbox: Sandbox, state: OhState) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=sandbox.oh_url, headers=headers, timeout=5) as http:
        yield http


def seed_org(client: httpx.Client) -> None:
    assert client.put("/api/v1/departments/T01", json=DEPT).status_code == 201
    assert client.put("/api/v1/employees/1001", json=EMPLOYEE).status_code == 201


# --- auth -------------------------------------------------------------------------------------------------


def test_requests_without_the_bearer_token_are_unauthorised(client: httpx.Client, state: OhState) -> None:
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        response = client.get("/api/v1/departments", headers=headers)
        assert response.status_code == 401
        assert response.json() == {"error": "unauthorized"}
        assert response.headers["www-authenticate"] == "Bearer"
    refused = client.put("/api/v1/departments/T01", json=DEPT, headers={"Authorization": "Bearer x"})
    assert refused.status_code == 401
    assert state.records["departments"] == {}
    assert client.get("/api/v1/departments").status_code == 200


def test_default_token_is_derived_from_the_seed() -> None:
    token = create_app(generate_core(seed=5, scale=100)).state.sim.token
    assert token == default_token(5) == create_app(generate_core(seed=5, scale=100)).state.sim.token
    assert token != default_token(6)
    assert len(token) == 40


# --- upserts ----------------------------------------------------------------------------------------------


def test_put_creates_then_is_a_no_op_then_updates(client: httpx.Client, state: OhState, clock: Clock) -> None:
    created = client.put("/api/v1/departments/T01", json=DEPT)
    assert created.status_code == 201
    assert created.json() == {
        "external_id": "T01",
        **DEPT,
        "active": True,
        "version": 1,
        "created_at": "2026-10-01T08:00:00+00:00",
        "updated_at": "2026-10-01T08:00:00+00:00",
    }
    clock.tick()
    same = client.put("/api/v1/departments/T01", json=DEPT)
    assert same.status_code == 200
    assert same.json()["version"] == 1
    assert same.json()["updated_at"] == "2026-10-01T08:00:00+00:00"
    assert state.changes("departments") == 1

    clock.tick()
    renamed = client.put("/api/v1/departments/T01", json={**DEPT, "name": "Servicedesk Noord"})
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Servicedesk Noord"
    assert renamed.json()["version"] == 2
    assert renamed.json()["updated_at"] == "2026-10-01T08:02:00+00:00"
    assert renamed.json()["created_at"] == "2026-10-01T08:00:00+00:00"
    assert state.changes() == 2
    assert state.outcomes[("departments", "unchanged")] == 1


def test_equal_values_in_another_spelling_change_nothing(client: httpx.Client, state: OhState) -> None:
    seed_org(client)
    assert client.put("/api/v1/employments/1001-1", json=EMPLOYMENT).status_code == 201
    respelled = {**EMPLOYMENT, "hours_per_week": "36.00", "salary": 3500}
    again = client.put("/api/v1/employments/1001-1", json=respelled)
    assert again.status_code == 200
    assert again.json()["version"] == 1
    assert again.json()["salary"] == "3500.00"  # money comes back as a decimal string, as first sent
    assert state.get("employments", "1001-1").body.salary == Decimal("3500.00")  # type: ignore[union-attr]
    assert state.changes("employments") == 1


def test_delete_deactivates_and_keeps_the_record(client: httpx.Client, state: OhState, clock: Clock) -> None:
    client.put("/api/v1/departments/T01", json=DEPT)
    clock.tick()
    gone = client.delete("/api/v1/departments/T01")
    assert gone.status_code == 200
    assert (gone.json()["active"], gone.json()["version"], gone.json()["name"]) == (False, 2, "Servicedesk")
    assert client.delete("/api/v1/departments/T01").json()["version"] == 2  # already inactive: no-op
    listed = client.get("/api/v1/departments").json()["items"]
    assert [(d["external_id"], d["active"]) for d in listed] == [("T01", False)]
    assert client.delete("/api/v1/departments/NOPE").status_code == 404

    back = client.put("/api/v1/departments/T01", json=DEPT)  # a PUT means "it exists": reactivates
    assert (back.status_code, back.json()["active"], back.json()["version"]) == (200, True, 3)
    outcomes = state.outcomes
    assert outcomes[("departments", "deactivated")] == 1
    assert outcomes[("departments", "unchanged")] == 1
    assert outcomes[("departments", "updated")] == 1


# --- references and validation ----------------------------------------------------------------------------


def test_employment_needs_an_existing_department(client: httpx.Client, state: OhState) -> None:
    client.put("/api/v1/employees/1001", json=EMPLOYEE)
    refused = client.put("/api/v1/employments/1001-1", json=EMPLOYMENT)
    assert refused.status_code == 422
    assert refused.json() == {
        "error": "validation_failed",
        "errors": [
            {
                "field": "department_external_id",
                "message": "department 'T01' does not exist or is inactive; "
                "send departments before employments",
            }
        ],
    }
    assert state.records["employments"] == {}
    client.put("/api/v1/departments/T01", json=DEPT)
    assert client.put("/api/v1/employments/1001-1", json=EMPLOYMENT).status_code == 201
    client.delete("/api/v1/departments/T01")
    moved = client.put("/api/v1/employments/1001-1", json={**EMPLOYMENT, "hours_per_week": 32})
    assert moved.status_code == 422  # an inactive department takes no employments


def test_employment_needs_an_existing_employee(client: httpx.Client) -> None:
    client.put("/api/v1/departments/T01", json=DEPT)
    refused = client.put("/api/v1/employments/1001-1", json=EMPLOYMENT)
    assert refused.status_code == 422
    assert [e["field"] for e in refused.json()["errors"]] == ["employee_external_id"]


def test_absence_must_be_on_an_employment_of_the_same_employee(client: httpx.Client) -> None:
    seed_org(client)
    client.put("/api/v1/employees/1002", json={**EMPLOYEE, "first_name": "Bram"})
    client.put("/api/v1/employments/1001-1", json=EMPLOYMENT)
    absence = {"employee_external_id": "1002", "employment_external_id": "1001-1", "start_date": "2026-09-01"}
    refused = client.put("/api/v1/absences/A1", json=absence)
    assert refused.status_code == 422
    assert refused.json()["errors"] == [
        {"field": "employment_external_id", "message": "employment '1001-1' belongs to employee '1001'"}
    ]
    fixed = {**absence, "employee_external_id": "1001", "presence_pct": 50, "expected_end": "2026-09-20"}
    accepted = client.put("/api/v1/absences/A1", json=fixed)
    assert accepted.status_code == 201
    assert accepted.json()["presence_pct"] == "50"


def test_user_needs_an_existing_employee(client: httpx.Client) -> None:
    user = {"employee_external_id": "1001", "username": "12345.ajansen", "email": "a@x.nl"}
    assert client.put("/api/v1/users/12345.ajansen", json=user).status_code == 422
    seed_org(client)
    created = client.put("/api/v1/users/12345.ajansen", json=user)
    assert (created.status_code, created.json()["blocked"]) == (201, False)


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        ({**EMPLOYEE, "shoe_size": 43}, "shoe_size", "Extra inputs are not permitted"),
        ({**EMPLOYEE, "birth_date": "12-04-1985"}, "birth_date", "valid date"),
        ({k: v for k, v in EMPLOYEE.items() if k != "last_name"}, "last_name", "Field required"),
    ],
)
def test_invalid_employee_bodies_name_the_field(
    client: httpx.Client, state: OhState, body: dict[str, object], field: str, fragment: str
) -> None:
    refused = client.put("/api/v1/employees/1001", json=body)
    assert refused.status_code == 422
    [error] = refused.json()["errors"]
    assert error["field"] == field
    assert fragment in error["message"]
    assert state.outcomes[("employees", "rejected")] == 1
    assert state.received[-1].body == body


def test_employment_consistency_rules(client: httpx.Client) -> None:
    seed_org(client)
    without_kind = {k: v for k, v in EMPLOYMENT.items() if k != "salary_kind"}
    assert "salary_kind" in client.put("/api/v1/employments/1001-1", json=without_kind).text
    backwards = {**EMPLOYMENT, "end_date": "2019-12-31"}
    assert "before start_date" in client.put("/api/v1/employments/1001-1", json=backwards).text
    no_salary = {k: v for k, v in EMPLOYMENT.items() if k not in ("salary", "salary_kind")}
    assert client.put("/api/v1/employments/1001-1", json=no_salary).json()["salary"] is None


def test_malformed_requests(client: httpx.Client) -> None:
    bad_json = client.put(
        "/api/v1/departments/T01", content=b"{oops", headers={"Content-Type": "application/json"}
    )
    assert (bad_json.status_code, bad_json.json()["error"]) == (400, "bad_request")
    assert client.put("/api/v1/departments/T01", json=["x"]).status_code == 422
    unknown = client.get("/api/v1/projects")
    assert (unknown.status_code, unknown.json()["error"]) == (404, "not_found")
    assert client.get("/api/v1/departments/T01").json() == {"error": "not_found"}
    assert client.post("/api/v1/departments/T01", json=DEPT).status_code == 405


# --- paging -----------------------------------------------------------------------------------------------


def walk(client: httpx.Client, first: str) -> list[list[str]]:
    pages, url = [], first
    while url is not None:
        body = client.get(url).json()
        pages.append([item["external_id"] for item in body["items"]])
        url = body["next"]
        assert len(pages) < 10
    return pages


@pytest.mark.parametrize(
    ("rows", "expected_pages"),
    [(0, [[]]), (1, [["D00"]]), (3, [["D00", "D01", "D02"]]), (4, [["D00", "D01", "D02"], ["D03"]])],
)
def test_paging_at_the_edges(
    sandbox: Sandbox, client: httpx.Client, rows: int, expected_pages: list[list[str]]
) -> None:
    for i in reversed(range(rows)):  # sent out of order: lists come sorted by external id
        client.put(f"/api/v1/departments/D{i:02d}", json={"name": f"Afdeling {i}"})
    assert walk(client, "/api/v1/departments?page_size=3") == expected_pages
    first = client.get("/api/v1/departments?page_size=3").json()
    if rows > 3:
        assert first["next"] == f"{sandbox.oh_url}/api/v1/departments?page_size=3&page=2"
    assert client.get("/api/v1/departments?page=9&page_size=3").json() == {"items": [], "next": None}


@pytest.mark.parametrize("query", ["page_size=0", f"page_size={MAX_PAGE_SIZE + 1}", "page=0", "page=x"])
def test_invalid_paging_is_refused(client: httpx.Client, query: str) -> None:
    refused = client.get(f"/api/v1/employees?{query}")
    assert (refused.status_code, refused.json()["error"]) == (400, "bad_request")


# --- registered absences ----------------------------------------------------------------------------------


def test_registered_absences_are_seeded_from_hr_employments() -> None:
    world = hr_world()
    state = create_app(world).state.sim
    again = create_app(hr_world()).state.sim
    records = [r.to_json() for r in state.registered.values()]
    assert len(records) == 5
    assert records == [r.to_json() for r in again.registered.values()]
    employments = world.extra["hr_employments"]
    pairs = set(zip(employments["employee_id"], employments["employment_id"], strict=True))
    for record in records:
        employee = record["employee_external_id"]
        assert record["employment_external_id"] in {
            employment_external_id(e, n) for e, n in pairs if e == employee
        }
        start = date.fromisoformat(record["start_date"])
        assert world.anchor - timedelta(days=45) <= start < world.anchor
        assert record["end_date"] is None
    assert create_app(generate_core(seed=5, scale=100)).state.sim.registered == {}
    assert create_app(world, OhOptions(registered_absences=0)).state.sim.registered == {}


def test_registered_absences_filter_on_changed_since_and_accept_new_ones(
    client: httpx.Client, state: OhState, clock: Clock
) -> None:
    seed_registered_absences(state, hr_world())  # in October 2026, before the clock below
    clock.now = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
    everything = client.get("/api/v1/registered-absences").json()["items"]
    assert len(everything) == 5
    assert [r["updated_at"] for r in everything] == sorted(r["updated_at"] for r in everything)

    body = {"employee_external_id": "1003", "employment_external_id": "1003-1", "start_date": "2026-10-30"}
    created = client.post("/api/v1/registered-absences", json=body)
    assert (created.status_code, created.json()["external_id"]) == (201, "RA-00006")
    recent = client.get("/api/v1/registered-absences", params={"changed_since": "2026-11-01T07:59:00Z"})
    assert [r["external_id"] for r in recent.json()["items"]] == ["RA-00006"]

    clock.tick(60)
    state.update_registered_absence("RA-00002", end_date=date(2026, 10, 20))
    later = client.get("/api/v1/registered-absences", params={"changed_since": "2026-11-01T09:30:00+01:00"})
    assert [(r["external_id"], r["end_date"], r["version"]) for r in later.json()["items"]] == [
        ("RA-00002", "2026-10-20", 2)
    ]
    naive = client.get("/api/v1/registered-absences", params={"changed_since": "2026-10-01T08:00:00"})
    assert naive.status_code == 400
    assert "time zone" in naive.json()["message"]
    assert client.post("/api/v1/registered-absences", json={"start_date": "2026-09-30"}).status_code == 422
    assert len(state.registered) == 6


def test_register_absence_helper_uses_the_clock(clock: Clock) -> None:
    state = OhState(token="t", clock=clock)
    record = state.register_absence(
        AbsenceIn(employee_external_id="1", employment_external_id="1-1", start_date=date(2026, 9, 1))
    )
    assert (record.external_id, record.created_at) == ("RA-00001", clock.now)


# --- over real sockets ------------------------------------------------------------------------------------


def test_default_options_serve_the_seed_token_over_loopback() -> None:
    factories = {"afas": tiny_app, "topdesk": tiny_app}
    with running_sandbox(hr_world(), factories=factories) as sandbox:  # type: ignore[arg-type]
        headers = {"Authorization": f"Bearer {sandbox.oh_token}"}
        with httpx.Client(base_url=sandbox.oh_url, headers=headers, timeout=5) as http:
            for key in ("A", "B"):
                assert http.put(f"/api/v1/departments/{key}", json={"name": key}).status_code == 201
            registered = http.get("/api/v1/registered-absences").json()["items"]
            assert sorted(r["external_id"] for r in registered) == [f"RA-0000{i}" for i in range(1, 6)]
        assert sandbox.oh_token == default_token(5)
        assert sandbox.apps["oh"].state.sim.changes("departments") == 2
        assert sandbox.counters("oh")["endpoints"]["PUT /api/v1/departments/{id}"]["count"] == 2
