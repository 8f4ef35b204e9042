"""Initial synchronisation for an OH customer that already has data (``initial_sync`` in config/hr.toml).

An existing occupational-health customer holds employees, employments and absences entered before Koppel
ran. Upserting blindly would overwrite them without anyone having looked. So, instead of the store's
"what was sent" snapshot, the run starts from what the OH system really holds (``holdings``: its *active*
records, values in the same text form as Koppel's desired records), matched by external id — the AFAS
employee number, ``"{employee}-{DvId}"`` for employments — and the plan's changes are then exactly the
differences:

- ``only in AFAS``: the OH system lacks the record (confirmed: created);
- ``differs``: both have it, with other values in the listed fields (confirmed: updated);
- ``only in OH``: the OH system has a record AFAS does not give (confirmed: deactivated).

``initial_sync = "report"`` publishes these differences and changes nothing (nothing sent, nothing stored);
``"confirmed"`` sends them and records what the OH system then holds, after which the regular sync
(``"off"``) goes on from there.
"""

from __future__ import annotations

import pandas as pd

from connectors.occupational_health.endpoints import RESOURCES
from tasks.hr_sync.mapping import day, decimal_text, flag, text
from tasks.hr_sync.plan import records_frame

CONVERT = {"text": text, "date": day, "decimal": decimal_text, "bool": flag}
DIFFERENCE = {"added": "only in AFAS", "changed": "differs", "removed": "only in OH"}
WHEN_CONFIRMED = {"added": "create", "changed": "update", "removed": "deactivate"}
DIFFERENCE_COLUMNS = ["entity", "external_id", "difference", "fields", "when_confirmed"]


def holdings(entity: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The OH system's active records of ``entity`` as Koppel's records (``external_id`` + body fields)."""
    if frame.empty:
        return records_frame(entity, [])
    active = frame[frame["active"].astype(bool)] if "active" in frame.columns else frame
    kinds = RESOURCES[entity].fields
    rows = []
    for row in active.astype(object).where(active.notna(), None).to_dict(orient="records"):
        body = {name: CONVERT[kind](row.get(name)) for name, kind in kinds.items()}
        rows.append({"external_id": text(row["external_id"]), **body})
    return records_frame(entity, rows)


def differences(changes: pd.DataFrame) -> pd.DataFrame:
    """The planned changes against the OH system's holdings, phrased as differences (no values shown)."""
    if changes.empty:
        return pd.DataFrame(columns=DIFFERENCE_COLUMNS, dtype=object)
    return pd.DataFrame(
        {
            "entity": changes["entity"],
            "external_id": changes["external_id"],
            "difference": changes["change"].map(DIFFERENCE),
            "fields": changes["fields"],
            "when_confirmed": changes["change"].map(WHEN_CONFIRMED),
        },
        dtype=object,
    ).reset_index(drop=True)
