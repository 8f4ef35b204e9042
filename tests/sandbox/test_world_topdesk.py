"""The TOPdesk side of the seeded world: deterministic, coherent with the core, dirty in documented ways."""

from __future__ import annotations

import re
from datetime import date

import numpy as np
import pandas as pd
import pytest

from sandbox.world import World, generate_core
from sandbox.world import topdesk as world_topdesk
from sandbox.world.topdesk_frames import FRAMES

EXPECTED_FRAMES = {
    "td_archiving_reasons",
    "td_branches",
    "td_categories",
    "td_change_activities",
    "td_changes",
    "td_countries",
    "td_incidents",
    "td_odata_registrations",
    "td_om_activities",
    "td_om_registrations",
    "td_operator_groups",
    "td_operators",
    "td_persons",
    "td_problems",
    "td_reasons",
    "td_registrations",
}


def _world(seed: int = 11, scale: int = 3000) -> World:
    world = generate_core(seed=seed, scale=scale)
    world.extra.update(world_topdesk.render(world))
    return world


@pytest.fixture(scope="module")
def world() -> World:
    return _world()


def test_same_seed_gives_the_same_frames_byte_for_byte() -> None:
    first, second, other = _world(seed=5, scale=600), _world(seed=5, scale=600), _world(seed=6, scale=600)
    assert first.fingerprint() == second.fingerprint()
    assert first.fingerprint() != other.fingerprint()
    assert set(first.extra) == EXPECTED_FRAMES


def test_registration_counts_follow_scale_and_months(world: World) -> None:
    total = world.scale * world.months  # 9000
    incident = len(world.extra["td_registrations"])
    om = len(world.extra["td_om_registrations"])
    odata = len(world.extra["td_odata_registrations"])
    assert (incident, om, odata) == (7200, 540, 1260)
    assert incident + om + odata == total


def test_branches_are_topdesk_customers_departments_and_three_dirty_ones(world: World) -> None:
    branches, customers = world.extra["td_branches"], world.customers
    in_topdesk = customers[customers["in_topdesk"]]
    kinds = branches["kind"].value_counts().to_dict()
    assert kinds == {"customer": len(in_topdesk), "department": 3, "extra": 3}
    customer_rows = branches[branches["kind"] == "customer"]
    assert customer_rows["clientReferenceNumber"].tolist() == in_topdesk["customer_number"].tolist()
    departments = branches[branches["kind"] == "department"]["clientReferenceNumber"].tolist()
    assert departments == ["INT-ICT", "INT-HR", "INT-VK"]
    dirty = branches.set_index("dirty")
    assert dirty.loc["no_customer_number", "clientReferenceNumber"] == ""
    assert dirty.loc["unknown_customer_number", "clientReferenceNumber"] not in set(
        customers["customer_number"]
    )
    assert "\u200b" in dirty.loc["odd_unicode_name", "name"]
    assert branches["archived"].tolist().count(True) == 1
    assert bool(dirty.loc["archived_duplicate", "archived"])
    assert branches["id"].is_unique


def test_persons_are_the_contacts_of_topdesk_customers(world: World) -> None:
    persons, contacts, customers = world.extra["td_persons"], world.contacts, world.customers
    numbers = set(customers.loc[customers["in_topdesk"], "customer_number"])
    expected = contacts[contacts["customer_number"].isin(numbers)]["person_number"]
    real = persons[persons["employeeNumber"] != ""]
    assert real["employeeNumber"].tolist() == expected.tolist()
    assert set(persons["branch.id"]) <= set(world.extra["td_branches"]["id"])
    assert 0 < persons["archived"].sum() < len(persons) * 0.05


def test_staff_lookups_carry_rates_and_the_api_account(world: World) -> None:
    operators, groups = world.extra["td_operators"], world.extra["td_operator_groups"]
    assert len(operators) == len(world.operators) + 1
    api = operators[operators["apiAccount"]]
    assert api["loginName"].tolist() == ["koppel.api"]
    assert operators["hourlyRate"].iloc[0] == world.operators["hourly_rate"].iloc[0]
    assert groups.columns.tolist() == ["id", "groupName", "hourlyRate"]
    assert groups["groupName"].tolist()[:2] == ["Servicedesk", "Tweede lijn"]


def test_bulk_seconds_are_minutes_times_sixty_except_unit_mismatch(world: World) -> None:
    regs = world.extra["td_registrations"]
    mismatch = regs["dirty"] == "unit_mismatch"
    assert (regs.loc[~mismatch, "timeSpent"] == regs.loc[~mismatch, "minutes"] * 60).all()
    assert mismatch.sum() > 0
    assert (regs.loc[mismatch, "timeSpent"] % 60 != 0).all()
    assert (regs.loc[mismatch, "timeSpent"] == regs.loc[mismatch, "minutes"]).all()


def test_dirty_rows_are_three_to_five_percent_and_each_kind_is_real(world: World) -> None:
    regs = world.extra["td_registrations"]
    counts = regs["dirty"].value_counts().to_dict()
    share = (regs["dirty"] != "").mean()
    assert 0.03 <= share <= 0.05, share
    for label in ["zero", "negative", "absurd", "unit_mismatch", "bad_entry_date", "duplicate"]:
        assert counts.get(label, 0) > 0, label
    assert counts.get("branch_without_customer_number", 0) > 0
    assert counts.get("branch_unknown_customer_number", 0) > 0
    by = regs.groupby("dirty")["minutes"]
    assert by.max()["zero"] == 0
    assert by.max()["negative"] < 0
    assert by.min()["absurd"] >= 1800
    bad = regs.loc[regs["dirty"] == "bad_entry_date", "entry_date_text"]
    assert bad.str.match(r"^(\d{2}-\d{2}-\d{4} \d{2}:\d{2}|\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2})$").all()
    assert (regs.loc[regs["dirty"] != "bad_entry_date", "entry_date_text"] == "").all()


def test_registrations_on_dirty_branches_are_labelled(world: World) -> None:
    regs, incidents, branches = (world.extra[k] for k in ("td_registrations", "td_incidents", "td_branches"))
    branch_of = incidents.set_index("id")["callerBranch.id"]
    dirty_of = branches.set_index("id")["dirty"]
    label = regs["parent.id"].map(branch_of).map(dirty_of)
    no_number = label == "no_customer_number"
    assert (regs.loc[no_number, "dirty"] == "branch_without_customer_number").all()
    assert (regs.loc[label == "unknown_customer_number", "dirty"] == "branch_unknown_customer_number").all()


def test_negative_registrations_never_make_an_incident_total_negative(world: World) -> None:
    totals = world.extra["td_registrations"].groupby("parent.id")["minutes"].sum()
    assert totals.min() >= 0


def test_entry_dates_lie_in_the_period_with_evenings_and_weekends(world: World) -> None:
    regs = world.extra["td_registrations"]
    local = regs["entryDate"].dt.tz_convert("Europe/Amsterdam")
    assert local.min().date() >= date(2026, 8, 1)
    assert local.max().date() < date(2026, 11, 1)
    assert set(local.dt.month) == {8, 9, 10}
    hours, weekend = local.dt.hour, local.dt.day_of_week >= 5
    assert 0.7 < ((hours >= 8) & (hours < 18)).mean() < 0.9
    assert (hours >= 18).mean() > 0.05
    assert 0.01 < weekend.mean() < 0.2
    assert (regs["creationDate"] >= regs["entryDate"]).all()
    assert (regs["modificationDate"] >= regs["creationDate"]).all()


def test_incident_numbers_lines_and_partials(world: World) -> None:
    incidents = world.extra["td_incidents"]
    assert incidents["number"].is_unique
    spaced = incidents["number"].str.match(r"^I \d{4} \d{3,}$")
    dashed = incidents["number"].str.match(r"^I\d{4}-\d{4,}$")
    assert (spaced | dashed).all() and spaced.sum() > dashed.sum() > 0
    partials = incidents[incidents["line"] == "partial"]
    assert 0.05 < len(partials) / len(incidents) < 0.15
    mains = incidents.set_index("id").loc[partials["mainIncident.id"]]
    assert (mains["line"] == "secondLine").all()
    assert (mains["callerBranch.id"].to_numpy() == partials["callerBranch.id"].to_numpy()).all()
    assert (incidents.loc[incidents["line"] != "partial", "mainIncident.id"] == "").all()
    archived = incidents[incidents["archived"]]
    assert len(archived) > 0 and archived["status"].str.endswith("Archived").all()
    assert archived["closed"].all()


def test_project_codes_on_about_a_third_of_customer_tickets(world: World) -> None:
    incidents, projects, branches = world.extra["td_incidents"], world.projects, world.extra["td_branches"]
    on_customer = incidents["callerBranch.id"].map(branches.set_index("id")["kind"]) == "customer"
    coded = incidents["optionalFields1.text1"] != ""
    assert 0.25 < coded[on_customer].mean() < 0.35
    assert not coded[~on_customer].any()
    info = projects.set_index("project_id")
    number = incidents["callerBranch.id"].map(branches.set_index("id")["clientReferenceNumber"])
    kinds = incidents.loc[coded, "project_kind"]
    owner = incidents.loc[coded, "optionalFields1.text1"].map(info["customer_number"])
    closed = incidents.loc[coded, "optionalFields1.text1"].map(info["closed"])
    assert (closed == (kinds == "closed")).all()
    assert (owner[kinds == "own"] == number[coded][kinds == "own"]).all()
    assert (owner[kinds == "other_debtor"] != number[coded][kinds == "other_debtor"]).all()
    share = kinds.value_counts(normalize=True)
    assert share["own"] > 0.8 and share["other_debtor"] > 0 and share["closed"] > 0


def test_operational_activities_and_their_registrations(world: World) -> None:
    activities, regs = world.extra["td_om_activities"], world.extra["td_om_registrations"]
    branch_ids = set(world.extra["td_branches"]["id"])
    linked = {key for value in activities["linkedBranches"] for key in value.split(";") if key}
    assert linked <= branch_ids
    assert set(regs["activity.id"]) <= set(activities["id"])
    clean = regs["dirty"] != "unit_mismatch"
    assert (regs.loc[clean, "timeSpent"] == regs.loc[clean, "minutes"] * 60).all()
    no_branch = activities.set_index("id").loc[regs["activity.id"], "linkedBranches"].to_numpy() == ""
    assert ((regs["dirty"] == "no_linked_branch").to_numpy() == no_branch).all()
    assert activities["number"].str.match(r"^OA \d{4} \d{4}$").all()


def test_changes_activities_problems_and_their_odata_registrations(world: World) -> None:
    extra = world.extra
    regs = extra["td_odata_registrations"]
    tickets = {
        "change": set(extra["td_changes"]["id"]),
        "change_activity": set(extra["td_change_activities"]["id"]),
        "problem": set(extra["td_problems"]["id"]),
    }
    for kind, ids in tickets.items():
        assert set(regs.loc[regs["kind"] == kind, "ticket.id"]) <= ids, kind
    assert set(extra["td_change_activities"]["change.id"]) <= tickets["change"]
    assert regs["minutes"].dtype == np.int64
    assert (regs.loc[regs["dirty"] == "zero", "minutes"] == 0).all()
    assert extra["td_changes"]["number"].str.match(r"^C \d{4} \d{4}$").all()
    assert extra["td_change_activities"]["number"].str.match(r"^CA \d{4} \d{4}$").all()
    assert extra["td_problems"]["number"].str.match(r"^P \d{4} \d{4}$").all()


def test_dates_are_tz_aware_and_ids_are_uuids(world: World) -> None:
    uuid = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
    for name, frame in world.extra.items():
        for column in frame.columns:
            if pd.api.types.is_datetime64_any_dtype(frame[column]):
                assert str(frame[column].dt.tz) == "UTC", (name, column)
        assert frame["id"].map(lambda v: bool(uuid.match(v))).all(), name
        key = "subcategory_id" if name == "td_categories" else "id"  # one row per subcategory
        assert frame[key].is_unique, name


@pytest.mark.slow
def test_a_million_registrations_render() -> None:
    """Generation at 1M registrations (timings are recorded in the report, not asserted)."""
    world = generate_core(scale=333_334)
    frames = world_topdesk.render(world)
    total = sum(len(frames[k]) for k in ("td_registrations", "td_om_registrations", "td_odata_registrations"))
    assert total == 333_334 * 3
    assert frames["td_registrations"]["id"].is_unique


@pytest.mark.parametrize(("seed", "scale"), [(11, 3000), (4, 400)])
def test_every_frame_meets_its_schema(seed: int, scale: int) -> None:
    world = _world(seed, scale)
    frames = {name: frame for name, frame in world.extra.items() if name.startswith("td_")}
    assert set(frames) == set(FRAMES)
    for name, schema in FRAMES.items():
        schema.validate(frames[name], lazy=True)
    assert set(frames["td_registrations"]["dirty"]) > {"", "duplicate", "unit_mismatch"}  # the dirt is there
