"""invoice-hours under stress: concurrent runs on PostgreSQL, and SIGKILL at several points of the load."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections import Counter

import pytest

from flows.invoice_hours import InvoiceHoursParameters, invoice_hours
from sandbox.server import running_sandbox
from store import ledger
from store.db import connect
from store.settings import StoreSettings
from tests.invoice_support import OCTOBER, child_env, small_world, use_sandbox

pytestmark = pytest.mark.prefect

# Batch sizes the exactly-once tests run with: 1 = one body per document (batching off), 7 = Element lists
# of up to 7 documents (small enough that the small worlds make many batches).
BATCH_SIZES = [1, 7]


@pytest.fixture(params=BATCH_SIZES, ids=lambda n: f"batch{n}")
def batch_documents(request, monkeypatch) -> int:
    monkeypatch.setenv("KOPPEL_LOAD_BATCH_DOCUMENTS", str(request.param))
    return request.param


def params(**kwargs) -> dict:
    return InvoiceHoursParameters(start_date=OCTOBER[0], end_date=OCTOBER[1], **kwargs).model_dump()


def afas_references(sim) -> Counter:
    """How often each Koppel reference exists in AFAS (invoices, entries, realisation batches)."""
    refs = Counter(row["RfCs"] for row in sim.documents("Koppel_DirectInvoices"))
    refs.update({row["BpNr"] for row in sim.documents("Koppel_Entries")})
    return refs


def realisation_keys(sim) -> Counter:
    return Counter(row["XpRe"] for row in sim.documents("Koppel_Realizations"))


def assert_billed_exactly_once(sim, planned_refs: set[str], planned_realisations: int) -> None:
    refs = afas_references(sim)
    assert set(refs) == planned_refs
    assert max(refs.values()) == 1
    keys = realisation_keys(sim)
    assert len(keys) == planned_realisations and max(keys.values(), default=1) == 1
    docs = ledger.documents(connect(StoreSettings()))
    assert set(docs["status"]) == {"posted"}


def plan_of(result) -> tuple[set[str], int]:
    """References a run planned (minus realisation batches) and the number of realisation lines."""
    table = result["documents"]
    refs = set(table.loc[table["kind"].ne("project_realisation"), "reference"])
    buckets = result["buckets"]
    realisation_refs = set(table.loc[table["kind"].eq("project_realisation"), "reference"])
    lines = buckets[buckets["reference"].isin(realisation_refs) & buckets["bucket"].eq("invoiced")]
    return refs, len(lines)


@pytest.mark.postgres
def test_two_runs_of_the_same_range_at_once_on_postgres_post_everything_once(
    prefect_harness, monkeypatch, tmp_path, postgres_url, batch_documents
) -> None:
    import sqlalchemy as sa

    name = f"concurrent_runs_{uuid.uuid4().hex[:12]}"  # one database per test run: others may run it too
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"create database {name}"))
    admin.dispose()
    url = postgres_url.rsplit("/", 1)[0] + f"/{name}"
    with running_sandbox(small_world(seed=21)) as sandbox:
        use_sandbox(monkeypatch, sandbox, tmp_path, db_url=url)
        planned = invoice_hours(**params(dry_run=True))
        sandbox.set_knobs("afas", latency_ms=20)
        results: list = []
        errors: list = []

        def one() -> None:
            try:
                results.append(invoice_hours(**params()))
            except Exception as error:  # noqa: BLE001 — reported by the assertion below
                errors.append(error)

        threads = [threading.Thread(target=one) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=240)
        assert not errors, errors
        assert len(results) == 2 and all(r["conservation"]["holds"] for r in results)
        posted = sum(r["documents"]["status"].isin(["posted", "recovered"]).sum() for r in results)
        assert posted == len(planned["documents"])
        assert_billed_exactly_once(sandbox.apps["afas"].state.sim, *plan_of(planned))


RUN_IN_CHILD = textwrap.dedent(
    """
    from datetime import date
    from flows.invoice_hours import invoice_hours
    invoice_hours(start_date=date(2026, 10, 1), end_date=date(2026, 10, 31))
    """
)


def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


@pytest.mark.slow
@pytest.mark.parametrize("kill_after_posts", [0, 2, 9])
def test_sigkill_during_load_then_rerun_leaves_no_duplicates_and_nothing_missing(
    prefect_harness, monkeypatch, tmp_path, kill_after_posts: int, batch_documents: int
) -> None:
    with running_sandbox(small_world(seed=31)) as sandbox:
        db_url = use_sandbox(monkeypatch, sandbox, tmp_path)
        planned = invoice_hours(**params(dry_run=True))
        sim = sandbox.apps["afas"].state.sim
        sandbox.set_knobs("afas", latency_ms=250)
        child = subprocess.Popen(
            [sys.executable, "-c", RUN_IN_CHILD],
            env=child_env(sandbox, db_url),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        engine = connect(StoreSettings())
        try:
            claimed = wait_until(lambda: not ledger.documents(engine).empty, timeout=90)
            assert claimed, "the child never claimed a document"
            assert wait_until(lambda: sum(afas_references(sim).values()) >= kill_after_posts, timeout=60)
            os.kill(child.pid, signal.SIGKILL)
        finally:
            child.wait(timeout=30)
        assert child.returncode == -signal.SIGKILL
        before = sum(afas_references(sim).values())
        assert before < len(planned["documents"]), "killed too late to test anything"
        sandbox.set_knobs("afas", latency_ms=0)

        rerun = invoice_hours(**params(recover_after_minutes=0))
        assert rerun["conservation"]["holds"]
        assert_billed_exactly_once(sim, *plan_of(planned))
        again = invoice_hours(**params(recover_after_minutes=0))
        assert again["documents"]["status"].isin(["posted", "recovered"]).sum() == 0


@pytest.mark.slow
def test_faults_and_lost_responses_still_post_every_document_exactly_once(
    prefect_harness, monkeypatch, tmp_path, batch_documents: int
) -> None:
    with running_sandbox(small_world(seed=41)) as sandbox:
        use_sandbox(monkeypatch, sandbox, tmp_path)
        planned = invoice_hours(**params(dry_run=True))
        # Batches make few posts: lose more of their answers so that some are surely lost.
        lost = 0.3 if batch_documents == 1 else 0.6
        sandbox.set_knobs(
            "afas", fault_rate=0.2, fault_kinds=["throttle", "unavailable"], lost_response_rate=lost
        )
        sandbox.set_knobs("topdesk", fault_rate=0.2, fault_kinds=["throttle", "unavailable", "reset"])
        result = invoice_hours(**params())
        assert result["conservation"]["holds"]
        statuses = Counter(result["documents"]["status"])
        assert statuses["posted"] + statuses["recovered"] == len(planned["documents"])
        assert statuses["recovered"] > 0  # some answers were lost and the documents found by reference
        assert_billed_exactly_once(sandbox.apps["afas"].state.sim, *plan_of(planned))
