"""The TOPdesk simulator's ticket writes (write-back): actions, progress trails, optional fields, knobs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.applications import Starlette

from sandbox.topdesk import create_app
from sandbox.topdesk.ticket_writes import actions_of, knobs
from sandbox.world import World, generate_core
from sandbox.world import topdesk as world_topdesk
from tests.sandbox.test_sandbox_topdesk import API, Api

PATCH_JSON = {"Content-Type": "application/json-patch+json"}


@pytest.fixture(scope="module")
def world() -> World:
    world = generate_core(seed=3, scale=2000)
    world.extra.update(world_topdesk.render(world))
    return world


@pytest.fixture
def app(world: World) -> Starlette:
    return create_app(world)


@pytest.fixture
def api(app: Starlette) -> Iterator[Api]:
    sim = app.state.sim
    client = Api(app, (sim.login, sim.password))
    yield client
    client.close()


def incident(app: Starlette) -> str:
    return str(app.state.sim.incidents.ids[0])


def change(app: Starlette) -> str:
    return next(iter(app.state.sim.changes.by_id))


def test_an_invisible_action_is_added_and_read_back_newest_first(app: Starlette, api: Api) -> None:
    key = incident(app)
    for text in ("first", "<b>second</b>"):
        answer = api.patch(
            f"{API}/incidents/id/{key}", json={"action": text, "actionInvisibleForCaller": True}
        )
        assert answer.status_code == 200 and answer.json()["id"] == key
    rows = api.get(f"{API}/incidents/id/{key}/actions", params={"page_size": 1})
    assert rows.status_code == 206  # more actions follow
    assert rows.json()[0]["plainText"] == "second" and rows.json()[0]["invisibleForCaller"] is True
    rest = api.get(f"{API}/incidents/id/{key}/actions", params={"start": 1, "page_size": 1})
    assert rest.status_code == 200 and rest.json()[0]["memoText"] == "first"
    assert api.get(f"{API}/incidents/id/{key}/actions", params={"start": 2}).status_code == 204
    assert api.get(f"{API}/incidents/id/{key}/actions", params={"page_size": 101}).status_code == 400


def test_incident_optional_text_field_is_validated_and_shown(app: Starlette, api: Api) -> None:
    key = incident(app)
    url = f"{API}/incidents/id/{key}"
    assert api.patch(url, json={"optionalFields1": {"text1": "KPL-1 2026-10 30 min"}}).status_code == 200
    assert api.get(url).json()["optionalFields1"]["text1"] == "KPL-1 2026-10 30 min"
    too_long = api.patch(url, json={"optionalFields1": {"text2": "x" * 101}})
    assert too_long.status_code == 400
    assert too_long.json() == [
        {"message": 'The value for the field "optionalFields1.text2" can only be 100 characters long.'}
    ]
    memo = api.patch(url, json={"optionalFields1": {"memo1": "x"}})
    assert memo.json() == [{"message": "Memo fields cannot be modified via the API"}]
    flag = api.patch(url, json={"action": "x", "actionInvisibleForCaller": "yes"})
    assert flag.status_code == 400 and "actionInvisibleForCaller" in flag.json()[0]["message"]
    assert api.patch(url, json={"nonsense": 1}).json() == [
        {"message": 'The field "nonsense" does not exist.'}
    ]
    assert actions_of(app.state.sim, "incident", key) == []  # nothing refused was applied


def test_unknown_tickets_are_404_and_denied_writes_403(app: Starlette, api: Api) -> None:
    missing = api.patch(f"{API}/incidents/id/00000000-0000-0000-0000-000000000000", json={"action": "x"})
    assert missing.status_code == 404
    assert api.post(f"{API}/operatorChanges/nope/progresstrail", json={"memoText": "x"}).json() == [
        {"message": "The Change could not be found"}
    ]
    knobs(app.state.sim).deny = True
    denied = api.patch(f"{API}/incidents/id/{incident(app)}", json={"action": "x"})
    assert denied.status_code == 403 and denied.json() == [{"message": "No permission to edit incidents"}]
    trail = api.post(f"{API}/operatorChanges/{change(app)}/progresstrail", json={"memoText": "x"})
    assert trail.status_code == 403
    sim = app.state.sim
    person = Api(app, (sim.person_login, sim.person_password))
    assert person.get(f"{API}/incidents/id/{incident(app)}/actions").status_code == 403
    person.close()


def test_change_progress_trail_and_json_patch(app: Starlette, api: Api) -> None:
    key = change(app)
    trail = f"{API}/operatorChanges/{key}/progresstrail"
    entry = api.post(trail, json={"memoText": "billed", "invisibleForCaller": True})
    assert entry.status_code == 201 and entry.json()["memoText"] == "billed"
    assert api.post(trail, json={"memoText": " "}).status_code == 400
    assert api.post(trail, json={"memoText": "x", "invisibleForCaller": 1}).status_code == 400
    assert api.post(trail, json={"memoText": "x", "other": 1}).status_code == 400
    page = api.get(trail, params={"pageSize": 10}).json()
    assert [r["memoText"] for r in page["results"]] == ["billed"] and page["next"] is None
    url = f"{API}/operatorChanges/{key}"
    body = [{"op": "replace", "path": "/optionalFields2/text5", "value": "KPL-2"}]
    assert api.patch(url, json=body).status_code == 415  # plain JSON is not a JSON Patch
    assert api.patch(url, json=body, headers=PATCH_JSON).json()["optionalFields2"]["text5"] == "KPL-2"
    wrong = [{"op": "replace", "path": "/briefDescription", "value": "x"}]
    assert api.patch(url, json=wrong, headers=PATCH_JSON).status_code == 400


def test_fail_next_refuses_before_applying_and_lose_next_applies_then_loses_the_answer(
    app: Starlette, api: Api
) -> None:
    key, sim = incident(app), app.state.sim
    knobs(sim).fail_next = 1
    failed = api.patch(f"{API}/incidents/id/{key}", json={"action": "a"})
    assert failed.status_code == 503 and failed.headers["Retry-After"] == "0"
    assert actions_of(sim, "incident", key) == []
    knobs(sim).lose_next = 1
    lost = api.patch(f"{API}/incidents/id/{key}", json={"action": "b"})
    assert lost.status_code == 504
    assert [a["memoText"] for a in actions_of(sim, "incident", key)] == ["b"]  # applied all the same
    control = api.post("/__sandbox/topdesk/ticket-writes", json={"deny": True})
    assert control.json() == {"deny": True, "fail_next": 0, "lose_next": 0, "writes": 1}
