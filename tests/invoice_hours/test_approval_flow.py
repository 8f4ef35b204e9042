"""invoice-hours with approval required: pause, approve/reject/time out, re-plan; read back from the sandbox.

The test resumes the paused run from a second thread, as an approver would from the Prefect UI: it reads
the form's description (totals and fingerprint) and answers with ``resume_flow_run(run_input=...)``.
"""

from __future__ import annotations

import re
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from flows.invoice_hours import InvoiceHoursParameters, invoice_hours
from store import ledger, runs
from store.db import connect
from store.settings import StoreSettings
from tests.invoice_support import (
    OCTOBER,
    afas_invoices,
    decimal,
    entries_by_reference,
)

pytestmark = pytest.mark.prefect


@pytest.fixture
def sandbox(sandbox, monkeypatch):
    """The session's small-world sandbox (tests/conftest.py); approval polled every second."""
    import tasks.approval

    monkeypatch.setattr(tasks.approval, "POLL_SECONDS", 1)
    return sandbox


def approval_config(tmp_path: Path, timeout_minutes: float = 5.0) -> str:
    """config/billing.toml with approval required for administration 1."""
    source = Path(__file__).resolve().parents[2] / "config" / "billing.toml"
    text = source.read_text().replace(
        'mode = "direct_invoice"\n', 'mode = "direct_invoice"\napproval = "required"\n', 1
    )
    text = text.replace(
        "max_minutes_per_registration = 720\n",
        f"max_minutes_per_registration = 720\napproval_timeout_minutes = {timeout_minutes}\n",
    )
    path = tmp_path / "billing-approval.toml"
    path.write_text(text)
    return str(path)


def run_in_thread(config_path: str) -> tuple[threading.Thread, dict[str, Any]]:
    """Start invoice-hours (administration 1, October) in a thread; its final state lands in ``box``."""
    box: dict[str, Any] = {"config_path": config_path}

    def target() -> None:
        parameters = InvoiceHoursParameters(
            start_date=OCTOBER[0], end_date=OCTOBER[1], administration=1, config_path=config_path
        )
        box["state"] = invoice_hours(**parameters.model_dump(), return_state=True)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, box


def wait_for_request(box: dict[str, Any], seen: int, timeout: float = 300) -> tuple[Any, str]:
    """The paused run and the description of its newest approval request (the ``seen + 1``-th one)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType
    from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
    from prefect.input.run_input import keyset_from_paused_state

    paused = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED])))
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            assert "state" not in box, f"run ended before asking: {box['state']}"
            for flow_run in client.read_flow_runs(flow_run_filter=paused):
                details = flow_run.state.state_details
                if details.pause_key != f"approval-{seen + 1}":
                    continue
                if flow_run.parameters.get("config_path") != box["config_path"]:
                    continue  # another test's run (one that failed may still be paused)
                keyset = keyset_from_paused_state(flow_run.state)
                try:
                    description = client.read_flow_run_input(flow_run.id, keyset["description"])
                    client.read_flow_run_input(flow_run.id, keyset["schema"])
                except (ObjectNotFound, PrefectHTTPStatusError) as error:
                    # saved just after the pause: look again (the sync client raises a 404 as HTTP error)
                    if isinstance(error, PrefectHTTPStatusError) and error.response.status_code != 404:
                        raise
                    time.sleep(0.2)
                    continue
                return flow_run, description
            time.sleep(0.5)
    raise AssertionError("the run never asked for approval")


def shown_fingerprint(description: str) -> str:
    match = re.search(r"Fingerprint of what will be posted: `([0-9a-f]{64})`", description)
    assert match, description
    return match.group(1)


def answer(flow_run: Any, decision: str, fingerprint: str, comment: str = "ok") -> None:
    from prefect.flow_runs import resume_flow_run

    resume_flow_run(
        flow_run.id,
        run_input={
            "decision": decision,
            "approver": "Fenna Finance",
            "comment": comment,
            "fingerprint": fingerprint,
        },
    )


def finish(thread: threading.Thread, box: dict[str, Any]) -> Any:
    thread.join(timeout=600)
    assert not thread.is_alive()
    return box["state"]


def latest_table(key: str) -> list[dict[str, Any]]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
    data = found[0].data
    if isinstance(data, str):
        import json

        data = json.loads(data)
    return data


def posted_in_afas(sandbox) -> dict[str, Decimal]:
    """Per reference, what AFAS holds: invoice totals (Σ quantity × price) and entry debits."""
    sim = sandbox.apps["afas"].state.sim
    held = {
        ref: sum(
            (decimal(decimal(x["QuUn"]) * decimal(x["Upri"])) for d in docs for x in d["lines"]), Decimal(0)
        )
        for ref, docs in afas_invoices(sim).items()
    }
    for ref, lines in entries_by_reference(sim).items():
        held[ref] = sum((decimal(x["AmDe"] or 0) for x in lines), Decimal(0))
    return held


def engine():
    return connect(StoreSettings())


def test_an_approved_run_posts_exactly_the_approved_plan(prefect_harness, sandbox, tmp_path) -> None:
    thread, box = run_in_thread(approval_config(tmp_path))
    flow_run, description = wait_for_request(box, 0)
    fingerprint = shown_fingerprint(description)
    assert "Customer revenue" in description and "Internal charges" in description
    previewed = {row["reference"]: row for row in latest_table("invoice-hours-approval-documents")}
    assert posted_in_afas(sandbox) == {}  # nothing posted while paused
    answer(flow_run, "approve", fingerprint)
    state = finish(thread, box)
    assert state.is_completed(), state

    held = posted_in_afas(sandbox)
    assert set(held) == set(previewed)
    for reference, row in previewed.items():
        if row["kind"] == "direct_invoice":
            assert held[reference] == Decimal(row["amount"]), reference
    assert set(ledger.documents(engine(), status="posted")["reference"]) == set(previewed)
    approval = runs.approval_of(engine(), str(flow_run.id))
    assert approval["decision"] == "approve" and approval["approver"] == "Fenna Finance"
    assert approval["fingerprint"] == fingerprint and approval["decided_at"]
    result = state.result()
    assert f"`{fingerprint}`" in result["context"]["approval"]


def test_a_plan_that_changes_while_paused_is_not_posted_and_asked_again(
    prefect_harness, sandbox, tmp_path
) -> None:
    thread, box = run_in_thread(approval_config(tmp_path))
    flow_run, description = wait_for_request(box, 0)
    first = shown_fingerprint(description)
    incidents = set(sandbox.world.extra["td_registrations"]["id"])
    lines = [r for r in latest_table("invoice-hours-approval-lines") if r["registration_id"] in incidents]
    changed = lines[0]["registration_id"]
    sandbox.apps["topdesk"].state.sim.set_registration_minutes(changed, int(lines[0]["billed_minutes"]) + 75)
    answer(flow_run, "approve", first)

    flow_run, description = wait_for_request(box, 1)
    second = shown_fingerprint(description)
    assert second != first
    assert "The plan changed" in description and changed in description
    assert posted_in_afas(sandbox) == {}  # the approval of the old plan posted nothing
    answer(flow_run, "reject", second, comment="check the change first")
    state = finish(thread, box)
    assert state.is_cancelled() and state.name == "Rejected"
    assert "check the change first" in state.message
    assert posted_in_afas(sandbox) == {}
    assert ledger.documents(engine()).empty
    record = runs.run_history(engine(), "invoice-hours").iloc[0]
    assert record["status"] == "cancelled"
    assert record["parameters"]["approval"]["decision"] == "reject"


def test_an_approval_that_times_out_posts_nothing_and_fails_named(prefect_harness, sandbox, tmp_path) -> None:
    thread, box = run_in_thread(approval_config(tmp_path, timeout_minutes=0.05))
    state = finish(thread, box)
    assert state.is_failed() and state.name == "ApprovalTimedOut", state
    assert "nothing was posted" in state.message
    assert posted_in_afas(sandbox) == {}
    assert ledger.documents(engine()).empty
    record = runs.run_history(engine(), "invoice-hours").iloc[0]
    assert record["status"] == "failed"
    assert record["parameters"]["approval"]["decision"] == "timed out"


def test_an_approval_of_another_fingerprint_posts_nothing_and_asks_again(
    prefect_harness, sandbox, tmp_path
) -> None:
    thread, box = run_in_thread(approval_config(tmp_path))
    flow_run, description = wait_for_request(box, 0)
    shown = shown_fingerprint(description)
    answer(flow_run, "approve", "0" * 64)
    flow_run, description = wait_for_request(box, 1)
    assert "not the one shown" in description and shown_fingerprint(description) == shown
    assert posted_in_afas(sandbox) == {}
    answer(flow_run, "approve", shown)
    state = finish(thread, box)
    assert state.is_completed(), state
    assert set(posted_in_afas(sandbox)) == set(ledger.documents(engine(), status="posted")["reference"])
    assert runs.approval_of(engine(), str(flow_run.id))["rounds"] == 2


def test_a_dry_run_does_not_wait_for_approval(prefect_harness, sandbox, tmp_path) -> None:
    parameters = InvoiceHoursParameters(
        start_date=OCTOBER[0], end_date=OCTOBER[1], dry_run=True, config_path=approval_config(tmp_path)
    )
    result = invoice_hours(**parameters.model_dump())
    assert set(result["documents"]["status"]) == {"dry-run"}
    assert result["context"]["approval"] == ""
