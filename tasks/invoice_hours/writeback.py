"""What Koppel writes back onto billed TOPdesk tickets: the config and the notes (plain functions).

``[writeback.<kind>]`` in the billing config turns the write-back on per ticket kind (off by default):
``memo = true`` adds an action invisible for the caller, ``optional_field = "optionalFields1.text1"``
sets an optional text field. ``notes`` turns the posted ledger lines into one note per (document, ticket):
the AFAS document number, the period and the billed (or, for a reversal, credited) minutes, with a
marker (``[Koppel KPL000123]``) by which an uncertain write is found again in the ticket's actions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from store.writeback import Note

KINDS = ("incident", "change", "change_activity", "operational_activity", "problem")
MEMO_KINDS = ("incident", "change", "change_activity")  # TOPdesk has an action/progress-trail route
FIELD_KINDS = ("incident", "change", "change_activity", "operational_activity")
_FIELD = re.compile(r"^optionalFields[12]\.text[1-5]$")
FIELD_LENGTH = 100  # TOPdesk's optional text fields (reference §5)
DOCUMENT_NAMES = {
    "direct_invoice": "invoice",
    "project_realisation": "project realisation",
    "sales_booking": "sales booking",
    "internal_entry": "internal entry",
}


class KindWriteback(BaseModel):
    """Write-back for one ticket kind."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    memo: bool = False
    # An optional TEXT field (optionalFields1.text1 … optionalFields2.text5); "off" or unset: none.
    optional_field: str | None = None

    @field_validator("optional_field")
    @classmethod
    def _field(cls, value: str | None) -> str | None:
        if value is None or value.strip().lower() in ("", "off"):
            return None
        if not _FIELD.match(value.strip()):
            raise ValueError(
                f"optional_field {value!r} must be an optional text field, optionalFields1.text1 … "
                'optionalFields2.text5, or "off"'
            )
        return value.strip()

    @property
    def enabled(self) -> bool:
        """Anything to write for this kind."""
        return self.memo or self.optional_field is not None


class Writeback(BaseModel):
    """``[writeback]``: per ticket kind, what Koppel writes onto a billed ticket after AFAS confirmed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    incident: KindWriteback = Field(default_factory=KindWriteback)
    change: KindWriteback = Field(default_factory=KindWriteback)
    change_activity: KindWriteback = Field(default_factory=KindWriteback)
    operational_activity: KindWriteback = Field(default_factory=KindWriteback)
    problem: KindWriteback = Field(default_factory=KindWriteback)

    @model_validator(mode="after")
    def _possible(self) -> Writeback:
        if self.problem.enabled:
            raise ValueError(
                "writeback.problem: TOPdesk publishes no REST API for problems "
                "(docs/reference/topdesk-api.md §3.4), so nothing can be written onto them; leave it off"
            )
        if self.operational_activity.memo:
            raise ValueError(
                "writeback.operational_activity: memo = true is not possible, TOPdesk's Operations "
                "Management API has no action route Koppel can read back; use optional_field"
            )
        return self

    @property
    def enabled(self) -> bool:
        """Write-back is on for at least one kind."""
        return any(self.for_kind(kind).enabled for kind in KINDS)

    def for_kind(self, kind: str) -> KindWriteback:
        """The settings of one ticket kind (``KindWriteback()`` for an unknown kind)."""
        value = getattr(self, kind, None) if kind in KINDS else None
        return value if isinstance(value, KindWriteback) else KindWriteback()


def marker(reference: str) -> str:
    """The text by which Koppel finds its own note for a document among a ticket's actions."""
    return f"[Koppel {reference}]"


def notes(lines: pd.DataFrame, invoice_numbers: Mapping[str, str | None], config: Writeback) -> list[Note]:
    """One note per (posted document, billed ticket) of an enabled kind, from ``ledger.posted_lines``.

    Lines without a ticket (written before revision 0002) and documents not posted are skipped.
    """
    if lines.empty:
        return []
    enabled = [kind for kind in KINDS if config.for_kind(kind).enabled]
    wanted = lines[
        lines["registration_kind"].isin(enabled)
        & lines["ticket_id"].notna()
        & lines["ticket_id"].astype("str").ne("")
        & lines["document_reference"].isin(list(invoice_numbers))
    ]
    out = []
    for (reference, ticket_id), group in wanted.groupby(["document_reference", "ticket_id"], sort=True):
        first = group.iloc[0]
        kind = str(first["registration_kind"])
        settings = config.for_kind(kind)
        number = invoice_numbers.get(str(reference))
        text, value = note_text(group, str(reference), number)
        out.append(
            Note(
                document_reference=str(reference),
                ticket_id=str(ticket_id),
                registration_kind=kind,
                ticket_number=None if pd.isna(first["ticket_number"]) else str(first["ticket_number"]),
                marker=marker(str(reference)),
                memo=text if settings.memo else None,
                field_path=settings.optional_field,
                field_value=value if settings.optional_field else None,
            )
        )
    return out


def note_text(group: pd.DataFrame, reference: str, invoice_number: str | None) -> tuple[str, str]:
    """The memo and the optional-field value for one document's lines on one ticket."""
    first = group.iloc[0]
    document = DOCUMENT_NAMES.get(str(first["kind"]), str(first["kind"]))
    number = f"{document} {invoice_number}" if invoice_number else document
    charged = int(group.loc[group["line_kind"].eq("charge"), "minutes"].abs().sum())
    credited = int(group.loc[group["line_kind"].eq("credit"), "minutes"].abs().sum())
    reversed_ = sorted({str(r) for r in group["reverses"].dropna() if str(r)})
    reverses = f", reverses {', '.join(reversed_)}" if reversed_ else ""
    parts = []
    if charged:
        parts.append(f"{charged} minutes billed")
    if credited:
        parts.append(f"{credited} minutes credited{reverses}")
    if not parts:
        parts.append("0 minutes billed")
    period = str(first["period"])
    memo = (
        f"{marker(reference)} Koppel: AFAS {number} (reference {reference}), period {period}: "
        f"{'; '.join(parts)}."
    )
    net = charged - credited
    field = f"Koppel {reference} {period} {net} min" + (" (credit)" if credited and not charged else "")
    return memo, field[:FIELD_LENGTH]
