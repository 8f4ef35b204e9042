"""Batched load: documents of one UpdateConnector and administration go to AFAS as one ``Element`` list.

The batch is the unit of claim, post and confirm (``tasks/invoice_hours/load.py`` describes the per-document
protocol,
which stays the same for each document of a batch):

1. **Claim** every document of the batch in ONE ledger transaction (``ledger.claim_batch``). A document
   whose registrations another run claimed meanwhile takes the per-document path of ``Loader`` (it
   re-plans without them); one claimed before is reported ``existing-*`` and not posted.
2. **Post** the claimed documents as ONE body (``AfasClient.insert_batch``): AFAS handles it as one
   transaction. An uncertain outcome looks every reference of the batch up before anything is posted
   again. A business error refuses the whole body: the batch is bisected until the refused document
   stands alone, so the others still post.
3. **Confirm** every outcome in ONE ledger transaction (``ledger.confirm_batch``).

**Recovery** of documents a dead run left claimed or uncertain looks all their references up at once, in
chunks within AFAS's URL limit, confirms what AFAS holds and posts the rest in batches.

Ledger work (claims built from the frames, both transactions) runs in worker threads, so the event loop
keeps the AFAS request slots full. Batch size: ``KOPPEL_LOAD_BATCH_DOCUMENTS`` documents and
``KOPPEL_LOAD_BATCH_LINES`` lines at most; ``1`` document turns batching off (one body per document).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import anyio.to_thread
import pandas as pd
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors.errors import AuthError, BusinessError, ConnectorError, RequestRejected
from store import ledger
from tasks.invoice_hours.load import (
    CONNECTORS,
    Loader,
    LoadPlan,
    Outcome,
    as_date,
    document_claim,
    line_details,
    reference_for,
)
from tasks.invoice_hours.payloads import fill_invoice_number

CLAIM_COLUMNS = (
    "reference",
    "registration_id",
    "line_kind",
    "fields_hash",
    "billed_minutes",
    "amount",
    "work_date",
    "customer_number",
    "expected_version",
)
BATCHES_IN_FLIGHT = 8  # claimed but not yet confirmed batches per run: bounds what a crash leaves open


class LoadSettings(BaseSettings):
    """How documents are grouped into AFAS bodies (env vars ``KOPPEL_LOAD_*``)."""

    model_config = SettingsConfigDict(env_prefix="KOPPEL_LOAD_", extra="ignore")

    batch_documents: int = Field(
        default=50, ge=1, le=1000, description="Documents per AFAS body at most (1 = no batching)."
    )
    batch_lines: int = Field(
        default=500,
        ge=1,
        description="Document lines per AFAS body at most (Profit's time grows with lines; a larger "
        "document still goes alone).",
    )


@dataclass(frozen=True)
class Batch:
    """Documents of one connector and administration that go to AFAS as one body."""

    connector: str
    administration: int
    references: tuple[str, ...]


def batches(documents: pd.DataFrame, lines: pd.DataFrame, settings: LoadSettings) -> list[Batch]:
    """Cut the planned documents into batches: per connector + administration, within both limits."""
    if documents.empty:
        return []
    line_counts = lines.groupby("reference", sort=False).size()
    frame = pd.DataFrame(
        {
            "reference": documents["reference"].astype(str).to_numpy(),
            "connector": documents["kind"].map(CONNECTORS).to_numpy(),
            "administration": documents["administration"].astype(int).to_numpy(),
        }
    )
    frame["lines"] = frame["reference"].map(line_counts).fillna(0).astype(int).to_numpy()
    out: list[Batch] = []
    for (connector, administration), group in frame.groupby(["connector", "administration"], sort=False):
        current: list[str] = []
        count = 0
        for reference, size in zip(group["reference"], group["lines"], strict=True):
            full = len(current) >= settings.batch_documents or count + size > settings.batch_lines
            if current and full:
                out.append(Batch(str(connector), int(administration), tuple(current)))
                current, count = [], 0
            current.append(reference)
            count += size
        if current:
            out.append(Batch(str(connector), int(administration), tuple(current)))
    return out


def line_claims_by_reference(lines: pd.DataFrame) -> dict[str, tuple[ledger.LineClaim, ...]]:
    """Every document's ledger line claims, built in one pass over column lists (no per-document frames).

    The same values as ``tasks.invoice_hours.load.line_claims`` gives per document, the posted line's details
    (what a
    later reversal negates exactly) included.
    """
    columns = [lines[name].tolist() for name in CLAIM_COLUMNS]
    names = [name for name in ledger.LINE_DETAILS if name in lines.columns]
    details = lines[names].to_dict(orient="records") if names else [{}] * len(lines)
    grouped: dict[str, list[ledger.LineClaim]] = {}
    rows = zip(*columns, details, strict=True)
    for reference, rid, kind, digest, minutes, amount, day, customer, version, detail in rows:
        claim = ledger.LineClaim(
            registration_id=str(rid),
            line_kind=str(kind),
            fields_hash=str(digest),
            minutes=int(minutes),
            amount=amount,
            entry_date=as_date(day),
            customer_number=None if pd.isna(customer) else str(customer),
            expected_version=None if pd.isna(version) else int(version),
            details=line_details(detail),
        )
        grouped.setdefault(str(reference), []).append(claim)
    return {reference: tuple(claims) for reference, claims in grouped.items()}


@dataclass
class _Claimed:
    outcome: Outcome
    payload: Mapping[str, Any]


class BatchLoader(Loader):
    """``Loader`` whose ``load`` claims, posts and confirms batches of documents."""

    def __init__(self, *args: Any, settings: LoadSettings | None = None, **kwargs: Any) -> None:
        """Bind the store, the AFAS client and the run (as ``Loader``), and the batch settings."""
        super().__init__(*args, **kwargs)
        self.settings = settings or LoadSettings()
        self._all_lines = pd.DataFrame()
        self._line_claims: dict[str, tuple[ledger.LineClaim, ...]] = {}
        # SQLite has one writer: threads queue on a lock instead of SQLite's coarse busy-wait sleeps.
        sqlite = self.engine.dialect.name == "sqlite"
        self._writer: AbstractContextManager[Any] = threading.Lock() if sqlite else nullcontext()

    async def load(self, plan: LoadPlan) -> list[Outcome]:
        """Claim, post and confirm every planned document, batch by batch, batches concurrently.

        With ``batch_documents=1`` every batch is one document: one body, one claim and one confirm
        transaction per document, as without batching, with the ledger work still off the event loop.
        As ``Loader.load``: documents refused at planning are not posted, documents with reversals go
        first, and a registration whose reversal did not post is held back from the charge documents.
        """
        total, done = len(plan.documents), 0
        self.on_progress(0, total)
        documents = plan.documents.set_index(plan.documents["reference"].astype(str), drop=False)
        # Only the columns a claim reads: a 69-column sub-frame per document was the load's CPU hot spot.
        wanted = [*CLAIM_COLUMNS, *(c for c in ledger.LINE_DETAILS if c in plan.lines.columns)]
        narrow = plan.lines[wanted]
        by_reference = dict(iter(narrow.groupby("reference", sort=False)))
        self._line_claims = await anyio.to_thread.run_sync(line_claims_by_reference, narrow)
        self._all_lines = plan.lines
        slots = asyncio.Semaphore(BATCHES_IN_FLIGHT)

        async def one(batch: Batch) -> list[Outcome]:
            nonlocal done
            async with slots:
                result = await self._load_batch(batch, documents, by_reference, plan.payloads)
            done += len(batch.references)
            self.on_progress(done, total)
            return result

        async def run(frame: pd.DataFrame) -> list[Outcome]:
            work = batches(frame, plan.lines[plan.lines["reference"].isin(frame["reference"])], self.settings)
            results = await asyncio.gather(*(one(batch) for batch in work))
            return [outcome for group in results for outcome in group]

        refused = ~plan.documents["reference"].isin(list(plan.payloads))
        outcomes = [
            self._refused_outcome(doc, by_reference[doc["reference"]], plan.problems[doc["reference"]])
            for doc in plan.documents[refused].to_dict(orient="records")
        ]
        postable = plan.documents[~refused]
        correction = postable["is_correction"].fillna(False).astype(bool) if len(postable) else postable
        outcomes += await run(postable[correction] if len(postable) else postable)
        held = frozenset(
            rid for o in outcomes if o.status not in ("posted", "recovered") for rid in o.registration_ids
        )
        rest = postable[~correction] if len(postable) else postable
        touches = rest["reference"].map(
            lambda ref: bool(held) and by_reference[ref]["registration_id"].isin(held).any()
        )
        for document in rest[touches.astype(bool)].to_dict(orient="records"):  # rare: one by one
            lines = self._all_lines[self._all_lines["reference"] == document["reference"]]
            outcomes += await self._held(document, lines, held)
        outcomes += await run(rest[~touches.astype(bool)])
        self.on_progress(total, total)
        return outcomes

    async def _load_batch(
        self,
        batch: Batch,
        documents: pd.DataFrame,
        by_reference: Mapping[str, pd.DataFrame],
        payloads: Mapping[str, Mapping[str, Any]],
    ) -> list[Outcome]:
        rows = [documents.loc[reference].to_dict() for reference in batch.references]
        claimed, conflicted, settled = await anyio.to_thread.run_sync(
            self._claim_batch, rows, by_reference, payloads
        )
        outcomes = [*settled]
        for document in conflicted:  # rare: re-planned and claimed one by one, as without batching
            reference = document["reference"]
            lines = self._all_lines[self._all_lines["reference"] == reference]
            outcomes += await self._claim_and_post(document, lines, payloads[reference])
        posted = await self._post_batch(batch.connector, claimed)
        confirmations = [confirmation(outcome) for outcome in posted]
        await anyio.to_thread.run_sync(self._confirm, confirmations)
        return outcomes + posted

    async def recover(self, stale_after: timedelta) -> list[Outcome]:
        """Finish documents of dead runs: look them all up at once, confirm what AFAS has, post the rest.

        The look-up reads the references in chunks within AFAS's URL limit (``find_by_references``)
        instead of one read per document; what AFAS lacks is posted in batches like a fresh load.
        """
        records = await anyio.to_thread.run_sync(self._adopt_unfinished, stale_after)
        if not records:
            return []
        references = [reference_for(r.kind, r.reference, r.payload) for r in records]
        try:
            found = await self.client.find_by_references(references)
        except AuthError:
            raise  # a configuration error: stop the run, the claims stay for the next run
        except ConnectorError as error:  # AFAS unreachable: they stay uncertain for the next run
            message = f"recovery look-up failed: {error.message}"
            lost = [
                Outcome(r.reference, r.kind, "uncertain", r.minutes, r.amount, message=message)
                for r in records
            ]
            await anyio.to_thread.run_sync(self._confirm, [confirmation(o) for o in lost])
            return lost
        outcomes, missing = [], {}
        for record, keys in zip(records, found, strict=True):
            outcome = Outcome(record.reference, record.kind, "claimed", record.minutes, record.amount)
            if keys is not None:
                outcomes.append(replace(outcome, status="recovered", afas_keys=dict(keys)))
                continue
            payload = record.payload
            if record.invoice_number:
                payload = fill_invoice_number(payload, record.invoice_number)
            group = missing.setdefault((CONNECTORS[record.kind], record.administration), [])
            group.append(_Claimed(outcome, payload))
        for (connector, _), items in missing.items():
            size = self.settings.batch_documents
            for start in range(0, len(items), size):
                outcomes += await self._post_batch(connector, items[start : start + size])
        await anyio.to_thread.run_sync(self._confirm, [confirmation(o) for o in outcomes])
        return outcomes

    def _adopt_unfinished(self, stale_after: timedelta) -> list[ledger.DocumentRecord]:
        adopted = []
        for record in ledger.unfinished(self.engine, stale_after=stale_after):
            mine = record.claimed_by_run == self.run_id
            with self._writer:
                taken = mine or ledger.adopt(
                    self.engine, record.reference, self.run_id, previous_run_id=record.claimed_by_run
                )
            if taken:  # else another worker adopted it first
                adopted.append(record)
        return adopted

    def _claim_batch(
        self,
        rows: list[dict[str, Any]],
        by_reference: Mapping[str, pd.DataFrame],
        payloads: Mapping[str, Mapping[str, Any]],
    ) -> tuple[list[_Claimed], list[dict[str, Any]], list[Outcome]]:
        """In a worker thread: build the claims and claim them in one transaction."""
        claims = [
            document_claim(r, self._line_claims[r["reference"]], payloads[r["reference"]]) for r in rows
        ]
        with self._writer:
            results = ledger.claim_batch(self.engine, self.run_id, claims)
        claimed, conflicted, settled = [], [], []
        for document, result in zip(rows, results, strict=True):
            if isinstance(result, ledger.ClaimConflict):
                conflicted.append(document)
                continue
            outcome = self._claimed_outcome(document, by_reference[document["reference"]], result, ())
            if result.existing:
                settled.append(outcome)
                continue
            payload = payloads[document["reference"]]
            if result.invoice_number:
                payload = fill_invoice_number(payload, result.invoice_number)
            claimed.append(_Claimed(outcome, payload))
        return claimed, conflicted, settled

    def _confirm(self, confirmations: list[ledger.Confirmation]) -> None:
        with self._writer:
            ledger.confirm_batch(self.engine, confirmations)

    async def _post_batch(self, connector: str, items: list[_Claimed]) -> list[Outcome]:
        """Post ``items`` as one body; bisect on a business error until the refused document is alone."""
        if not items:
            return []
        references = [reference_for(i.outcome.kind, i.outcome.reference, i.payload) for i in items]
        answer = await self.client.insert_batch(connector, [i.payload for i in items], references)
        outcomes, rest = [], []
        for item, keys in zip(items, answer.keys, strict=True):
            if keys is None:
                rest.append(item)
                continue
            status = "recovered" if keys.recovered else "posted"
            outcomes.append(replace(item.outcome, status=status, afas_keys=dict(keys)))
        if not rest:
            return outcomes
        error = answer.error
        # Refused before anything was stored (business rule, or a 4xx such as 413 for a too large
        # body): halves are posted on their own until the refused document stands alone.
        if isinstance(error, BusinessError | RequestRejected) and len(rest) > 1:
            middle = len(rest) // 2
            halves = await asyncio.gather(
                self._post_batch(connector, rest[:middle]), self._post_batch(connector, rest[middle:])
            )
            return outcomes + halves[0] + halves[1]
        if isinstance(error, BusinessError):
            failed = replace(
                rest[0].outcome,
                status="failed",
                message=error.external_message,
                profit_log_reference=error.profit_log_reference or "",
            )
            return [*outcomes, failed]
        message = error.message if error is not None else "no answer for this document"
        return outcomes + [replace(item.outcome, status="uncertain", message=message) for item in rest]


def confirmation(outcome: Outcome) -> ledger.Confirmation:
    """The ledger record of a posted document's outcome."""
    if outcome.status in ("posted", "recovered"):
        return ledger.Confirmation(outcome.reference, "posted", outcome.afas_keys)
    if outcome.status == "failed":
        return ledger.Confirmation(
            outcome.reference,
            "failed",
            message=outcome.message,
            profit_log_reference=outcome.profit_log_reference,
        )
    return ledger.Confirmation(outcome.reference, "uncertain", message=outcome.message)
