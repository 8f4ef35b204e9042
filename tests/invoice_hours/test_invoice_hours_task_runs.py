"""invoice-hours runs a fixed set of tasks per run: one per stage, never per row or per document.

The flow body is a sequence of steps (``tasks/invoice_hours/steps.py``); this reads the task runs Prefect
recorded for a dry run, a first real run and a regular run over the horizon against the sandbox, so a step
that starts calling a task per row, or a new task nobody meant, shows here.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from flows.invoice_hours import invoice_hours
from sandbox.server import Sandbox
from tests.koppel.test_write_flow_suite import OCTOBER

pytestmark = pytest.mark.prefect

PLANNED = {  # every run: read, plan, report (a dry run stops here)
    "preflight",
    "open-run",
    "check-afas-master-data",
    "extract-afas-masters",
    "check-afas-prices",
    "run-window",
    "extract-topdesk-sources",
    "create-missing-customers",
    "sync-bundles",
    "read-ledger-state",
    "plan-billing",
    "write-specifications",
    "report-invoice-hours",
    "account-served-rows",
    "close-run",
}
POSTED = PLANNED | {"load-documents", "report-bundles"}


async def task_runs(flow_run_id: UUID) -> Counter[str]:
    """Task runs of one flow run by task name (Prefect names a run ``<task name>-<suffix>``)."""
    async with get_client() as client:
        runs = await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return Counter(run.name.rsplit("-", 1)[0] for run in runs)


def test_one_task_run_per_stage(prefect_harness, sandbox: Sandbox) -> None:
    counted = []
    for parameters in ({**OCTOBER, "dry_run": True}, OCTOBER, {}):
        state = invoice_hours(**parameters, return_state=True)
        assert state.state_details.flow_run_id is not None
        counted.append(asyncio.run(task_runs(state.state_details.flow_run_id)))
    dry, backfill, regular = counted
    assert dry == Counter(PLANNED)
    assert backfill == Counter(POSTED)
    assert regular == Counter(POSTED | {"confirm-deletions"})  # a regular run asks TOPdesk about the unread
