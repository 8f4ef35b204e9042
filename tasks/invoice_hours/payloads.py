"""AFAS UpdateConnector bodies for planned documents: FbDirectInvoice, PtRealization, FiEntries.

The shape follows AFAS's published ``<Connector>_POST`` schemas (docs/reference/afas-openapi/):
``{"<Root>": {"Element": {"Fields": {...}, "Objects": [{"<Sub>": {"Element": [...]}}]}}}``; several
realisations go as an ``Element`` list. Field codes stay as AFAS names them; each carries a comment.
Field reference: docs/reference/afas-profit-api.md §6 (FbDirectInvoice, FiEntries, PtRealization).
Amounts and quantities are exact (int hundredths → ``Decimal``) and leave as JSON numbers through
``afas_number``, which refuses any value whose float form would not read back as the same decimal.
Lines are aggregated for all documents at once; the only Python loops are per document and per
emitted line (every emitted line is a JSON object anyway).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from schemas.kinds import DOCUMENT_KINDS, kind
from tasks.invoice_hours.config import BillingConfig, Grouping
from tasks.invoice_hours.money import CENT, round_cents, to_cents
from tasks.invoice_hours.plan import descriptions

Payload = dict[str, Any]
XPRE_LENGTH = 40
RFCS_LENGTH = 100
# Where a direct invoice carries Koppel's reference: ``Fref`` ("Invoice reference", ≤ 32, a header field of
# FbDirectInvoice POST and PUT in docs/reference/afas-openapi/sales-and-orders.json, read back by
# Koppel_DirectInvoices), then ``RfCs`` where documents posted before Koppel used ``Fref`` carry it.
_DIRECT = kind("direct_invoice")
INVOICE_REFERENCE_FIELDS = (_DIRECT.reference_field, *_DIRECT.earlier_reference_fields)


def afas_number(value: Decimal) -> float:
    """A 2-decimal ``Decimal`` as a JSON number; raises rather than let float change the value."""
    if value != value.quantize(CENT):
        raise ValueError(f"{value} has more than 2 decimals")
    number = float(value)
    if Decimal(repr(number)) != value:
        raise ValueError(f"{value} does not survive conversion to a JSON number")
    return number


def hundredths(value: int) -> float:
    """Int hundredths (cents, or hundredths of an hour) as a JSON number with 2 decimals."""
    return afas_number(Decimal(int(value)).scaleb(-2))


def build_payloads(documents: pd.DataFrame, lines: pd.DataFrame, config: BillingConfig) -> dict[str, Payload]:
    """Payload per document reference."""
    unknown = sorted(set(documents["kind"]) - set(DOCUMENT_KINDS))
    if unknown:
        raise ValueError(f"unknown document kinds {unknown}")
    payloads: dict[str, Payload] = {}
    for name, chosen in documents.groupby("kind", sort=True):
        own = lines[lines["reference"].isin(chosen["reference"])]
        build: Callable[..., dict[str, Payload]] = globals()[kind(str(name)).builder]  # schemas/kinds.py
        payloads.update(build(chosen, own, config))
    return payloads


def build_payload(document: Mapping[str, Any], lines: pd.DataFrame, config: BillingConfig) -> Payload:
    """The UpdateConnector body for one planned document and its lines."""
    reference = document["reference"]
    one = pd.DataFrame([dict(document)])
    return build_payloads(one, lines.assign(reference=reference), config)[reference]


def _by_reference(items: pd.DataFrame, build: Callable[[Mapping[str, Any]], Any]) -> dict[str, list[Any]]:
    """Build one element per row and collect them per ``reference``, in row order."""
    collected: dict[str, list[Any]] = {}
    for row in items.to_dict("records"):
        collected.setdefault(row["reference"], []).append(build(row))
    return collected


# --- FbDirectInvoice (reference §6; our reference in Fref, the customer's in RfCs) -----------------------


def direct_invoices(
    documents: pd.DataFrame, lines: pd.DataFrame, config: BillingConfig
) -> dict[str, Payload]:
    """Direct invoices: one per debtor + project + period, lines per ticket+item or per registration."""
    per_registration = {
        a for a, c in config.administrations.items() if c.grouping == Grouping.PER_REGISTRATION
    }
    parts = invoice_parts(lines, lines["administration"].isin(per_registration))
    units = {
        ref: config.administrations[int(admin)].hours_unit
        for ref, admin in zip(documents["reference"], documents["administration"], strict=True)
    }
    rows = _by_reference(parts.assign(unit=parts["reference"].map(units)), _invoice_line)
    orders = customer_references(documents, lines, config)
    return {
        doc["reference"]: _invoice(doc, rows.get(doc["reference"], []), orders.get(doc["reference"]))
        for doc in documents.to_dict("records")
    }


def customer_references(
    documents: pd.DataFrame, lines: pd.DataFrame, config: BillingConfig
) -> dict[str, str]:
    """The customer's purchase-order number per direct invoice, where one is known.

    From TOPdesk first (``order_ref``: the tickets' order field, distinct values joined by ``, ``), else
    from ``[customer_references.debtors]``; at most 100 characters (``RfCs``).
    """
    found: dict[str, str] = {}
    if "order_ref" in lines:
        refs = lines[["reference", "order_ref"]].dropna()
        refs = refs[refs["order_ref"].astype("str").str.strip().ne("")]
        for reference, values in refs.groupby("reference", sort=False)["order_ref"]:
            found[str(reference)] = ", ".join(sorted({str(v).strip() for v in values}))
    per_debtor = config.customer_references.debtors
    for doc in documents[["reference", "debtor_id"]].itertuples(index=False):
        if doc.reference not in found and doc.debtor_id in per_debtor:
            found[doc.reference] = per_debtor[doc.debtor_id]
    return {reference: text[:RFCS_LENGTH] for reference, text in found.items()}


def _invoice(document: Mapping[str, Any], rows: list[Payload], order: str | None) -> Payload:
    fields: dict[str, Any] = {
        "DbId": document["debtor_id"],  # sales relation (debtor) to invoice
        # RfCs, the customer's reference ("Order number/reference"): their purchase-order number when
        # known, else Koppel's reference as before.
        "RfCs": order or document["reference"],
        "Fref": document["reference"],  # invoice reference: Koppel's deterministic key, found again by it
        "OrDa": document["document_date"],  # order/invoice date (latest work date on it)
        "Unit": int(document["administration"]),  # administration
    }
    if document["project_id"]:
        fields["PrId"] = document["project_id"]  # project: a header field of FbDirectInvoice
    objects = [{"FbDirectInvoiceLines": {"Element": rows}}]
    return {"FbDirectInvoice": {"Element": {"Fields": fields, "Objects": objects}}}


def invoice_parts(lines: pd.DataFrame, per_registration: pd.Series) -> pd.DataFrame:
    """Invoice lines for all documents: charged hours at the unit price, prepaid (bundle) hours at zero.

    Grouped per registration, or per ticket + item + price; charges and credits are never netted.
    """
    ticket = lines["billed_ticket_number"].fillna(lines["ticket_number"]).fillna("").astype("str")
    about = (ticket + " " + lines["ticket_description"].fillna("").astype("str")).str.strip()
    if "moved_from" in lines:  # booked in a later open period: the original date stays in the text
        moved = lines["moved_from"].fillna("").astype("str").ne("")
        about = about.mask(moved, about + " (werkdatum " + lines["work_day"].astype("str") + ")")
    base = pd.DataFrame(
        {
            "reference": lines["reference"],
            "line_kind": lines["line_kind"],
            "item": lines["item_code"],
            "text": _line_texts(lines, per_registration, about),
            "key": lines["registration_id"].where(per_registration, ticket + "\x1f" + lines["item_code"]),
        }
    )
    charged = base.assign(
        quantity=lines["quantity_hundredths"], price=lines["unit_price_cents"], prepaid=False
    )
    included = (
        lines["included_hundredths"] if "included_hundredths" in lines else 0 * lines["drawn_hundredths"]
    )
    drawn = base.assign(quantity=lines["drawn_hundredths"] - included, price=0, prepaid=True)
    within = base.assign(quantity=included, price=0, prepaid="included")  # contract hours (allowances)
    parts = pd.concat([charged, drawn[drawn["quantity"].ne(0)], within[within["quantity"].ne(0)]])
    parts = parts[parts["quantity"].ne(0)].reset_index(drop=True)
    parts["prepaid"] = parts["prepaid"].astype("str")  # "False", "True" (bundle) or "included"
    keys = ["reference", "key", "price", "line_kind", "prepaid"]
    summed = parts.groupby(keys, sort=True).agg(
        quantity=("quantity", "sum"), item=("item", "first"), text=("text", "first")
    )
    summed = summed.reset_index()
    credit_of_ticket = summed["line_kind"].eq("credit") & ~summed["text"].str.startswith("Creditering")
    summed["text"] = np.where(credit_of_ticket, "Creditering: " + summed["text"], summed["text"])
    summed["text"] = np.where(
        summed["prepaid"].eq("True"), summed["text"] + " (strippenkaart)", summed["text"]
    )
    summed["text"] = np.where(
        summed["prepaid"].eq("included"), summed["text"] + " (inbegrepen: contracturen)", summed["text"]
    )
    summed["prepaid"] = summed["prepaid"].ne("False")
    return summed


def _line_texts(lines: pd.DataFrame, per_registration: pd.Series, about: pd.Series) -> pd.Series:
    """Per-registration lines describe the registration; per-ticket lines the ticket."""
    texts = about.copy()
    if per_registration.any():
        texts[per_registration] = descriptions(lines[per_registration])
    return texts


def _invoice_line(part: Mapping[str, Any]) -> Payload:
    return {
        "Fields": {
            "VaIt": "1",  # item type 1 = work type (hours)
            "ItCd": part["item"],  # work type code
            "BiUn": part["unit"],  # unit: the administration's hours unit (default "uur")
            "QuUn": hundredths(part["quantity"]),  # number of units (hours); negative = credit
            "Upri": hundredths(part["price"]),  # price per unit (hour), excl. VAT
            "Ds": str(part["text"])[:255],  # line description
        }
    }


# --- PtRealization (reference §6; decision §11.11: one line per registration, Qu to 0.05 h) --------------


def realisations(documents: pd.DataFrame, lines: pd.DataFrame, config: BillingConfig) -> dict[str, Payload]:
    """One project realisation per registration line; a document's realisations form one ``Element`` list."""
    ordered = lines.sort_values(["reference", "registration_id", "line_kind"])
    rows = _by_reference(ordered.assign(description=descriptions(ordered)), _realisation)
    return {ref: {"PtRealization": {"Element": rows.get(ref, [])}} for ref in documents["reference"]}


def _realisation(line: Mapping[str, Any]) -> Payload:
    fields: dict[str, Any] = {
        "DaTi": _booking_day(line),  # date booked: the work date, or the first day of the open period
        "VaIt": "1",  # item type 1 = work type (hours)
        "ItCd": line["item_code"],  # work type code
        "Qu": hundredths(line["quantity_hundredths"]),  # hours, a multiple of 0.05; negative = credit
        "PrId": line["project_id"],  # project
        "DbId": line["debtor_id"],  # sales relation (debtor)
        "XpRe": external_key(line),  # external key: finds the realisation again after an uncertain post
        "Ds": line["description"],  # description
    }
    if isinstance(line.get("employee_id"), str) and line["employee_id"]:
        fields["EmId"] = line["employee_id"]  # employee who did the work
    # A missing project or debtor stays missing (None/NaN): ``payload_problems`` then rejects the document
    # at planning with the field named, instead of a crashed load or a line AFAS books elsewhere.
    return {"Fields": fields}


def _booking_day(line: Mapping[str, Any]) -> str:
    booking = line.get("booking_date")
    if booking is None or pd.isna(booking):
        return str(line["work_day"])
    return pd.Timestamp(booking).strftime("%Y-%m-%d")


def external_key(line: Mapping[str, Any]) -> str:
    """``XpRe``: the registration id; later versions (re-charge, credit) get a ``~v``/``~c`` suffix."""
    version = line.get("expected_version")
    identity = str(line["registration_id"])
    if line["line_kind"] == "credit":
        suffix = f"~c{0 if version is None or pd.isna(version) else int(version)}"
    elif version is not None and not pd.isna(version):
        suffix = f"~v{int(version) + 1}"
    else:
        suffix = ""
    if len(identity) + len(suffix) > XPRE_LENGTH:
        identity = hashlib.sha256(identity.encode()).hexdigest()[: XPRE_LENGTH - len(suffix)]
    return identity + suffix


# --- FiEntries (root FiEntryPar; reference §6) ---------------------------------------------------------


def sales_entries(documents: pd.DataFrame, lines: pd.DataFrame, config: BillingConfig) -> dict[str, Payload]:
    """Sales journal entries: debtor line incl. VAT, revenue per item, one VAT line; balanced to the cent.

    The VAT code is the debtor's (``documents.vat_code``, see ``tasks/invoice_hours/config.Vat``), the revenue
    account the item's (``accounts.revenue_by_item``). The invoice number (``InId``) is assigned when the
    document is claimed: ``fill_invoice_number``.
    """
    per_item = lines.groupby(["reference", "item_code"], sort=True)["amount_cents"].sum().reset_index()
    revenue = dict(tuple(per_item.groupby("reference", sort=False)))
    return {
        doc["reference"]: _sales_entry(doc, revenue[doc["reference"]], config)
        for doc in documents.to_dict("records")
    }


def _sales_entry(document: Mapping[str, Any], per_item: pd.DataFrame, config: BillingConfig) -> Payload:
    admin = config.administrations[int(document["administration"])]
    code = str(document.get("vat_code") or admin.accounts.vat_code)
    vat_code = admin.vat_codes()[code]
    common = _entry_line_common(document)
    debtor = {
        "VaAs": "2",  # account kind 2 = debtor
        "AcNr": document["debtor_id"],  # debtor number
        **common,
        "Ds": f"Uren {document['period']} {document['project_id'] or ''}".strip(),  # description
        **_debit_credit(_cents(document["total"])),
    }
    revenue = [
        {
            "VaAs": "1",  # account kind 1 = ledger account
            "AcNr": admin.accounts.revenue_account(str(item)),  # the item's revenue account
            **common,
            "Ds": f"Uren {item}",  # description
            **_debit_credit(-int(cents)),
            "VaId": code,  # VAT code of the debtor (reverse charge: the "verlegd" code, no VAT line)
        }
        for item, cents in zip(per_item["item_code"], per_item["amount_cents"], strict=True)
    ]
    vat_cents = _cents(document["vat_amount"])
    if vat_cents == 0:  # reverse charge, 0 %, or too little to carry VAT: no VAT line
        return _entry(document, admin.journals.sales, [debtor, *revenue])
    vat = {
        "VaAs": "1",  # account kind 1 = ledger account
        "AcNr": vat_code.account,  # VAT payable account of this code
        **common,
        "Ds": f"Btw {_percent(vat_code.rate)}%",  # description
        **_debit_credit(-vat_cents),
        "VaId": code,  # VAT code
    }
    return _entry(document, admin.journals.sales, [debtor, *revenue, vat])


def _percent(rate: Decimal) -> str:
    """``0.21`` → ``21``, ``0.095`` → ``9.5``."""
    return format((rate * 100).normalize(), "f")


def internal_entries(
    documents: pd.DataFrame, lines: pd.DataFrame, config: BillingConfig
) -> dict[str, Payload]:
    """Memorial entries: debit each department's cost account (cost centre on axis 1), credit revenue."""
    keyed = lines.assign(cost_centre=lines["cost_centre"].fillna("").astype("str"))
    per_account = keyed.groupby(["reference", "cost_account", "cost_centre"], sort=True)["amount_cents"].sum()
    accounts = dict(tuple(per_account.reset_index().groupby("reference", sort=False)))
    return {
        doc["reference"]: _internal_entry(doc, accounts[doc["reference"]], config)
        for doc in documents.to_dict("records")
    }


def _internal_entry(document: Mapping[str, Any], per_account: pd.DataFrame, config: BillingConfig) -> Payload:
    admin = config.administrations[int(document["administration"])]
    common = _entry_line_common(document)
    text = f"{admin.internal.journal_description} {document['period']}"
    rows = [
        _cost_line(account, centre, int(cents), common, text)
        for account, centre, cents in zip(
            per_account["cost_account"], per_account["cost_centre"], per_account["amount_cents"], strict=True
        )
    ]
    revenue = {
        "VaAs": "1",  # account kind 1 = ledger account
        "AcNr": admin.accounts.internal_revenue,  # internal revenue account
        **common,
        "Ds": text,  # description
        **_debit_credit(-_cents(document["amount"])),
    }
    return _entry(document, admin.journals.memorial, [*rows, {"Fields": revenue}])


def _cost_line(account: str, centre: str, cents: int, common: Mapping[str, Any], text: str) -> Payload:
    fields = {
        "VaAs": "1",  # account kind 1 = ledger account
        "AcNr": account,  # the department's cost account
        **common,
        "Ds": text,  # description
        **_debit_credit(cents),
    }
    if not centre:
        return {"Fields": fields}
    allocation = {"DiC1": centre, **_debit_credit(cents)}  # cost centre on dimension axis 1, same amount
    return {"Fields": fields, "Objects": [{"FiDimEntries": {"Element": [{"Fields": allocation}]}}]}


def _entry_line_common(document: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "EnDa": document["document_date"],  # entry date
        "BpDa": document["document_date"],  # voucher date
        "BpNr": document["reference"],  # voucher number: Koppel's reference, found again via Koppel_Entries
    }


def _entry(document: Mapping[str, Any], journal: str, rows: Iterable[Payload]) -> Payload:
    fields = {
        "Year": int(document["period_year"]),  # fiscal year
        "Peri": int(document["period_number"]),  # period
        "UnId": int(document["administration"]),  # administration
        "JoCo": journal,  # journal code
    }
    elements = [row if "Fields" in row else {"Fields": row} for row in rows]
    return {"FiEntryPar": {"Element": {"Fields": fields, "Objects": [{"FiEntries": {"Element": elements}}]}}}


def _cents(amount: Decimal) -> int:
    """Whole cents of an amount, rounded half-up (``money.round_cents``) like every other amount."""
    return to_cents(round_cents(amount))


def _debit_credit(cents: int) -> dict[str, float]:
    """``AmDe``/``AmCr`` (debit/credit amount): a positive amount is a debit, a negative one a credit."""
    if cents >= 0:
        return {"AmDe": hundredths(cents), "AmCr": 0.0}
    return {"AmDe": 0.0, "AmCr": hundredths(-cents)}


def fill_invoice_number(payload: Mapping[str, Any], invoice_number: str) -> Payload:
    """Copy of a sales-entry payload with ``InId`` (invoice number, ≤ 12) on every line."""
    if len(invoice_number) > 12:
        raise ValueError(f"invoice number {invoice_number!r} is longer than AFAS's 12 characters")
    element = payload["FiEntryPar"]["Element"]
    rows = element["Objects"][0]["FiEntries"]["Element"]
    filled = [{**row, "Fields": {**row["Fields"], "InId": invoice_number}} for row in rows]
    return {"FiEntryPar": {"Element": {**element, "Objects": [{"FiEntries": {"Element": filled}}]}}}


def entry_balance(payload: Payload) -> Decimal:
    """Σ debit − Σ credit over a FiEntries payload's lines (zero when balanced)."""
    rows = payload["FiEntryPar"]["Element"]["Objects"][0]["FiEntries"]["Element"]
    debit = sum((Decimal(repr(row["Fields"]["AmDe"])) for row in rows), Decimal(0))
    credit = sum((Decimal(repr(row["Fields"]["AmCr"])) for row in rows), Decimal(0))
    return debit - credit


def payload_problems(payload: Any, path: str = "") -> list[str]:
    """Fields of a payload that AFAS must never receive: missing (None, NaN) or non-finite numbers.

    Returns one ``<path>: <problem>`` per bad field; an empty list means the payload can be posted.
    """
    if isinstance(payload, Mapping):
        return [
            p for key, value in payload.items() for p in payload_problems(value, f"{path}.{key}".lstrip("."))
        ]
    if isinstance(payload, list):
        return [p for i, value in enumerate(payload) for p in payload_problems(value, f"{path}[{i}]")]
    if payload is None:
        return [f"{path}: missing"]
    if isinstance(payload, float) and not np.isfinite(payload):
        return [f"{path}: {payload!r} is not a finite number"]
    if isinstance(payload, Decimal) and not payload.is_finite():
        return [f"{path}: {payload} is not a finite number"]
    return []
