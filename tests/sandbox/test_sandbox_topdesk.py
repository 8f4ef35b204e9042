"""The TOPdesk simulator over HTTP (httpx on the ASGI app): every endpoint family, paging edges, units,
FIQL, auth, write validations with TOPdesk's exact messages, OData and the control helpers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np
import pytest
from starlette.applications import Starlette

from sandbox.topdesk import TopdeskOptions, TopdeskSim, create_app
from sandbox.world import World, generate_core
from sandbox.world import topdesk as world_topdesk

BASE = "https://acme.topdesk.test"
API = "/tas/api"
ODATA = "/services/reporting/v2/odata"
TR = f"{API}/incidents/timeregistrations"
ALL_STATUSES = "status=in=(firstLine,secondLine,partial,firstLineArchived,secondLineArchived,partialArchived)"


class Api:
    """A synchronous face on ``httpx.AsyncClient`` over the app's ASGI interface."""

    def __init__(self, app: Starlette, auth: tuple[str, str] | None) -> None:
        self.loop = asyncio.new_event_loop()
        transport = httpx.ASGITransport(app=app)
        self.client = httpx.AsyncClient(transport=transport, base_url=BASE, auth=auth)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.loop.run_until_complete(self.client.request(method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", url, **kwargs)

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()


@pytest.fixture(scope="module")
def world() -> World:
    world = generate_core(seed=3, scale=2000)
    world.extra.update(world_topdesk.render(world))
    return world


@pytest.fixture(scope="module")
def shared_app(world: World) -> Starlette:
    """One app for the read-only tests."""
    return create_app(world)


@pytest.fixture
def app(world: World) -> Starlette:
    """A fresh app for tests that change state or options."""
    return create_app(world)


def _client(app: Starlette, auth: tuple[str, str] | None) -> Iterator[Api]:
    api = Api(app, auth)
    yield api
    api.close()


@pytest.fixture
def api(shared_app: Starlette) -> Iterator[Api]:
    sim = shared_app.state.sim
    yield from _client(shared_app, (sim.login, sim.password))


@pytest.fixture
def fresh(app: Starlette) -> Iterator[Api]:
    sim = app.state.sim
    yield from _client(app, (sim.login, sim.password))


def _sim(app: Starlette) -> TopdeskSim:
    return app.state.sim


def _visible_incident_without_registrations(sim: TopdeskSim) -> str:
    counts = np.bincount(sim.registrations.cols["parent"], minlength=sim.incidents.size)
    candidates = np.flatnonzero((counts == 0) & sim.incidents.default_visible)
    return str(sim.incidents.ids[candidates[0]])


# --- auth, version, errors ----------------------------------------------------------------------------


def test_version_and_product_version_behind_basic_auth(api: Api) -> None:
    assert api.get(f"{API}/version").json() == {"version": "4.2.6"}
    assert api.get(f"{API}/productVersion").json() == {"major": 14, "minor": 6, "patch": 1}


def test_version_is_configurable(world: World) -> None:
    app = create_app(world, TopdeskOptions(version="3.3.0", login="me", application_password="pw"))
    client = Api(app, ("me", "pw"))
    assert client.get(f"{API}/version").json() == {"version": "3.3.0"}
    client.close()


@pytest.mark.parametrize("auth", [None, ("koppel.api", "wrong"), ("nobody", "x")])
def test_missing_or_wrong_credentials_get_the_json_401(shared_app: Starlette, auth: Any) -> None:
    client = Api(shared_app, auth)
    response = client.get(f"{API}/incidents/timeregistrations")
    client.close()
    assert response.status_code == 401
    assert response.json() == [{"message": "No authentication token provided"}]


def test_html_401_behind_a_switch_also_on_odata(app: Starlette) -> None:
    _sim(app).options.html_401 = True
    client = Api(app, None)
    for path in (f"{API}/version", f"{ODATA}/Changes"):
        response = client.get(path)
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("text/html")
        assert "lacks valid authentication credentials" in response.text
    client.close()


def test_credentials_are_derived_from_the_seed_and_utf8_logins_work(world: World) -> None:
    assert TopdeskSim(world).password == TopdeskSim(world).password
    assert len(TopdeskSim(world).password.split("-")) == 5
    app = create_app(world, TopdeskOptions(login="zoë.çelik", application_password="geheim"))
    client = Api(app, ("zoë.çelik", "geheim"))
    assert client.get(f"{API}/version").status_code == 200
    client.close()


def test_person_account_may_log_in_but_gets_403_on_operator_endpoints(shared_app: Starlette) -> None:
    sim = _sim(shared_app)
    client = Api(shared_app, (sim.person_login, sim.person_password))
    assert client.get(f"{API}/version").status_code == 200
    for path in (f"{API}/branches", TR, f"{API}/persons", f"{API}/operators"):
        response = client.get(path)
        assert response.status_code == 403, path
        assert response.json() == [{"message": "Operation not allowed for this log in"}]
    client.close()


def test_error_body_styles(app: Starlette, fresh: Api) -> None:
    params = {"query": "notes==x"}
    message = fresh.get(TR, params=params)
    assert message.status_code == 400
    assert message.json() == [{"message": "Invalid query: the field 'notes' cannot be used in a query"}]
    _sim(app).options.error_style = "errors"
    errors = fresh.get(TR, params=params).json()
    assert errors == {
        "errors": [
            {
                "errorCode": "invalid_query",
                "appliesTo": ["query"],
                "errorMessage": "Invalid query: the field 'notes' cannot be used in a query",
            }
        ]
    }
    _sim(app).options.error_style = "descriptions"
    assert fresh.get(TR, params=params).json() == errors["errors"]


def test_unknown_paths_answer_json_404(api: Api) -> None:
    response = api.get(f"{API}/nothing/here")
    assert response.status_code == 404
    assert response.json() == [{"message": "Not found"}]


# --- /incidents (family A) ----------------------------------------------------------------------------


def _walk_family_a(api: Api, params: dict[str, Any]) -> tuple[list[int], list[str]]:
    statuses, ids = [], []
    response = api.get(f"{API}/incidents", params=params)
    for _ in range(10):
        statuses.append(response.status_code)
        if response.status_code == 204:
            break
        ids += [item["id"] for item in response.json()]
        if response.status_code != 206:
            break
        response = api.get(response.headers["x-next-page-url"])
    return statuses, ids


@pytest.mark.parametrize(
    ("count", "statuses"), [(0, [204]), (1, [200]), (3, [200]), (4, [206, 200]), (7, [206, 206, 200])]
)
def test_incidents_paging_edges(api: Api, shared_app: Starlette, count: int, statuses: list[int]) -> None:
    sim = _sim(shared_app)
    wanted = [str(i) for i in sim.incidents.ids[sim.incidents.default_visible][:count]]
    query = f"id=in=({','.join(wanted)})" if wanted else "number==nothing"
    seen_statuses, ids = _walk_family_a(api, {"query": query, "pageSize": 3, "fields": "id"})
    assert seen_statuses == statuses
    assert sorted(ids) == sorted(wanted)


def test_incidents_page_size_bounds_are_400_never_clamped(api: Api) -> None:
    for size in (0, 10_001, "x"):
        assert api.get(f"{API}/incidents", params={"pageSize": size}).status_code == 400
    assert len(api.get(f"{API}/incidents").json()) == 10  # default page size
    assert api.get(f"{API}/incidents", params={"pageStart": -1}).status_code == 400


def test_incidents_default_hides_partials_and_archived_all_true_shows_them(api: Api, world: World) -> None:
    incidents = world.extra["td_incidents"]
    hidden = incidents[(incidents["line"] == "partial") | incidents["archived"]]
    ids = ",".join(hidden["id"].head(5))
    plain = api.get(f"{API}/incidents", params={"query": f"id=in=({ids})"})
    assert plain.status_code == 204
    shown = api.get(
        f"{API}/incidents", params={"query": f"id=in=({ids})", "all": "true", "fields": "id,status"}
    )
    assert sorted(item["id"] for item in shown.json()) == sorted(hidden["id"].head(5))
    statuses = {item["status"] for item in shown.json()}
    assert statuses <= {"partial", "firstLineArchived", "secondLineArchived", "partialArchived"}


def test_incident_by_id_and_by_number_with_spaces(api: Api, world: World) -> None:
    incidents = world.extra["td_incidents"]
    spaced = incidents[incidents["number"].str.contains(" ")].iloc[0]
    by_number = api.get(f"{API}/incidents/number/{spaced['number'].replace(' ', '%20')}")
    assert by_number.status_code == 200
    assert by_number.json()["id"] == spaced["id"]
    by_id = api.get(f"{API}/incidents/id/{spaced['id']}", params={"fields": "number,callerBranch"})
    assert list(by_id.json()) == ["number", "callerBranch"]
    assert by_id.json()["number"] == spaced["number"]
    missing = api.get(f"{API}/incidents/number/I%209999%20999")
    assert missing.status_code == 404
    assert "not found" in missing.json()[0]["message"]


def test_incident_fields_dates_and_caller_branch(api: Api, world: World) -> None:
    incidents, branches = world.extra["td_incidents"], world.extra["td_branches"].set_index("id")
    row = incidents[incidents["optionalFields1.text1"] != ""].iloc[0]
    params = {"query": f"id=={row['id']}", "all": "true"}
    plain = api.get(f"{API}/incidents", params=params).json()[0]
    iso = api.get(f"{API}/incidents", params={**params, "dateFormat": "iso8601"}).json()[0]
    assert plain["callDate"] == row["callDate"].strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    assert iso["callDate"] == row["callDate"].strftime("%Y-%m-%dT%H:%M:%SZ")
    assert (
        plain["callerBranch"]["clientReferenceNumber"]
        == branches.loc[row["callerBranch.id"], "clientReferenceNumber"]
    )
    assert plain["optionalFields1"]["text1"] == row["optionalFields1.text1"]
    assert set(plain) >= {
        "id",
        "number",
        "status",
        "caller",
        "category",
        "subcategory",
        "mainIncident",
        "timeSpent",
    }
    assert api.get(f"{API}/incidents", params={"fields": "id,bogus"}).status_code == 400


def test_incident_time_totals_are_minutes_and_partials_roll_up(api: Api, world: World) -> None:
    incidents, regs = world.extra["td_incidents"], world.extra["td_registrations"]
    own = regs.groupby("parent.id")["minutes"].sum()
    partial = incidents[(incidents["line"] == "partial") & incidents["id"].isin(own.index)].iloc[0]
    main_id = partial["mainIncident.id"]
    siblings = incidents[incidents["mainIncident.id"] == main_id]["id"]
    linked = int(own.reindex(siblings).fillna(0).sum())
    fields = "id,timeSpent,timeSpentPartial,timeSpentSecondLine,timeSpentLinkedPartials"
    got = {
        item["id"]: item
        for item in api.get(
            f"{API}/incidents",
            params={"query": f"id=in=({main_id},{partial['id']})", "all": "true", "fields": fields},
        ).json()
    }
    assert got[partial["id"]]["timeSpent"] == 0
    assert got[partial["id"]]["timeSpentPartial"] == int(own[partial["id"]])
    assert got[main_id]["timeSpentLinkedPartials"] == linked
    assert got[main_id]["timeSpent"] == int(own.get(main_id, 0)) + linked


def test_incident_sort_and_fiql(api: Api) -> None:
    params = {"sort": "callDate:desc", "fields": "id,callDate", "pageSize": 20}
    dates = [item["callDate"] for item in api.get(f"{API}/incidents", params=params).json()]
    assert dates == sorted(dates, reverse=True)
    ranged = api.get(
        f"{API}/incidents",
        params={
            "query": "callDate=ge=2026-10-01T00:00:00Z;callDate=lt=2026-10-02T00:00:00Z",
            "pageSize": 100,
        },
    ).json()
    assert ranged and all(item["callDate"].startswith("2026-10-01") for item in ranged)
    assert api.get(f"{API}/incidents", params={"sort": "briefDescription:asc"}).status_code == 400


# --- /incidents/timeregistrations ---------------------------------------------------------------------


def test_bulk_default_projection_is_id_only_and_default_page_size_100(api: Api) -> None:
    body = api.get(TR).json()
    assert list(body) == ["results"]
    assert len(body["results"]) == 100
    assert all(list(item) == ["id"] for item in body["results"])


def test_bulk_seconds_versus_per_incident_minutes(api: Api, world: World) -> None:
    regs, incidents = world.extra["td_registrations"], world.extra["td_incidents"]
    visible = incidents[(incidents["line"] != "partial") & ~incidents["archived"]]["id"]
    clean = regs[(regs["dirty"] == "") & regs["parent.id"].isin(visible)]
    parent = clean["parent.id"].value_counts().index[0]
    bulk = api.get(TR, params={"query": f"parent.id=={parent}", "fields": "id,timeSpent,parent"}).json()[
        "results"
    ]
    per_incident = api.get(f"{API}/incidents/id/{parent}/timespent").json()
    minutes = {item["id"]: item["timeSpent"] for item in per_incident}
    assert bulk and {item["id"] for item in bulk} == set(minutes)
    for item in bulk:
        assert item["timeSpent"] == minutes[item["id"]] * 60
        assert item["parent"]["id"] == parent
    expected = regs[regs["parent.id"] == parent].set_index("id")["minutes"].to_dict()
    assert minutes == expected


def test_bulk_serves_dirty_values_raw(api: Api, world: World) -> None:
    regs = world.extra["td_registrations"]
    fields = {"fields": "id,timeSpent,entryDate"}
    for label in ("unit_mismatch", "bad_entry_date", "negative", "absurd"):
        row = regs[regs["dirty"] == label].iloc[0]
        item = api.get(f"{TR}/{row['id']}", params=fields).json()
        assert item["timeSpent"] == row["timeSpent"], label
        if label == "bad_entry_date":
            assert item["entryDate"] == row["entry_date_text"]
        else:
            assert item["entryDate"] == row["entryDate"].strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    unit = regs[regs["dirty"] == "unit_mismatch"].iloc[0]
    assert api.get(f"{TR}/{unit['id']}").json()["timeSpent"] % 60 != 0


def test_bulk_date_range_sort_and_full_fields(api: Api, world: World) -> None:
    query = "entryDate=ge=2026-09-01T00:00:00Z;entryDate=lt=2026-09-03T00:00:00Z"
    params = {"query": query, "sort": "entryDate:asc,creationDate:asc", "pageSize": 1000}
    params["fields"] = (
        "id,timeSpent,notes,status,entryDate,creationDate,operator,operatorGroup,reason,creator,modifier,parent"
    )
    results = api.get(TR, params=params).json()["results"]
    regs, incidents = world.extra["td_registrations"], world.extra["td_incidents"]
    visible = set(incidents[(incidents["line"] != "partial") & ~incidents["archived"]]["id"])
    window = regs[
        (regs["entryDate"] >= "2026-09-01T00:00:00Z")
        & (regs["entryDate"] < "2026-09-03T00:00:00Z")
        & regs["parent.id"].isin(visible)
    ]
    duplicates = int((window["dirty"] == "duplicate").sum())
    assert len(results) == len(window) + duplicates
    assert {item["id"] for item in results} == set(window["id"])
    seen: set[str] = set()
    first_seen = [item for item in results if not (item["id"] in seen or seen.add(item["id"]))]
    clean = [item for item in first_seen if item["entryDate"][4] == "-" and "T" in item["entryDate"]]
    keys = [(item["entryDate"], item["creationDate"]) for item in clean]
    assert keys == sorted(keys)
    first = results[0]
    assert set(first) == set(params["fields"].split(","))
    assert first["status"] in ("firstLine", "secondLine") and first["parent"]["status"] == first["status"]
    assert set(first["operator"]) == {"id", "name"}


@pytest.mark.parametrize(
    "query",
    [
        "creationDate=gt=2026-09-01T00:00:00+0000",
        "operator.id=={operator}",
        "operatorGroup.id=={group}",
        "reason.id=={reason}",
        "parent.id=={parent}",
        "status==secondLine",
        "reason.id==null",
    ],
)
def test_bulk_fiql_on_every_documented_field(api: Api, world: World, query: str) -> None:
    regs, incidents = world.extra["td_registrations"], world.extra["td_incidents"]
    visible = incidents[(incidents["line"] != "partial") & ~incidents["archived"]]["id"]
    row = regs[(regs["dirty"] == "") & (regs["reason.id"] != "") & regs["parent.id"].isin(visible)].iloc[0]
    text = query.format(
        operator=row["operator.id"],
        group=row["operatorGroup.id"],
        reason=row["reason.id"],
        parent=row["parent.id"],
    )
    response = api.get(
        TR,
        params={
            "query": text,
            "pageSize": 10_000,
            "fields": "id,operator,operatorGroup,reason,parent,status,creationDate",
        },
    )
    assert response.status_code == 200
    results = response.json()["results"]
    assert results
    name, value = text.split("==") if "==" in text else (text.split("=gt=")[0], None)
    for item in results:
        if name == "operator.id":
            assert item["operator"]["id"] == value
        elif name == "operatorGroup.id":
            assert item["operatorGroup"]["id"] == value
        elif name == "reason.id":
            assert (item["reason"] is None) if value == "null" else item["reason"]["id"] == value
        elif name == "parent.id":
            assert item["parent"]["id"] == value
        elif name == "status":
            assert item["status"] == "secondLine"
        else:
            assert item["creationDate"] > "2026-09-01T00:00:00.000+0000"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            "modificationDate=gt=2026-01-01T00:00:00Z",
            "the field 'modificationDate' cannot be used in a query",
        ),
        ("entryDate=gt=yesterday", "'yesterday' is not a valid value for the field 'entryDate'"),
        ("entryDate=xx=2026-01-01T00:00:00Z", "unknown operator '=xx='"),
        ("entryDate=ge=2026-01-01T00:00:00Z;", "expected a field name at position 34"),
        ("(status==partial", "expected ')' at position 16"),
    ],
)
def test_bulk_fiql_errors_are_400(api: Api, query: str, message: str) -> None:
    response = api.get(TR, params={"query": query})
    assert response.status_code == 400
    assert message in response.json()[0]["message"]


def test_bulk_page_size_bounds(api: Api) -> None:
    assert api.get(TR, params={"pageSize": 0}).json() == {"results": []}
    assert api.get(TR, params={"pageSize": 10_000}).status_code == 200
    for size in (-1, 10_001):
        response = api.get(TR, params={"pageSize": size})
        assert response.status_code == 400
        assert response.json() == [
            {"message": "The value for the parameter 'pageSize' must be between 0 and 10000"}
        ]


def test_bulk_status_option_includes_partials_and_archived(api: Api, world: World) -> None:
    regs, incidents = world.extra["td_registrations"], world.extra["td_incidents"]
    status = regs["parent.id"].map(incidents.set_index("id")["status"])
    everything = api.get(TR, params={"query": ALL_STATUSES, "pageSize": 10_000, "fields": "id,status"}).json()
    default = api.get(TR, params={"pageSize": 10_000, "fields": "id,status"}).json()
    duplicates = int((regs["dirty"] == "duplicate").sum())
    assert len({item["id"] for item in everything["results"]}) == len(regs)
    assert len(everything["results"]) == len(regs) + duplicates
    default_ids = {item["id"] for item in default["results"]}
    assert default_ids == set(regs.loc[status.isin(["firstLine", "secondLine"]), "id"])
    assert {item["status"] for item in everything["results"]} == set(status)


def test_duplicates_are_served_twice_on_two_pages(api: Api, world: World) -> None:
    regs, incidents = world.extra["td_registrations"], world.extra["td_incidents"]
    visible = set(incidents[(incidents["line"] != "partial") & ~incidents["archived"]]["id"])
    duplicate = regs[(regs["dirty"] == "duplicate") & regs["parent.id"].isin(visible)].iloc[0]
    query = f"parent.id=={duplicate['parent.id']}"
    expected = regs[regs["parent.id"] == duplicate["parent.id"]]
    pages = []
    for start in range(0, 20):
        page = api.get(TR, params={"query": query, "pageSize": 1, "pageStart": start}).json()["results"]
        if not page:
            break
        pages.append(page[0]["id"])
    assert len(pages) == len(expected) + int((expected["dirty"] == "duplicate").sum())
    assert pages.count(duplicate["id"]) == 2


def test_duplicates_can_be_switched_off(app: Starlette, fresh: Api, world: World) -> None:
    _sim(app).options.serve_duplicates = False
    results = fresh.get(TR, params={"query": ALL_STATUSES, "pageSize": 10_000}).json()["results"]
    assert len(results) == len({item["id"] for item in results}) == len(world.extra["td_registrations"])


@pytest.mark.parametrize(("count", "pages"), [(0, [0]), (1, [1]), (3, [3, 0]), (4, [3, 1])])
def test_bulk_paging_edges(app: Starlette, fresh: Api, count: int, pages: list[int]) -> None:
    sim = _sim(app)
    incident = _visible_incident_without_registrations(sim)
    for k in range(count):
        sim.add_registration(incident, 15 + k, datetime(2026, 10, 5, 9, k, tzinfo=UTC))
    sizes = []
    for start in range(0, 12, 3):
        body = fresh.get(
            TR, params={"query": f"parent.id=={incident}", "pageSize": 3, "pageStart": start}
        ).json()
        sizes.append(len(body["results"]))
        assert "next" not in body
        if len(body["results"]) < 3:
            break
    assert sizes == pages


def test_bulk_next_toggle_emits_206_and_next(app: Starlette, fresh: Api) -> None:
    sim = _sim(app)
    sim.options.bulk_next = True
    incident = _visible_incident_without_registrations(sim)
    for k in range(4):
        sim.add_registration(incident, 30, datetime(2026, 10, 5, 9, k, tzinfo=UTC))
    first = fresh.get(TR, params={"query": f"parent.id=={incident}", "pageSize": 3})
    assert first.status_code == 206
    assert len(first.json()["results"]) == 3
    second = fresh.get(first.json()["next"])
    assert second.status_code == 200
    assert len(second.json()["results"]) == 1 and "next" not in second.json()


def test_rows_inserted_between_pages_shift_offset_paging(app: Starlette, fresh: Api, world: World) -> None:
    sim = _sim(app)
    sim.options.insert_between_pages = 1
    sim.options.serve_duplicates = False
    query = "entryDate=ge=2026-09-01T00:00:00Z;entryDate=lt=2026-09-08T00:00:00Z"
    params = {"query": query, "sort": "entryDate:asc,creationDate:asc", "pageSize": 50}
    served: list[str] = []
    pages = []
    for start in range(0, 100_000, 50):
        page = [item["id"] for item in fresh.get(TR, params={**params, "pageStart": start}).json()["results"]]
        pages.append(page)
        served += page
        if len(page) < 50:
            break
    regs, incidents = world.extra["td_registrations"], world.extra["td_incidents"]
    visible = set(incidents[(incidents["line"] != "partial") & ~incidents["archived"]]["id"])
    in_window = (regs["entryDate"] >= "2026-09-01T00:00:00Z") & (regs["entryDate"] < "2026-09-08T00:00:00Z")
    expected = set(regs.loc[in_window & regs["parent.id"].isin(visible), "id"])
    assert pages[1][0] == pages[0][-1]  # the insert before page 2 pushed the last row of page 1 along
    assert len(sim.inserted) == len(pages) - 1
    assert len(served) == len(expected) + len(sim.inserted)  # every shift repeats one row
    assert set(served) == expected  # nothing lost; the inserted rows sit behind the offset and are missed


def test_single_registration_get_and_404(api: Api, world: World) -> None:
    row = world.extra["td_registrations"].iloc[0]
    item = api.get(f"{TR}/{row['id']}").json()
    assert item["id"] == row["id"] and item["timeSpent"] == row["timeSpent"]
    assert api.get(f"{TR}/00000000-0000-4000-8000-000000000000").status_code == 404


# --- /incidents/{id|number}/timespent -----------------------------------------------------------------


def test_timespent_is_204_when_empty(app: Starlette, fresh: Api) -> None:
    incident = _visible_incident_without_registrations(_sim(app))
    assert fresh.get(f"{API}/incidents/id/{incident}/timespent").status_code == 204


def test_timespent_post_creates_minutes_visible_in_bulk_as_seconds(app: Starlette, fresh: Api) -> None:
    sim = _sim(app)
    incident = _visible_incident_without_registrations(sim)
    number = sim.incidents.numbers[sim.incidents.index[incident]]
    operator = sim.operators[0]
    body = {
        "timeSpent": 45,
        "notes": "Overleg ✓",
        "entryDate": "2026-10-05T10:00:00.000+0200",
        "operator": {"id": operator["id"]},
        "reason": {"name": "Meerwerk"},
    }
    created = fresh.post(f"{API}/incidents/number/{number}/timespent", json=body)
    assert created.status_code == 201
    item = created.json()
    assert item["timeSpent"] == 45 and item["entryDate"] == "2026-10-05T08:00:00.000+0000"
    assert item["operator"]["id"] == operator["id"] and item["reason"]["name"] == "Meerwerk"
    assert item["operatorGroup"]["id"] == sim.operator_group[operator["id"]]
    bulk = fresh.get(TR, params={"query": f"parent.id=={incident}", "fields": "id,timeSpent,notes"}).json()
    assert bulk["results"] == [{"id": item["id"], "timeSpent": 2700, "notes": "Overleg ✓"}]
    listed = fresh.get(f"{API}/incidents/id/{incident}/timespent").json()
    assert [entry["timeSpent"] for entry in listed] == [45]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({}, 400, "Mandatory field 'timeSpent' is missing."),
        ({"timeSpent": 0}, 400, "Time spent cannot be 0"),
        ({"timeSpent": "10"}, 400, 'The value for the field "timeSpent" cannot be parsed'),
        (
            {"timeSpent": 10, "notes": "x" * 251},
            400,
            'The value for the field "notes" can only be 250 characters long.',
        ),
        ({"timeSpent": -10}, 400, "The total time spent on an incident cannot become negative"),
        (
            {"timeSpent": 10, "entryDate": "gisteren"},
            400,
            'The value for the field "entryDate" cannot be parsed',
        ),
        ({"timeSpent": 10, "bogus": 1}, 400, 'The field "bogus" does not exist.'),
        (
            {"timeSpent": 10, "operator": {"id": "00000000-0000-4000-8000-000000000000"}},
            404,
            'The value for the field "operator" cannot be found.',
        ),
        (
            {"timeSpent": 10, "reason": {"name": "Onbekend"}},
            404,
            'The value for the field "reason" cannot be found.',
        ),
    ],
)
def test_timespent_post_validations(
    app: Starlette, fresh: Api, body: dict, status: int, message: str
) -> None:
    incident = _visible_incident_without_registrations(_sim(app))
    response = fresh.post(f"{API}/incidents/id/{incident}/timespent", json=body)
    assert response.status_code == status
    assert response.json() == [{"message": message}]


def test_timespent_post_group_rules_and_negative_within_total(app: Starlette, fresh: Api) -> None:
    sim = _sim(app)
    incident = _visible_incident_without_registrations(sim)
    url = f"{API}/incidents/id/{incident}/timespent"
    operator = sim.operators[0]
    other_group = next(g for g in sim.groups if g["id"] != sim.operator_group[operator["id"]])
    mismatch = fresh.post(
        url,
        json={"timeSpent": 5, "operator": {"id": operator["id"]}, "operatorGroup": {"id": other_group["id"]}},
    )
    assert mismatch.status_code == 400
    group_only = fresh.post(url, json={"timeSpent": 30, "operatorGroup": {"id": other_group["id"]}}).json()
    assert group_only["operator"] == {"id": other_group["id"], "name": other_group["groupName"]}
    assert fresh.post(url, json={"timeSpent": -30}).status_code == 201  # total goes to exactly 0
    assert fresh.post(url, json={"timeSpent": -1}).status_code == 400
    assert fresh.post(url, json={"timeSpent": 5}).json()["operator"]["name"] == "API, Koppel"


def test_timespent_post_on_archived_incident_is_403_and_unknown_is_404(app: Starlette, fresh: Api) -> None:
    sim = _sim(app)
    archived = sim.incidents.ids[np.flatnonzero(sim.incidents.archived)[0]]
    response = fresh.post(f"{API}/incidents/id/{archived}/timespent", json={"timeSpent": 10})
    assert response.status_code == 403
    assert (
        fresh.post(f"{API}/incidents/number/I%200000%20000/timespent", json={"timeSpent": 10}).status_code
        == 404
    )


# --- branches -----------------------------------------------------------------------------------------


def test_branches_default_fields_archived_rule_and_dollar_fields(api: Api, world: World) -> None:
    branches = world.extra["td_branches"]
    listed = api.get(f"{API}/branches").json()
    assert all(list(item) == ["id", "name"] for item in listed)
    assert len(listed) == int((~branches["archived"]).sum())
    archived_id = branches.loc[branches["archived"], "id"].iloc[0]
    assert archived_id not in {item["id"] for item in listed}
    with_query = api.get(f"{API}/branches", params={"query": "name=sw=''", "$fields": "id,archived"}).json()
    assert len(with_query) == len(branches)
    active = api.get(f"{API}/branches", params={"query": "archived==false"}).json()
    assert len(active) == len(listed)
    params = {"query": "clientReferenceNumber==INT-ICT", "$fields": "id,name,clientReferenceNumber,address"}
    department = api.get(f"{API}/branches", params=params).json()
    assert [item["name"] for item in department] == ["Interne ICT"]
    assert set(department[0]["address"]) >= {"street", "city", "postcode", "country"}
    assert api.get(f"{API}/branches", params={"$fields": "id,nope"}).status_code == 400


def test_branch_get_by_id_and_404(api: Api, world: World) -> None:
    branch = world.extra["td_branches"].iloc[0]
    got = api.get(f"{API}/branches/id/{branch['id']}").json()
    assert got["clientReferenceNumber"] == branch["clientReferenceNumber"]
    assert got["creationDate"].endswith("+0000")
    missing = api.get(f"{API}/branches/id/00000000-0000-4000-8000-000000000000")
    assert missing.status_code == 404 and missing.json() == [{"message": "The Branch could not be found"}]


def test_branch_create_patch_archive_unarchive(app: Starlette, fresh: Api) -> None:
    sim = _sim(app)
    body = {
        "name": "Nieuwe Klant B.V.",
        "clientReferenceNumber": "10999",
        "phone": "020-1234567",
        "address": {
            "street": "Kerkstraat",
            "number": "1",
            "city": "Amsterdam",
            "country": {"name": "Nederland"},
        },
        "optionalFields1": {"text1": "AFAS"},
    }
    created = fresh.post(f"{API}/branches", json=body)
    assert created.status_code == 201
    branch = created.json()
    assert branch["address"]["country"]["name"] == "Nederland" and branch["archived"] is False
    url = f"{API}/branches/id/{branch['id']}"
    patched = fresh.patch(url, json={"name": "Nieuwe Klant Holding B.V.", "email": "info@nieuw.example"})
    assert patched.status_code == 200 and patched.json()["name"] == "Nieuwe Klant Holding B.V."
    assert patched.json()["clientReferenceNumber"] == "10999"
    reason = sim.archiving_reasons[0]["id"]
    no_reason = fresh.patch(f"{url}/archive", json={})
    assert no_reason.status_code == 400 and no_reason.json() == [
        {"message": "Reason for archiving is mandatory"}
    ]
    assert fresh.patch(f"{url}/archive", json={"id": reason}).json()["archived"] is True
    again = fresh.patch(f"{url}/archive", json={"id": reason})
    assert again.status_code == 400 and again.json() == [{"message": "branch is already archived"}]
    assert branch["id"] not in {item["id"] for item in fresh.get(f"{API}/branches").json()}
    assert fresh.patch(f"{url}/unarchive").json()["archived"] is False
    assert branch["id"] in {item["id"] for item in fresh.get(f"{API}/branches").json()}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"clientReferenceNumber": "1"}, "Mandatory field 'name' is missing."),
        ({"name": "x" * 61}, 'The value for the field "name" can only be 60 characters long.'),
        (
            {"name": "A", "clientReferenceNumber": "1" * 31},
            'The value for the field "clientReferenceNumber" can only be 30 characters long.',
        ),
        ({"name": "A", "phone": "0" * 26}, 'The value for the field "phone" can only be 25 characters long.'),
        (
            {"name": "A", "address": {"city": "x" * 31}},
            'The value for the field "address.city" can only be 30 characters long.',
        ),
        ({"name": "A", "colour": "red"}, 'The field "colour" does not exist.'),
        (
            {"name": "A", "branchType": "hasAHeadBranch"},
            "Branch type 'hasAHeadBranch' was selected, but no head branch was given.",
        ),
        ({"name": "A", "branchType": "chain"}, 'The value for the field "branchType" cannot be parsed'),
        (
            {"name": "A", "address": {"country": {"name": "Atlantis"}}},
            'The value for the field "address.country" cannot be found.',
        ),
        (
            {"name": "A", "headBranch": {"id": "00000000-0000-4000-8000-000000000000"}},
            'The value for the field "headBranch" cannot be found.',
        ),
        ({"name": "A", "optionalFields1": {"memo1": "x"}}, "Memo fields cannot be modified via the API"),
    ],
)
def test_branch_write_validations(fresh: Api, body: dict, message: str) -> None:
    response = fresh.post(f"{API}/branches", json=body)
    assert response.status_code == 400
    assert response.json() == [{"message": message}]


def test_branch_writes_need_permission_and_a_json_object(app: Starlette, fresh: Api) -> None:
    assert fresh.post(f"{API}/branches", content=b"[1]").json() == [{"message": "Input parameters malformed"}]
    _sim(app).options.can_write_branches = False
    response = fresh.post(f"{API}/branches", json={"name": "A"})
    assert response.status_code == 403 and response.json() == [
        {"message": "No permission to create branches"}
    ]


def test_branch_with_head_branch(fresh: Api, world: World) -> None:
    head = world.extra["td_branches"].iloc[0]
    body = {"name": "Filiaal", "branchType": "hasAHeadBranch", "headBranch": {"id": head["id"]}}
    created = fresh.post(f"{API}/branches", json=body).json()
    assert created["headBranch"] == {"id": head["id"], "name": head["name"]}


# --- persons v2 ---------------------------------------------------------------------------------------

PERSON_LIST = "application/x.topdesk-collection-person-v2+json"
PERSON_ONE = "application/x.topdesk-person-v2+json"


def test_persons_vendor_accept_and_406(api: Api) -> None:
    for accept in (PERSON_LIST, "*/*", "application/json"):
        response = api.get(f"{API}/persons", headers={"Accept": accept}, params={"pageSize": 2})
        assert response.status_code == 206, accept
        assert response.headers["content-type"].startswith(PERSON_LIST)
    wrong = api.get(f"{API}/persons", headers={"Accept": "application/x.topdesk-collection-person-v1+json"})
    assert wrong.status_code == 406


@pytest.mark.parametrize(("count", "statuses"), [(0, [200]), (1, [200]), (3, [200]), (4, [206, 200])])
def test_persons_paging_edges(api: Api, world: World, count: int, statuses: list[int]) -> None:
    numbers = world.extra["td_persons"]["employeeNumber"].head(count).tolist() or ["none"]
    params = {"query": f"employeeNumber=in=({','.join(numbers)})", "pageSize": 3}
    response = api.get(f"{API}/persons", params=params, headers={"Accept": PERSON_LIST})
    seen, items = [], []
    for _ in range(5):
        body = response.json()
        seen.append(response.status_code)
        items += body["item"]
        assert body["size"] == len(body["item"])
        if body["next"] is None:
            break
        response = api.get(body["next"], headers={"Accept": PERSON_LIST})
    assert seen == statuses
    assert len(items) == count


def test_persons_list_includes_archived_without_query(api: Api, world: World) -> None:
    persons = world.extra["td_persons"]
    everyone = api.get(f"{API}/persons", params={"pageSize": 5000}).json()
    assert everyone["size"] == len(persons)
    active = api.get(f"{API}/persons", params={"pageSize": 5000, "query": "archived==false"}).json()
    assert active["size"] == int((~persons["archived"]).sum())
    names = [item["dynamicName"] for item in everyone["item"]]
    assert names == sorted(names)
    first = everyone["item"][0]
    assert set(first["branch"]) == {"id", "name", "clientReferenceNumber", "phoneNumber"}
    assert api.get(f"{API}/persons", params={"pageSize": 5001}).status_code == 400


def test_person_create_patch_archive(app: Starlette, fresh: Api, world: World) -> None:
    branch = world.extra["td_branches"].iloc[0]
    headers = {"Accept": PERSON_ONE}
    body = {
        "surName": "Jansen",
        "firstName": "Anne",
        "employeeNumber": "59999",
        "email": "anne@klant.example.nl",
        "branch": {"id": branch["id"]},
    }
    created = fresh.post(f"{API}/persons", json=body, headers=headers)
    assert created.status_code == 201
    person = created.json()
    assert (
        person["dynamicName"] == "Jansen, Anne"
        and person["branch"]["clientReferenceNumber"] == branch["clientReferenceNumber"]
    )
    patched = fresh.patch(f"{API}/persons/{person['id']}", json={"surName": "de Vries"}, headers=headers)
    assert patched.json()["dynamicName"] == "de Vries, Anne" and patched.json()["employeeNumber"] == "59999"
    url = f"{API}/persons/id/{person['id']}"
    assert fresh.patch(f"{url}/archive", json={}).json() == [{"message": "Reason for archiving is mandatory"}]
    reason = _sim(app).archiving_reasons[1]["id"]
    assert fresh.patch(f"{url}/archive", json={"id": reason}).json()["archived"] is True
    assert fresh.patch(f"{url}/archive", json={"id": reason}).json() == [
        {"message": "Person is already archived"}
    ]
    assert fresh.patch(f"{url}/unarchive").json()["archived"] is False
    assert fresh.get(f"{API}/persons/{person['id']}").json()["surName"] == "de Vries"
    missing = fresh.patch(f"{API}/persons/00000000-0000-4000-8000-000000000000", json={"surName": "X"})
    assert missing.status_code == 404 and missing.json() == [{"message": "The Person could not be found"}]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"firstName": "Anne", "branch": "{branch}"}, "Mandatory field 'surName' is missing."),
        ({"surName": "Jansen"}, "Mandatory field 'branch' is missing."),
        (
            {"surName": "x" * 51, "branch": "{branch}"},
            'The value for the field "surName" can only be 50 characters long.',
        ),
        (
            {"surName": "J", "employeeNumber": "1" * 21, "branch": "{branch}"},
            'The value for the field "employeeNumber" can only be 20 characters long.',
        ),
        (
            {"surName": "J", "email": "geen-adres", "branch": "{branch}"},
            'The value for the field "email" is not a valid email address.',
        ),
        (
            {"surName": "J", "branch": {"id": "00000000-0000-4000-8000-000000000000"}},
            'The value for the field "branch" cannot be found.',
        ),
        (
            {"surName": "J", "isCaller": "ja", "branch": "{branch}"},
            'The value for the field "isCaller" cannot be parsed',
        ),
        ({"surName": "J", "shoeSize": 44, "branch": "{branch}"}, 'The field "shoeSize" does not exist.'),
    ],
)
def test_person_write_validations(fresh: Api, world: World, body: dict, message: str) -> None:
    branch = {"id": world.extra["td_branches"]["id"].iloc[0]}
    payload = {key: (branch if value == "{branch}" else value) for key, value in body.items()}
    response = fresh.post(f"{API}/persons", json=payload, headers={"Accept": PERSON_ONE})
    assert response.status_code == 400
    assert response.json() == [{"message": message}]


# --- operators, groups, lookups (family B) ------------------------------------------------------------


@pytest.mark.parametrize(("count", "statuses"), [(0, [204]), (1, [200]), (3, [200]), (4, [206, 200])])
def test_operators_family_b_paging_edges(api: Api, world: World, count: int, statuses: list[int]) -> None:
    logins = world.extra["td_operators"]["loginName"].head(count).tolist() or ["nobody"]
    seen, items = [], []
    for start in range(0, 12, 3):
        params = {"query": f"loginName=in=({','.join(logins)})", "start": start, "page_size": 3}
        response = api.get(f"{API}/operators", params=params)
        seen.append(response.status_code)
        if response.status_code != 206:
            items += response.json() if response.status_code == 200 else []
            break
        items += response.json()
    assert seen == statuses
    assert len(items) == count


def test_operators_and_groups_show_hourly_rates(api: Api, world: World) -> None:
    first_page = api.get(f"{API}/operators")
    assert first_page.status_code == 206 and len(first_page.json()) == 10
    operator = first_page.json()[0]
    assert operator["hourlyRate"] == float(world.extra["td_operators"]["hourlyRate"].iloc[0])
    groups = api.get(f"{API}/operatorgroups", params={"page_size": 100})
    assert groups.status_code == 200
    assert {g["groupName"]: g["hourlyRate"] for g in groups.json()}["Consultancy"] == 125.0
    assert api.get(f"{API}/operators", params={"page_size": 101}).status_code == 400
    assert api.get(f"{API}/operators", params={"page_size": 0}).status_code == 400
    assert api.get(f"{API}/operators", params={"fields": "id,hourlyRate"}).json()[0].keys() == {
        "id",
        "hourlyRate",
    }
    assert api.get(f"{API}/operatorgroups/id/{groups.json()[0]['id']}").json()["groupName"] == "Servicedesk"


def test_lookups(api: Api, world: World) -> None:
    reasons = api.get(f"{API}/timespent-reasons").json()
    assert [r["name"] for r in reasons] == world.reasons["name"].tolist()
    categories = api.get(f"{API}/incidents/categories").json()
    assert [c["name"] for c in categories] == ["Werkplek", "Netwerk", "Applicaties", "Servers"]
    subcategories = api.get(f"{API}/incidents/subcategories").json()
    assert subcategories[0]["category"]["name"] == "Werkplek" and len(subcategories) == 12
    assert api.get(f"{API}/archiving-reasons").json()[0]["name"] == "Klant vertrokken"
    assert {c["name"] for c in api.get(f"{API}/countries").json()} == {"Nederland", "België", "Duitsland"}


# --- operational activities ---------------------------------------------------------------------------

OM_LIST = "application/x.topdesk-collection-om-activity-v1+json"


@pytest.mark.parametrize("count", [0, 1, 3, 4])
def test_operational_activities_paging_edges(api: Api, world: World, count: int) -> None:
    ids = world.extra["td_om_activities"]["id"].head(count).tolist() or ["none"]
    url, items, pages = f"{API}/operationalActivities", [], 0
    params: dict[str, Any] | None = {"query": f"id=in=({','.join(ids)})", "pageSize": 3}
    while url and pages < 5:
        body = api.get(url, params=params, headers={"Accept": OM_LIST}).json()
        items += body["item"]
        url, params, pages = body["next"], None, pages + 1
    assert len(items) == count
    assert pages == (2 if count == 4 else 1)
    assert all(list(item) == ["id", "number"] for item in items)


def test_operational_activities_media_types_fields_and_query(api: Api, world: World) -> None:
    activities = world.extra["td_om_activities"]
    new = api.get(f"{API}/operationalActivities", params={"pageSize": 5_000, "fields": "all"}).json()
    assert len(new["item"]) == len(activities) and new["next"] is None
    assert all("linkedBranches" in item for item in new["item"])
    old = api.get(
        f"{API}/operationalActivities", params={"pageSize": 5_000}, headers={"Accept": "application/json"}
    )
    assert len(old.json()["results"]) == int((~activities["archived"]).sum())
    wrong = api.get(
        f"{API}/operationalActivities", headers={"Accept": "application/x.topdesk-om-activity-v9+json"}
    )
    assert wrong.status_code == 406
    cutoff = "2026-09-15T00:00:00Z"
    recent = api.get(
        f"{API}/operationalActivities",
        params={
            "query": f"modificationDate=ge={cutoff}",
            "fields": "id,modificationDate",
            "pageSize": 5_000,
        },
    ).json()["item"]
    assert len(recent) == int((activities["modificationDate"] >= cutoff).sum())
    created = [item["creationDate"] for item in new["item"]]
    assert created == sorted(created, reverse=True)


def test_activity_time_registrations_in_seconds_unpaged(api: Api, world: World) -> None:
    regs = world.extra["td_om_registrations"]
    activity = regs["activity.id"].value_counts().index[0]
    url = f"{API}/operationalActivities/{activity}/timeRegistrations"
    default = api.get(url).json()["results"]
    expected = regs[regs["activity.id"] == activity].set_index("id")["timeSpent"].to_dict()
    assert {item["id"]: item["timeSpent"] for item in default} == expected
    assert all(set(item) == {"id", "timeSpent"} for item in default)
    full = api.get(url, params={"fields": "all"}).json()["results"]
    assert set(full[0]) == {
        "id",
        "timeSpent",
        "note",
        "entryDate",
        "creationDate",
        "reason",
        "operator",
        "operatorGroup",
    }
    entries = [item["entryDate"] for item in full]
    assert entries == sorted(entries, reverse=True)
    assert (
        api.get(
            f"{API}/operationalActivities/00000000-0000-4000-8000-000000000000/timeRegistrations"
        ).status_code
        == 404
    )


def test_activity_time_registration_post_minutes_in_seconds_out(fresh: Api, world: World) -> None:
    activity = world.extra["td_om_activities"]["id"].iloc[0]
    url = f"{API}/operationalActivities/{activity}/timeRegistrations"
    created = fresh.post(url, json={"timeSpent": 60, "note": "Patches", "entryDate": "2026-10-02T09:00:00Z"})
    assert created.status_code == 200 and created.json()["timeSpent"] == 3600
    listed = fresh.get(url, params={"fields": "id,timeSpent,note"}).json()["results"]
    assert {"id": created.json()["id"], "timeSpent": 3600, "note": "Patches"} in listed


# --- changes ------------------------------------------------------------------------------------------


def test_change_lists_and_detail(api: Api, world: World) -> None:
    changes, activities = world.extra["td_changes"], world.extra["td_change_activities"]
    first = api.get(f"{API}/operatorChanges", params={"pageSize": 3})
    assert first.status_code == 206 and len(first.json()["results"]) == 3
    everything = api.get(f"{API}/operatorChanges", params={"pageSize": 5000})
    assert everything.status_code == 200 and len(everything.json()["results"]) == len(changes)
    assert api.get(f"{API}/operatorChanges", params={"pageSize": 5001}).status_code == 400
    change = changes.iloc[0]
    detail = api.get(f"{API}/operatorChanges/{change['id']}").json()
    assert (
        detail["number"] == change["number"]
        and detail["requester"]["branch"]["id"] == change["requesterBranch.id"]
    )
    of_change = api.get(f"{API}/operatorChangeActivities", params={"change": change["number"]}).json()[
        "results"
    ]
    assert {a["id"] for a in of_change} == set(activities.loc[activities["change.id"] == change["id"], "id"])


# --- OData --------------------------------------------------------------------------------------------


def _walk_odata(api: Api, url: str, params: dict[str, Any] | None) -> tuple[list[dict], int]:
    values, pages = [], 0
    next_url: str | None = url
    while next_url and pages < 50:
        body = api.get(next_url, params=params).json()
        values += body["value"]
        next_url, params, pages = body.get("@odata.nextLink"), None, pages + 1
    return values, pages


@pytest.mark.parametrize(("count", "pages"), [(0, 1), (1, 1), (3, 1), (4, 2)])
def test_odata_paging_edges(app: Starlette, fresh: Api, world: World, count: int, pages: int) -> None:
    _sim(app).options.odata_page_size = 3
    ids = world.extra["td_changes"]["id"].head(count).tolist()
    condition = " or ".join(f"Id eq {key}" for key in ids) or "Number eq 'none'"
    values, seen = _walk_odata(fresh, f"{ODATA}/Changes", {"$filter": condition})
    assert sorted(v["Id"] for v in values) == sorted(ids)
    assert seen == pages


def test_odata_time_registrations_in_minutes_with_filter_select_and_paging(
    fresh: Api, app: Starlette, world: World
) -> None:
    _sim(app).options.odata_page_size = 50
    regs = world.extra["td_odata_registrations"]
    kind = regs[regs["kind"] == "change"]
    window = kind[
        (kind["entryDate"] >= "2026-09-01T00:00:00Z") & (kind["entryDate"] < "2026-10-01T00:00:00Z")
    ]
    params = {
        "$filter": "EntryDate ge 2026-09-01T00:00:00Z and EntryDate lt 2026-10-01T00:00:00Z",
        "$select": "Id,TicketId,TicketNumber,EntryDate,TimeSpentMinutes",
    }
    values, pages = _walk_odata(fresh, f"{ODATA}/ChangeTimeRegistrations", params)
    assert pages == -(-len(window) // 50)
    assert {v["Id"]: v["TimeSpentMinutes"] for v in values} == window.set_index("id")["minutes"].to_dict()
    assert set(values[0]) == {"Id", "TicketId", "TicketNumber", "EntryDate", "TimeSpentMinutes"}
    assert values[0]["EntryDate"].endswith("Z")
    ticket = window["ticket.id"].iloc[0]
    one = fresh.get(f"{ODATA}/ChangeTimeRegistrations", params={"$filter": f"TicketId eq {ticket}"}).json()[
        "value"
    ]
    assert {v["Id"] for v in one} == set(kind.loc[kind["ticket.id"] == ticket, "id"])


def test_odata_tickets_show_the_branch_as_it_is_now(fresh: Api, world: World) -> None:
    problem = world.extra["td_problems"].iloc[0]
    url = f"{API}/branches/id/{problem['branch.id']}"
    patched = fresh.patch(url, json={"clientReferenceNumber": "70123", "name": "Hernoemd B.V."})
    assert patched.status_code == 200
    entity = fresh.get(f"{ODATA}/Problems", params={"$filter": f"Id eq {problem['id']}"}).json()["value"][0]
    assert (entity["BranchCustomerNumber"], entity["BranchName"]) == ("70123", "Hernoemd B.V.")


def test_odata_top_skip_orderby_and_ticket_context(api: Api, world: World) -> None:
    problems, branches = world.extra["td_problems"], world.extra["td_branches"].set_index("id")
    body = api.get(f"{ODATA}/Problems", params={"$top": 2, "$skip": 1, "$orderby": "Number desc"}).json()
    expected = problems.sort_values("number", ascending=False)["number"].iloc[1:3].tolist()
    assert [v["Number"] for v in body["value"]] == expected and "@odata.nextLink" not in body
    problem = problems.iloc[0]
    entity = api.get(f"{ODATA}/Problems", params={"$filter": f"Id eq {problem['id']}"}).json()["value"][0]
    assert entity["BranchId"] == problem["branch.id"]
    assert entity["BranchCustomerNumber"] == (
        branches.loc[problem["branch.id"], "clientReferenceNumber"] or None
    )
    activity = api.get(f"{ODATA}/ChangeActivities", params={"$top": 1}).json()["value"][0]
    assert {"ChangeId", "ChangeNumber", "BranchId", "BranchName", "BranchCustomerNumber"} <= set(activity)


@pytest.mark.parametrize(
    ("params", "status", "fragment"),
    [
        ({"$select": "Id,Nope"}, 400, "Could not find a property named 'Nope'"),
        ({"$filter": "EntryDate ge '2026-09-01T00:00:00Z'"}, 400, "incompatible types"),
        ({"$filter": "TimeSpentMinutes gt"}, 400, "incomplete comparison"),
        ({"$filter": "TimeSpentMinutes like 5"}, 400, "Unsupported operator 'like'"),
        ({"$top": "-1"}, 400, "$top"),
    ],
)
def test_odata_errors(api: Api, params: dict, status: int, fragment: str) -> None:
    response = api.get(f"{ODATA}/ProblemTimeRegistrations", params=params)
    assert response.status_code == status
    assert fragment in response.json()["error"]["message"]


def test_odata_entity_set_names_are_configurable(world: World) -> None:
    names = {"changes": "Wijzigingen", "change_activities": "Activiteiten", "problems": "Problemen"}
    names |= {"change": "WijzigingUren", "change_activity": "ActiviteitUren", "problem": "ProbleemUren"}
    app = create_app(world, TopdeskOptions(odata_entity_sets=names))
    sim = _sim(app)
    client = Api(app, (sim.login, sim.password))
    listed = {v["name"] for v in client.get(f"{ODATA}/").json()["value"]}
    assert listed == set(names.values())
    assert client.get(f"{ODATA}/ProbleemUren", params={"$top": 1}).status_code == 200
    missing = client.get(f"{ODATA}/ProblemTimeRegistrations")
    assert missing.status_code == 404 and "ProblemTimeRegistrations" in missing.json()["error"]["message"]
    client.close()


# --- control helpers ----------------------------------------------------------------------------------


def test_control_helpers_in_python(app: Starlette, fresh: Api, world: World) -> None:
    sim = _sim(app)
    sim.clock = lambda: datetime(2026, 11, 3, 12, 0, tzinfo=UTC)
    row = world.extra["td_registrations"].query("dirty == ''").iloc[0]
    url = f"{TR}/{row['id']}"
    sim.set_registration_minutes(row["id"], 50)
    item = fresh.get(url).json()
    assert item["timeSpent"] == 3000
    sim.set_registration_entry_date(row["id"], datetime(2026, 10, 31, 23, 30, tzinfo=UTC))
    assert fresh.get(url).json()["entryDate"] == "2026-10-31T23:30:00.000+0000"
    sim.delete_registration(row["id"])
    assert fresh.get(url).status_code == 404
    added = sim.add_registration(
        str(row["parent.id"]), 20, datetime(2026, 10, 1, 8, 0, tzinfo=UTC), notes="extra"
    )
    got = fresh.get(f"{TR}/{added}").json()
    assert got["timeSpent"] == 1200 and got["notes"] == "extra"
    assert got["creationDate"] == "2026-11-03T12:00:00.000+0000"


def test_control_routes(app: Starlette, world: World) -> None:
    sim = _sim(app)
    control = Api(app, None)
    operator_api = Api(app, (sim.login, sim.password))
    incident = world.extra["td_incidents"]["number"].iloc[0]
    created = control.post(
        "/__sandbox/topdesk/registrations",
        json={"incident": incident, "minutes": 25, "entryDate": "2026-10-02T10:00:00+00:00"},
    )
    assert created.status_code == 201
    key = created.json()["id"]
    assert control.patch(f"/__sandbox/topdesk/registrations/{key}", json={"minutes": 35}).status_code == 204
    assert operator_api.get(f"{TR}/{key}").json()["timeSpent"] == 2100
    assert control.request("DELETE", f"/__sandbox/topdesk/registrations/{key}").status_code == 204
    assert operator_api.get(f"{TR}/{key}").status_code == 404
    state = control.get("/__sandbox/topdesk/state").json()
    assert state["login"] == sim.login and state["deleted"] == [key]
    assert control.post("/__sandbox/topdesk/registrations", json={"minutes": 5}).status_code == 400
    control.close()
    operator_api.close()


def test_app_builds_from_a_core_only_world() -> None:
    core = generate_core(seed=9, scale=600)
    app = create_app(core)
    assert _sim(app).registrations.size == len(world_topdesk.render(core)["td_registrations"])
    assert core.extra == {}
