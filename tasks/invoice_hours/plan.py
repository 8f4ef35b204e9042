"""Step 5: planned lines (one per registration, with amounts and a fields hash) and AFAS documents.

``plan_lines`` turns priced registrations into billing lines: the document kind of their administration
(``direct_invoice``, ``project_realisation``, ``sales_booking``; internal hours ``internal_entry``), the
quantity as posted (hours, to 0.01 h; to 0.05 h for realisations, reference decision §11.11), the amount
``quantity × unit price`` half-up to cents, and ``fields_hash`` over the billed fields so that a change in
TOPdesk is detectable (``reconcile``). ``build_documents`` groups reconciled lines into documents with a
deterministic reference, the key that makes every post findable in AFAS after an uncertain failure.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal

import numpy as np
import pandas as pd

from schemas.kinds import INTERNAL_ENTRY, Mode
from tasks.invoice_hours.config import BillingConfig
from tasks.invoice_hours.join import INTERNAL
from tasks.invoice_hours.money import cents_to_decimal, div_half_up, round_cents
from tasks.invoice_hours.order import group_codes, sort_order

REFERENCE_PREFIX = "KPL"
# The billed fields: what a registration's context is (text) and how much was billed (integers).
HASHED_CONTEXT = [
    "kind",
    "target",
    "administration",
    "customer_number",
    "debtor_id",
    "project_id",
    "work_day",
    "item_code",
    "cost_account",
    "cost_centre",
    "unit_price_cents",
]
HASHED_AMOUNTS = ["billed_minutes", "drawn_minutes", "quantity_hundredths", "amount_cents"]
DOCUMENT_KEY = ["kind", "administration", "debtor_key", "project_key", "period", "is_correction"]
# Columns of the planned lines that nothing after planning reads (payloads, ledger claims, specifications,
# approval, artifacts, report): the registration's raw read, the other TOPdesk ids and names, and how a
# project, item, rate or surcharge was found. ``document_lines`` leaves them out, so a million lines in
# document order do not copy them (``priced`` and ``lines`` keep them for whoever asks how).
NOT_POSTED = [
    "time_spent_raw",
    "time_unit",
    "creation_date",
    "modification_date",
    "operator_group_id",
    "operator_group_name",
    "reason_id",
    "reason_name",
    "ticket_status",
    "branch_id",
    "branch_name",
    "category",
    "subcategory",
    "project_ref",
    "read_error",
    "entry_local",
    "project_source",
    "item_source",
    "rate_source",
    "surcharge",
    "surcharge_percent",
    "surcharge_hundredths",
]


def plan_lines(priced: pd.DataFrame, config: BillingConfig) -> pd.DataFrame:
    """One billing line per priced registration: kind, quantity, amount and fields hash."""
    modes = {admin_id: admin.mode.value for admin_id, admin in config.administrations.items()}
    kind = priced["administration"].map(modes).mask(priced["target"].eq(INTERNAL), INTERNAL_ENTRY)
    lines = priced.assign(
        registration_kind=priced["kind"],
        kind=kind.astype("str"),
        work_day=day_texts(priced["work_date"]),
        ticket_id=priced["billed_ticket_id"].fillna(priced["ticket_id"]),
        ticket_number=priced["billed_ticket_number"].fillna(priced["ticket_number"]),
        base_minutes=priced["billed_minutes"] - priced.get("minimum_topup", 0),
    )
    step = np.where(lines["kind"].eq(Mode.PROJECT_REALISATION.value), 5, 1)  # 0.05 h or 0.01 h
    lines["quantity_hundredths"] = hundredths_of_hours(lines["chargeable_minutes"], step)
    lines["drawn_hundredths"] = hundredths_of_hours(lines["drawn_minutes"], step)
    included = lines["included_minutes"] if "included_minutes" in lines else 0 * lines["drawn_minutes"]
    lines["included_minutes"] = included.astype("int64")
    lines["included_hundredths"] = np.minimum(hundredths_of_hours(included, step), lines["drawn_hundredths"])
    lines["amount_cents"] = div_half_up(lines["quantity_hundredths"] * lines["unit_price_cents"], 100)
    lines["quantity"] = cents_to_decimal(lines["quantity_hundredths"])
    lines["drawn_quantity"] = cents_to_decimal(lines["drawn_hundredths"])
    lines["amount"] = cents_to_decimal(lines["amount_cents"])
    lines["fields_hash"] = fields_hashes(lines)
    return lines.assign(line_kind="charge", is_correction=False, expected_version=pd.NA).astype(
        {"expected_version": "Int64"}
    )


def hundredths_of_hours(minutes: pd.Series, step: np.ndarray | int) -> np.ndarray:
    """Minutes → hours in hundredths, rounded half-up to a multiple of ``step`` hundredths per row."""
    values = minutes.to_numpy(dtype=np.int64)
    steps = np.broadcast_to(np.asarray(step, dtype=np.int64), values.shape)
    result = np.zeros_like(values)
    for size in np.unique(steps):
        chosen = steps == size
        result[chosen] = div_half_up(values[chosen] * 100, int(60 * size)) * size
    return result


def day_texts(dates: pd.Series) -> pd.Series:
    """``YYYY-MM-DD`` per row, formatted once per distinct day."""
    codes, days = pd.factorize(dates)
    texts = np.asarray(pd.DatetimeIndex(days).strftime("%Y-%m-%d"), dtype=object)
    return pd.Series(texts.take(codes), index=dates.index, dtype="str")


def descriptions(lines: pd.DataFrame) -> pd.Series:
    """Line text for AFAS ``Ds`` (≤ 255): ``<date> <ticket> <operator>: <notes>``, credits prefixed.

    Built only when a payload needs it (per-registration lines, realisations), not for every line.
    """

    def text(column: str) -> pd.Series:
        values = lines[column] if column in lines else pd.Series(None, index=lines.index, dtype="str")
        return values.fillna("").astype("str")

    ticket = text("billed_ticket_number").mask(text("billed_ticket_number").eq(""), text("ticket_number"))
    body = text("work_day") + " " + ticket + " " + text("operator_name") + ": " + text("notes")
    body = body.str.replace(r"[\x00-\x1f]+", " ", regex=True).str.strip()
    note = text("credit_note")
    body = body.mask(note.ne(""), note + " — " + body)
    moved = text("moved_from")
    body = body.mask(moved.ne(""), body + " (periode " + moved + " gesloten)")
    return body.str.slice(0, 255)


def fields_hashes(lines: pd.DataFrame) -> pd.Series:
    """32-hex BLAKE2b over the billed fields: a change to any of them means the billing changed.

    The text hashed is the context fields then the amounts, joined by U+001F; contexts repeat a lot, so
    each distinct one is formatted once.
    """
    # Grouped on the columns as they are (a missing value and "" may fall in different groups; both are
    # hashed as ""), formatted as text only for the first row of each group.
    group = group_codes([lines[column] for column in HASHED_CONTEXT])
    _, first_rows = np.unique(group, return_index=True)  # group numbers are 0..n-1, first seen first
    firsts = lines[HASHED_CONTEXT].take(first_rows)
    context = [firsts[column].astype("str").fillna("").to_numpy() for column in HASHED_CONTEXT]
    texts = ["\x1f".join(values) for values in zip(*context, strict=True)]
    amounts = [lines[column].to_numpy(dtype=np.int64) for column in HASHED_AMOUNTS]
    # Minutes from an allowance are hashed only when there are any, so lines without stay as hashed before.
    included = lines.get("included_minutes", pd.Series(0, index=lines.index)).to_numpy(dtype=np.int64)
    # Lines with the same context, amounts and included minutes have the same hash: compute each one once.
    distinct = group_codes([group, *amounts, included])
    _, firsts = np.unique(distinct, return_index=True)
    parts = zip(
        group[firsts].tolist(),
        *(values[firsts].tolist() for values in amounts),
        included[firsts].tolist(),
        strict=True,
    )
    digests = np.array(
        [
            hashlib.blake2b(
                f"{texts[g]}\x1f{a}\x1f{b}\x1f{c}\x1f{d}{_included_tail(i)}".encode(), digest_size=16
            ).hexdigest()
            for g, a, b, c, d, i in parts
        ],
        dtype=object,
    )
    return pd.Series(digests.take(distinct), index=lines.index, dtype="str")


def _included_tail(minutes: int) -> str:
    """The hashed text's tail for minutes from an allowance (none: empty, as hashed before allowances)."""
    return "" if minutes == 0 else f"\x1fincluded {minutes}"


def build_documents(lines: pd.DataFrame, config: BillingConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Group reconciled lines into documents; return ``(documents, document_lines)``.

    A document is one AFAS post: per kind, administration, debtor, project (not for internal entries),
    period and correction-or-not, split into chunks of ``max_lines_per_document``. ``document_lines``
    carries every column of ``lines`` but ``NOT_POSTED``, plus the document key, chunk and reference.
    """
    if lines.empty:
        return _empty_documents(), lines.drop(columns=NOT_POSTED, errors="ignore").assign(
            reference=pd.Series(dtype="str"), chunk=pd.Series(dtype="int64")
        )
    documents, keys, order = document_order(lines, config)
    keyed = lines.assign(**{column: keys[column] for column in keys.columns})
    kept = keyed.columns.difference(NOT_POSTED, sort=False)
    return documents, keyed[kept].take(order).reset_index(drop=True)


def document_order(
    lines: pd.DataFrame, config: BillingConfig
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """``build_documents`` without the copy: ``(documents, keys, order)``.

    ``keys`` holds the columns ``build_documents`` adds to ``lines`` (``debtor_key``, ``project_key``,
    ``chunk``, ``reference``), indexed like ``lines``; ``order`` the row positions in document order.
    ``lines`` must not be empty.
    """
    by_registration = sort_order([lines["registration_id"], lines["line_kind"]])
    lines = _with_keys(lines, config, by_registration)
    references = _references(lines)
    lines = lines.assign(reference=references)
    documents = summarise(lines, config)
    position = np.empty(len(lines), dtype=np.int64)  # rank of (registration_id, line_kind), computed once
    position[by_registration] = np.arange(len(lines), dtype=np.int64)
    order = sort_order([lines["reference"], position])
    return documents, lines[["debtor_key", "project_key", "chunk", "reference"]], order


def move_into_document_order(lines: pd.DataFrame, keys: pd.DataFrame, order: np.ndarray) -> pd.DataFrame:
    """``build_documents``' ``document_lines`` from ``document_order``'s result, **emptying** ``lines``.

    Each column is taken into document order and then removed from ``lines``, so a caller that holds the
    lines nowhere else never has two full copies of them (``pipeline.bill``, at a million lines: ~250 MB).
    """
    names = [*lines.columns, *(column for column in keys.columns if column not in lines.columns)]
    moved = {}
    for name in names:
        source = keys[name] if name in keys.columns else lines[name]
        if name in lines.columns:
            del lines[name]
        if name not in NOT_POSTED:
            moved[name] = source.array.take(order)
        del source
    return pd.DataFrame(moved, copy=False)


def _with_keys(lines: pd.DataFrame, config: BillingConfig, order: np.ndarray) -> pd.DataFrame:
    """Document key columns and the chunk (``order``: the lines by registration id and line kind)."""
    internal = lines["kind"].eq(INTERNAL_ENTRY)
    debtor = lines["debtor_id"].astype("str").fillna("").mask(internal, "")
    project = lines["project_id"].astype("str").fillna("").mask(internal, "")
    lines = lines.assign(debtor_key=debtor, project_key=project)
    limit = lines["administration"].map(
        {a: c.max_lines_per_document for a, c in config.administrations.items()}
    )
    group = group_codes([lines[column] for column in DOCUMENT_KEY])
    rank = np.empty(len(lines), dtype=np.int64)
    rank[order] = pd.Series(group[order]).groupby(group[order], sort=False).cumcount().to_numpy()
    return lines.assign(chunk=(rank // limit.to_numpy(dtype=np.int64)).astype("int64"))


def _references(lines: pd.DataFrame) -> pd.Series:
    """``KPL-<admin>-<YYYYPP>-<16 hex>``: hash over the document key and its sorted (id, kind, hash)."""
    keys = [*DOCUMENT_KEY, "chunk"]
    group = pd.Series(group_codes([lines[key] for key in keys]), index=lines.index)
    parts = [lines[column] for column in ("registration_id", "line_kind", "fields_hash")]
    content = _joined_per_group(group.to_numpy(), parts)
    firsts = lines.groupby(group, sort=True)[keys].first()
    key_text = firsts[keys[0]].astype("str").str.cat([firsts[k].astype("str") for k in keys[1:]], sep="|")
    digest = [
        hashlib.sha256(f"{key}\n{text}".encode()).hexdigest()[:16]
        for key, text in zip(key_text, content.loc[firsts.index], strict=True)
    ]
    label = firsts["administration"].astype("str") + "-" + firsts["period"].str.replace("-", "", regex=False)
    per_group = REFERENCE_PREFIX + "-" + label + "-" + pd.Series(digest, index=firsts.index)
    return pd.Series(per_group.loc[group.to_numpy()].to_numpy(), index=lines.index, dtype="str")


def _joined_per_group(group: np.ndarray, parts: list[pd.Series]) -> pd.Series:
    """Per group number (ascending), its tokens sorted and joined by newlines: ``groupby().agg``, one pass.

    A token is the ``parts`` joined by ``:`` (``str.cat``). The rows are ordered by group number (integers),
    then each group's tokens are made and sorted by Python (``str`` order, as ``sort_order`` orders text;
    equal tokens are equal text): a few hundred per document at a time rather than a million at once.
    """
    order = np.argsort(group, kind="stable")
    groups = group[order]
    if any(part.isna().any() for part in parts):  # str.cat's missing token; joining it fails as before
        tokens = parts[0].str.cat(parts[1:], sep=":").to_numpy(dtype=object)[order].tolist()

        def made(start: int, end: int) -> list[str]:
            return tokens[start:end]
    else:
        columns = [part.to_numpy(dtype=object)[order].tolist() for part in parts]

        def made(start: int, end: int) -> list[str]:
            return [":".join(values) for values in zip(*(c[start:end] for c in columns), strict=True)]

    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    ends = np.r_[starts[1:], len(groups)]
    bounds = zip(starts.tolist(), ends.tolist(), strict=True)
    texts = ["\n".join(sorted(made(start, end))) for start, end in bounds]
    return pd.Series(texts, index=groups[starts], dtype=object)


def summarise(lines: pd.DataFrame, config: BillingConfig) -> pd.DataFrame:
    """One row per document: key fields, line count, minutes, net amount, VAT and total."""
    grouped = lines.groupby("reference", sort=True)
    first = grouped[[*DOCUMENT_KEY, "period_year", "period_number", "chunk"]].first()
    documents = first.assign(
        line_count=grouped.size(),
        minutes=grouped["billed_minutes"].sum(),
        amount_cents=grouped["amount_cents"].sum(),
        document_date=grouped["booking_date" if "booking_date" in lines else "work_date"]
        .max()
        .dt.strftime("%Y-%m-%d"),
    ).reset_index()
    documents = documents.rename(columns={"debtor_key": "debtor_id", "project_key": "project_id"})
    documents["amount"] = cents_to_decimal(documents["amount_cents"])
    documents["vat_code"] = _vat_codes(documents, config)
    documents["vat_amount"] = _vat(documents, config)
    documents["total"] = documents["amount"] + documents["vat_amount"]
    documents["needs_invoice_number"] = documents["kind"].eq(Mode.SALES_BOOKING.value)
    return documents


def _vat_codes(documents: pd.DataFrame, config: BillingConfig) -> pd.Series:
    """A sales booking's VAT code: its debtor's (``BillingConfig.debtor_vat_code``); other kinds ``""``."""
    sales = documents["kind"].eq(Mode.SALES_BOOKING.value)
    codes = [
        config.debtor_vat_code(int(admin), str(debtor)) if is_sales else ""
        for admin, debtor, is_sales in zip(
            documents["administration"], documents["debtor_id"], sales, strict=True
        )
    ]
    return pd.Series(codes, index=documents.index, dtype="str")


def _vat(documents: pd.DataFrame, config: BillingConfig) -> pd.Series:
    """VAT on a sales booking's net total at its code's rate, half-up to cents (reverse charge: none).

    Other kinds leave VAT to AFAS (direct invoices) or have none.
    """
    tables = {a: c.vat_codes() for a, c in config.administrations.items()}
    vat = [
        round_cents(amount * tables[int(admin)][code].rate) if code else Decimal("0.00")
        for amount, admin, code in zip(
            documents["amount"], documents["administration"], documents["vat_code"], strict=True
        )
    ]
    return pd.Series(vat, index=documents.index, dtype="object")


def _empty_documents() -> pd.DataFrame:
    columns = [
        "reference",
        *DOCUMENT_KEY,
        "period_year",
        "period_number",
        "chunk",
        "line_count",
        "minutes",
        "amount_cents",
        "document_date",
        "amount",
        "vat_code",
        "vat_amount",
        "total",
        "needs_invoice_number",
    ]
    return pd.DataFrame(columns=columns).rename(
        columns={"debtor_key": "debtor_id", "project_key": "project_id"}
    )
