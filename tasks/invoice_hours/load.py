"""Load: claim each planned document in the ledger, post it to AFAS at most once, confirm with AFAS's keys.

The order is what makes "exactly once" hold across reruns, concurrent workers and crashes:

1. **Recover** documents that an earlier, dead run claimed but never confirmed: look each up in AFAS by its
   reference (``Fref`` or earlier ``RfCs``, ``BpNr``, ``XpRe``); found → confirm; not found → post the
   stored payload.
2. **Claim** a document and its registrations in one ledger transaction. A reference that exists already is
   not posted again; registrations claimed meanwhile by another run make the claim fail as a whole, and the
   document is re-planned without them.
3. **Post** through ``AfasClient.insert_once``: an uncertain outcome (time-out, reset after sending) is looked
   up by reference before anything is posted again.
4. **Confirm** with AFAS's keys, or mark the document failed (business error: AFAS's message and log
   reference; the others go on) or uncertain (the next run recovers it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine

from connectors.afas.client import AfasClient
from connectors.afas.payloads import Reference
from connectors.errors import AuthError, BusinessError, ConnectorError, UncertainOutcome
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
    """Claims, posts and confirms documents for one run."""

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

    async def recover(self, stale_after: timedelta) -> list[Outcome]:
        """Finish documents of dead runs: confirm what AFAS has, post what it has not."""
        outcomes = []
        for record in ledger.unfinished(self.engine, stale_after=stale_after):
            if record.claimed_by_run != self.run_id and not ledger.adopt(
                self.engine, record.reference, self.run_id, previous_run_id=record.claimed_by_run
            ):
                continue  # another worker adopted it first
            outcome = Outcome(record.reference, record.kind, "claimed", record.minutes, record.amount)
            outcomes.append(await self._post(outcome, record.payload, look_first=True))
        return outcomes

    async def load(self, plan: LoadPlan) -> list[Outcome]:
        """Claim and post every planned document, bounded by the AFAS client's concurrency.

        Documents with reversals (``is_correction``) go first: a charge planned in another document than
        its registration's reversal expects the version that reversal's claim leaves. A registration whose
        reversal did not post is held back from the charge documents (it is not charged twice).
        """
        total, done = len(plan.documents), 0
        self.on_progress(0, total)
        by_reference = dict(iter(plan.lines.groupby("reference", sort=False)))

        async def one(document: Mapping[str, Any], held: frozenset[str]) -> list[Outcome]:
            nonlocal done
            lines = by_reference[document["reference"]]
            payload = plan.payloads.get(document["reference"])
            if payload is None:
                result = [self._refused_outcome(document, lines, plan.problems[document["reference"]])]
            elif held and lines["registration_id"].isin(held).any():
                result = await self._held(document, lines, held)
            else:
                result = await self._claim_and_post(document, lines, payload)
            done += 1
            self.on_progress(done, total)
            return result

        records = plan.documents.to_dict(orient="records")
        first = [doc for doc in records if bool(doc.get("is_correction"))]
        then = [doc for doc in records if not bool(doc.get("is_correction"))]
        results = await asyncio.gather(*(one(doc, frozenset()) for doc in first))
        outcomes = [outcome for group in results for outcome in group]
        held = frozenset(
            rid
            for outcome in outcomes
            if outcome.status not in ("posted", "recovered")
            for rid in outcome.registration_ids
        )
        results = await asyncio.gather(*(one(doc, held) for doc in then))
        return outcomes + [outcome for group in results for outcome in group]

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
    def _refused_outcome(document: Mapping[str, Any], lines: pd.DataFrame, problems: list[str]) -> Outcome:
        return Outcome(
            reference=str(document["reference"]),
            kind=str(document["kind"]),
            status="refused",
            minutes=int(document["minutes"]),
            amount=document["amount"],
            message="not posted, the payload is incomplete: " + "; ".join(problems[:5]),
            registration_ids=tuple(lines["registration_id"].astype(str)),
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
            outcome = self._claimed_outcome(document, lines, claimed, conflicts)
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
        self, document: Mapping[str, Any], lines: pd.DataFrame, claimed: ledger.ClaimResult, conflicts: tuple
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
            registration_ids=tuple(lines["registration_id"].astype(str)),
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
