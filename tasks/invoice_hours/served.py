"""Conservation against what each source *served*, counted before any de-duplication.

Per source (registration kind) and in total::

    served = exact duplicates collapsed + conflicting duplicates (in their registration's reject)
             + invoiced + internal + excluded + rejected + billed before (+ failed, outside window)

Each served row is one of: the first row of its registration (which sits in exactly one bucket, with a
reason), a later identical copy of it (collapsed, counted here), or a later copy with other content (the
registration is rejected once, naming the duplicates). A row without a usable id is its own registration
and is rejected.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from tasks.invoice_hours.validate import collapse_exact_duplicates, conform

EXACT = "exact duplicates"
CONFLICTING = "conflicting duplicates"


def served_rows(read: pd.DataFrame, buckets: pd.DataFrame) -> pd.DataFrame:
    """One row per served row: ``kind``, ``registration_id``, ``fate`` (a bucket or a duplicate kind)."""
    frame = conform(read)
    collapsed = collapse_exact_duplicates(frame)
    ids = collapsed["registration_id"]
    conflicting = collapsed.index[(ids.notna() & ids.duplicated(keep="first")).to_numpy()]
    fate = pd.Series(EXACT, index=frame.index, dtype="object")
    fate[conflicting] = CONFLICTING
    firsts = collapsed.drop(index=conflicting)
    with_id = firsts[firsts["registration_id"].notna()]
    keyed = buckets.dropna(subset=["registration_id"]).drop_duplicates("registration_id", keep=False)
    fate[with_id.index] = with_id["registration_id"].map(keyed.set_index("registration_id")["bucket"])
    id_less = firsts.index[firsts["registration_id"].isna()]
    bucketed = buckets.loc[buckets["registration_id"].isna(), "bucket"].tolist()
    fate[id_less] = (bucketed + [None] * len(id_less))[: len(id_less)]
    return pd.DataFrame({"kind": frame["kind"], "registration_id": frame["registration_id"], "fate": fate})


def served_conservation(read: pd.DataFrame, buckets: pd.DataFrame) -> dict[str, Any]:
    """Per source and in total: rows served, their fates, rows in no bucket, and whether it holds."""
    rows = served_rows(read, buckets)
    per_source = {
        str(kind): _account(group) for kind, group in rows.groupby(rows["kind"].fillna("unknown"), sort=True)
    }
    total = _account(rows)
    return {"sources": per_source, "total": total, "holds": total["holds"], "line": served_line(total)}


def _account(rows: pd.DataFrame) -> dict[str, Any]:
    fates = rows["fate"].value_counts(dropna=True).to_dict()
    lost = int(rows["fate"].isna().sum())
    served = len(rows)
    return {
        "served": served,
        "fates": {str(k): int(v) for k, v in sorted(fates.items())},
        "in no bucket": lost,
        "holds": lost == 0 and sum(fates.values()) == served,
    }


def served_line(total: dict[str, Any]) -> str:
    """``served 1,234 = invoiced 1,000 + … (holds)``."""
    parts = " + ".join(f"{name} {count:,}" for name, count in total["fates"].items())
    verdict = "holds" if total["holds"] else f"**DOES NOT HOLD**: {total['in no bucket']:,} rows in no bucket"
    return f"served {total['served']:,} = {parts or '0'} ({verdict})"


def served_table(result: dict[str, Any]) -> pd.DataFrame:
    """The per-source accounting as a table (one row per source, then the total)."""
    names = sorted({f for acc in [*result["sources"].values(), result["total"]] for f in acc["fates"]})
    rows = []
    for source, acc in [*result["sources"].items(), ("total", result["total"])]:
        rows.append(
            {"source": source, "served": acc["served"], **{n: acc["fates"].get(n, 0) for n in names}}
            | {"in no bucket": acc["in no bucket"], "holds": "yes" if acc["holds"] else "NO"}
        )
    return pd.DataFrame(rows)
