"""Prefect task of invoice-hours that writes the hours specifications of a run and lists them as an artifact.

The files go to ``<specifications.folder>/<run id>/<reference>.csv|.xlsx``
(``tasks.invoice_hours.specification``
builds them from the plan's frames); the artifact ``invoice-hours-specifications`` lists them per document,
and the documents artifact links each document to its file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.artifacts import publish_table
from tasks.invoice_hours.config import BillingConfig
from tasks.invoice_hours.specification import TOTAL_LABEL, specifications, write_specification

FLOW = "invoice-hours"


@task(name="write-specifications", cache_policy=NO_CACHE)
def write_specifications(billing: Any, config: BillingConfig, run_id: str) -> dict[str, str]:
    """Write a CSV and an XLSX specification per customer document; return reference → XLSX path."""
    if not config.specifications.folder:
        return {}
    folder = Path(config.specifications.folder) / run_id
    documents = billing.documents.set_index("reference", drop=False)
    listed, paths = [], {}
    for reference, frame in specifications(billing.documents, billing.document_lines).items():
        csv_path, xlsx_path = write_specification(folder, documents.loc[reference], frame)
        total = frame[frame["ticket"].eq(TOTAL_LABEL)].iloc[0]
        paths[reference] = str(xlsx_path)
        listed.append(
            {
                "reference": reference,
                "debtor": documents.loc[reference, "debtor_id"],
                "registrations": len(frame) - 1,
                "hours": total["hours"],
                "amount": total["amount"],
                "xlsx": str(xlsx_path),
                "csv": str(csv_path),
            }
        )
    publish_table(f"{FLOW}-specifications", pd.DataFrame(listed), f"Hours specifications in {folder}")
    return paths
