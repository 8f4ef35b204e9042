"""import-debtors: the nightly snapshot of AFAS debtors and contact persons in the store.

extract → snapshot (``store/snapshots.py`` records added, changed and removed rows) → report. The invoice
flow and the statistics read the changes with ``store.snapshots.changes_since(engine, "afas_debtors", when)``.
"""

from __future__ import annotations

from typing import Any

from prefect import runtime
from pydantic import BaseModel, Field

from tasks.company_sync.tasks import extract_afas_relations, import_afas_relations, report_import
from tasks.preflight import preflight
from tasks.state import close_run, open_run, recorded_flow

FLOW = "import-debtors"


class ImportDebtorsParameters(BaseModel):
    """The options of one run (the flow takes them as flat parameters)."""

    with_contacts: bool = Field(True, description="Also snapshot the contact persons (Profit_Contacts).")


@recorded_flow(FLOW)
def import_debtors(with_contacts: bool = True) -> dict[str, Any]:
    """Store today's AFAS debtors (and contacts) and show what changed since the last import.

    Args:
        with_contacts: Also snapshot the contact persons (Profit_Contacts).

    """
    p = ImportDebtorsParameters(with_contacts=with_contacts)
    preflight(["state", "afas"])
    run_id = open_run(FLOW, p.model_dump(mode="json"), runtime.flow_run.id)
    afas, afas_stats = extract_afas_relations(with_contacts=p.with_contacts)
    changes, left_out = import_afas_relations(afas)
    context = {
        "flow": FLOW,
        "debtors": len(afas.debtors),
        "contacts": len(afas.contacts),
        "requests": afas_stats,
    }
    result = report_import(context, changes, left_out)
    close_run(run_id, "completed", result["statistics"])
    return {**result, "run_id": run_id}
