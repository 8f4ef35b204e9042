"""Load: claim planned documents in the ledger, post them to AFAS at most once, confirm with AFAS's keys.

The order is what makes "exactly once" hold across reruns, concurrent workers and crashes:

1. **Recover** documents that an earlier, dead run claimed but never confirmed: look them all up in AFAS by
   their references (``Fref`` or earlier ``RfCs``, ``BpNr``, ``XpRe``), in chunks within AFAS's URL limit;
   found → confirm; not found → post the stored payloads in batches like a fresh load.
2. **Claim** a batch of documents (one UpdateConnector and administration) and their registrations in ONE
   ledger transaction (``ledger.claim_batch``). A reference that exists already is reported ``existing-*``
   and not posted again; a document whose registrations another run claimed meanwhile takes the
   per-document path (``Loader``): it is re-planned without them and claimed alone.
3. **Post** the claimed documents as ONE ``Element`` list (``AfasClient.insert_batch``; a re-planned
   document alone through ``AfasClient.insert_once``): AFAS handles a body as one transaction. An
   uncertain outcome (time-out, reset after sending) looks every reference up before anything is posted
   again. A business error refuses the whole body: the batch is bisected until the refused document
   stands alone, so the others still post.
4. **Confirm** every outcome in ONE ledger transaction (``ledger.confirm_batch``): AFAS's keys, or failed
   (business error: AFAS's message and log reference) or uncertain (the next run recovers it).

Ledger work (claims built from the frames, both transactions) runs in worker threads, so the event loop
keeps the AFAS request slots full. Batch size: ``KOPPEL_LOAD_BATCH_DOCUMENTS`` documents and
``KOPPEL_LOAD_BATCH_LINES`` lines at most; ``1`` document turns batching off (one body per document).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import anyio.to_thread
import pandas as pd
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import Engine

from connectors.afas.client import AfasClient
from connectors.afas.payloads import Reference
from connectors.errors import AuthError, BusinessError, ConnectorError, RequestRejected, UncertainOutcome
from schemas.kinds import KINDS, Mode
from schemas.kinds import kind as document_kind
from store import ledger
from tasks.invoice_hours.config import BillingConfig
from tasks.invoice_hours.payloads import build_payload, fill_invoice_number
from tasks.invoice_hours.plan import build_documents

log = logging.getLogger(__name__)

# UpdateConnector per document kind (reference §6; schemas/kinds.py).
CONNECTORS = {row.name: row.connector for row in KINDS}
MAX_REPLANS = 3
# Outcome statuses of documents that did not post in this run (their registrations: bucket "failed") and of
# documents another run claimed or holds (bucket "billed before");
# tasks/invoice_hours/buckets.py:settle_buckets.
FAILED_STATUSES = {"failed", "uncertain", "refused"}
ELSEWHERE_STATUSES = {"claimed-elsewhere", "existing-claimed", "existing-uncertain", "existing-failed"}
PLAN_COLUMNS = ("reference", "chunk", "debtor_key", "project_key")


@dataclass
class Outcome:
    """What happened to one document in this run."""

    reference: str
    kind: str
    status: str  # posted, recovered, failed, uncertain, existing-*, claimed-elsewhere, held, refused, dry-run
    minutes: int = 0
    amount: Decimal = Decimal("0.00")
    afas_keys: dict[str, str] = field(default_factory=dict)
    message: str = ""
    profit_log_reference: str = ""
    invoice_number: str = ""
    registration_ids: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()  # registrations another run claimed first


@dataclass(frozen=True)
class LoadPlan:
    """The planned documents, their lines and AFAS payloads, as the billing steps produced them."""

    documents: pd.DataFrame
    lines: pd.DataFrame
    payloads: Mapping[str, Mapping[str, Any]]
    problems: Mapping[str, list[str]] = field(default_factory=dict)  # refused at planning, per reference


def reference_for(kind: str, reference: str, payload: Mapping[str, Any]) -> Reference:
    """Where the document carrying ``reference`` can be found in AFAS (decision §11.8)."""
    row = document_kind(kind)
    if row.mode is Mode.PROJECT_REALISATION:  # one body is one transaction: its first line's key finds it
        return Reference(row.read_back, row.reference_field, first_external_key(payload))
    return Reference(
        row.read_back, row.reference_field, reference, earlier_fields=row.earlier_reference_fields
    )


def first_external_key(payload: Mapping[str, Any]) -> str:
    """The ``XpRe`` of the first realisation line of a PtRealization body: one body is one transaction."""
    element = next(iter(payload.values()))["Element"]
    first = element[0] if isinstance(element, list) else element
    return str(first["Fields"]["XpRe"])


def line_details(row: Mapping[str, Any]) -> dict[str, Any]:
    """What the ledger keeps of a planned line so that a later reversal can negate it exactly."""
    details: dict[str, Any] = {}
    for name in ledger.LINE_DETAILS:
        value = row.get(name)
        if value is None or (not isinstance(value, str | Decimal) and pd.isna(value)):
            continue
        if name == "base_minutes":
            value = int(value)
        elif name not in ("quantity", "unit_price"):
            value = str(value)
        details[name] = value
    return details


def line_claims(lines: pd.DataFrame) -> tuple[ledger.LineClaim, ...]:
    """Ledger line claims for the lines of one document."""
    claims = []
    for row in lines.itertuples(index=False):
        version = row.expected_version
        claims.append(
            ledger.LineClaim(
                registration_id=str(row.registration_id),
                line_kind=str(row.line_kind),
                fields_hash=str(row.fields_hash),
                minutes=int(row.billed_minutes),
                amount=row.amount,
                entry_date=as_date(row.work_date),
                customer_number=None if pd.isna(row.customer_number) else str(row.customer_number),
                expected_version=None if pd.isna(version) else int(version),
                details=line_details(row._asdict()),
            )
        )
    return tuple(claims)


def as_date(value: Any) -> date:
    """A plain ``date`` from a Timestamp, datetime or date."""
    if isinstance(value, pd.Timestamp):
        return value.date()
    return value if type(value) is date else value.date()


def document_claim(
    document: Mapping[str, Any],
    lines: pd.DataFrame | tuple[ledger.LineClaim, ...],
    payload: Mapping[str, Any],
) -> ledger.DocumentClaim:
    """The ledger claim for one planned document (``lines``: its frame, or its line claims built already)."""
    return ledger.DocumentClaim(
        reference=str(document["reference"]),
        kind=str(document["kind"]),
        administration=int(document["administration"]),
        debtor=str(document["debtor_id"]) or None,
        project=str(document["project_id"]) or None,
        period=str(document["period"]),
        payload=dict(payload),
        minutes=int(document["minutes"]),
        amount=document["amount"],
        needs_invoice_number=bool(document["needs_invoice_number"]),
        lines=lines if isinstance(lines, tuple) else line_claims(lines),
    )


class Loader:
    """The per-document path: claims, posts and confirms one document (re-planned on a claim conflict).

    ``BatchLoader`` builds on it; documents that need re-planning (a conflict, a held registration) take
    this path one by one.
    """

    def __init__(
        self,
        engine: Engine,
        client: AfasClient,
        run_id: str,
        config: BillingConfig,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> None:
        """Bind the store, the AFAS client and the run."""
        self.engine, self.client, self.run_id, self.config = engine, client, run_id, config
        self.on_progress = on_progress or (lambda done, total: None)

    async def _held(
        self, document: Mapping[str, Any], lines: pd.DataFrame, held: frozenset[str]
    ) -> list[Outcome]:
        """Post the document without the registrations whose reversal did not post in this run."""
        taken = tuple(sorted(set(lines["registration_id"]) & held))
        outcome = Outcome(
            reference=str(document["reference"]),
            kind=str(document["kind"]),
            status="held",
            message="its reversal did not post in this run; charged after the reversal is in AFAS",
            registration_ids=taken,
        )
        replanned = self._replan(lines, taken)
        if replanned is None:
            return [outcome]
        document, lines, payload = replanned
        return [outcome, *await self._claim_and_post(document, lines, payload)]

    @staticmethod
    def _refused_outcome(
        document: Mapping[str, Any], registration_ids: tuple[str, ...], problems: list[str]
    ) -> Outcome:
        return Outcome(
            reference=str(document["reference"]),
            kind=str(document["kind"]),
            status="refused",
            minutes=int(document["minutes"]),
            amount=document["amount"],
            message="not posted, the payload is incomplete: " + "; ".join(problems[:5]),
            registration_ids=registration_ids,
        )

    async def _claim_and_post(
        self, document: Mapping[str, Any], lines: pd.DataFrame, payload: Mapping[str, Any]
    ) -> list[Outcome]:
        conflicts: tuple[str, ...] = ()
        for _ in range(MAX_REPLANS):
            try:
                claimed = ledger.claim(self.engine, self.run_id, document_claim(document, lines, payload))
            except ledger.ClaimConflict as conflict:
                conflicts += conflict.registration_ids
                replanned = self._replan(lines, conflict.registration_ids)
                if replanned is None:
                    return [self._conflict_outcome(document, conflicts)]
                document, lines, payload = replanned
                continue
            ids = tuple(lines["registration_id"].astype(str))
            outcome = self._claimed_outcome(document, ids, claimed, conflicts)
            if claimed.existing:
                return [outcome]
            if claimed.invoice_number:
                payload = fill_invoice_number(payload, claimed.invoice_number)
            return [await self._post(outcome, payload, look_first=False)]
        return [self._conflict_outcome(document, conflicts)]

    def _replan(
        self, lines: pd.DataFrame, taken: tuple[str, ...]
    ) -> tuple[Mapping[str, Any], pd.DataFrame, Mapping[str, Any]] | None:
        remaining = lines[~lines["registration_id"].isin(taken)].drop(columns=list(PLAN_COLUMNS))
        if remaining.empty:
            return None
        documents, new_lines = build_documents(remaining, self.config)
        document = documents.iloc[0].to_dict()
        return document, new_lines, build_payload(document, new_lines, self.config)

    def _claimed_outcome(
        self,
        document: Mapping[str, Any],
        registration_ids: tuple[str, ...],
        claimed: ledger.ClaimResult,
        conflicts: tuple,
    ) -> Outcome:
        status = "claimed" if not claimed.existing else f"existing-{claimed.status}"
        return Outcome(
            reference=str(document["reference"]),
            kind=str(document["kind"]),
            status=status,
            minutes=int(document["minutes"]),
            amount=document["amount"],
            afas_keys=dict(claimed.afas_keys or {}),
            invoice_number=claimed.invoice_number or "",
            registration_ids=registration_ids,
            conflicts=conflicts,
        )

    @staticmethod
    def _conflict_outcome(document: Mapping[str, Any], conflicts: tuple[str, ...]) -> Outcome:
        return Outcome(
            reference=str(document["reference"]),
            kind=str(document["kind"]),
            status="claimed-elsewhere",
            message="every registration of this document was claimed by another run first",
            conflicts=conflicts,
        )

    async def _post(self, outcome: Outcome, payload: Mapping[str, Any], *, look_first: bool) -> Outcome:
        connector = CONNECTORS[outcome.kind]
        where = reference_for(outcome.kind, outcome.reference, payload)
        try:
            keys = await self.client.find_by_reference(where) if look_first else None
            if keys is None:
                keys = await self.client.insert_once(connector, payload, reference=where)
        except BusinessError as error:
            ledger.mark_failed(
                self.engine, outcome.reference, error.external_message, error.profit_log_reference
            )
            return replace(
                outcome,
                status="failed",
                message=error.external_message,
                profit_log_reference=error.profit_log_reference or "",
            )
        except AuthError:
            raise  # a configuration error: stop the run, the claim stays for the next run to recover
        except (UncertainOutcome, ConnectorError) as error:
            ledger.mark_uncertain(self.engine, outcome.reference, error.message)
            return replace(outcome, status="uncertain", message=error.message)
        ledger.mark_posted(self.engine, outcome.reference, dict(keys))
        status = "recovered" if keys.recovered else "posted"
        return replace(outcome, status=status, afas_keys=dict(keys))


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

    The same values as ``line_claims`` gives per document, the posted line's details (what a later reversal
    negates exactly) included.
    """
    columns = [lines[name].tolist() for name in CLAIM_COLUMNS[:-2]]
    customers = _present(lines["customer_number"])
    versions = _present(lines["expected_version"])
    grouped: dict[str, list[ledger.LineClaim]] = {}
    rows = zip(*columns, customers, versions, detail_records(lines), strict=True)
    for reference, rid, kind, digest, minutes, amount, day, customer, version, details in rows:
        claim = ledger.LineClaim(
            registration_id=str(rid),
            line_kind=str(kind),
            fields_hash=str(digest),
            minutes=int(minutes),
            amount=amount,
            entry_date=as_date(day),
            customer_number=None if customer is None else str(customer),
            expected_version=None if version is None else int(version),
            details=details,
        )
        grouped.setdefault(str(reference), []).append(claim)
    return {reference: tuple(claims) for reference, claims in grouped.items()}


def _present(column: pd.Series) -> list[Any]:
    """The column's values, ``None`` where missing (as ``pd.isna``, but a ``str`` or ``Decimal`` never is)."""
    values, missing = column.tolist(), column.isna().tolist()
    return [
        None if gone and not isinstance(value, str | Decimal) else value
        for value, gone in zip(values, missing, strict=True)
    ]


def detail_records(lines: pd.DataFrame) -> list[dict[str, Any]]:
    """``line_details`` of every line, column by column (the same values, without a dict per row first)."""
    kept: list[tuple[str, list[Any]]] = []
    for name in ledger.LINE_DETAILS:
        if name not in lines.columns:
            continue
        values = _present(lines[name])
        if name == "base_minutes":
            values = [None if value is None else int(value) for value in values]
        elif name not in ("quantity", "unit_price"):
            values = [None if value is None else str(value) for value in values]
        kept.append((name, values))
    if not kept:
        return [{} for _ in range(len(lines))]
    names = [name for name, _ in kept]
    return [
        {name: value for name, value in zip(names, row, strict=True) if value is not None}
        for row in zip(*(values for _, values in kept), strict=True)
    ]


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
        self._ids: dict[str, tuple[str, ...]] = {}  # registration ids per document, in line order
        # SQLite has one writer: threads queue on a lock instead of SQLite's coarse busy-wait sleeps.
        sqlite = self.engine.dialect.name == "sqlite"
        self._writer: AbstractContextManager[Any] = threading.Lock() if sqlite else nullcontext()

    async def load(self, plan: LoadPlan) -> list[Outcome]:
        """Claim, post and confirm every planned document, batch by batch, batches concurrently.

        With ``batch_documents=1`` every batch is one document: one body, one claim and one confirm
        transaction per document, as without batching, with the ledger work still off the event loop.
        Documents refused at planning are not posted. Documents with reversals (``is_correction``) go
        first: a charge planned in another document than its registration's reversal expects the version
        that reversal's claim leaves. A registration whose reversal did not post is held back from the
        charge documents (it is not charged twice).
        """
        total, done = len(plan.documents), 0
        self.on_progress(0, total)
        documents = {str(row["reference"]): row for row in plan.documents.to_dict(orient="records")}
        # Only the columns a claim reads: a 69-column sub-frame per document was the load's CPU hot spot.
        wanted = [*CLAIM_COLUMNS, *(c for c in ledger.LINE_DETAILS if c in plan.lines.columns)]
        self._line_claims = await anyio.to_thread.run_sync(line_claims_by_reference, plan.lines[wanted])
        self._ids = {
            ref: tuple(c.registration_id for c in claims) for ref, claims in self._line_claims.items()
        }
        self._all_lines = plan.lines
        slots = asyncio.Semaphore(BATCHES_IN_FLIGHT)

        async def one(batch: Batch) -> list[Outcome]:
            nonlocal done
            async with slots:
                result = await self._load_batch(batch, documents, plan.payloads)
            done += len(batch.references)
            self.on_progress(done, total)
            return result

        async def run(frame: pd.DataFrame) -> list[Outcome]:
            work = batches(frame, plan.lines[plan.lines["reference"].isin(frame["reference"])], self.settings)
            results = await asyncio.gather(*(one(batch) for batch in work))
            return [outcome for group in results for outcome in group]

        refused = ~plan.documents["reference"].isin(list(plan.payloads))
        outcomes = [
            self._refused_outcome(doc, self._ids.get(doc["reference"], ()), plan.problems[doc["reference"]])
            for doc in plan.documents[refused].to_dict(orient="records")
        ]
        postable = plan.documents[~refused]
        correction = postable["is_correction"].fillna(False).astype(bool) if len(postable) else postable
        outcomes += await run(postable[correction] if len(postable) else postable)
        held = frozenset(
            rid for o in outcomes if o.status not in ("posted", "recovered") for rid in o.registration_ids
        )
        rest = postable[~correction] if len(postable) else postable
        touches = rest["reference"].map(lambda ref: any(rid in held for rid in self._ids.get(ref, ())))
        for document in rest[touches.astype(bool)].to_dict(orient="records"):  # rare: one by one
            lines = self._all_lines[self._all_lines["reference"] == document["reference"]]
            outcomes += await self._held(document, lines, held)
        outcomes += await run(rest[~touches.astype(bool)])
        self.on_progress(total, total)
        return outcomes

    async def _load_batch(
        self,
        batch: Batch,
        documents: Mapping[str, dict[str, Any]],
        payloads: Mapping[str, Mapping[str, Any]],
    ) -> list[Outcome]:
        rows = [documents[reference] for reference in batch.references]
        claimed, conflicted, settled = await anyio.to_thread.run_sync(self._claim_batch, rows, payloads)
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
        outcomes: list[Outcome] = []
        missing: dict[tuple[str, int], list[_Claimed]] = {}
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
            outcome = self._claimed_outcome(document, self._ids[document["reference"]], result, ())
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
