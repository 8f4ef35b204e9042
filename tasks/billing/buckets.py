"""Conservation accounting: every registration read ends in exactly one bucket, with a reason.

``read = invoiced + internal + excluded + rejected + billed before (+ failed)``, in registrations and in
minutes *as read* (a rejected row without parseable minutes counts 0). A registration is one id; an exact
duplicate row counts once (validation collapses it) and rows without an id count one each. Credits for
registrations that vanished from TOPdesk are not reads, so they are reported beside the equation.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from tasks.billing.plan import INTERNAL_ENTRY
from tasks.billing.validate import collapse_exact_duplicates, conform

EQUATION = ("invoiced", "internal", "excluded", "rejected", "billed before", "failed")
GUARDED = ("outside window",)  # in the equation when a run has them (tasks/billing/window.py)
BUCKET_COLUMNS = ["registration_id", "bucket", "reason", "minutes", "billed_minutes", "amount", "reference"]
SHOWN_IDS = 20


def assemble_buckets(
    *,
    rejects: list[pd.DataFrame],
    excluded: pd.DataFrame,
    billed_before: pd.DataFrame,
    to_bill: pd.DataFrame,
    moved: pd.DataFrame | None = None,
    outside: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per registration: its bucket, reason, minutes read, minutes billed, amount, document.

    ``moved``: registrations whose customer changed since billing; this run only credits the old
    customer, so they count where their new charge will go (invoiced or internal), with that reason.
    """
    charges = to_bill[to_bill["line_kind"].eq("charge")] if not to_bill.empty else to_bill
    parts = [
        *[_part(frame, "rejected", frame.get("reason")) for frame in rejects],
        _part(excluded, "excluded", excluded.get("reason")),
        *_billed_before_parts(billed_before),
    ]
    if outside is not None and not outside.empty:
        parts.append(_part(outside, GUARDED[0], outside["reason"]))
    if moved is not None and not moved.empty:
        internal = moved["kind"].eq(INTERNAL_ENTRY)
        parts.append(_part(moved[~internal], "invoiced", moved.loc[~internal, "reason"]))
        parts.append(_part(moved[internal], "internal", moved.loc[internal, "reason"]))
    if not charges.empty:
        internal = charges["kind"].eq(INTERNAL_ENTRY)
        reason = pd.Series("new charge", index=charges.index).mask(
            charges["is_correction"].astype(bool), "correction"
        )
        parts.append(_part(charges[~internal], "invoiced", reason[~internal]))
        parts.append(_part(charges[internal], "internal", reason[internal]))
    frames = [part for part in parts if not part.empty]
    if not frames:
        return empty_buckets()
    return pd.concat(frames, ignore_index=True)[BUCKET_COLUMNS]


def empty_buckets() -> pd.DataFrame:
    """No registration read: the bucket frame with its column types."""
    dtypes = {"minutes": "Int64", "billed_minutes": "Int64", "amount": "object"}
    return pd.DataFrame({column: pd.Series(dtype=dtypes.get(column, "str")) for column in BUCKET_COLUMNS})


def _billed_before_parts(billed_before: pd.DataFrame) -> list[pd.DataFrame]:
    """Billed before, except on a document that failed: those wait for ``resend`` and stay ``failed``."""
    status = billed_before.get("document_status", pd.Series("", index=billed_before.index))
    failed = status.eq("failed")
    waiting = billed_before[failed]
    reason = "document " + waiting["document_reference"].astype("str") + " failed earlier; resend it"
    return [
        _part(billed_before[~failed], "billed before", billed_before.loc[~failed].get("reason")),
        _part(waiting, "failed", reason),
    ]


def _part(frame: pd.DataFrame, bucket: str, reason: pd.Series | None) -> pd.DataFrame:
    if frame.empty:
        return empty_buckets()
    empty = pd.Series(None, index=frame.index, dtype="object")
    return pd.DataFrame(
        {
            "registration_id": frame["registration_id"],
            "bucket": bucket,
            "reason": reason if reason is not None else empty,
            "minutes": frame["minutes"].astype("Int64"),
            "billed_minutes": frame["billed_minutes"].astype("Int64") if "billed_minutes" in frame else pd.NA,
            "amount": frame.get("amount", empty),
            "reference": frame["reference"]
            if "reference" in frame
            else frame.get("document_reference", empty),
        },
        index=frame.index,
    )


def read_units(read: pd.DataFrame) -> pd.DataFrame:
    """The registrations read: exact duplicates collapsed, one row per id, id-less rows one each."""
    frame = collapse_exact_duplicates(conform(read))
    ids = frame["registration_id"]
    first = ids.isna() | ~ids.duplicated(keep="first")
    return frame.loc[first, ["registration_id", "minutes"]]


def conservation(read: pd.DataFrame, buckets: pd.DataFrame) -> dict[str, Any]:
    """Counts and minutes per bucket, whether the equation holds, ids lost or doubled, a markdown line."""
    units = read_units(read)
    read_minutes = int(units["minutes"].fillna(0).sum())
    per_bucket = {
        name: {
            "count": int(buckets["bucket"].eq(name).sum()),
            "minutes": int(
                buckets.loc[buckets["bucket"].eq(name), "minutes"].astype("Int64").fillna(0).sum()
            ),
        }
        for name in (*EQUATION, *(g for g in GUARDED if buckets["bucket"].eq(g).any()))
    }
    unknown_buckets = sorted(set(buckets["bucket"]) - set(EQUATION) - set(GUARDED))
    identity = _identity_check(units["registration_id"], buckets["registration_id"])
    counted = sum(b["count"] for b in per_bucket.values())
    minutes = sum(b["minutes"] for b in per_bucket.values())
    holds = counted == len(units) and minutes == read_minutes and not unknown_buckets and identity["ok"]
    result = {
        "read": {"count": len(units), "minutes": read_minutes, "rows": len(read)},
        "buckets": per_bucket,
        "holds": holds,
        "unknown_buckets": unknown_buckets,
        **{key: value for key, value in identity.items() if key != "ok"},
    }
    result["line"] = equation_line(result)
    return result


def _identity_check(read_ids: pd.Series, bucket_ids: pd.Series) -> dict[str, Any]:
    """Every read id exactly once in the buckets; as many id-less rows on both sides."""
    id_less = {"read": int(read_ids.isna().sum()), "bucketed": int(bucket_ids.isna().sum())}
    read_ids, bucket_ids = read_ids.dropna(), bucket_ids.dropna()
    doubled = sorted(bucket_ids[bucket_ids.duplicated()].unique())
    missing = sorted(read_ids[~read_ids.isin(bucket_ids)])
    unexpected = sorted(bucket_ids[~bucket_ids.isin(read_ids)].unique())
    return {
        "ok": not (doubled or missing or unexpected) and id_less["read"] == id_less["bucketed"],
        "missing_ids": missing[:SHOWN_IDS],
        "duplicate_ids": doubled[:SHOWN_IDS],
        "unexpected_ids": unexpected[:SHOWN_IDS],
        "id_less": id_less,
    }


def equation_line(result: dict[str, Any]) -> str:
    """``read = invoiced + internal + excluded + rejected + billed before`` with minutes and counts."""
    shown = [*EQUATION, *(g for g in GUARDED if g in result["buckets"])]
    names = [name for name in shown if name != "failed" or result["buckets"]["failed"]["count"]]
    buckets = result["buckets"]
    minutes = " + ".join(f"{buckets[n]['minutes']:,}" for n in names)
    counts = " + ".join(f"{buckets[n]['count']:,}" for n in names)
    verdict = "holds" if result["holds"] else "**DOES NOT HOLD**"
    return (
        f"read = {' + '.join(names)}: "
        f"{result['read']['minutes']:,} = {minutes} minutes; "
        f"{result['read']['count']:,} = {counts} registrations ({verdict})"
    )
