"""sync-companies, create-missing-debtors and import-debtors end to end against the sandbox."""

from __future__ import annotations

import functools
from collections import Counter
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from flows.create_missing_debtors import CreateMissingDebtorsParameters, create_missing_debtors
from flows.import_debtors import import_debtors
from flows.sync_companies import SyncCompaniesParameters, sync_companies
from sandbox.world import generate_world
from store import snapshots
from store.db import connect
from store.settings import StoreSettings
from tasks.company_sync import debtors as debtor_module
from tasks.company_sync.debtors import organisation_number
from tasks.names import join_name, split_dutch_name
from tests.run_support import finished

pytestmark = pytest.mark.prefect

OCTOBER = (date(2026, 10, 1), date(2026, 10, 31))
WRITES = ("POST", "PUT", "PATCH", "DELETE")


@functools.cache
def small_world():
    """About 40 customers, a few of them AFAS-only, TOPdesk-only and blocked; two months of hours.

    Built once per session: the simulators copy what they serve, so every sandbox starts from it afresh.
    """
    return generate_world(seed=11, scale=240, anchor=date(2026, 11, 1), months=2)


@pytest.fixture
def enabled_config(tmp_path) -> str:
    text = Path("config/companies.toml").read_text(encoding="utf-8")
    path = tmp_path / "companies.toml"
    path.write_text(text.replace("[create_debtors]\nenabled = false", "[create_debtors]\nenabled = true"))
    return str(path)


TOKEN_ENDPOINT = "POST /ProfitRestServices/oauth/token"  # an OAuth token request writes no data


def writes(sandbox, system: str) -> Counter:
    """Write requests per endpoint since the last counter reset (a renewed OAuth token is not a write)."""
    endpoints = sandbox.counters(system)["endpoints"]
    return Counter(
        {k: v["count"] for k, v in endpoints.items() if k.split()[0] in WRITES and k != TOKEN_ENDPOINT}
    )


def td(sandbox):
    return sandbox.apps["topdesk"].state.sim


def afas(sandbox):
    return sandbox.apps["afas"].state.sim


def branch_by_number(sandbox, number: str) -> list[dict]:
    return [b for b in td(sandbox).branches.by_id.values() if b.get("clientReferenceNumber") == number]


def sync(clean: bool = True, **kwargs):
    """A sync-companies run's result; ``clean``: it must end green (every TOPdesk write went through)."""
    result = finished(sync_companies, **SyncCompaniesParameters(**kwargs).model_dump())
    assert (result["not_clean"] is None) == clean, result["not_clean"]
    return result


def missing(config_path: str, **kwargs):
    params = CreateMissingDebtorsParameters(
        start_date=OCTOBER[0], end_date=OCTOBER[1], config_path=config_path, **kwargs
    )
    return create_missing_debtors(**params.model_dump())


def test_first_run_creates_second_run_writes_nothing(prefect_harness, sandbox) -> None:
    world = small_world()
    afas_only = world.customers[world.customers["in_afas"] & ~world.customers["in_topdesk"]]
    afas_only = afas_only[~afas_only["blocked"]]
    assert len(afas_only) >= 1

    first = sync()
    done = first["counts"].set_index(["entity", "action"])
    assert done.loc[("branch", "create"), "done"] == len(afas_only)
    assert done["failed"].sum() == 0
    for number in afas_only["customer_number"]:
        (branch,) = branch_by_number(sandbox, number)
        customer = world.customers.set_index("customer_number").loc[number]
        assert branch["name"] == customer["name"]
        assert branch["address"]["city"] == customer["city"]
        people = [p for p in td(sandbox).persons.by_id.values() if p.get("branch") == branch["id"]]
        expected = world.contacts[world.contacts["customer_number"] == number]
        assert sorted(p["employeeNumber"] for p in people) == sorted(expected["person_number"])

    sandbox.reset_counters()
    second = sync()
    assert writes(sandbox, "topdesk") == Counter()
    assert second["changes"].empty
    notes = second["notes"]
    every_debtor = notes["branch unchanged"] + notes.get("blocked debtor without branch: not created", 0)
    assert every_debtor == len(afas(sandbox).tables["debtors"])


def test_renamed_organisation_updates_only_the_name(prefect_harness, sandbox) -> None:
    sync()
    debtor = next(d for d in afas(sandbox).tables["debtors"] if not d["Blocked"])
    afas(sandbox).rename_organisation(debtor["DebtorId"], "Nieuwe Naam Holding B.V.")
    sandbox.reset_counters()

    result = sync()
    changes = result["changes"]
    branch_changes = changes[changes["entity"] == "branch"]
    assert branch_changes[["action", "key", "field", "after"]].values.tolist() == [
        ["update", debtor["DebtorId"], "name", "Nieuwe Naam Holding B.V."]
    ]
    assert writes(sandbox, "topdesk") == Counter({"PATCH /tas/api/branches/id/{id}": 1})
    (branch,) = [b for b in branch_by_number(sandbox, debtor["DebtorId"]) if not b["archived"]]
    assert branch["name"] == "Nieuwe Naam Holding B.V."


def test_blocked_debtor_archives_its_branch_and_persons_and_gone_ones_too(prefect_harness, sandbox) -> None:
    sync()
    active = [d for d in afas(sandbox).tables["debtors"] if not d["Blocked"]]
    blocked, removed = active[0]["DebtorId"], active[1]["DebtorId"]
    afas(sandbox).block_debtor(blocked)
    afas(sandbox).tables["debtors"].remove([afas(sandbox).tables["debtors"].get(removed)])

    result = sync()
    archived = result["changes"].query("action == 'archive' and entity == 'branch'")
    assert dict(zip(archived["key"], archived["message"], strict=True)) == {
        blocked: "blocked in AFAS",
        removed: "gone from AFAS",
    }
    for number in (blocked, removed):
        assert [b["archived"] for b in branch_by_number(sandbox, number)] == [True]
    persons = result["changes"].query("action == 'archive' and entity == 'person'")
    contacts = afas(sandbox).tables["contacts"].where(OrgNumber=active[0]["BcCo"])
    assert set(persons["key"]) >= {c["PerNumber"] for c in contacts}


def test_a_run_whose_topdesk_writes_fail_ends_failed_and_keeps_its_figures(
    prefect_harness, sandbox, tmp_path
) -> None:
    sync()
    active = [d for d in afas(sandbox).tables["debtors"] if not d["Blocked"]]
    afas(sandbox).block_debtor(active[0]["DebtorId"])
    afas(sandbox).rename_organisation(active[1]["DebtorId"], "Hernoemd B.V.")
    text = Path("config/companies.toml").read_text(encoding="utf-8")
    config = tmp_path / "companies.toml"  # an archiving reason TOPdesk does not know: archiving cannot work
    config.write_text(text.replace('"Niet meer actief in AFAS"', '"Bestaat niet"'), encoding="utf-8")

    result = sync(clean=False, config_path=str(config))
    counts = result["counts"].set_index(["entity", "action"])
    archives = int(counts.loc[[("branch", "archive"), ("person", "archive")], "failed"].sum())
    assert archives >= 1 and counts["failed"].sum() == archives
    assert result["not_clean"] == f"{archives} change{'s' if archives != 1 else ''} failed in TOPdesk"
    (renamed,) = branch_by_number(sandbox, active[1]["DebtorId"])  # the other writes went through
    assert renamed["name"] == "Hernoemd B.V."
    assert [b["archived"] for b in branch_by_number(sandbox, active[0]["DebtorId"])] == [False]


def test_bad_afas_rows_are_reported_per_row_and_the_rest_goes_through(prefect_harness, sandbox) -> None:
    rows = [d for d in afas(sandbox).tables["debtors"] if not d["Blocked"]]
    table = afas(sandbox).tables["debtors"]
    table.update(rows[0], {"DebtorName": "X" * 61})
    table.update(rows[1], {"Email": "info@@broken"})
    table.update(rows[2], {"DebtorId": None})

    result = sync()
    errors = result["errors"]
    reasons = " | ".join(errors["reason"])
    assert f"debtor {rows[0]['DebtorId']}" in reasons and "name (from DebtorName): 61 characters" in reasons
    assert "email (from Email): 'info@@broken' is not a valid e-mail address" in reasons
    assert (
        "debtor without DebtorId" in reasons and "clientReferenceNumber (from DebtorId): missing" in reasons
    )
    assert len(errors[errors["step"] == "validate"]) == 3
    assert result["counts"]["failed"].sum() == 0
    assert result["counts"]["done"].sum() > 0


def test_dry_run_writes_nothing_and_shows_the_diff(prefect_harness, sandbox) -> None:
    sandbox.reset_counters()
    result = sync(dry_run=True)
    assert writes(sandbox, "topdesk") == Counter()
    assert set(result["changes"]["status"]) == {"dry run"}
    assert (result["changes"]["action"] == "create").any()
    real = sync()
    assert len(real["changes"]) == len(result["changes"])


def test_missing_debtor_created_once_across_reruns_and_linked(
    prefect_harness, sandbox, enabled_config
) -> None:
    debtors_before = len(afas(sandbox).tables["debtors"])
    first = missing(enabled_config)
    created = first["outcomes"]
    assert len(created) >= 1 and set(created["status"]) == {"done"}
    for row in created.itertuples():
        branch = td(sandbox).branches.by_id[row.branch_id]
        assert branch["clientReferenceNumber"] == row.debtor_number
        debtor = afas(sandbox).tables["debtors"].get(row.debtor_number)
        assert debtor["BcCo"] == organisation_number(row.branch_id) and debtor["DebtorName"] == branch["name"]
    assert len(afas(sandbox).tables["debtors"]) == debtors_before + len(created)

    sandbox.reset_counters()
    again = missing(enabled_config)
    assert again["outcomes"].empty
    assert writes(sandbox, "afas") == Counter() and writes(sandbox, "topdesk") == Counter()


def test_crash_between_afas_insert_and_write_back_creates_no_second_debtor(
    prefect_harness, sandbox, enabled_config, monkeypatch
) -> None:
    debtors_before = len(afas(sandbox).tables["debtors"])
    real_update = debtor_module.md.update_branch

    async def crash(*args, **kwargs):
        raise RuntimeError("worker killed between the AFAS insert and the TOPdesk write-back")

    monkeypatch.setattr(debtor_module.md, "update_branch", crash)
    with pytest.raises(RuntimeError):
        missing(enabled_config)
    assert len(afas(sandbox).tables["debtors"]) == debtors_before + 1  # the first insert landed

    monkeypatch.setattr(debtor_module.md, "update_branch", real_update)
    sandbox.set_knobs("afas", lost_response_rate=1.0)  # and every AFAS write answer is lost from now on
    result = missing(enabled_config)
    sandbox.set_knobs("afas", lost_response_rate=0.0)
    actions = Counter(result["outcomes"]["action"])
    assert set(result["outcomes"]["status"]) == {"done"}
    assert actions["link"] == 1  # the crashed one is found by its organisation number, not posted again
    assert len(afas(sandbox).tables["debtors"]) == debtors_before + len(result["outcomes"])
    for row in result["outcomes"].itertuples():
        assert td(sandbox).branches.by_id[row.branch_id]["clientReferenceNumber"] == row.debtor_number
    numbers = [d["BcCo"] for d in afas(sandbox).tables["debtors"]]
    assert len(numbers) == len(set(numbers))


def test_disabled_guard_and_dry_run_write_nothing(prefect_harness, sandbox, enabled_config) -> None:
    sandbox.reset_counters()
    disabled = missing("config/companies.toml")
    dry = missing(enabled_config, dry_run=True)
    assert writes(sandbox, "afas") == Counter() and writes(sandbox, "topdesk") == Counter()
    assert set(disabled["outcomes"]["status"]) == {"not written: create_debtors.enabled is false"}
    assert set(dry["outcomes"]["status"]) == {"dry run"}
    skipped = disabled["plan"].query("action == 'skip'")
    assert "internal department (billing configuration)" in set(skipped["reason"])


def test_import_debtors_records_what_changed_and_when(prefect_harness, sandbox) -> None:
    first = import_debtors()
    assert set(first["summary"]["change"]) == {"added"}
    debtor = next(d for d in afas(sandbox).tables["debtors"] if not d["Blocked"])
    afas(sandbox).block_debtor(debtor["DebtorId"])
    second = import_debtors()
    engine = connect(StoreSettings())
    changed = snapshots.changes_since(engine, "afas_debtors", pd.Timestamp("2000-01-01", tz="UTC"))
    latest = changed[changed["change"] == "changed"]
    assert latest["key"].tolist() == [debtor["DebtorId"]]
    assert set(latest.iloc[0]["fields"]) == {"Blocked", "ModifiedDate"}
    assert second["summary"].values.tolist() == [["afas_debtors", "changed", 1]]


def test_a_contact_name_with_a_prefix_round_trips_into_topdesk(prefect_harness, sandbox) -> None:
    sync()
    persons = {
        p.get("employeeNumber"): p for p in td(sandbox).persons.by_id.values() if not p.get("archived")
    }
    checked = 0
    for contact in afas(sandbox).tables["contacts"].where(Type="PRS"):
        person = persons.get(contact["PerNumber"])
        if person is None or split_dutch_name(contact["FullName"])[1] is None:
            continue  # no TOPdesk person (blocked debtor) or no tussenvoegsel in the name
        assert person["prefixes"] and person["prefixes"] in contact["FullName"]
        assert (
            join_name(person.get("firstName"), person["prefixes"], person["surName"]) == contact["FullName"]
        )
        checked += 1
    assert checked > 0, "the world has contacts with a tussenvoegsel"
    sandbox.reset_counters()
    sync()
    assert writes(sandbox, "topdesk") == Counter()


def test_the_person_key_can_be_an_optional_text_field(prefect_harness, sandbox, tmp_path) -> None:
    text = Path("config/companies.toml").read_text(encoding="utf-8")
    path = tmp_path / "companies.toml"
    path.write_text(
        text.replace("[persons]\nenabled = true", '[persons]\nenabled = true\nkey = "optionalFields1.text1"')
    )
    first = sync(config_path=str(path))
    created = first["changes"].query("entity == 'person' and action == 'create'")
    assert not created.empty
    for number in set(created["key"]):
        (person,) = [
            p
            for p in td(sandbox).persons.by_id.values()
            if (p.get("optionalFields1") or {}).get("text1") == number
        ]
        assert person["employeeNumber"] in ("", None)  # the key went into the optional field only
    sandbox.reset_counters()
    again = sync(config_path=str(path))
    assert again["changes"].query("entity == 'person'").empty
    assert writes(sandbox, "topdesk") == Counter()


def test_an_unknown_person_key_is_refused() -> None:
    from tasks.company_sync.config import CompaniesConfigError, parse_companies_config

    with pytest.raises(CompaniesConfigError, match="persons: key: 'email' is not employeeNumber"):
        parse_companies_config('archiving_reason = "x"\n[persons]\nkey = "email"\n')
