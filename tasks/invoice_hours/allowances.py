"""Contract hours and prepaid bundles: which minutes of a registration are billed at zero.

Two kinds of *pools* give minutes at zero: a customer's **monthly allowance** (``[[allowances]]``; one pool
per allowance and calendar month, usable in that month and ``carry_over_months`` after it) and its
**prepaid bundles** (``koppel bundles``, ``[[bundles]]``). The store keeps both as ``bundles`` rows and their
use as ``bundle_draws`` (``store/bundles.py``), so a second run, a backfill or an overlapping window sees
what is already used and never grants the same minutes twice.

Order of application, deterministic:

1. Registrations in order of entry date, then registration id (the earliest gets the free minutes first).
2. A registration draws the minutes it is billed: after unit rounding and the per-ticket minimum top-up.
3. Pools of its customer valid on its (Amsterdam) work day: allowances first (use-or-lose minutes before
   paid ones), the oldest month first (carried-over minutes before they expire); then prepaid bundles,
   oldest first. An allowance limited to ``items`` only serves registrations billed with one of them.
4. What no pool covers is charged at the normal rate (the *overage*).

A registration that drew earlier keeps that draw (capped at what it is billed now; the rest is given back)
as long as the pool is still its customer's, valid on its day and for its item; it never draws more, so a
rerun computes the same billing. One whose earlier draw no longer fits (moved to another customer, another
month or item) draws anew. One billed earlier without a draw never draws: minutes bought later are not
applied to hours already invoiced. The load step records the draws of posted charges and gives back the
draws of reversed ones (``tasks/invoice_hours/tasks.settle_draws``).
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

from tasks.invoice_hours.config import BillingConfig
from tasks.invoice_hours.join import CUSTOMER, day_numbers

ALLOWANCE = "allowance"
BUNDLE = "bundle"
FAR = 10**9  # a day number beyond any date: an open-ended validity
DRAW_COLUMNS = ["registration_id", "bundle_id", "customer_number", "work_date", "source", "minutes"]


def allowance_months(config: BillingConfig, first: date, last: date) -> list[dict]:
    """The allowance months a run over ``first``..``last`` may use (``store.bundles.sync_allowance_months``).

    Every month of the window, plus ``carry_over_months`` before it (their unused minutes are still valid),
    within the allowance's own ``valid_from``..``valid_to`` months.
    """
    months = []
    for allowance in config.allowances:
        start = _month(first, -allowance.carry_over_months)
        start = max(start, _month(allowance.valid_from, 0))
        stop = _month(last, 0)
        if allowance.valid_to is not None:
            stop = min(stop, _month(allowance.valid_to, 0))
        month = start
        while month <= stop:
            months.append(
                {
                    "name": allowance.name,
                    "customer_number": allowance.customer_number,
                    "month": month,
                    "minutes": allowance.minutes,
                    "valid_to": _month(month, allowance.carry_over_months + 1) - timedelta(days=1),
                }
            )
            month = _month(month, 1)
    return months


def _month(day: date, shift: int) -> date:
    index = day.year * 12 + day.month - 1 + shift
    return date(index // 12, index % 12 + 1, 1)


def draw_pools(
    frame: pd.DataFrame,
    pools: pd.DataFrame | None,
    prior: pd.DataFrame | None,
    billed_ids: pd.Series | None,
    config: BillingConfig,
) -> tuple[pd.Series, pd.Series, pd.DataFrame]:
    """``(drawn, included, draws)`` per priced registration: minutes at zero, of which from allowances.

    ``pools``: ``store.bundles.pools`` (``bundle_id``, ``customer_number``, ``valid_from``, ``valid_to``,
    ``minutes_available``, ``source``, ``allowance``). ``prior``: ``store.bundles.draw_rows``, the draws
    recorded earlier. ``draws``: every draw the charged registrations hold after this plan (kept and new),
    one row per registration and pool (``DRAW_COLUMNS``), for the load step to record.
    """
    table = _pool_table(pools, config)
    if prior is not None and "customer_number" not in prior:  # bare minutes per registration: any pool
        prior = prior.merge(frame[["registration_id", "customer_number"]], on="registration_id")
    kept = _kept(frame, _pool_table(prior, config) if prior is not None else None)
    had_prior = frame["registration_id"].isin(set(prior["registration_id"]) if prior is not None else ())
    billed = set(billed_ids) if billed_ids is not None else set()
    held = kept.groupby("line")["minutes"].sum().reindex(frame.index, fill_value=0).astype("int64")
    eligible = (
        frame["target"].eq(CUSTOMER)
        & frame["billed_minutes"].gt(0)
        & held.eq(0)
        & (~frame["registration_id"].isin(billed) | had_prior)
    )
    new = _allocate(frame[eligible], table) if eligible.any() and not table.empty else _no_draws()
    taken = pd.concat([kept, new], ignore_index=True)
    drawn = taken.groupby("line")["minutes"].sum().reindex(frame.index, fill_value=0).astype("int64")
    from_allowance = taken[taken["source"].eq(ALLOWANCE)]
    included = from_allowance.groupby("line")["minutes"].sum().reindex(frame.index, fill_value=0)
    lines = frame.loc[taken["line"], ["registration_id", "customer_number", "work_date"]]
    draws = lines.reset_index(drop=True).assign(
        bundle_id=taken["bundle_id"].to_numpy(), source=taken["source"].to_numpy(), minutes=taken["minutes"]
    )
    return drawn, included.astype("int64"), draws[DRAW_COLUMNS]


def _no_draws() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "line": pd.Series(dtype="int64"),
            "bundle_id": pd.Series(dtype="int64"),
            "source": pd.Series(dtype="str"),
            "minutes": pd.Series(dtype="int64"),
        }
    )


def _pool_table(pools: pd.DataFrame | None, config: BillingConfig) -> pd.DataFrame:
    """Pools with day numbers, the items an allowance serves and the order they are drawn in."""
    if pools is None or pools.empty:
        return pd.DataFrame(columns=["customer_number", "bundle_id", "source", "first", "last", "items"])
    table = pools.reset_index(drop=True).copy()
    if "source" not in table:
        table["source"] = BUNDLE
        table["allowance"] = ""
    if "bundle_id" not in table:  # a bare balance per customer (older callers, tests): one pool each
        table["bundle_id"] = -1 - np.arange(len(table))
    for column, target, fill in (("valid_from", "first", -FAR), ("valid_to", "last", FAR)):
        values = table[column] if column in table else pd.Series(None, index=table.index)
        days = pd.to_datetime(values).to_numpy(dtype="datetime64[D]").astype("int64")
        table[target] = np.where(pd.isna(values), fill, days)
    restricted = {allowance.name: frozenset(allowance.items) for allowance in config.allowances}
    table["items"] = table["allowance"].map(lambda name: restricted.get(name) or None)
    table["rank"] = np.where(table["source"].eq(ALLOWANCE), 0, 1)
    return table.sort_values(["customer_number", "rank", "first", "bundle_id"]).reset_index(drop=True)


def _fits(lines: pd.DataFrame, first, last, customer, items) -> np.ndarray:
    """Per registration: whether the pool (scalars, or arrays aligned with ``lines``) serves it."""
    days = day_numbers(lines["work_date"])
    inside = (days >= np.asarray(first)) & (days <= np.asarray(last))
    same = lines["customer_number"].astype("str").to_numpy() == np.asarray(customer, dtype=object)
    codes = lines["item_code"]
    if isinstance(items, list):  # one restriction per row
        allowed = [s is None or code in s for code, s in zip(codes, items, strict=True)]
        return inside & same & np.asarray(allowed, dtype=bool)
    return inside & same & (True if items is None else codes.isin(items).to_numpy())


def _kept(frame: pd.DataFrame, prior: pd.DataFrame | None) -> pd.DataFrame:
    """Earlier draws that still fit their registration, pool by pool in drawing order, capped at billed."""
    if prior is None or prior.empty:
        return _no_draws()
    lines = frame.reset_index(names="line").set_index("registration_id", drop=False)
    rows = prior[prior["registration_id"].isin(lines.index)]
    if rows.empty:
        return _no_draws()
    joined = lines.loc[rows["registration_id"]].reset_index(drop=True)
    joined = joined.assign(
        bundle_id=rows["bundle_id"].to_numpy(),
        source=rows["source"].to_numpy(),
        recorded=rows["minutes"].to_numpy(dtype="int64"),
        rank=rows["rank"].to_numpy(),
        first=rows["first"].to_numpy(),
    )
    pools = rows.reset_index(drop=True)
    fits = _fits(
        joined,
        pools["first"].to_numpy(),
        pools["last"].to_numpy(),
        pools["customer_number"].astype("str").to_numpy(),
        list(pools["items"]),
    )
    fits &= joined["target"].eq(CUSTOMER).to_numpy()
    joined = joined[fits].sort_values(["line", "rank", "first", "bundle_id"])
    before = joined.groupby("line")["recorded"].cumsum() - joined["recorded"]
    take = np.minimum(joined["recorded"], (joined["billed_minutes"] - before).clip(lower=0))
    kept = joined.assign(minutes=take.astype("int64"))
    return kept.loc[kept["minutes"].gt(0), ["line", "bundle_id", "source", "minutes"]].reset_index(drop=True)


def _allocate(lines: pd.DataFrame, pools: pd.DataFrame) -> pd.DataFrame:
    """Fill pools in drawing order, registrations by entry date then id; one vectorised pass per pool."""
    lines = lines.sort_values(["entry_date", "registration_id"])
    need = lines["billed_minutes"].astype("int64").copy()
    by_customer = {str(key): group.index for key, group in lines.groupby("customer_number", sort=False)}
    taken = []
    for pool in pools.itertuples(index=False):
        index = by_customer.get(str(pool.customer_number))
        if index is None or int(pool.minutes_available) <= 0:
            continue
        fits = _fits(lines.loc[index], pool.first, pool.last, str(pool.customer_number), pool.items)
        rows = index[fits & need[index].gt(0).to_numpy()]
        before = need[rows].cumsum() - need[rows]
        take = (int(pool.minutes_available) - before).clip(lower=0).clip(upper=need[rows])
        need[rows] -= take
        taken.append(
            pd.DataFrame(
                {"line": rows, "bundle_id": pool.bundle_id, "source": pool.source, "minutes": take.to_numpy()}
            )
        )
    if not taken:
        return _no_draws()
    frame = pd.concat(taken, ignore_index=True).astype({"line": "int64", "minutes": "int64"})
    return frame[frame["minutes"].gt(0)].reset_index(drop=True)
