"""The TOPdesk client against the TOPdesk sandbox over loopback sockets: a faulty month, paging, writes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pandas as pd
import pytest

from connectors.errors import AuthError
from connectors.http import RetryPolicy
from connectors.topdesk import masterdata
from connectors.topdesk.client import TopdeskClient
from connectors.topdesk.endpoints import INCIDENTS, OPERATOR_GROUPS, PERSONS, TIME_REGISTRATIONS, odata
from connectors.topdesk.raw import dig
from connectors.topdesk.settings import TopdeskSettings
from connectors.topdesk.timeregistrations import (
    ALL_STATUSES,
    COLUMNS,
    INCIDENT_PATHS,
    UNSHARED_COLUMNS,
    IncidentFields,
    SharedText,
    SourceFailed,
    TimeRegistrationOptions,
    read_sources,
    read_time_registrations,
    resolve_incidents,
)
from sandbox.server import Sandbox, running_sandbox
from sandbox.world import generate_world

pytestmark = pytest.mark.anyio

TEST_POLICY = RetryPolicy(max_attempts=10, base_delay=0.001, max_delay=0.01, max_total_seconds=60)
OCTOBER = (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))
WEEK = (datetime(2026, 10, 5, tzinfo=UTC), datetime(2026, 10, 12, tzinfo=UTC))
QUIET = {"fault_rate": 0.0, "lost_response_rate": 0.0, "latency_ms": 0}
EVERYTHING = TimeRegistrationOptions(include_partials_archived=True)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    # A world of 25,000 registrations per month, one month (October 2026), all five kinds.
    with running_sandbox(generate_world(seed=17, scale=25_000, months=1)) as running:
        yield running


def topdesk(sandbox: Sandbox, **overrides: object) -> TopdeskClient:
    values = {
        "base_url": sandbox.topdesk_url,
        "login": sandbox.topdesk_login,
        "application_password": sandbox.topdesk_password,
    }
    return TopdeskClient.from_settings(TopdeskSettings(**{**values, **overrides}), policy=TEST_POLICY, seed=9)


def world_month(sandbox: Sandbox) -> pd.DataFrame:
    """Every registration of October as the world generated it: id, kind, minutes, dirt, branch."""
    x = sandbox.world.extra
    incidents = x["td_registrations"].merge(
        x["td_incidents"][["id", "callerBranch.id"]].rename(columns={"id": "parent.id"}), on="parent.id"
    )
    parts = [
        incidents.assign(kind="incident", branch=incidents["callerBranch.id"]),
        x["td_om_registrations"].assign(kind="operational_activity", branch=None),
        x["td_odata_registrations"].assign(branch=None),
    ]
    frame = pd.concat([p[["id", "kind", "minutes", "dirty", "entryDate", "branch"]] for p in parts])
    when = pd.to_datetime(frame["entryDate"], utc=True)
    return frame[(when >= OCTOBER[0]) & (when < OCTOBER[1])].set_index("id")


@pytest.mark.slow
async def test_a_25000_registration_month_is_read_exactly_once_under_faults(sandbox):
    expected = world_month(sandbox)
    sandbox.set_knobs(
        "topdesk",
        latency_ms=2,
        fault_rate=0.2,
        fault_kinds=["throttle", "unavailable", "reset"],
        retry_after_seconds=0,
        seed=3,
    )
    try:
        async with topdesk(sandbox) as client:
            frame = await read_time_registrations(client, *OCTOBER, EVERYTHING)
            stats = client.stats()
    finally:
        sandbox.set_knobs("topdesk", **QUIET)
    assert len(expected) >= 24_000
    assert tuple(frame.columns) == COLUMNS
    # Served = read: a row served twice (the world's "duplicate" rows) is in the frame twice, identical.
    served_twice = frame[frame["registration_id"].duplicated(keep=False)]
    assert set(served_twice["registration_id"]) <= set(expected.index[expected["dirty"] == "duplicate"])
    frame = frame.drop_duplicates(subset=[c for c in COLUMNS if c != "read_error"])
    assert frame["registration_id"].is_unique
    in_window = frame["entry_date"].isna() | frame["entry_date"].between(*OCTOBER, inclusive="left")
    assert set(frame.loc[in_window, "registration_id"]) == set(expected.index)  # every row, none invented
    outside = frame[~in_window]  # operational activities have no date filter: served, guarded later
    assert (outside["kind"] == "operational_activity").all()
    frame = frame[in_window]
    assert sum(s["retries"] for s in stats.values()) > 50  # faults were really injected and survived
    got = frame.set_index("registration_id").join(expected.add_suffix("_world"))
    assert (got["kind"] == got["kind_world"]).all()
    mismatch = got["dirty_world"] == "unit_mismatch"
    assert got.loc[mismatch, "minutes"].isna().all() and mismatch.sum() > 0
    clean = ~mismatch
    assert (got.loc[clean, "minutes"].astype("int64") == got.loc[clean, "minutes_world"]).all()
    bad_dates = got["dirty_world"] == "bad_entry_date"
    assert got.loc[bad_dates, "entry_date"].isna().all() and bad_dates.sum() > 0
    assert got.loc[~bad_dates, "entry_date"].notna().all()
    incidents = got[got["kind"] == "incident"]
    assert (incidents["branch_id"].fillna("") == incidents["branch_world"].fillna("")).all()


async def test_a_read_without_partials_leaves_partials_and_archived_out(sandbox):
    x = sandbox.world.extra
    incidents = x["td_incidents"].set_index("id")
    regs = x["td_registrations"]
    when = pd.to_datetime(regs["entryDate"], utc=True)
    regs = regs[(when >= WEEK[0]) & (when < WEEK[1])]
    parents = incidents.loc[regs["parent.id"]]
    default = regs[(parents["line"].to_numpy() != "partial") & ~parents["archived"].to_numpy()]
    async with topdesk(sandbox) as client:
        only = TimeRegistrationOptions(kinds=("incident",), include_partials_archived=False)
        frame = await read_time_registrations(client, *WEEK, only)
        default_options = TimeRegistrationOptions(kinds=("incident",))
        everything = await read_time_registrations(client, *WEEK, default_options)
    assert set(everything["registration_id"]) == set(regs["id"])  # the default reads partials and archived
    assert len(default) > 3000 and len(default) < len(regs)
    assert set(frame["registration_id"]) == set(default["id"])
    partials = (frame["ticket_status"] == "partial").sum()
    assert partials == 0


async def test_partials_are_billed_on_their_main_incident(sandbox):
    async with topdesk(sandbox) as client:
        frame = await read_time_registrations(
            client, *WEEK, TimeRegistrationOptions(kinds=("incident",), include_partials_archived=True)
        )
    incidents = sandbox.world.extra["td_incidents"].set_index("id")
    partial = frame[frame["ticket_status"].str.startswith("partial")]
    assert len(partial) > 0
    mains = incidents.loc[partial["ticket_id"], "mainIncident.id"].to_numpy()
    assert (partial["billed_ticket_id"].to_numpy() == mains).all()
    assert (partial["billed_ticket_number"].to_numpy() == incidents.loc[mains, "number"].to_numpy()).all()
    own = frame[~frame["ticket_status"].str.startswith("partial")]
    assert (own["billed_ticket_id"] == own["ticket_id"]).all()
    projects = incidents.loc[own["ticket_id"], "optionalFields1.text1"].replace("", None).to_numpy()
    assert (own["project_ref"].fillna("").to_numpy() == pd.Series(projects).fillna("").to_numpy()).all()


# --- paging edge cases per family against the sandbox ------------------------------------------------


async def read_counted(client: TopdeskClient, endpoint, params=None, **kwargs) -> tuple[list[dict], int]:
    before = client.stats().get(f"GET {endpoint_key(endpoint)}", {}).get("count", 0)
    rows = await client.read_all(endpoint, params, **kwargs)
    after = client.stats()[f"GET {endpoint_key(endpoint)}"]["count"]
    return rows, after - before


def endpoint_key(endpoint) -> str:
    return endpoint.path


@pytest.mark.parametrize(("n", "calls"), [(0, 1), (1, 1), (5, 1), (6, 2)])
async def test_family_a_incidents(sandbox, n, calls):
    ids = sandbox.world.extra["td_incidents"]["id"].tolist()[:n] or ["00000000-0000-4000-8000-000000000000"]
    async with topdesk(sandbox) as client:
        rows, used = await read_counted(
            client,
            INCIDENTS,
            {"query": f"id=in=({','.join(ids)})", "all": "true", "fields": "id"},
            page_size=5,
        )
    assert sorted(r["id"] for r in rows) == sorted(ids[:n]) and used == calls


@pytest.mark.parametrize("bulk_next", [False, True], ids=["200-short-page", "206-next"])
@pytest.mark.parametrize("case", ["empty", "one", "page", "page+1", "short"])
async def test_family_a_bulk_registrations(sandbox, case, bulk_next):
    sim = sandbox.apps["topdesk"].state.sim
    regs = sandbox.world.extra["td_registrations"]
    counts = regs.groupby("parent.id").size()
    parent = counts[counts == 1].index[0] if case == "one" else counts.idxmax()
    query = f"parent.id=={parent};status=in=({','.join(ALL_STATUSES)})"
    if case == "empty":
        query = "entryDate=lt=2001-01-01T00:00:00Z"
    expected = sorted(regs.loc[regs["parent.id"] == parent, "id"]) if case != "empty" else []
    size = {"page": len(expected), "page+1": len(expected) - 1, "short": len(expected) + 3}.get(case, 10)
    sim.options.serve_duplicates, sim.options.bulk_next = False, bulk_next
    try:
        async with topdesk(sandbox) as client:
            rows, used = await read_counted(
                client, TIME_REGISTRATIONS, {"query": query, "fields": "id"}, page_size=size
            )
    finally:
        sim.options.serve_duplicates, sim.options.bulk_next = True, False
    assert sorted(r["id"] for r in rows) == expected
    assert used == len(expected) // size + 1


@pytest.mark.parametrize("case", ["page", "page+1", "short"])
async def test_family_b_operator_groups(sandbox, case):
    total = len(sandbox.world.extra["td_operator_groups"])
    size = {"page": total, "page+1": total - 1, "short": total + 1}[case]
    async with topdesk(sandbox) as client:
        rows, used = await read_counted(
            client, OPERATOR_GROUPS, {"fields": "id,groupName,hourlyRate"}, page_size=size
        )
    assert sorted(r["id"] for r in rows) == sorted(sandbox.world.extra["td_operator_groups"]["id"])
    assert used == (2 if case == "page+1" else 1)  # 206 only while more exist
    assert all(isinstance(r["hourlyRate"], int | float) for r in rows)


@pytest.mark.parametrize("case", ["empty", "one", "page", "page+1", "short"])
async def test_family_c_persons(sandbox, case):
    persons = sandbox.world.extra["td_persons"]
    branch = persons["branch.id"].value_counts().index[0]
    chosen = persons[persons["branch.id"] == branch]
    query = f"branch.id=={branch}"
    if case == "one":
        chosen = chosen.head(1)
        query = f"employeeNumber=={chosen['employeeNumber'].iloc[0]};branch.id=={branch}"
    if case == "empty":
        chosen, query = chosen.head(0), "employeeNumber==no-such-person"
    size = {"page": len(chosen), "page+1": len(chosen) - 1, "short": len(chosen) + 2}.get(case, 10)
    async with topdesk(sandbox) as client:
        rows, used = await read_counted(client, PERSONS, {"query": query, "fields": "id"}, page_size=size)
    assert sorted(r["id"] for r in rows) == sorted(chosen["id"])
    assert used == (2 if case == "page+1" else 1)


@pytest.mark.parametrize("case", ["empty", "one", "page", "page+1"])
async def test_odata_next_link(sandbox, case):
    sim = sandbox.apps["topdesk"].state.sim
    regs = sandbox.world.extra["td_odata_registrations"]
    problems = regs[regs["kind"] == "problem"]
    ticket = problems["ticket.id"].value_counts().index[0]
    chosen = problems[problems["ticket.id"] == ticket]
    condition = f"TicketId eq {ticket}"
    if case == "one":
        chosen, condition = chosen.head(1), f"Id eq {chosen['id'].iloc[0]}"
    if case == "empty":
        chosen, condition = chosen.head(0), "TimeSpentMinutes lt -100000"
    sim.options.odata_page_size = {"page": len(chosen), "page+1": len(chosen) - 1}.get(case, 10)
    try:
        async with topdesk(sandbox) as client:
            endpoint = odata("ProblemTimeRegistrations")
            rows, used = await read_counted(client, endpoint, {"$filter": condition, "$select": "Id"})
    finally:
        sim.options.odata_page_size = 1000
    assert sorted(r["Id"] for r in rows) == sorted(chosen["id"])
    assert used == (2 if case == "page+1" else 1)


# --- writes, auth, secrets ----------------------------------------------------------------------------


async def test_branch_and_person_creation_exactly_once_with_lost_responses(sandbox):
    sim = sandbox.apps["topdesk"].state.sim
    numbers = [f"77{n:03d}" for n in range(30)]
    sandbox.set_knobs(
        "topdesk",
        fault_rate=0.2,
        fault_kinds=["throttle", "unavailable"],
        lost_response_rate=0.4,
        retry_after_seconds=0,
        seed=8,
    )
    try:
        async with topdesk(sandbox) as client:
            branches = await asyncio.gather(
                *(
                    masterdata.create_branch_once(client, {"name": f"Nieuw {n}", "clientReferenceNumber": n})
                    for n in numbers
                )
            )
            persons = await asyncio.gather(
                *(
                    masterdata.create_person_once(
                        client,
                        {"surName": f"Persoon {n}", "employeeNumber": f"E{n}", "branch": {"id": b["id"]}},
                    )
                    for n, b in zip(numbers, branches, strict=True)
                )
            )
    finally:
        sandbox.set_knobs("topdesk", **QUIET)
    stored = [b for b in sim.branches if b["clientReferenceNumber"] in numbers]
    assert sorted(b["clientReferenceNumber"] for b in stored) == numbers
    assert {b["id"] for b in stored} == {b["id"] for b in branches}
    stored_persons = [p for p in sim.persons if str(p["employeeNumber"]).startswith("E77")]
    assert sorted(p["employeeNumber"] for p in stored_persons) == [f"E{n}" for n in numbers]
    assert any(b.get("recovered") for b in branches + persons)


async def test_bad_password_gives_one_auth_error_and_secrets_stay_out_of_logs(sandbox, caplog):
    for name in (None, "httpx", "httpcore"):
        caplog.set_level(logging.DEBUG, logger=name)
    wrong = "wrong-password-12345"
    with pytest.raises(AuthError) as caught:
        async with topdesk(sandbox, application_password=wrong):
            pass
    async with topdesk(sandbox) as client:
        await client.read_all(OPERATOR_GROUPS, {"fields": "id"})
    text = caplog.text + str(caught.value) + repr(caught.value)
    assert "No authentication token provided" in str(caught.value) and "\n" not in str(caught.value)
    assert "tas/api/operatorgroups" in caplog.text
    for secret in (wrong, sandbox.topdesk_password):
        assert secret not in text


async def test_master_data_reads(sandbox):
    x = sandbox.world.extra
    async with topdesk(sandbox) as client:
        active = await masterdata.read_branches(client)
        every = await masterdata.read_branches(client, include_archived=True)
        persons = await masterdata.read_persons(client)
        operators = await masterdata.read_operators(client)
        groups = await masterdata.read_operator_groups(client)
        reasons = await masterdata.read_reasons(client)
    sim = sandbox.apps["topdesk"].state.sim  # other tests of this module create branches and persons
    assert set(every["id"]) == {b["id"] for b in sim.branches}
    assert set(active["id"]) == {b["id"] for b in sim.branches if not b["archived"]}
    archived = set(x["td_branches"].loc[x["td_branches"]["archived"], "id"])
    assert archived and archived <= set(every["id"]) - set(active["id"])
    assert {"clientReferenceNumber", "address.city", "archived"} <= set(every.columns)
    assert set(persons["id"]) == {p["id"] for p in sim.persons if not p["archived"]}
    assert "branch.clientReferenceNumber" in persons.columns
    assert set(operators["id"]) == set(x["td_operators"].loc[~x["td_operators"]["archived"], "id"])
    rates = dict(zip(groups["groupName"], groups["hourlyRate"], strict=True))
    expected = dict(
        zip(x["td_operator_groups"]["groupName"], x["td_operator_groups"]["hourlyRate"], strict=True)
    )
    assert {k: float(v) for k, v in expected.items()} == rates
    assert sorted(reasons["name"]) == sorted(x["td_reasons"]["name"])


async def test_a_missing_entity_set_fails_that_source_only_and_is_named(sandbox):
    sim = sandbox.apps["topdesk"].state.sim
    sim.options.missing_entity_sets = ("ChangeActivityTimeRegistrations",)
    try:
        async with topdesk(sandbox) as client:
            extract = await read_sources(client, *WEEK, TimeRegistrationOptions(unit_sample=0, totals=False))
            with pytest.raises(SourceFailed, match="ChangeActivityTimeRegistrations"):
                await read_time_registrations(client, *WEEK)
    finally:
        sim.options.missing_entity_sets = ()
    failed = {s.kind: s for s in extract.failed}
    assert list(failed) == ["change_activity"]
    assert "ChangeActivityTimeRegistrations" in failed["change_activity"].error
    assert "[topdesk]" in failed["change_activity"].error  # the 404 hint points at the mapping
    served = {s.kind: s.served for s in extract.sources}
    assert served["change_activity"] == 0 and all(served[k] > 0 for k in served if k != "change_activity")
    assert set(extract.frame["kind"]) == set(served) - {"change_activity"}


async def test_equal_text_values_of_a_month_are_one_object_so_a_million_rows_fit(sandbox):
    # Issue #15: JSON parsing makes a str per cell; the extract keeps one object per distinct value of a
    # repeating column (24 text columns × 1 M rows would otherwise be 24 M objects). Same values as served.
    options = TimeRegistrationOptions(order_field="optionalFields1.text1")
    async with topdesk(sandbox) as client:
        extract = await read_sources(client, *OCTOBER, options)
    frame = extract.frame
    assert len(frame) >= 24_000 and not extract.failed
    shared = [c for c in frame.columns if frame[c].dtype == "str" and c not in UNSHARED_COLUMNS]
    assert {"operator_name", "branch_id", "ticket_id", "notes", "order_ref", "read_error"} <= set(shared)
    for name in shared:
        values = frame[name].dropna()
        assert len({id(v) for v in values}) == values.nunique(), name
    assert frame["order_ref"].notna().sum() > 1000  # the project field as order field: it is read
    repeated = frame["operator_name"].dropna()
    assert repeated.nunique() * 10 < len(repeated)  # so sharing is what makes the count equal


async def test_an_incident_kept_by_incident_fields_answers_every_path_the_extract_reads(sandbox):
    x = sandbox.world.extra
    ids = list(x["td_incidents"]["id"][:400])
    options = TimeRegistrationOptions(order_field="optionalFields1.text1")
    async with topdesk(sandbox) as client:
        served = await resolve_incidents(client, ids, options)
        kept = await resolve_incidents(client, ids, options, IncidentFields(options, SharedText()))
    assert served.keys() == kept.keys() and len(kept) >= 400
    assert any(dig(i, "mainIncident.id") for i in served.values())  # partials with their mains
    for key, incident in served.items():
        for path in (*INCIDENT_PATHS, options.project_field, options.order_field):
            assert dig(kept[key], path) == dig(incident, path), (key, path)
        assert "boolean1" not in kept[key]["optionalFields1"]  # what nobody reads is dropped
        assert "timeZone" not in (kept[key]["callerBranch"] or {})
