"""Hours specification per customer document: every registration on it, with totals equal to the document.

``specifications(documents, document_lines)`` is a plain function over the plan's frames: one frame per
customer document (direct invoice, project realisation, sales booking; internal entries have no customer)
with ticket number and title, date, operator, registered minutes, rounding, billed, included (allowance)
and prepaid (bundle) minutes, item, rate, hours and amount, and a closing total row.
``write_specification`` writes one as CSV and XLSX.
The amounts are the plan's line amounts in cents, so the total is the document's amount to the cent.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pandas as pd

from schemas.kinds import INTERNAL_ENTRY

COLUMNS = [
    "ticket",
    "title",
    "date",
    "operator",
    "registration",
    "line",
    "minutes",
    "rounding",
    "billed_minutes",
    "included_minutes",
    "prepaid_minutes",
    "item",
    "rate",
    "hours",
    "amount",
]
TOTAL_LABEL = "Total"


def _text(lines: pd.DataFrame, column: str) -> pd.Series:
    if column not in lines:
        return pd.Series("", index=lines.index, dtype="str")
    return lines[column].astype("object").where(lines[column].notna(), "").astype("str")


def _whole(lines: pd.DataFrame, column: str) -> pd.Series:
    if column not in lines:
        return pd.Series(0, index=lines.index, dtype="int64")
    return lines[column].astype("Int64").fillna(0).astype("int64")


def specification_rows(lines: pd.DataFrame) -> pd.DataFrame:
    """The registration lines of one document as a specification, ordered by ticket, date and registration.

    ``rounding`` is what rounding and the per-ticket minimum added to the registered minutes (charges only;
    a credit reverses the billed minutes of an earlier line, which carry their own rounding).
    """
    ticket = _text(lines, "billed_ticket_number")
    ticket = ticket.mask(ticket.eq(""), _text(lines, "ticket_number"))
    charge = _text(lines, "line_kind").eq("charge")
    registered = _whole(lines, "minutes").where(charge, 0)
    billed = _whole(lines, "billed_minutes")
    cents = _whole(lines, "amount_cents")
    frame = pd.DataFrame(
        {
            "ticket": ticket,
            "title": _text(lines, "ticket_description"),
            "date": _text(lines, "work_day"),
            "operator": _text(lines, "operator_name"),
            "registration": _text(lines, "registration_id"),
            "line": _text(lines, "line_kind"),
            "minutes": registered,
            "rounding": (billed - registered).where(charge, 0),
            "billed_minutes": billed,
            "included_minutes": _whole(lines, "included_minutes"),  # contract hours (allowance), at zero
            "prepaid_minutes": _whole(lines, "drawn_minutes") - _whole(lines, "included_minutes"),
            "item": _text(lines, "item_code"),
            "rate": [
                Decimal(str(v)) if str(v) not in ("", "nan", "<NA>") else ""
                for v in _text(lines, "unit_price")
            ],
            "hours": [Decimal(int(h)).scaleb(-2) for h in _whole(lines, "quantity_hundredths")],
            "amount": [Decimal(int(c)).scaleb(-2) for c in cents],
            "_cents": cents,
        }
    )
    return frame.sort_values(["ticket", "date", "registration", "line"], kind="stable").reset_index(drop=True)


def with_total(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` plus a total row (minutes, hours and amount summed exactly)."""
    total: dict[str, object] = {column: "" for column in COLUMNS}
    total["ticket"] = TOTAL_LABEL
    for column in ("minutes", "rounding", "billed_minutes", "included_minutes", "prepaid_minutes"):
        total[column] = int(rows[column].sum())
    total["hours"] = sum(rows["hours"], Decimal("0.00"))
    total["amount"] = Decimal(int(rows["_cents"].sum())).scaleb(-2)
    return pd.concat([rows[COLUMNS], pd.DataFrame([total])], ignore_index=True)


def specifications(documents: pd.DataFrame, document_lines: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Reference → specification (with total row) for every customer document of the plan."""
    if documents.empty:
        return {}
    customer = documents.loc[documents["kind"].ne(INTERNAL_ENTRY), "reference"]
    grouped = document_lines[document_lines["reference"].isin(customer)].groupby("reference", sort=True)
    return {str(reference): with_total(specification_rows(lines)) for reference, lines in grouped}


def heading(document: pd.Series) -> list[tuple[str, str]]:
    """The document fields printed above the specification in the XLSX file."""
    return [
        ("Document", str(document["reference"])),
        ("Kind", str(document["kind"])),
        ("Administration", str(document["administration"])),
        ("Debtor", str(document["debtor_id"])),
        ("Project", str(document["project_id"])),
        ("Period", str(document["period"])),
        ("Amount excl. VAT", f"{document['amount']:.2f}"),
    ]


def write_specification(folder: Path, document: pd.Series, frame: pd.DataFrame) -> tuple[Path, Path]:
    """Write ``<reference>.csv`` and ``<reference>.xlsx`` under ``folder``; return both paths."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    folder.mkdir(parents=True, exist_ok=True)
    reference = str(document["reference"])
    csv_path, xlsx_path = folder / f"{reference}.csv", folder / f"{reference}.xlsx"
    frame.to_csv(csv_path, index=False)
    book = Workbook()
    sheet = book.active
    sheet.title = "Specificatie"
    for label, value in heading(document):
        sheet.append([label, value])
    sheet.append([])
    sheet.append(COLUMNS)
    for cell in sheet[sheet.max_row]:
        cell.font = Font(bold=True)
    for row in frame.itertuples(index=False, name=None):
        sheet.append([None if value == "" else value for value in row])
    for cell in sheet[sheet.max_row]:
        cell.font = Font(bold=True)
    for column in ("rate", "hours", "amount"):
        letter = chr(ord("A") + COLUMNS.index(column))
        for cell in sheet[letter][len(heading(document)) + 2 :]:
            cell.number_format = "0.00"
    book.save(xlsx_path)
    return csv_path, xlsx_path
