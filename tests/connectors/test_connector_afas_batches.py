"""Batched AFAS inserts against the sandbox: one body, one transaction, keys per document, exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from connectors.afas.client import BatchAnswer, keys_per_document, reference_chunks
from connectors.afas.getconnectors import CELL_BUDGET, MAX_TAKE, REGISTRY, GetConnector, take_for
from connectors.afas.payloads import Reference
from connectors.errors import BusinessError
from sandbox.server import Sandbox, running_sandbox
from sandbox.world import generate_world
from tests.connectors.test_connector_afas_sandbox import QUIET, afas, invoice, open_debtors, settled_count

pytestmark = pytest.mark.anyio
POST_PATH = "/ProfitRestServices/connectors/FbDirectInvoice"
READ_PATH = "/ProfitRestServices/connectors/Koppel_DirectInvoices"


@pytest.fixture(scope="module")
def sandbox():
    with running_sandbox(generate_world(seed=12, scale=600, months=1)) as running:
        yield running


def refs(prefix: str, n: int) -> list[Reference]:
    return [Reference("Koppel_DirectInvoices", "RfCs", f"{prefix}-{i:04d}") for i in range(n)]


def stored(sandbox: Sandbox, prefix: str) -> Counter:
    rows = sandbox.apps["afas"].state.sim.documents("Koppel_DirectInvoices")
    return Counter(r["RfCs"] for r in rows if r["RfCs"].startswith(prefix))


async def test_a_batch_is_one_post_with_keys_per_document_in_order(sandbox: Sandbox):
    debtors = open_debtors(sandbox)
    references = refs("KPL-ONE", 12)
    sandbox.reset_counters("afas")
    async with afas(sandbox) as client:
        answer = await client.insert_batch(
            "FbDirectInvoice", [invoice(debtors[i], r.value) for i, r in enumerate(references)], references
        )
    assert answer.error is None
    assert await settled_count(sandbox, "POST", POST_PATH, 1) == 1
    by_ref = {r["RfCs"]: r["OrNu"] for r in sandbox.apps["afas"].state.sim.documents("Koppel_DirectInvoices")}
    assert [k["OrNu"] for k in answer.keys] == [by_ref[r.value] for r in references]
    assert not any(k.recovered for k in answer.keys)


async def test_a_refused_document_refuses_the_whole_body_and_nothing_lands(sandbox: Sandbox):
    sim = sandbox.apps["afas"].state.sim
    blocked = next(r["DebtorId"] for r in sim.tables["debtors"].rows if r["Blocked"])
    debtors = open_debtors(sandbox)
    references = refs("KPL-BAD", 5)
    payloads = [invoice(debtors[i], r.value) for i, r in enumerate(references)]
    payloads[3] = invoice(blocked, references[3].value)
    async with afas(sandbox) as client:
        answer = await client.insert_batch("FbDirectInvoice", payloads, references)
    assert isinstance(answer.error, BusinessError)
    assert answer.error.external_message == f"Verkooprelatie {blocked} is geblokkeerd."
    assert answer.keys == [None] * 5
    assert stored(sandbox, "KPL-BAD") == Counter()


async def test_lost_answers_and_faults_land_every_document_once_and_recover_the_keys(sandbox: Sandbox):
    debtors = open_debtors(sandbox)
    batches = [refs(f"KPL-LOST{b}", 25) for b in range(12)]
    sandbox.set_knobs(
        "afas",
        latency_ms=2,
        fault_rate=0.2,
        fault_kinds=["throttle", "unavailable", "timeout_message", "reset"],
        retry_after_seconds=0,
        lost_response_rate=0.4,
        seed=23,
    )
    sandbox.reset_counters("afas")
    try:
        async with afas(sandbox) as client:

            async def post(batch: list[Reference]) -> BatchAnswer:
                payloads = [invoice(debtors[i % 20], r.value) for i, r in enumerate(batch)]
                return await client.insert_batch("FbDirectInvoice", payloads, batch, attempts=5)

            answers = await asyncio.gather(*(post(b) for b in batches))
    finally:
        sandbox.set_knobs("afas", **QUIET)
    sim = sandbox.apps["afas"].state.sim
    by_ref = {r["RfCs"]: r["OrNu"] for r in sim.documents("Koppel_DirectInvoices")}
    for batch, answer in zip(batches, answers, strict=True):
        assert answer.error is None
        assert [k["OrNu"] for k in answer.keys] == [by_ref[r.value] for r in batch]
    counts = stored(sandbox, "KPL-LOST")
    assert len(counts) == 300 and set(counts.values()) == {1}
    endpoint = sandbox.counters("afas")["endpoints"][f"POST {POST_PATH}"]
    assert endpoint["faults"].get("lost_response", 0) > 0
    assert any(k.recovered for a in answers for k in a.keys)


async def test_find_by_references_answers_keys_for_found_references_and_none_for_the_others(sandbox: Sandbox):

    debtors = open_debtors(sandbox)
    references = refs("KPL-MIX", 3)
    async with afas(sandbox) as client:
        first = await client.insert_batch(
            "FbDirectInvoice", [invoice(debtors[0], references[0].value)], references[:1]
        )
        assert first.error is None
        found = await client.find_by_references(
            [*references, Reference("Koppel_DirectInvoices", "RfCs", "nope")]
        )
    assert found[0] is not None and found[0]["OrNu"] == first.keys[0]["OrNu"]
    assert found[1:] == [None, None, None]


async def test_looking_up_many_references_stays_within_the_url_limit(sandbox: Sandbox):
    debtors = open_debtors(sandbox)
    references = refs("KPL-MANY-REFERENCE-LONGER-TEXT", 160)
    payloads = [invoice(debtors[i % 20], r.value) for i, r in enumerate(references)]
    async with afas(sandbox) as client:
        answer = await client.insert_batch("FbDirectInvoice", payloads, references)
        sandbox.reset_counters("afas")
        found = await client.find_by_references(references)
    assert [k["OrNu"] for k in found] == [k["OrNu"] for k in answer.keys]
    chunks = reference_chunks(REGISTRY["Koppel_DirectInvoices"], "RfCs", [r.value for r in references])
    assert len(chunks) > 1 and sum(map(len, chunks)) == 160
    reads = await settled_count(sandbox, "GET", READ_PATH, len(chunks))
    assert reads == len(chunks)  # one request per chunk, none refused with 404


def test_keys_per_document_take_the_first_element_of_each_and_refuse_other_shapes():
    answer = {
        "results": {
            "PtRealization": [{"XpRe": "a", "Id": "1"}, {"XpRe": "b", "Id": "2"}, {"XpRe": "c", "Id": "3"}]
        }
    }
    keys = keys_per_document(answer, [2, 1])
    assert [dict(k) for k in keys] == [{"XpRe": "a", "Id": "1"}, {"XpRe": "c", "Id": "3"}]
    assert keys_per_document(answer, [2, 2]) is None  # one key set per element, or we look them up
    assert keys_per_document({"results": {"PtRealization": {"XpRe": "a"}}}, [1, 1]) is None
    assert keys_per_document({}, [1, 1]) is None
    assert dict(keys_per_document({"results": {"X": {"OrNu": "7"}}}, [1])[0]) == {"OrNu": "7"}


def test_page_sizes_fill_the_cell_budget_up_to_ten_thousand_rows():
    assert take_for(3) == MAX_TAKE == 10_000
    assert take_for(21) == 7_142 and CELL_BUDGET > 21 * 7_142
    assert take_for(None) == 1_000
    for spec in REGISTRY.values():
        assert spec.take * (spec.columns or 1) < CELL_BUDGET and spec.take <= MAX_TAKE
    with pytest.raises(ValueError, match="too much"):
        GetConnector("X", ("A",), take=5000, columns=40)


async def test_a_body_too_large_for_afas_is_bisected_by_the_loader_until_each_part_fits(sandbox: Sandbox):
    import json

    from sqlalchemy import create_engine

    from connectors.afas.client import as_body
    from tasks.invoice_hours.load import BatchLoader, Outcome, _Claimed

    sim = sandbox.apps["afas"].state.sim
    debtors = open_debtors(sandbox)
    references = refs("KPL-BIG", 8)
    payloads = [invoice(debtors[i], r.value) for i, r in enumerate(references)]
    one = len(json.dumps(as_body("FbDirectInvoice", payloads[0]), default=str))
    limit, sim.options.max_body_bytes = sim.options.max_body_bytes, one * 3  # ≤ 2-3 invoices per body
    sandbox.reset_counters("afas")
    try:
        async with afas(sandbox) as client:
            loader = BatchLoader(create_engine("sqlite://"), client, "run-big", None)
            items = [
                _Claimed(Outcome(r.value, "direct_invoice", "claimed"), p)
                for r, p in zip(references, payloads, strict=True)
            ]
            outcomes = await loader._post_batch("FbDirectInvoice", items)
    finally:
        sim.options.max_body_bytes = limit
    assert [o.status for o in outcomes] == ["posted"] * 8
    assert stored(sandbox, "KPL-BIG") == Counter({r.value: 1 for r in references})
    endpoint = sandbox.counters("afas")["endpoints"][f"POST {POST_PATH}"]
    assert endpoint["statuses"].get("413", 0) > 0  # the first bodies really were too large
