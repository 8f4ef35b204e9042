"""The standard suite every write flow joins, against the sandbox.

For each flow of ``WRITE_FLOWS``, on a fresh sandbox: a dry run, then a first and a second real run. The
sandbox counts the write requests each simulated system received (an OAuth token POST is not a write).

- a dry run writes nothing to any system (and still plans something, so "nothing" means something);
- the first real run writes to the systems the flow writes to, and to no other;
- a second run writes nothing to any system;
- the flow's own accounting holds on every run: for invoice-hours the conservation equation, for the
  others that every planned change got an outcome.

A new write flow joins by adding one ``WriteFlow`` row.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from flows.absence_to_afas import absence_to_afas
from flows.create_missing_debtors import create_missing_debtors
from flows.hr_sync import hr_sync
from flows.invoice_hours import invoice_hours
from flows.sync_companies import sync_companies
from sandbox.server import SYSTEMS, Sandbox
from sandbox.world import World, generate_world
from tests.fixtures.worlds import HR, SMALL, Sandboxes, WorldArgs
from tests.run_support import finished

pytestmark = pytest.mark.prefect

OCTOBER = {"start_date": date(2026, 10, 1), "end_date": date(2026, 10, 31)}
WRITES = ("POST", "PUT", "PATCH", "DELETE")
TOKEN_ENDPOINT = "POST /ProfitRestServices/oauth/token"  # an OAuth token request writes no data


@functools.cache
def hr_world() -> World:
    """14 employees, 10 departments, 18 absences, 5 absences registered in the OH system."""
    return generate_world(seed=HR.seed, scale=HR.scale)


def companies_enabled(folder: Path) -> str:
    """companies.toml with the create-debtors guard switched on."""
    text = Path("config/companies.toml").read_text(encoding="utf-8")
    path = folder / "companies.toml"
    path.write_text(text.replace("[create_debtors]\nenabled = false", "[create_debtors]\nenabled = true"))
    return str(path)


def absence_to_afas_enabled(folder: Path) -> str:
    path = folder / "hr.toml"
    path.write_text("[absence_to_afas]\nenabled = true\nlook_back_days = 365\n", encoding="utf-8")
    return str(path)


# ---------------------------------------------------------------------------- each flow's own accounting


def conservation_holds(result: dict[str, Any], dry_run: bool) -> None:
    """invoice-hours: every registration read is in exactly one bucket (minutes and amounts)."""
    assert result["conservation"]["holds"], result["conservation"]
    assert result["conservation"]["read"]["count"] > 0
    statuses = set(result["documents"].get("status", []))  # every planned document has an outcome
    if dry_run:
        assert statuses == {"dry-run"}, statuses
    else:
        assert "dry-run" not in statuses and all(isinstance(s, str) and s for s in statuses), statuses


def every_company_change_accounted(result: dict[str, Any], dry_run: bool) -> None:
    """sync-companies: each planned change is done or failed (a dry run: each one shown as "dry run")."""
    changes, counts = result["changes"], result["counts"].set_index(["entity", "action"])
    assert set(changes["status"]) <= ({"dry run"} if dry_run else {"done", "failed", "uncertain"}), changes
    per_action = changes.groupby(["entity", "action"])["key"].nunique()  # the changes table: a row per field
    assert per_action.sort_index().to_dict() == counts["planned"].sort_index().to_dict(), (per_action, counts)
    expected_done = 0 if dry_run else counts["planned"] - counts["failed"]
    assert (counts["done"] == expected_done).all(), counts


def every_debtor_accounted(result: dict[str, Any], dry_run: bool) -> None:
    """create-missing-debtors: each debtor the plan creates or links has an outcome."""
    plan, outcomes = result["plan"], result["outcomes"]
    planned = plan[plan["action"] != "skip"]
    assert len(outcomes) == len(planned), (planned, outcomes)
    assert sorted(outcomes["branch_id"]) == sorted(planned["branch_id"])
    expected = {"dry run"} if dry_run else {"done", "failed", "uncertain"}
    assert set(outcomes["status"]) <= expected, outcomes


def every_hr_change_accounted(result: dict[str, Any], dry_run: bool) -> None:
    """hr-sync: each change sent (or planned) has an outcome, and the counts add them up per entity."""
    changes, counts = result["changes"], result["counts"]
    sent = {"created", "updated", "deactivated", "not_found", "rejected", "failed", "skipped"}
    assert set(changes["outcome"]) <= ({"planned"} if dry_run else sent), changes
    tally = Counter(changes["outcome"])
    outcome_columns = [c for c in counts.columns if c in sent | {"planned"} and c != "rejected"]
    assert counts[outcome_columns].to_numpy().sum() == len(changes) - tally["rejected"], counts


def every_absence_accounted(result: dict[str, Any], dry_run: bool) -> None:
    """absence-to-afas: each registered absence the plan inserts or updates has an outcome."""
    absences = result["absences"]
    if dry_run:
        assert set(absences["outcome"]) == {"planned"}
    else:
        writes = absences[absences["action"].isin(["insert", "update"])]
        assert set(writes["outcome"]) <= {"inserted", "updated", "rejected", "failed"}, writes
        others = absences[~absences.index.isin(writes.index)]
        assert (others["outcome"] == others["action"]).all(), others  # unchanged / rejected in the plan
    assert sum(result["counts"].values()) == len(absences)


def planned(result: dict[str, Any], flow: str) -> int:
    """How many changes a (dry) run planned: a dry run that plans nothing would prove nothing."""
    if flow == "invoice_hours":
        return len(result["documents"])
    frame = {"create_missing_debtors": "outcomes", "absence_to_afas": "absences"}.get(flow, "changes")
    return len(result[frame])


def overlaps_in_the_world(employee: str, start: date) -> bool:
    """The world's AFAS holds an absence of ``employee`` open on ``start`` (one at a time in AFAS)."""
    illness = hr_world().extra["hr_illness"]
    mine = illness[illness["employee_id"] == employee]
    return bool((mine["end_date"].isna() | (mine["end_date"].dt.date >= start)).any())


def absences_refused(result: dict[str, Any]) -> str | None:
    """The state message the world explains: the registered absences that overlap one AFAS already holds."""
    absences = result["absences"]
    inserts = absences[absences["action"] == "insert"]
    overlapping = {
        row.external_id
        for row in inserts.itertuples(index=False)
        if overlaps_in_the_world(row.employee_id, pd.Timestamp(row.start_date).date())
    }
    refused = absences[absences["outcome"] == "rejected"]
    assert set(refused["external_id"]) == overlapping, refused
    assert refused["message"].str.contains("heeft al een verzuimmelding in deze periode").all(), refused
    if refused.empty:
        return None
    return f"{len(refused)} absence{'s' if len(refused) != 1 else ''} refused by AFAS"


def green(result: dict[str, Any]) -> str | None:
    return None


# ---------------------------------------------------------------------------- the table of write flows


@dataclass(frozen=True)
class WriteFlow:
    """How to run one write flow in the suite and what it must show."""

    name: str
    flow: Callable[..., Any]
    world: WorldArgs  # SMALL: the invoice-hours and company-sync tests' world; HR: the HR tests'.
    parameters: Callable[[Path], dict[str, Any]]  # real-run parameters (config copies in the given folder)
    dry_run: dict[str, Any]  # added to the parameters for a dry run
    writes_to: frozenset[str]  # sandbox systems the first run writes to
    accounting: Callable[[dict[str, Any], bool], None]  # (result, dry run) -> asserts
    not_clean: Callable[[dict[str, Any]], str | None]  # the state message a real run's result explains
    first_green: bool = True  # False: the sandbox world holds rows the first run must refuse


WRITE_FLOWS = (
    WriteFlow(
        "invoice_hours",
        invoice_hours,
        SMALL,
        lambda _: dict(OCTOBER),
        {"dry_run": True},
        frozenset({"afas"}),
        conservation_holds,
        green,
    ),
    WriteFlow(
        "sync_companies",
        sync_companies,
        SMALL,
        lambda _: {},
        {"dry_run": True},
        frozenset({"topdesk"}),
        every_company_change_accounted,
        green,
    ),
    WriteFlow(
        "create_missing_debtors",
        create_missing_debtors,
        SMALL,
        lambda folder: {**OCTOBER, "config_path": companies_enabled(folder)},
        {"dry_run": True},
        frozenset({"afas", "topdesk"}),
        every_debtor_accounted,
        green,
    ),
    WriteFlow(
        "hr_sync",
        hr_sync,
        HR,
        lambda _: {"from_date": "2024-11-21"},
        {"dry_run": True},
        frozenset({"oh"}),
        every_hr_change_accounted,
        green,
    ),
    WriteFlow(
        "absence_to_afas",
        absence_to_afas,
        HR,
        lambda folder: {"config_path": absence_to_afas_enabled(folder)},
        {"dry_run": True},
        frozenset({"afas"}),
        every_absence_accounted,
        absences_refused,
        first_green=False,  # the world registers absences in the OH system that AFAS refuses
    ),
)


def writes(sandbox: Sandbox) -> dict[str, Counter]:
    """Write requests per system and endpoint since the last counter reset."""
    found: dict[str, Counter[str]] = {}
    for system in SYSTEMS:
        endpoints = sandbox.counters(system)["endpoints"]
        found[system] = Counter(
            {k: v["count"] for k, v in endpoints.items() if k.split()[0] in WRITES and k != TOKEN_ENDPOINT}
        )
    return found


NOTHING: dict[str, Counter[str]] = {system: Counter() for system in SYSTEMS}


@dataclass
class Runs:
    """A dry run, a first and a second real run of one flow on one fresh sandbox, with their writes."""

    spec: WriteFlow
    dry: dict[str, Any]
    dry_writes: dict[str, Counter]
    first: dict[str, Any]
    first_writes: dict[str, Counter]
    second: dict[str, Any]
    second_writes: dict[str, Counter]


@pytest.fixture(scope="module", params=WRITE_FLOWS, ids=lambda spec: spec.name)
def runs(request, prefect_harness, tmp_path_factory, sandboxes: Sandboxes) -> Iterator[Runs]:
    spec: WriteFlow = request.param
    folder = tmp_path_factory.mktemp(spec.name)
    parameters = spec.parameters(folder)
    sandbox = sandboxes(spec.world)  # the session's, reset: the world as generated
    with pytest.MonkeyPatch.context() as monkeypatch:
        for key, value in sandbox.env().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("KOPPEL_STATE_DB_URL", f"sqlite:///{folder / 'state.db'}")
        sandbox.reset_counters()
        dry = finished(spec.flow, **parameters, **spec.dry_run)
        dry_writes = writes(sandbox)
        sandbox.reset_counters()
        first = finished(spec.flow, **parameters)
        first_writes = writes(sandbox)
        sandbox.reset_counters()
        second = finished(spec.flow, **parameters)
        yield Runs(spec, dry, dry_writes, first, first_writes, second, writes(sandbox))


def test_a_dry_run_writes_nothing(runs: Runs) -> None:
    assert runs.dry_writes == NOTHING
    assert planned(runs.dry, runs.spec.name) > 0, "the dry run planned nothing: it would prove nothing"
    assert runs.dry["not_clean"] is None


def test_the_first_run_writes_only_to_its_systems(runs: Runs) -> None:
    written = {system for system, counter in runs.first_writes.items() if counter}
    assert written == runs.spec.writes_to, runs.first_writes
    assert runs.first["not_clean"] == runs.spec.not_clean(runs.first)
    assert (runs.first["not_clean"] is None) == runs.spec.first_green, runs.first["not_clean"]


def test_a_second_run_writes_nothing(runs: Runs) -> None:
    assert runs.second_writes == NOTHING
    assert runs.second["not_clean"] == runs.spec.not_clean(runs.second)


@pytest.mark.parametrize("run", ["dry", "first", "second"])
def test_the_flow_accounts_for_every_planned_change(runs: Runs, run: str) -> None:
    result: dict[str, Any] = getattr(runs, run)
    runs.spec.accounting(result, run == "dry")


def test_every_write_flow_is_in_the_suite() -> None:
    """A flow module that writes (has a dry_run parameter) but is not in ``WRITE_FLOWS`` fails here."""
    import flows

    with_dry_run = set()
    for path in Path(flows.__file__).parent.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        if "dry_run: bool" in text and "@recorded_flow" in text:
            with_dry_run.add(path.stem)
    assert with_dry_run == {spec.name for spec in WRITE_FLOWS}, "add the flow to WRITE_FLOWS"
