"""The TOPdesk side of the seeded world: branches, persons, staff, tickets and their time registrations.

``render(world)`` is deterministic from ``world.seed`` (its own random stream,
``numpy.random.default_rng([seed, TOPDESK_STREAM])``) and vectorised: a million registrations take seconds.
``world.scale`` registrations per month are generated for ``world.months`` months ending the day before
``world.anchor``; about 80 % are incident registrations, 6 % operational-activity registrations and 14 %
registrations of changes, change activities and problems. Every entry date lies inside the period in
Europe/Amsterdam time (creation dates may come later: late registrations).

The frames it renders (all prefixed ``td_``: branches, persons, operators, incidents, registrations, ...)
are described, column by column with their dirty variants, by the pandera schemas in
``sandbox/world/topdesk_frames.py``; tests/sandbox/test_world_topdesk.py validates rendered worlds
against them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from koppel.clock import AMSTERDAM
from sandbox.world import World, stable_uuid

TOPDESK_STREAM = 0x70D35C  # second key of the TOPdesk side's random stream, next to the seed
API_LOGIN = "koppel.api"
UNKNOWN_CUSTOMER_NUMBER = "99901"
ARCHIVING_REASONS = ["Klant vertrokken", "Dubbel aangemaakt", "Niet meer actief in AFAS"]
COUNTRIES = ["Nederland", "België", "Duitsland"]
ODD_NAME = "Zoë\u00a0Çelik Cafe\u0301 \u200bSupport 🛠 B.V."
NOTES = [
    "Telefonisch contact",
    "Oplossing toegepast",
    "Onderzoek naar oorzaak",
    "Werkplek opnieuw ingericht",
    "Overleg met leverancier",
    "Gebruiker geïnstrueerd",
    "Remote sessie",
    "",
    "Wachtwoord gereset ✓",
    "Zoë's laptop → nieuwe schijf",
    "Regel 1\nRegel 2",
    "zero\u200bwidth en \u202eomgekeerd\u202c",
    'Quote "x" & <b>html</b>\tmet tab',
]
NOTE_WEIGHTS = [0.17, 0.17, 0.15, 0.1, 0.1, 0.1, 0.1, 0.06, 0.01, 0.01, 0.01, 0.01, 0.01]
PROBLEMS = ["werkt niet", "traag", "foutmelding", "aanvraag", "storing", "vraag"]
ACTIVITIES = ["Patchronde servers", "Back-up controle", "Certificaat vernieuwen", "Firmware switches"]
CHANGES = ["Migratie mailomgeving", "Nieuwe firewallregels", "Uitrol laptops", "Upgrade ERP-koppeling"]
DIRTY_RATES = {  # share of the incident registrations that are not already dirty through their branch
    "zero": 0.006,
    "negative": 0.004,
    "absurd": 0.003,
    "unit_mismatch": 0.003,
    "bad_entry_date": 0.003,
    "duplicate": 0.005,
}
BRANCH_LABELS = {
    "no_customer_number": "branch_without_customer_number",
    "unknown_customer_number": "branch_unknown_customer_number",
}


@dataclass
class _Ctx:
    """What every generator needs: the stream, the period and the master data as arrays."""

    world: World
    rng: np.random.Generator
    days: np.ndarray  # local dates of the period (datetime64[D])
    day_weights: np.ndarray
    branches: pd.DataFrame
    branch_weights: np.ndarray  # tickets per branch (customers and departments; dirty ones a little)
    persons: pd.DataFrame
    operator_weights: np.ndarray


def render(world: World) -> dict[str, pd.DataFrame]:
    """Render every ``td_`` frame of the world (see the module docstring for their columns)."""
    rng = np.random.default_rng([world.seed, TOPDESK_STREAM])
    ctx = _context(world, rng)
    total = world.scale * world.months
    frames = _lookups(world)
    frames.update(td_branches=ctx.branches, td_persons=ctx.persons)
    frames.update(_incident_frames(ctx, round(total * 0.8)))
    frames.update(_om_frames(ctx, round(total * 0.06)))
    frames.update(_odata_frames(ctx, total - round(total * 0.8) - round(total * 0.06)))
    return dict(sorted(frames.items()))


def _context(world: World, rng: np.random.Generator) -> _Ctx:
    end = np.datetime64(world.anchor, "D")
    start = np.datetime64(_months_before(world.anchor, world.months), "D")
    days = np.arange(start, end)
    weekend = ((days.astype("int64") + 3) % 7) >= 5  # 1970-01-01 was a Thursday
    day_weights = np.where(weekend, 0.15, 1.0)
    branches = _branches(world, rng)
    return _Ctx(
        world=world,
        rng=rng,
        days=days,
        day_weights=day_weights / day_weights.sum(),
        branches=branches,
        branch_weights=_branch_weights(rng, branches),
        persons=_persons(world, rng, branches),
        operator_weights=_normalised(rng.gamma(2.0, 1.0, len(world.operators))),
    )


def _months_before(anchor: date, months: int) -> date:
    index = anchor.year * 12 + anchor.month - 1 - months
    return date(index // 12, index % 12 + 1, 1)


def _normalised(weights: np.ndarray) -> np.ndarray:
    return weights / weights.sum()


# --- master data -----------------------------------------------------------------------------------------


def _lookups(world: World) -> dict[str, pd.DataFrame]:
    operators, groups = world.operators, world.operator_groups
    api = {
        "id": stable_uuid("topdesk-operator", world.seed, API_LOGIN),
        "firstName": "Koppel",
        "surName": "API",
        "loginName": API_LOGIN,
        "employeeNumber": "",
        "hourlyRate": "0.00",
        "operatorGroup.id": "",
        "apiAccount": True,
    }
    staff = pd.DataFrame(
        {
            "id": operators["id"],
            "firstName": operators["first_name"],
            "surName": operators["last_name"],
            "loginName": operators["login"],
            "employeeNumber": operators["employee_number"],
            "hourlyRate": operators["hourly_rate"],
            "operatorGroup.id": operators["group_id"],
            "apiAccount": False,
        }
    )
    staff = pd.concat([staff, pd.DataFrame([api])], ignore_index=True)
    staff.insert(3, "dynamicName", staff["surName"] + ", " + staff["firstName"])
    staff.insert(5, "email", staff["loginName"] + "@koppel-diensten.example.nl")
    staff["archived"] = False
    return {
        "td_operators": staff,
        "td_operator_groups": groups.rename(columns={"name": "groupName", "hourly_rate": "hourlyRate"}),
        "td_reasons": world.reasons.copy(),
        "td_categories": world.categories.copy(),
        "td_archiving_reasons": _named("topdesk-archiving-reason", ARCHIVING_REASONS),
        "td_countries": _named("topdesk-country", COUNTRIES),
    }


def _named(kind: str, names: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"id": [stable_uuid(kind, name) for name in names], "name": names})


def _branches(world: World, rng: np.random.Generator) -> pd.DataFrame:
    customers = world.customers[world.customers["in_topdesk"]]
    frame = pd.DataFrame(
        {
            "name": customers["name"],
            "clientReferenceNumber": customers["customer_number"],
            "phone": customers["phone"],
            "email": customers["email"],
            "street": customers["street"],
            "number": customers["house_number"],
            "postcode": customers["postcode"],
            "city": customers["city"],
            "kind": "customer",
            "dirty": "",
        }
    ).reset_index(drop=True)
    known = np.flatnonzero(customers["in_afas"].to_numpy())
    odd = int(rng.choice(known))
    frame.loc[odd, ["name", "dirty"]] = [ODD_NAME, "odd_unicode_name"]
    departments = pd.DataFrame(
        {"name": world.departments["name"], "clientReferenceNumber": world.departments["code"]}
    ).assign(kind="department", dirty="")
    duplicate = customers.iloc[int(rng.choice(known))]
    extras = pd.DataFrame(
        [
            ("Particulieren (geen klantnummer)", "", "no_customer_number"),
            ("Proefklant Noord", UNKNOWN_CUSTOMER_NUMBER, "unknown_customer_number"),
            (f"{duplicate['name']} (oud)", duplicate["customer_number"], "archived_duplicate"),
        ],
        columns=["name", "clientReferenceNumber", "dirty"],
    ).assign(kind="extra")
    frame = pd.concat([frame, departments, extras], ignore_index=True).fillna("")
    return _finish_branches(frame, world.seed)


def _finish_branches(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    key = np.where(frame["kind"] == "extra", frame["dirty"], frame["clientReferenceNumber"])
    frame.insert(0, "id", [stable_uuid("topdesk-branch", seed, k) for k in key])
    frame.insert(3, "archived", frame["dirty"] == "archived_duplicate")
    frame["country"] = "Nederland"
    frame["timeZone"] = AMSTERDAM.key
    frame["branchType"] = "independentBranch"
    columns = ["id", "name", "clientReferenceNumber", "archived", "phone", "email", "street", "number"]
    columns += ["postcode", "city", "country", "timeZone", "branchType", "kind", "dirty"]
    return frame[columns]


def _branch_weights(rng: np.random.Generator, branches: pd.DataFrame) -> np.ndarray:
    kind, dirty = branches["kind"].to_numpy(), branches["dirty"].to_numpy()
    customer = kind == "customer"
    weights = np.zeros(len(branches))
    weights[customer] = 0.914 * _normalised(rng.gamma(0.8, 1.0, int(customer.sum())))
    weights[kind == "department"] = 0.07 / max(1, int((kind == "department").sum()))
    weights[dirty == "no_customer_number"] = 0.008
    weights[dirty == "unknown_customer_number"] = 0.008
    return _normalised(weights)


def _persons(world: World, rng: np.random.Generator, branches: pd.DataFrame) -> pd.DataFrame:
    by_number = branches[branches["kind"] == "customer"].set_index("clientReferenceNumber")["id"]
    contacts = world.contacts[world.contacts["customer_number"].isin(by_number.index)]
    frame = pd.DataFrame(
        {
            "id": [stable_uuid("topdesk-person", world.seed, p) for p in contacts["person_number"]],
            "employeeNumber": contacts["person_number"],
            "firstName": contacts["first_name"],
            "surName": contacts["last_name"],
            "email": contacts["email"],
            "phoneNumber": contacts["phone"],
            "branch.id": contacts["customer_number"].map(by_number),
        }
    )
    extra = branches[branches["kind"] == "extra"]
    callers = pd.DataFrame(
        {
            "id": [stable_uuid("topdesk-person", world.seed, "extra", d) for d in extra["dirty"]],
            "employeeNumber": "",
            "firstName": "Balie",
            "surName": "Medewerker",
            "email": "",
            "phoneNumber": "",
            "branch.id": extra["id"].to_numpy(),
        }
    )
    frame = pd.concat([frame, callers], ignore_index=True)
    frame["archived"] = rng.random(len(frame)) < 0.02
    return frame


# --- shared vectorised helpers ----------------------------------------------------------------------------

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def _uuids(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` random version-4 UUID strings, formatted without a Python loop."""
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    chars = np.empty((n, 32), dtype=np.uint8)
    chars[:, 0::2], chars[:, 1::2] = _HEX[raw >> 4], _HEX[raw & 0x0F]
    out = np.full((n, 36), ord("-"), dtype=np.uint8)
    for (a, b), at in zip(((0, 8), (8, 12), (12, 16), (16, 20), (20, 32)), (0, 9, 14, 19, 24), strict=True):
        out[:, at : at + b - a] = chars[:, a:b]
    return out.view("S36").ravel().astype(str).astype(object)


def _utc_ms(days: np.ndarray, minutes: np.ndarray) -> np.ndarray:
    """Amsterdam wall-clock (local date + minute of day, never 02:00-03:00) as UTC epoch milliseconds."""
    naive = days.astype("datetime64[D]").astype("datetime64[ms]") + minutes.astype("timedelta64[m]")
    local = pd.DatetimeIndex(naive).tz_localize(AMSTERDAM.key, ambiguous="raise", nonexistent="raise")
    return local.as_unit("ms").asi8


def _minute_of_day(rng: np.random.Generator, n: int) -> np.ndarray:
    """Mostly office hours, some evenings (18-23 h) and early mornings (6-8 h)."""
    slot = rng.random(n)
    office = rng.integers(8 * 60, 18 * 60, n)
    evening = rng.integers(18 * 60, 23 * 60, n)
    early = rng.integers(6 * 60, 8 * 60, n)
    return np.where(slot < 0.8, office, np.where(slot < 0.94, evening, early))


def _ms_of(column: pd.Series) -> np.ndarray:
    return pd.DatetimeIndex(column).as_unit("ms").asi8


def _dates(ms: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(ms.astype("datetime64[ms]")).tz_localize("UTC")


def _later(rng: np.random.Generator, ms: np.ndarray) -> np.ndarray:
    """Creation moments after ``ms``: mostly within two hours, some days later (late registrations)."""
    slot = rng.random(len(ms))
    soon = rng.integers(0, 120, len(ms))
    later = rng.integers(120, 3 * 1440, len(ms))
    late = rng.integers(3 * 1440, 20 * 1440, len(ms))
    delay = np.where(slot < 0.9, soon, np.where(slot < 0.98, later, late))
    return ms + delay * 60_000 + rng.integers(0, 60_000, len(ms))


def _modified(rng: np.random.Generator, created: np.ndarray) -> np.ndarray:
    edited = rng.random(len(created)) < 0.1
    return created + np.where(edited, rng.integers(60_000, 5 * 86_400_000, len(created)), 0)


def _numbers(prefix: str, days: np.ndarray, width: int, rng: np.random.Generator | None = None) -> list[str]:
    """Ticket numbers ``<prefix> yymm seq`` numbered per month in order; ``days`` must be sorted.

    With ``rng``, a fifth of them get the other tenant style ``<prefix>yymm-seq`` (4 digits).
    """
    months = days.astype("datetime64[M]")
    first = np.searchsorted(months, months, side="left")
    seq = np.arange(len(days)) - first + 1
    stamp = months.astype(object)
    yymm = [f"{m.year % 100:02d}{m.month:02d}" for m in stamp]
    dashed = rng.random(len(days)) < 0.2 if rng is not None else np.zeros(len(days), dtype=bool)
    return [
        f"{prefix}{ym}-{s:04d}" if d else f"{prefix} {ym} {s:0{width}d}"
        for ym, s, d in zip(yymm, seq.tolist(), dashed.tolist(), strict=True)
    ]


def _durations(rng: np.random.Generator, n: int) -> np.ndarray:
    choices = np.array([5, 10, 15, 15, 20, 30, 30, 45, 60, 60, 75, 90, 120, 180, 240])
    return rng.choice(choices, n).astype(np.int64)


def _reasons(ctx: _Ctx, n: int) -> np.ndarray:
    ids = ctx.world.reasons["id"].to_numpy(dtype=object)
    weights = _normalised(np.array([8.0, 2, 1, 1, 0.5, 0.5])[: len(ids)])
    picked = ids[ctx.rng.choice(len(ids), n, p=weights)]
    return np.where(ctx.rng.random(n) < 0.12, "", picked).astype(object)


def _staffing(ctx: _Ctx, n: int) -> tuple[np.ndarray, np.ndarray]:
    operators = ctx.world.operators
    which = ctx.rng.choice(len(operators), n, p=ctx.operator_weights)
    return operators["id"].to_numpy(dtype=object)[which], operators["group_id"].to_numpy(dtype=object)[which]


def _pick_days(ctx: _Ctx, n: int) -> np.ndarray:
    return np.sort(ctx.rng.choice(len(ctx.days), n, p=ctx.day_weights))


def _entry_days(ctx: _Ctx, start_day: np.ndarray) -> np.ndarray:
    """Work happens on the day a ticket starts or the days after, never after the period."""
    offset = ctx.rng.geometric(0.45, len(start_day)) - 1
    return np.minimum(start_day + offset, len(ctx.days) - 1)


def _callers(ctx: _Ctx, branch: np.ndarray) -> np.ndarray:
    """A random person of each branch (``""`` for branches without persons)."""
    index = pd.Index(ctx.branches["id"])
    of_person = index.get_indexer(ctx.persons["branch.id"])
    order = np.argsort(of_person, kind="stable")
    counts = np.bincount(of_person, minlength=len(index))
    starts = np.cumsum(counts) - counts
    pick = starts[branch] + np.floor(ctx.rng.random(len(branch)) * counts[branch]).astype(np.int64)
    ids = ctx.persons["id"].to_numpy(dtype=object)
    return np.where(counts[branch] > 0, ids[order[np.minimum(pick, len(order) - 1)]], "").astype(object)


# --- incidents and their registrations --------------------------------------------------------------------


def _incident_frames(ctx: _Ctx, n_regs: int) -> dict[str, pd.DataFrame]:
    n_incidents = max(12, n_regs // 3)
    incidents, start_day = _incidents(ctx, n_incidents)
    parent = ctx.rng.integers(0, n_incidents, n_regs)
    regs = _registrations(ctx, incidents, parent, start_day[parent])
    last_change = np.full(n_incidents, 0, dtype=np.int64)
    np.maximum.at(last_change, parent, _ms_of(regs["modificationDate"]))
    created = _ms_of(incidents["creationDate"])
    modified = np.maximum(created, last_change)
    incidents["modificationDate"] = _dates(modified)
    closed = incidents["closed"].to_numpy()
    incidents["closedDate"] = _dates(np.where(closed, modified, np.iinfo(np.int64).min))
    return {"td_incidents": incidents, "td_registrations": regs}


def _incidents(ctx: _Ctx, n: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = ctx.rng
    day = _pick_days(ctx, n)
    call = _utc_ms(ctx.days[day], _minute_of_day(rng, n))
    line = np.where(rng.random(n) < 0.5, "firstLine", "secondLine").astype(object)
    branch = rng.choice(len(ctx.branches), n, p=ctx.branch_weights)
    main = _partials(rng, line, branch)
    closed = rng.random(n) < 0.8
    archived = closed & (rng.random(n) < 0.06)
    partial = main >= 0
    archived[partial] |= archived[main[partial]]
    closed |= archived  # only closed incidents get archived
    category = rng.integers(0, len(ctx.world.categories), n)
    operator, group = _staffing(ctx, n)
    project, kind = _project_refs(ctx, branch)
    ids = _uuids(rng, n)
    frame = pd.DataFrame(
        {
            "id": ids,
            "number": _numbers("I", ctx.days[day], 3, rng),
            "line": line,
            "archived": archived,
            "status": np.where(archived, line + "Archived", line),
            "mainIncident.id": np.where(partial, ids[np.maximum(main, 0)], ""),
            "briefDescription": _descriptions(ctx, category),
            "callerBranch.id": ctx.branches["id"].to_numpy(dtype=object)[branch],
            "caller.id": _callers(ctx, branch),
            "category.id": ctx.world.categories["id"].to_numpy(dtype=object)[category],
            "subcategory.id": ctx.world.categories["subcategory_id"].to_numpy(dtype=object)[category],
            "operator.id": operator,
            "operatorGroup.id": group,
            "optionalFields1.text1": project,
            "project_kind": kind,
            "callDate": _dates(call),
            "creationDate": _dates(call + rng.integers(0, 600_000, n)),
            "closed": closed,
        }
    )
    return frame, day


def _partials(rng: np.random.Generator, line: np.ndarray, branch: np.ndarray) -> np.ndarray:
    """Turn ~10 % into partials of a second-line incident (same caller branch); -1 = not a partial."""
    partial = rng.random(len(line)) < 0.1
    seconds = np.flatnonzero((line == "secondLine") & ~partial)
    main = np.full(len(line), -1, dtype=np.int64)
    main[partial] = rng.choice(seconds, int(partial.sum()))
    line[partial] = "partial"
    branch[partial] = branch[main[partial]]
    return main


def _descriptions(ctx: _Ctx, category: np.ndarray) -> np.ndarray:
    subs = ctx.world.categories["subcategory"].tolist()
    table = np.array([f"{sub} {problem}" for sub in subs for problem in PROBLEMS], dtype=object)
    return table[category * len(PROBLEMS) + ctx.rng.integers(0, len(PROBLEMS), len(category))]


def _project_refs(ctx: _Ctx, branch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project codes on ~30 % of customer tickets, the kind derived from the project actually chosen.

    Mostly an open project of the ticket's debtor, a few of another debtor, a few closed ones.
    """
    rng = ctx.rng
    projects = ctx.world.projects.sort_values(["customer_number", "project_id"], kind="stable")
    number = ctx.branches["clientReferenceNumber"].to_numpy(dtype=object)[branch]
    has = (ctx.branches["kind"].to_numpy()[branch] == "customer") & (rng.random(len(branch)) < 0.3)
    open_ = projects[~projects["closed"]]
    own = _own_project(rng, open_, number)
    other = open_["project_id"].to_numpy(dtype=object)[rng.integers(0, len(open_), len(branch))]
    shut = projects.loc[projects["closed"], "project_id"].to_numpy(dtype=object)
    closed = shut[rng.integers(0, len(shut), len(branch))] if len(shut) else other
    slot = rng.random(len(branch))
    chosen = np.where(slot < 0.9, own, np.where(slot < 0.95, other, closed))
    chosen = np.where(has, chosen, "").astype(object)
    return chosen, _project_kinds(projects, chosen, number)


def _project_kinds(projects: pd.DataFrame, chosen: np.ndarray, number: np.ndarray) -> np.ndarray:
    info = projects.set_index("project_id")
    owner = info["customer_number"].reindex(chosen).to_numpy(dtype=object)
    shut = info["closed"].reindex(chosen).fillna(False).to_numpy(dtype=bool)
    kind = np.where(shut, "closed", np.where(owner == number, "own", "other_debtor"))
    return np.where(chosen == "", "", kind).astype(object)


def _own_project(rng: np.random.Generator, open_: pd.DataFrame, number: np.ndarray) -> np.ndarray:
    """A random open project of each debtor (``""`` when the number has none); ``open_`` sorted by debtor."""
    owners = open_["customer_number"].to_numpy(dtype=str)
    keys, starts, counts = np.unique(owners, return_index=True, return_counts=True)
    wanted = number.astype(str)
    where = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
    found = keys[where] == wanted
    pick = starts[where] + np.floor(rng.random(len(number)) * counts[where]).astype(np.int64)
    return np.where(found, open_["project_id"].to_numpy(dtype=object)[pick], "").astype(object)


def _registrations(
    ctx: _Ctx, incidents: pd.DataFrame, parent: np.ndarray, start_day: np.ndarray
) -> pd.DataFrame:
    rng, n = ctx.rng, len(parent)
    call = _ms_of(incidents["callDate"])[parent]
    entry = np.maximum(_utc_ms(ctx.days[_entry_days(ctx, start_day)], _minute_of_day(rng, n)), call)
    created = _later(rng, entry)
    operator, group = _staffing(ctx, n)
    dirty = _registration_dirt(ctx, incidents, parent)
    minutes, seconds, dirty = _dirty_durations(rng, dirty, _durations(rng, n), parent, len(incidents))
    frame = pd.DataFrame(
        {
            "id": _uuids(rng, n),
            "parent.id": incidents["id"].to_numpy(dtype=object)[parent],
            "timeSpent": seconds,
            "minutes": minutes,
            "entryDate": _dates(entry),
            "entry_date_text": _bad_entry_texts(entry, dirty),
            **_booked(ctx, created, operator, group),
            "dirty": dirty,
        }
    )
    return frame.iloc[np.argsort(entry, kind="stable")].reset_index(drop=True)


def _registration_dirt(ctx: _Ctx, incidents: pd.DataFrame, parent: np.ndarray) -> np.ndarray:
    """One reason per dirty row: the ticket's branch first, else a random defect at ``DIRTY_RATES``."""
    by_branch = ctx.branches.set_index("id")["dirty"].map(BRANCH_LABELS).fillna("")
    label = incidents["callerBranch.id"].map(by_branch).to_numpy(dtype=object)[parent]
    edges = np.cumsum(list(DIRTY_RATES.values()))
    names = np.array([*DIRTY_RATES, ""], dtype=object)
    random_label = names[np.searchsorted(edges, ctx.rng.random(len(parent)), side="right")]
    return np.where(label != "", label, random_label).astype(object)


def _dirty_durations(
    rng: np.random.Generator, dirty: np.ndarray, minutes: np.ndarray, parent: np.ndarray, n_parents: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply the duration defects; a negative row that would push its incident below 0 is made clean."""
    n = len(dirty)
    minutes = np.where(dirty == "zero", 0, minutes)
    minutes = np.where(dirty == "negative", -rng.choice([15, 30], n), minutes)
    minutes = np.where(dirty == "absurd", rng.choice([1800, 2160], n), minutes)
    minutes = np.where(dirty == "unit_mismatch", rng.integers(7, 59, n), minutes).astype(np.int64)
    total = np.bincount(parent, weights=minutes, minlength=n_parents)
    undo = (dirty == "negative") & (total[parent] < 0)
    minutes = np.where(undo, -minutes, minutes)
    dirty = np.where(undo, "", dirty).astype(object)
    seconds = np.where(dirty == "unit_mismatch", minutes, minutes * 60).astype(np.int64)
    return minutes, seconds, dirty


def _bad_entry_texts(entry: np.ndarray, dirty: np.ndarray) -> np.ndarray:
    """Local time in a format TOPdesk never sends, for the ``bad_entry_date`` rows."""
    text = np.full(len(entry), "", dtype=object)
    rows = np.flatnonzero(dirty == "bad_entry_date")
    local = _dates(entry[rows]).tz_convert(AMSTERDAM.key)
    formats = ("%d-%m-%Y %H:%M", "%Y/%m/%d %H:%M:%S")
    text[rows] = [stamp.strftime(formats[i % 2]) for i, stamp in enumerate(local)]
    return text


# --- operational activities -------------------------------------------------------------------------------


def _om_frames(ctx: _Ctx, n_regs: int) -> dict[str, pd.DataFrame]:
    rng, n = ctx.rng, max(4, n_regs // 6)
    day = _pick_days(ctx, n)
    planned = _utc_ms(ctx.days[day], np.full(n, 8 * 60))
    created = planned - rng.integers(86_400_000, 30 * 86_400_000, n)
    operator, group = _staffing(ctx, n)
    activities = pd.DataFrame(
        {
            **_numbered(rng, "OA", ctx.days[day]),
            "briefDescription": np.array(ACTIVITIES, dtype=object)[rng.integers(0, len(ACTIVITIES), n)],
            "status": np.where(rng.random(n) < 0.7, "Afgerond", "In behandeling").astype(object),
            "archived": rng.random(n) < 0.05,
            "operator.id": operator,
            "operatorGroup.id": group,
            "linkedBranches": _linked_branches(ctx, n),
            "estimatedTime": rng.choice([30, 60, 120, 240], n).astype(np.int64),
            "plannedStartDate": _dates(planned),
            "creationDate": _dates(created),
            "modificationDate": _dates(_modified(rng, created)),
        }
    )
    return {
        "td_om_activities": activities,
        "td_om_registrations": _om_registrations(ctx, activities, day, n_regs),
    }


def _linked_branches(ctx: _Ctx, n: int) -> np.ndarray:
    """One branch (customers and departments only), sometimes a second one, sometimes none."""
    weights = np.where(ctx.branches["kind"].to_numpy() == "extra", 0.0, ctx.branch_weights)
    ids = ctx.branches["id"].to_numpy(dtype=object)
    first = ids[ctx.rng.choice(len(ids), n, p=_normalised(weights))]
    second = ids[ctx.rng.choice(len(ids), n, p=_normalised(weights))]
    slot = ctx.rng.random(n)
    both = first + ";" + second
    return np.where(slot < 0.04, "", np.where(slot < 0.19, both, first)).astype(object)


def _om_registrations(ctx: _Ctx, activities: pd.DataFrame, day: np.ndarray, n: int) -> pd.DataFrame:
    rng = ctx.rng
    parent = rng.integers(0, len(activities), n)
    entry = _utc_ms(ctx.days[_entry_days(ctx, day[parent])], _minute_of_day(rng, n))
    created = _later(rng, entry)
    operator, group = _staffing(ctx, n)
    slot = rng.random(n)
    dirty = np.where(slot < 0.005, "zero", np.where(slot < 0.008, "unit_mismatch", "")).astype(object)
    dirty = np.where(activities["linkedBranches"].to_numpy()[parent] == "", "no_linked_branch", dirty)
    minutes = np.where(dirty == "zero", 0, _durations(rng, n))
    minutes = np.where(dirty == "unit_mismatch", rng.integers(7, 59, n), minutes).astype(np.int64)
    frame = pd.DataFrame(
        {
            "id": _uuids(rng, n),
            "activity.id": activities["id"].to_numpy(dtype=object)[parent],
            "timeSpent": np.where(dirty == "unit_mismatch", minutes, minutes * 60).astype(np.int64),
            "minutes": minutes,
            "note": np.array(NOTES, dtype=object)[rng.choice(len(NOTES), n, p=NOTE_WEIGHTS)],
            "entryDate": _dates(entry),
            "creationDate": _dates(created),
            "operator.id": operator,
            "operatorGroup.id": group,
            "reason.id": _reasons(ctx, n),
            "dirty": dirty,
        }
    )
    return frame.iloc[np.argsort(entry, kind="stable")].reset_index(drop=True)


# --- changes, change activities, problems (OData) ---------------------------------------------------------


def _odata_frames(ctx: _Ctx, n_regs: int) -> dict[str, pd.DataFrame]:
    n_change, n_activity = round(n_regs * 0.43), round(n_regs * 0.29)
    changes, change_day = _changes(ctx, max(4, n_change // 4))
    activities, activity_day = _change_activities(ctx, changes, change_day, max(4, n_activity // 3))
    problems, problem_day = _problems(ctx, max(3, (n_regs - n_change - n_activity) // 4))
    branch_of_change = changes["requesterBranch.id"].to_numpy(dtype=object)
    change_index = pd.Index(changes["id"]).get_indexer(activities["change.id"])
    parts = [
        _ticket_registrations(ctx, "change", changes["id"], change_day, branch_of_change, n_change),
        _ticket_registrations(
            ctx, "change_activity", activities["id"], activity_day, branch_of_change[change_index], n_activity
        ),
        _ticket_registrations(
            ctx,
            "problem",
            problems["id"],
            problem_day,
            problems["branch.id"].to_numpy(dtype=object),
            n_regs - n_change - n_activity,
        ),
    ]
    regs = pd.concat(parts, ignore_index=True)
    regs = regs.iloc[np.argsort(_ms_of(regs["entryDate"]), kind="stable")].reset_index(drop=True)
    return {
        "td_changes": changes,
        "td_change_activities": activities,
        "td_problems": problems,
        "td_odata_registrations": regs,
    }


def _placed_tickets(ctx: _Ctx, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Day, creation and modification times and branch (a row of ``ctx.branches``) of ``n`` new tickets."""
    day = _pick_days(ctx, n)
    created = _utc_ms(ctx.days[day], _minute_of_day(ctx.rng, n))
    modified = _modified(ctx.rng, created)
    return day, created, modified, ctx.rng.choice(len(ctx.branches), n, p=ctx.branch_weights)


def _booked(ctx: _Ctx, created: np.ndarray, operator: np.ndarray, group: np.ndarray) -> dict[str, Any]:
    """A registration's creation and modification dates, who booked it, reason and notes, in draw order."""
    rng, n = ctx.rng, len(created)
    return {
        "creationDate": _dates(created),
        "modificationDate": _dates(_modified(rng, created)),
        "operator.id": operator,
        "operatorGroup.id": group,
        "reason.id": _reasons(ctx, n),
        "notes": np.array(NOTES, dtype=object)[rng.choice(len(NOTES), n, p=NOTE_WEIGHTS)],
    }


def _numbered(rng: np.random.Generator, prefix: str, days: np.ndarray) -> dict[str, np.ndarray | list[str]]:
    """A new ticket's ``id`` (drawn first) and ``number`` (``C 2610 0012``) from its day."""
    return {"id": _uuids(rng, len(days)), "number": _numbers(prefix, days, 4)}


def _stamps(created: np.ndarray, modified: np.ndarray) -> dict[str, pd.DatetimeIndex]:
    return {"creationDate": _dates(created), "modificationDate": _dates(modified)}


def _changes(ctx: _Ctx, n: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = ctx.rng
    day, created, modified, branch = _placed_tickets(ctx, n)
    frame = pd.DataFrame(
        {
            **_numbered(rng, "C", ctx.days[day]),
            "briefDescription": np.array(CHANGES, dtype=object)[rng.integers(0, len(CHANGES), n)],
            "changeType": np.where(rng.random(n) < 0.6, "simple", "extensive").astype(object),
            "requester.id": _callers(ctx, branch),
            "requesterBranch.id": ctx.branches["id"].to_numpy(dtype=object)[branch],
            "status": np.where(rng.random(n) < 0.7, "Afgerond", "In uitvoering").astype(object),
            "archived": rng.random(n) < 0.03,
            **_stamps(created, modified),
        }
    )
    return frame, day


def _change_activities(
    ctx: _Ctx, changes: pd.DataFrame, change_day: np.ndarray, n: int
) -> tuple[pd.DataFrame, np.ndarray]:
    rng = ctx.rng
    change = np.sort(rng.integers(0, len(changes), n))
    day = np.minimum(change_day[change] + rng.integers(0, 5, n), len(ctx.days) - 1)
    order = np.argsort(day, kind="stable")
    change, day = change[order], day[order]
    created = _utc_ms(ctx.days[day], _minute_of_day(rng, n))
    frame = pd.DataFrame(
        {
            **_numbered(rng, "CA", ctx.days[day]),
            "change.id": changes["id"].to_numpy(dtype=object)[change],
            "briefDescription": changes["briefDescription"].to_numpy(dtype=object)[change] + " - uitvoering",
            "status": np.where(rng.random(n) < 0.7, "Afgerond", "Gepland").astype(object),
            "creationDate": _dates(created),
            "modificationDate": _dates(_modified(rng, created)),
        }
    )
    return frame, day


def _problems(ctx: _Ctx, n: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = ctx.rng
    day, created, modified, branch = _placed_tickets(ctx, n)
    frame = pd.DataFrame(
        {
            **_numbered(rng, "P", ctx.days[day]),
            "briefDescription": _descriptions(ctx, rng.integers(0, len(ctx.world.categories), n)),
            "branch.id": ctx.branches["id"].to_numpy(dtype=object)[branch],
            "status": np.where(rng.random(n) < 0.6, "Opgelost", "Onderzoek").astype(object),
            "archived": rng.random(n) < 0.03,
            **_stamps(created, modified),
        }
    )
    return frame, day


def _ticket_registrations(
    ctx: _Ctx, kind: str, ticket_ids: pd.Series, day: np.ndarray, branch_ids: np.ndarray, n: int
) -> pd.DataFrame:
    rng = ctx.rng
    parent = rng.integers(0, len(ticket_ids), n)
    entry = _utc_ms(ctx.days[_entry_days(ctx, day[parent])], _minute_of_day(rng, n))
    created = _later(rng, entry)
    operator, group = _staffing(ctx, n)
    by_branch = ctx.branches.set_index("id")["dirty"].map(BRANCH_LABELS).fillna("")
    label = pd.Series(branch_ids).map(by_branch).fillna("").to_numpy(dtype=object)[parent]
    slot = rng.random(n)
    dirty = np.where(label != "", label, np.where(slot < 0.005, "zero", np.where(slot < 0.007, "absurd", "")))
    minutes = np.where(dirty == "zero", 0, np.where(dirty == "absurd", 1800, _durations(rng, n)))
    return pd.DataFrame(
        {
            "id": _uuids(rng, n),
            "kind": kind,
            "ticket.id": ticket_ids.to_numpy(dtype=object)[parent],
            "minutes": minutes.astype(np.int64),
            "entryDate": _dates(entry),
            **_booked(ctx, created, operator, group),
            "dirty": dirty.astype(object),
        }
    )
