"""Conservation accounting: every registration read ends in exactly one bucket, with a reason.

``read = invoiced + internal + re-charged + excluded + rejected + billed before + reversed after billing +
kept after billing + left for the regular run + failed + awaiting confirmation``, in registrations and in
minutes *as read* (a rejected row without parseable minutes counts 0). A registration is one id; an exact
duplicate row counts once (validation collapses it) and rows without an id count one each. Registrations the
ledger billed but this run did not read (``reversed (deleted)``, ``possibly deleted``) are not reads: they
are reported beside the equation.

The one home of the equation: which buckets it holds (named in ``schemas/billing.BUCKETS``, the contract),
how a run's frames are assembled into buckets, how they settle after loading (``settle_buckets``), whether
the equation holds (``conservation``) and the per-bucket statistics the store keeps (``bucket_statistics``).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from schemas.billing import BUCKETS
from tasks.invoice_hours.load import ELSEWHERE_STATUSES, FAILED_STATUSES, Outcome
from tasks.invoice_hours.plan import INTERNAL_ENTRY
from tasks.invoice_hours.validate import collapse_exact_duplicates, conform

ALWAYS = ("invoiced", "internal", "excluded", "rejected", "billed before", "failed")
# Registrations the ledger billed that this run did not read: reported beside the equation.
POSSIBLY_DELETED = "possibly deleted"  # billed earlier, not read now, not confirmed gone: not credited
BESIDE = ("reversed (deleted)", POSSIBLY_DELETED)
GUARDED = ("outside window",)  # in the equation when a run has them (tasks/invoice_hours/window.py)
# Every bucket of a registration read, in the order the summary shows them (schemas/billing.py names them).
EQUATION = tuple(name for name in BUCKETS if name not in (*BESIDE, *GUARDED))
BUCKET_COLUMNS = ["registration_id", "bucket", "reason", "minutes", "billed_minutes", "amount", "reference"]
SHOWN_IDS = 20
TO_BILL_COLUMNS = [
    "registration_id",
    "kind",
    "line_kind",
    "minutes",
    "billed_minutes",
    "amount",
    "reference",
    "document_reference",
]


def assemble_buckets(
    *,
    rejects: list[pd.DataFrame],
    excluded: pd.DataFrame,
    billed_before: pd.DataFrame,
    to_bill: pd.DataFrame,
    decided: pd.DataFrame | None = None,
    outside: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per registration: its bucket, reason, minutes read, minutes billed, amount, document.

    ``decided``: the reconciliation's own verdicts (re-charged, reversed, kept, pending, possibly deleted);
    they replace the reject, exclusion or charge row of the same registration.
    """
    # Only the columns a bucket row needs: filtering every column of a million lines would copy them all.
    to_bill = to_bill[[c for c in TO_BILL_COLUMNS if c in to_bill]]
    decided = _with_documents(decided, to_bill)
    taken = set() if decided is None else set(decided["registration_id"])
    charge = to_bill["line_kind"].eq("charge").to_numpy() if not to_bill.empty else None
    # All charges (a first run): the columns as they are, not a copy of a million rows.
    charges = to_bill if charge is None or charge.all() else to_bill[charge]
    if not charges.empty:
        charges = charges[~charges["registration_id"].isin(taken)]
    parts = [
        *[
            _part(_without(frame, taken), "rejected", _without(frame, taken).get("reason"))
            for frame in rejects
        ],
        _part(_without(excluded, taken), "excluded", _without(excluded, taken).get("reason")),
        _part(billed_before, "billed before", billed_before.get("reason")),
    ]
    if outside is not None and not outside.empty:
        parts.append(_part(outside, GUARDED[0], outside["reason"]))
    if not charges.empty:
        internal = charges["kind"].eq(INTERNAL_ENTRY)
        reason = pd.Series("new charge", index=charges.index)
        parts.append(_part(charges[~internal], "invoiced", reason[~internal]))
        parts.append(_part(charges[internal], "internal", reason[internal]))
    if decided is not None and not decided.empty:
        parts.append(decided[BUCKET_COLUMNS].astype({"minutes": "Int64", "billed_minutes": "Int64"}))
    frames = [part for part in parts if not part.empty]
    if not frames:
        return empty_buckets()
    return pd.concat(frames, ignore_index=True)[BUCKET_COLUMNS]


def _without(frame: pd.DataFrame, ids: set[str]) -> pd.DataFrame:
    return frame[~frame["registration_id"].isin(ids)] if ids and not frame.empty else frame


def _with_documents(decided: pd.DataFrame | None, to_bill: pd.DataFrame) -> pd.DataFrame | None:
    """Decided rows get the document of their charge (else of their reversal), its amount and minutes."""
    if decided is None or decided.empty or to_bill.empty or "reference" not in to_bill:
        return decided
    ordered = to_bill.assign(first=to_bill["line_kind"].eq("charge")).sort_values("first", ascending=False)
    one = ordered.drop_duplicates("registration_id").set_index("registration_id")
    ids = decided["registration_id"]
    found = ids.isin(one.index)
    return decided.assign(
        reference=ids.map(one["reference"]).where(found, decided["reference"]),
        amount=ids.map(one["amount"]).where(found, decided["amount"]),
        billed_minutes=ids.map(one["billed_minutes"]).astype("Int64").where(found, decided["billed_minutes"]),
    )


def empty_buckets() -> pd.DataFrame:
    """No registration read: the bucket frame with its column types."""
    dtypes = {"minutes": "Int64", "billed_minutes": "Int64", "amount": "object"}
    return pd.DataFrame({column: pd.Series(dtype=dtypes.get(column, "str")) for column in BUCKET_COLUMNS})


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
        copy=False,  # the concatenation copies them into the buckets once
    )


def read_units(read: pd.DataFrame) -> pd.DataFrame:
    """The registrations read: exact duplicates collapsed, one row per id, id-less rows one each."""
    conform(read.iloc[0:0])  # the contract's columns are there (raises otherwise)
    read = read.reset_index(drop=True)
    ids = (
        read["registration_id"]
        if read["registration_id"].dtype == "str"
        else read["registration_id"].astype("str")
    )
    frame = pd.DataFrame({"registration_id": ids, "minutes": read["minutes"].astype("Int64")}, copy=False)
    candidates = (ids.notna() & ids.duplicated(keep=False)).to_numpy()
    if candidates.any():  # only rows sharing an id can be exact duplicates: conform and compare just those
        shared = conform(read[candidates]).set_axis(np.flatnonzero(candidates))
        frame = frame.drop(index=shared.index.difference(collapse_exact_duplicates(shared).index))
    ids = frame["registration_id"]
    first = ids.isna() | ~ids.duplicated(keep="first")
    return frame.loc[first, ["registration_id", "minutes"]]


def conservation(read: pd.DataFrame, buckets: pd.DataFrame) -> dict[str, Any]:
    """Counts and minutes per bucket, whether the equation holds, ids lost or doubled, a markdown line."""
    units = read_units(read)
    read_minutes = int(units["minutes"].fillna(0).sum())
    # Counts and minutes of every bucket in one pass over the rows (not two comparisons per bucket name).
    names = buckets["bucket"].astype("object")
    counts = names.value_counts(dropna=True)
    sums = buckets["minutes"].astype("Int64").fillna(0).groupby(names, dropna=True).sum()
    per_bucket = {
        name: {"count": int(counts.get(name, 0)), "minutes": int(sums.get(name, 0))}
        for name in (*EQUATION, *(g for g in GUARDED if counts.get(g, 0)))
    }
    # The reconciliation's own buckets are shown when they hold something; the classic six always.
    per_bucket = {
        name: value
        for name, value in per_bucket.items()
        if name in ALWAYS or value["count"] or value["minutes"]
    }
    unknown_buckets = sorted(set(names.unique()) - set(EQUATION) - set(BESIDE) - set(GUARDED))
    beside = buckets[buckets["bucket"].isin(BESIDE)]
    identity = _identity_check(
        units["registration_id"], buckets.loc[~buckets["bucket"].isin(BESIDE), "registration_id"]
    )
    counted = sum(b["count"] for b in per_bucket.values())
    minutes = sum(b["minutes"] for b in per_bucket.values())
    holds = counted == len(units) and minutes == read_minutes and not unknown_buckets and identity["ok"]
    result = {
        "read": {"count": len(units), "minutes": read_minutes, "rows": len(read)},
        "buckets": per_bucket,
        "beside": {name: int(beside["bucket"].eq(name).sum()) for name in BESIDE},
        "holds": holds,
        "unknown_buckets": unknown_buckets,
        **{key: value for key, value in identity.items() if key != "ok"},
    }
    result["line"] = equation_line(result)
    return result


def _identity_check(read_ids: pd.Series, bucket_ids: pd.Series) -> dict[str, Any]:
    """Every read id exactly once in the buckets; as many id-less rows on both sides.

    ``read_ids`` are distinct in a run (``read_units``): then one hash table over them answers all three
    questions (each bucket id's position among the read ids, or none; how often each read id was bucketed).
    """
    id_less = {"read": int(read_ids.isna().sum()), "bucketed": int(bucket_ids.isna().sum())}
    read_ids, bucket_ids = read_ids.dropna(), bucket_ids.dropna()
    index = pd.Index(read_ids)
    if index.is_unique:  # builds the hash table that get_indexer then uses
        where = index.get_indexer(bucket_ids)
        known = where >= 0
        times = np.bincount(where[known], minlength=len(read_ids))
        strangers = bucket_ids[~known]
        doubled = sorted([*read_ids[times > 1], *strangers[strangers.duplicated()].unique()])
        missing = sorted(read_ids[times == 0])
        unexpected = sorted(strangers.unique())
    else:
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
    shown = ("invoiced", "internal", "excluded", "rejected", "billed before")
    equation = [*EQUATION, *GUARDED]
    names = [name for name in equation if name in shown or result["buckets"].get(name, {}).get("count")]
    buckets = result["buckets"]
    minutes = " + ".join(f"{buckets[n]['minutes']:,}" for n in names)
    counts = " + ".join(f"{buckets[n]['count']:,}" for n in names)
    verdict = "holds" if result["holds"] else "**DOES NOT HOLD**"
    return (
        f"read = {' + '.join(names)}: "
        f"{result['read']['minutes']:,} = {minutes} minutes; "
        f"{result['read']['count']:,} = {counts} registrations ({verdict})"
    )


def settle_buckets(buckets: pd.DataFrame, outcomes: Sequence[Outcome]) -> pd.DataFrame:
    """Move registrations of documents that did not post into ``failed`` or ``billed before``.

    Failed or uncertain documents → ``failed`` (with AFAS's message); documents another run claimed or
    holds → ``billed before`` (the other run bills them); re-planned-away registrations likewise.
    """
    buckets = buckets.copy()
    moves = pd.DataFrame([_move(o) for o in outcomes], columns=["reference", "bucket", "reason"])
    moves = moves.dropna(subset=["bucket"]).drop_duplicates("reference").set_index("reference")
    hit = buckets["reference"].isin(moves.index)
    buckets.loc[hit, "bucket"] = buckets.loc[hit, "reference"].map(moves["bucket"])
    buckets.loc[hit, "reason"] = buckets.loc[hit, "reference"].map(moves["reason"])
    held = {rid: o.message for o in outcomes if o.status == "held" for rid in o.registration_ids}
    if held:
        hit = buckets["registration_id"].isin(list(held))
        buckets.loc[hit, "bucket"] = "failed"
        buckets.loc[hit, "reason"] = "held: " + buckets.loc[hit, "registration_id"].map(held)
    # a document re-planned in the load (without held or conflicting registrations) posts under a reference
    # of its own, which no bucket row carries: its outcome moves its registrations by id
    planned = set(buckets["reference"].dropna())
    replanned = {
        rid: (bucket, reason)
        for o in outcomes
        if o.reference not in planned
        for _, bucket, reason in [_move(o)]
        if bucket is not None
        for rid in o.registration_ids
    }
    if replanned:
        hit = buckets["registration_id"].isin(list(replanned))
        buckets.loc[hit, "bucket"] = buckets.loc[hit, "registration_id"].map(lambda r: replanned[r][0])
        buckets.loc[hit, "reason"] = buckets.loc[hit, "registration_id"].map(lambda r: replanned[r][1])
    taken = {rid for o in outcomes for rid in o.conflicts}
    if taken:
        moved = buckets["registration_id"].isin(taken) & buckets["bucket"].isin(["invoiced", "internal"])
        buckets.loc[moved, "bucket"] = "billed before"
        buckets.loc[moved, "reason"] = "claimed by a concurrent run"
    return buckets


def _move(outcome: Outcome) -> tuple[str, str | None, str | None]:
    """Where the registrations of a document go when it did not post in this run (None: stay)."""
    if outcome.status in FAILED_STATUSES:
        return outcome.reference, "failed", f"{outcome.status}: {outcome.message}"
    if outcome.status == "held":
        return outcome.reference, None, None
    if outcome.status in ELSEWHERE_STATUSES or outcome.status.startswith("existing-"):
        return outcome.reference, "billed before", f"document {outcome.reference} already {outcome.status}"
    return outcome.reference, None, None


def bucket_statistics(buckets: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Registrations, minutes read and amount per bucket, as the store keeps them per run."""
    statistics = {}
    for name, group in buckets.groupby("bucket"):
        amounts = [a for a in group["amount"] if isinstance(a, Decimal)]
        statistics[str(name)] = {
            "count": len(group),
            "minutes": int(group["minutes"].astype("Int64").fillna(0).sum()),
            "amount": sum(amounts, Decimal("0.00")),
        }
    return statistics
