"""Step 4: billing rules: exclusions, item, rate, surcharge, rounding, minimum per ticket, hour bundles.

``split_excluded`` runs on validated registrations BEFORE the join, so that an ignored branch without a
customer number is *excluded*, not rejected every run. ``price`` runs on joined registrations and adds,
per registration, the item, the hourly rate and where it came from, the evening/weekend surcharge, the
billed minutes (rounded, topped up to the ticket minimum) and the minutes billed at zero: from a monthly
allowance (``included_minutes``) or a prepaid bundle (``tasks/invoice_hours/allowances.py``).
Everything is vectorised; money stays ``Decimal``/int cents, never float.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd

from schemas.afas import SalesPrices
from tasks.invoice_hours.allowances import draw_pools
from tasks.invoice_hours.config import DAYS, BillingConfig
from tasks.invoice_hours.join import CUSTOMER, INTERNAL, clean_text, day_numbers
from tasks.invoice_hours.money import as_decimal, round_cents
from tasks.invoice_hours.order import group_codes, sorted_frame
from tasks.invoice_hours.prices import believable_prices, refused_debtor_prices

# Which registration columns an exclusion kind matches (ids and names/numbers alike).
KIND_COLUMNS = {
    "registration": ["registration_id"],
    "ticket": ["ticket_id", "ticket_number", "billed_ticket_id", "billed_ticket_number"],
    "operator": ["operator_id", "operator_name"],
    "operator_group": ["operator_group_id", "operator_group_name"],
    "branch": ["branch_id", "branch_name"],
    "customer": ["customer_number"],
    "reason": ["reason_id", "reason_name"],
    "category": ["category", "category_path"],
}
IGNORE_COLUMNS = ["kind", "value", "reason"]


def split_excluded(
    frame: pd.DataFrame, config: BillingConfig, ignore: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return ``(kept, excluded)``; excluded rows keep their columns plus ``reason`` and ``step``."""
    frame = frame.reset_index(drop=True)
    rules = exclusion_rules(config, ignore)
    reason = _matching_reason(frame, rules)
    if config.exclusions.below_minutes:
        short = reason.isna() & (frame["minutes"] < config.exclusions.below_minutes)
        text = f"below the minimum of {config.exclusions.below_minutes} minutes (billing.toml)"
        reason = reason.mask(short, text)
    hit = reason.notna()
    excluded = frame[hit].assign(reason=reason[hit].astype("str"), step="rules")
    return frame[~hit].reset_index(drop=True), excluded.reset_index(drop=True)


def split_out_of_scope(frame: pd.DataFrame, config: BillingConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Joined registrations of administrations this run does not bill → excluded, with a reason."""
    if config.only_administration is None:
        # ``.copy()``: an empty view would keep every column of all the rows alive as long as it lives.
        empty = frame.iloc[0:0].copy()
        return frame, empty.assign(reason=pd.Series(dtype="str"), step=pd.Series(dtype="str"))
    other = frame["administration"].ne(config.only_administration)
    text = f"administration not in this run (run bills administration {config.only_administration} only)"
    excluded = frame[other].assign(
        reason=text + ": " + frame.loc[other, "administration"].astype("str"), step="rules"
    )
    return frame[~other].reset_index(drop=True), excluded.reset_index(drop=True)


def exclusion_rules(config: BillingConfig, ignore: pd.DataFrame | None) -> pd.DataFrame:
    """The ignore list (first: explicit decisions) and the configured rules, in priority order."""
    configured = pd.DataFrame(
        [(rule.kind, rule.value, rule.reason) for rule in config.exclusions.rules], columns=IGNORE_COLUMNS
    ).assign(origin="billing.toml")
    listed = pd.DataFrame(columns=IGNORE_COLUMNS) if ignore is None else ignore[IGNORE_COLUMNS]
    listed = listed.assign(origin="ignore list")
    unknown = sorted(set(listed["kind"]) - set(KIND_COLUMNS))
    if unknown:
        raise ValueError(f"ignore list: unknown exclusion kinds {unknown}")
    rules = pd.concat([listed, configured], ignore_index=True)
    rules["key"] = _match_key(rules["value"].astype("str"))
    text = rules["reason"].astype("str") + " (" + rules["origin"] + ": " + rules["kind"].str.replace("_", " ")
    return rules.assign(
        priority=np.arange(len(rules)), text=text + " '" + rules["value"].astype("str") + "')"
    )


def _match_key(text: pd.Series) -> pd.Series:
    return text.str.strip().str.casefold()


def _matching_reason(frame: pd.DataFrame, rules: pd.DataFrame) -> pd.Series:
    """Per row the text of the highest-priority matching rule, else missing.

    Each column is matched once per distinct value (ids and names repeat a lot), then spread to its rows by
    position: no million-row text look-ups.
    """
    best = np.full(len(frame), np.inf)
    text = np.full(len(frame), None, dtype=object)
    for kind, group in rules.groupby("kind", sort=False):
        lookup = group.drop_duplicates("key", keep="first").set_index("key")
        for column in KIND_COLUMNS[str(kind)]:
            codes, distinct = _distinct_values(frame, column)
            keys = _match_key(distinct)
            priority = keys.map(lookup["priority"]).astype("float64").to_numpy().take(codes)
            better = priority < best
            best = np.where(better, priority, best)
            text = np.where(better, keys.map(lookup["text"]).to_numpy(dtype=object).take(codes), text)
    return pd.Series(text, index=frame.index, dtype="str")


def _distinct_values(frame: pd.DataFrame, column: str) -> tuple[np.ndarray, pd.Series]:
    """Per row a code, and per code the column's text (missing stays missing); ``category_path`` made here."""
    if column == "category_path":  # "category / subcategory", made once per distinct pair
        pairs = [frame["category"], frame["subcategory"]]
        codes = group_codes(pairs)
        _, first = np.unique(codes, return_index=True)  # group numbers are 0..n-1, first seen first
        category, subcategory = (values.iloc[first].astype("str").reset_index(drop=True) for values in pairs)
        return codes, category + " / " + subcategory
    codes, uniques = pd.factorize(frame[column], use_na_sentinel=False)
    return codes, pd.Series(uniques, dtype="str")


def price(
    frame: pd.DataFrame,
    config: BillingConfig,
    sales_prices: pd.DataFrame | None = None,
    bundles: pd.DataFrame | None = None,
    prior_draws: pd.DataFrame | None = None,
    billed_ids: pd.Series | None = None,
    ticket_history: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Return ``(priced, rejects, draws)``: rejects are registrations without a price.

    ``ticket_history``: open posted charges of the same tickets for registrations not read in this run
    (``ticket_id``, ``period``, ``debtor``, ``base_minutes``, ``entry_date``, ``registration_id``); per-ticket
    rules count them, so billing a month in parts gives the ticket the same total.
    """
    frame = frame.reset_index(drop=True)
    frame = frame.assign(**assign_items(frame, config))
    frame = frame.assign(**rates(frame, config, sales_prices))
    missing = frame["rate"].isna()
    unpriced = frame[missing]
    rejects = unpriced.assign(reason="no price: item " + _quoted(unpriced["item_code"]), step="rules")
    frame = frame[~missing].reset_index(drop=True)
    frame = frame.assign(**surcharges(frame, config))
    frame = frame.assign(billed_minutes=round_minutes(frame["minutes"], config))
    frame = frame.assign(minimum_topup=ticket_minimum_topup(frame, config, ticket_history))
    frame["billed_minutes"] = frame["billed_minutes"] + frame["minimum_topup"]
    drawn, included, draws = draw_pools(frame, bundles, prior_draws, billed_ids, config)
    frame = frame.assign(
        drawn_minutes=drawn, included_minutes=included, chargeable_minutes=frame["billed_minutes"] - drawn
    )
    frame = frame.assign(**unit_prices(frame["rate"], frame["surcharge_hundredths"]))
    return frame, rejects.reset_index(drop=True), draws


def _quoted(values: pd.Series) -> pd.Series:
    return "'" + values.astype("str").fillna("") + "'"


def assign_items(frame: pd.DataFrame, config: BillingConfig) -> dict[str, pd.Series]:
    """Item per registration: by reason, then category (or ``category / subcategory``), then group."""
    items = config.items
    path = frame["category"].astype("str") + " / " + frame["subcategory"].astype("str")
    candidates = [
        ("reason", frame["reason_name"].map(items.by_reason)),
        ("category", path.map(items.by_category)),
        ("category", frame["category"].map(items.by_category)),
        ("operator_group", frame["operator_group_name"].map(items.by_operator_group)),
    ]
    item = pd.Series(None, index=frame.index, dtype="str")
    source = pd.Series(None, index=frame.index, dtype="str")
    for name, found in candidates:
        fill = item.isna() & found.notna()
        item, source = item.mask(fill, found), source.mask(fill, name)
    default = item.isna()
    return {"item_code": item.mask(default, items.default), "item_source": source.mask(default, "default")}


def rates(
    frame: pd.DataFrame, config: BillingConfig, sales_prices: pd.DataFrame | None
) -> dict[str, pd.Series]:
    """Hourly rate (``Decimal``, missing when none applies) and its source, first match wins."""
    customer = frame["target"].eq(CUSTOMER)
    candidates = [("customer override", _customer_overrides(frame, config).where(customer))]
    if config.rates.source == "afas" and sales_prices is not None:
        sane = believable_prices(sales_prices, config.price_checks.max_hourly_price)  # never ≤ 0
        specific, general = afas_prices(frame, sane)
        candidates += [("AFAS debtor price", specific.where(customer)), ("AFAS price", general)]
    else:
        groups = frame["operator_group_name"].map(config.rates.operator_groups)
        candidates.append(("operator group", groups.where(customer)))
    candidates.append(("internal rate", _internal_rates(frame, config)))
    candidates.append(("item rate", frame["item_code"].map(config.rates.items)))
    rate = pd.Series(None, index=frame.index, dtype="object")
    source = pd.Series(None, index=frame.index, dtype="str")
    for name, found in candidates:
        fill = rate.isna() & found.notna()
        rate, source = rate.mask(fill, found), source.mask(fill, name)
    if config.rates.source == "afas" and sales_prices is not None:  # a refused debtor price: no price
        refused = refused_debtor_prices(frame, sales_prices, config.price_checks.max_hourly_price)
        rate, source = rate.mask(refused & customer), source.mask(refused & customer)
    return {"rate": rate, "rate_source": source}


def _customer_overrides(frame: pd.DataFrame, config: BillingConfig) -> pd.Series:
    table = {
        (customer, item): rate
        for customer, per_item in config.rates.customers.items()
        for item, rate in per_item.items()
    }
    if not table:
        return pd.Series(None, index=frame.index, dtype="object")
    customer = frame["customer_number"].astype("str")
    exact = (customer + "\x1f" + frame["item_code"]).map({f"{c}\x1f{i}": r for (c, i), r in table.items()})
    wildcard = customer.map({c: r for (c, item), r in table.items() if item == "*"})
    return exact.where(exact.notna(), wildcard).astype("object")


def _internal_rates(frame: pd.DataFrame, config: BillingConfig) -> pd.Series:
    by_admin = {a: admin.internal.rate for a, admin in config.administrations.items() if admin.internal.rate}
    return frame["administration"].map(by_admin).where(frame["target"].eq(INTERNAL)).astype("object")


def afas_prices(frame: pd.DataFrame, sales_prices: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """``Koppel_Sales_Prices`` valid on the work date: the debtor's own price and the general price."""
    prices = sales_prices.assign(Price=sales_prices["Price"].map(as_decimal))
    prices = SalesPrices.validate(prices).dropna(subset=["DateStart"])
    prices = prices.assign(DebtorId=clean_text(prices["DebtorId"]), day=day_numbers(prices["DateStart"]))
    days = day_numbers(frame["work_date"])
    debtor = frame["debtor_id"].astype("str").fillna("")
    specific = _price_on(prices[prices["DebtorId"].notna()], frame["item_code"] + "|" + debtor, days)
    general_prices = prices[prices["DebtorId"].isna()]
    general = _price_on(general_prices, frame["item_code"].astype("str"), days, with_debtor=False)
    return specific, general


def _price_on(prices: pd.DataFrame, keys: pd.Series, days: np.ndarray, with_debtor: bool = True) -> pd.Series:
    """The price with the latest ``DateStart`` on or before each day, per key (merge_asof by key)."""
    price_keys = prices["ItemCode"] + "|" + prices["DebtorId"] if with_debtor else prices["ItemCode"]
    right = pd.DataFrame({"key": price_keys.astype("str"), "day": prices["day"], "price": prices["Price"]})
    left = pd.DataFrame({"key": keys.astype("str").to_numpy(), "day": days, "position": np.arange(len(keys))})
    merged = pd.merge_asof(left.sort_values("day"), right.sort_values("day"), on="day", by="key")
    return pd.Series(merged.sort_values("position")["price"].to_numpy(), index=keys.index, dtype="object")


def surcharges(frame: pd.DataFrame, config: BillingConfig) -> dict[str, pd.Series]:
    """Highest surcharge whose window (local weekday and clock time) contains the entry time.

    Customer hours only: an internal charge is a cost allocation, not a premium.
    """
    local = frame["entry_local"]
    weekday = local.dt.day_of_week.to_numpy()
    clock = (local.dt.hour * 60 + local.dt.minute).to_numpy()
    customer = frame["target"].eq(CUSTOMER).to_numpy()
    best = np.zeros(len(frame), dtype=np.int64)  # hundredths of a percent
    name = np.full(len(frame), None, dtype=object)
    for surcharge in config.surcharges:
        days = np.isin(weekday, [DAYS.index(day) for day in surcharge.days])
        if surcharge.start < surcharge.end:
            inside = (clock >= surcharge.start) & (clock < surcharge.end)
        else:  # a window across midnight, e.g. 22:00-06:00
            inside = (clock >= surcharge.start) | (clock < surcharge.end)
        percent = int(surcharge.percent * 100)
        better = customer & days & inside & (percent > best)
        best, name = np.where(better, percent, best), np.where(better, surcharge.name, name)
    percent = pd.Series(best, index=frame.index).map(
        {int(v): Decimal(int(v)).scaleb(-2) for v in np.unique(best)}
    )
    return {
        "surcharge": pd.Series(name, index=frame.index, dtype="str"),
        "surcharge_percent": percent.astype("object"),
        "surcharge_hundredths": pd.Series(best, index=frame.index, dtype="int64"),
    }


def round_minutes(minutes: pd.Series, config: BillingConfig) -> pd.Series:
    """Each registration's minutes rounded to the configured unit in the configured direction."""
    unit = config.rounding.unit_minutes
    values = minutes.to_numpy(dtype=np.int64)
    if config.rounding.direction == "up":
        rounded = -(-values // unit) * unit
    elif config.rounding.direction == "down":
        rounded = values // unit * unit
    else:  # nearest, half up
        rounded = (values * 2 + unit) // (2 * unit) * unit
    return pd.Series(rounded, index=minutes.index, dtype="int64")


def ticket_minimum_topup(
    frame: pd.DataFrame, config: BillingConfig, history: pd.DataFrame | None = None
) -> pd.Series:
    """Minutes added so each ticket bills at least the minimum per period.

    Counted over the ticket's registrations read and its registrations billed before but not read
    (``history``, their minutes before any top-up). The top-up goes to the ticket's earliest registration
    in the period (local day, then lowest id), read or not, so the outcome depends neither on the order
    of the input nor on how the period was cut into runs.
    """
    minimum = config.rounding.minimum_minutes_per_ticket
    topup = pd.Series(0, index=frame.index, dtype="int64")
    customer = frame["target"].eq(CUSTOMER)
    if not minimum or not customer.any():
        return topup
    needed = ["billed_ticket_id", "ticket_id", "registration_id", "period", "debtor_id", "billed_minutes"]
    lines = frame.loc[customer, [*needed, "work_date"]]  # not a copy of every column of the customer rows
    ticket = lines["billed_ticket_id"].fillna(lines["ticket_id"]).fillna(lines["registration_id"])
    rows = pd.DataFrame(
        {
            "ticket": ticket.astype("str"),
            "period": lines["period"].astype("str"),
            "debtor": lines["debtor_id"].astype("str"),
            "minutes": lines["billed_minutes"].astype("int64"),
            "day": day_numbers(lines["work_date"]),
            "registration_id": lines["registration_id"].astype("str"),
            "read": True,
        },
        index=lines.index,
    )
    if history is not None and not history.empty:
        others = history[~history["registration_id"].isin(rows["registration_id"])]
        others = others[others["ticket_id"].isin(rows["ticket"])]
        extra = pd.DataFrame(
            {
                "ticket": others["ticket_id"].astype("str"),
                "period": others["period"].astype("str"),
                "debtor": others["debtor"].astype("str"),
                "minutes": others["base_minutes"].fillna(others["minutes"]).astype("int64"),
                "day": day_numbers(pd.to_datetime(others["entry_date"])),
                "registration_id": others["registration_id"].astype("str"),
                "read": False,
            }
        )
        rows = pd.concat([rows, extra.set_axis(range(-len(extra), 0))])
    keys = ["ticket", "period", "debtor"]
    if rows[keys].isna().any(axis=None):  # pandas' own missing-key semantics (not expected to occur)
        total = rows.groupby(keys)["minutes"].transform("sum")
        order = sorted_frame(rows, ["day", "registration_id"])
        first = order[~order.duplicated(subset=keys, keep="first") & order["read"]]
        short = (minimum - total).clip(lower=0)
        topup.loc[first.index] = short.loc[first.index].astype("int64")
        return topup
    # The same on integer group numbers: total per ticket/period/debtor, its earliest registration.
    group = group_codes([rows[key] for key in keys])
    total = np.bincount(group, weights=rows["minutes"].to_numpy(dtype=np.int64)).astype(np.int64)
    # Each group's earliest row by (day, registration id, position): only the rows on their group's first
    # day can be it, so just those are ordered by id (not a million ids).
    day = rows["day"].to_numpy(dtype=np.int64)
    first_day = np.full(int(group.max()) + 1, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first_day, group, day)
    candidates = np.flatnonzero(day == first_day[group])
    earliest = _lowest_id_per_group(
        group[candidates], rows["registration_id"].to_numpy(dtype=object)[candidates]
    )
    earliest = candidates[earliest]
    chosen = np.sort(earliest[rows["read"].to_numpy(dtype=bool)[earliest]])
    short = np.clip(minimum - total[group[chosen]], 0, None)
    topup.loc[rows.index[chosen]] = short.astype("int64")
    return topup


def _lowest_id_per_group(group: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Per group the position of its lowest id (``str`` order, missing last; the first of equal ids).

    What ordering the rows by (group, id) and taking each group's first does, in one pass without a sort.
    """
    best: dict[int, tuple[str, int]] = {}
    missing: dict[int, int] = {}
    for position, (number, rid) in enumerate(zip(group.tolist(), ids.tolist(), strict=True)):
        if not isinstance(rid, str):  # a missing id sorts last
            missing.setdefault(number, position)
            continue
        held = best.get(number)
        if held is None or rid < held[0]:
            best[number] = (rid, position)
    positions = {number: position for number, (_, position) in best.items()}
    for number, position in missing.items():
        positions.setdefault(number, position)
    return np.fromiter(positions.values(), dtype=np.int64, count=len(positions))


def unit_prices(rate: pd.Series, surcharge_hundredths: pd.Series) -> dict[str, pd.Series]:
    """Hourly price incl. surcharge, half-up to cents: ``Decimal`` and int cents.

    Computed once per distinct (rate, surcharge) pair: there are a handful, not 250,000.
    """
    codes, rates_seen = pd.factorize(rate)
    pair = codes.astype(np.int64) * 1_000_000 + surcharge_hundredths.to_numpy(dtype=np.int64)
    lookup = {}
    for key in np.unique(pair):
        base, hundredths = rates_seen[int(key) // 1_000_000], Decimal(int(key) % 1_000_000).scaleb(-2)
        lookup[int(key)] = round_cents(base * (100 + hundredths) / 100)
    prices = pd.Series(pair, index=rate.index).map(lookup)
    cents = pd.Series(pair, index=rate.index).map({k: int(v * 100) for k, v in lookup.items()})
    return {"unit_price": prices.astype("object"), "unit_price_cents": cents.astype("int64")}
