"""Post-write verification: what AFAS holds for Koppel's posted documents, line by line, against the ledger.

Plain functions over what the ledger stored (each posted document's payload) and what AFAS returned for its
reference. A difference (a document deleted or doubled in AFAS, a line edited, added or removed) is reported
per document with what was expected and what was found; nothing is ever "fixed" here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import pandas as pd

from tasks.invoice_hours.money import round_cents

DIFFERENCE_COLUMNS = ["reference", "kind", "period", "problem", "expected", "found"]


def number(value: Any) -> Decimal:
    """An AFAS number (float, text or Decimal; empty = 0) as a Decimal with two places."""
    if value is None or value == "" or (isinstance(value, float) and pd.isna(value)):
        return Decimal("0.00")
    return round_cents(Decimal(str(value)))


def _elements(node: Any) -> list[Mapping[str, Any]]:
    return node if isinstance(node, list) else [node]


def _objects(element: Mapping[str, Any]) -> dict[str, Any]:
    objects = element.get("Objects", [])
    return {k: v for item in _elements(objects) for k, v in item.items()}


def expected_lines(kind: str, payload: Mapping[str, Any]) -> Counter:
    """The multiset of lines the ledger's payload says AFAS should hold for the document."""
    if kind == "direct_invoice":
        element = payload["FbDirectInvoice"]["Element"]
        rows = _elements(_objects(element)["FbDirectInvoiceLines"]["Element"])
        return Counter(
            (str(r["Fields"]["ItCd"]), number(r["Fields"]["QuUn"]), number(r["Fields"]["Upri"])) for r in rows
        )
    if kind == "project_realisation":
        rows = _elements(payload["PtRealization"]["Element"])
        return Counter(
            (str(r["Fields"]["XpRe"]), str(r["Fields"]["ItCd"]), number(r["Fields"]["Qu"])) for r in rows
        )
    element = payload["FiEntryPar"]["Element"]
    rows = _elements(_objects(element)["FiEntries"]["Element"])
    return Counter(
        (str(r["Fields"]["AcNr"]), number(r["Fields"].get("AmDe")), number(r["Fields"].get("AmCr")))
        for r in rows
    )


def found_lines(kind: str, rows: Sequence[Mapping[str, Any]]) -> Counter:
    """The same multiset from the GetConnector rows AFAS returned for the document's reference."""
    if kind == "direct_invoice":
        return Counter((str(r["ItCd"]), number(r["QuUn"]), number(r["Upri"])) for r in rows)
    if kind == "project_realisation":
        return Counter((str(r["XpRe"]), str(r["ItemCodeId"]), number(r["QuantityUnit"])) for r in rows)
    return Counter((str(r["AcNr"]), number(r.get("AmDe")), number(r.get("AmCr"))) for r in rows)


def compare(
    document: Mapping[str, Any], payload: Mapping[str, Any], headers: int, rows: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Differences of one posted document: missing or doubled in AFAS, lines that differ."""
    base = {"reference": document["reference"], "kind": document["kind"], "period": document["period"]}
    if headers == 0:
        return [
            {**base, "problem": "not found in AFAS (deleted?)", "expected": "1 document", "found": "none"}
        ]
    problems = []
    if headers > 1:
        problems.append({**base, "problem": "more than one document", "expected": "1", "found": str(headers)})
    expected = expected_lines(str(document["kind"]), payload)
    found = found_lines(str(document["kind"]), rows)
    missing, extra = expected - found, found - expected
    if missing or extra:
        problems.append(
            {
                **base,
                "problem": "lines differ (edited in AFAS?)",
                "expected": "; ".join(_line_text(line) for line in sorted(missing.elements())),
                "found": "; ".join(_line_text(line) for line in sorted(extra.elements())),
            }
        )
    return problems


def _line_text(line: tuple[Any, ...]) -> str:
    return " ".join(str(part) for part in line)


def differences_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The differences as one table (``DIFFERENCE_COLUMNS``)."""
    return pd.DataFrame(rows, columns=DIFFERENCE_COLUMNS)
