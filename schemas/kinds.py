"""The kinds Koppel knows, as data: AFAS document kinds (one row each) and exclusion kinds.

A new kind of AFAS document costs one row in ``KINDS``: the administration mode that bills it (``Mode``), the
UpdateConnector it is posted to and the root object of its body, the field and GetConnector through which
Koppel finds it again by its reference after an uncertain post (decision §11.8), the payload builder in
``tasks/invoice_hours/payloads.py`` and the keys under which AFAS returns its number. The plan
(``tasks/invoice_hours/plan.py``), the payloads, the load and report steps, the pandera contracts
(``schemas/billing.py``) and the ledger's check constraint (``store/models.py``) all read this table.
Field and connector names: docs/reference/afas-profit-api.md §6.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, get_args


class Mode(StrEnum):
    """How an administration's customer hours end up in AFAS (``mode`` in billing.toml)."""

    DIRECT_INVOICE = "direct_invoice"
    PROJECT_REALISATION = "project_realisation"
    SALES_BOOKING = "sales_booking"


@dataclass(frozen=True)
class DocumentKind:
    """One kind of AFAS document Koppel posts."""

    name: str
    mode: Mode | None  # the administration mode billing customer hours this way; None: internal hours
    connector: str  # UpdateConnector the document is posted to
    root: str  # root object of the UpdateConnector body (differs from the connector for FiEntries)
    reference_field: str  # the field that carries Koppel's reference (or, for realisations, the line key)
    read_back: str  # GetConnector that finds the document again by ``reference_field``
    builder: str  # name of the function in tasks/invoice_hours/payloads.py that builds its bodies
    number_keys: tuple[str, ...]  # keys of AFAS's answer holding the document's number, first found wins
    # Fields looked in, in order, when ``reference_field`` finds nothing: where earlier versions of Koppel
    # wrote the same reference (direct invoices posted before the reference moved from RfCs to Fref).
    earlier_reference_fields: tuple[str, ...] = ()


KINDS: tuple[DocumentKind, ...] = (
    DocumentKind(
        "direct_invoice",
        Mode.DIRECT_INVOICE,
        connector="FbDirectInvoice",
        root="FbDirectInvoice",
        reference_field="Fref",  # invoice reference (≤ 32); RfCs carries the customer's order number
        read_back="Koppel_DirectInvoices",
        builder="direct_invoices",
        number_keys=("OrNu",),
        earlier_reference_fields=("RfCs",),  # decision §11.10 before: our reference in the invoice's RfCs
    ),
    DocumentKind(
        "project_realisation",
        Mode.PROJECT_REALISATION,
        connector="PtRealization",
        root="PtRealization",
        reference_field="XpRe",  # external key per realisation line; the first line's finds the body
        read_back="Koppel_Realizations",
        builder="realisations",
        number_keys=("Id", "Identity", "XpRe"),
    ),
    DocumentKind(
        "sales_booking",
        Mode.SALES_BOOKING,
        connector="FiEntries",
        root="FiEntryPar",
        reference_field="BpNr",  # voucher number
        read_back="Koppel_Entries",
        builder="sales_entries",
        number_keys=("EnNo",),
    ),
    DocumentKind(
        "internal_entry",
        None,
        connector="FiEntries",
        root="FiEntryPar",
        reference_field="BpNr",
        read_back="Koppel_Entries",
        builder="internal_entries",
        number_keys=("EnNo",),
    ),
)
BY_NAME: dict[str, DocumentKind] = {kind.name: kind for kind in KINDS}
DOCUMENT_KINDS: tuple[str, ...] = tuple(BY_NAME)
INTERNAL_ENTRY: str = next(kind.name for kind in KINDS if kind.mode is None)
BY_MODE: dict[Mode, DocumentKind] = {kind.mode: kind for kind in KINDS if kind.mode is not None}
# Every key under which AFAS may return a document's number, in the order the report looks for them.
NUMBER_KEYS: tuple[str, ...] = tuple(dict.fromkeys(key for kind in KINDS for key in kind.number_keys))


def kind(name: str) -> DocumentKind:
    """The row of document kind ``name``; a clear error for a kind this table does not know."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown document kind {name!r}; known: {', '.join(DOCUMENT_KINDS)}") from None


# What the ignore list (``koppel exclude``, store/exclusions.py) can hold; billing.toml's [exclusions] may
# also name a reason text or a category (tasks/invoice_hours/config.py).
StoredExclusionKind = Literal["registration", "ticket", "operator", "operator_group", "branch", "customer"]
ExclusionKind = Literal[StoredExclusionKind, "reason", "category"]
STORED_EXCLUSION_KINDS: tuple[str, ...] = get_args(StoredExclusionKind)
EXCLUSION_KINDS: tuple[str, ...] = get_args(ExclusionKind)
