"""The AFAS side of the seeded world: master data with AFAS's own column names, and HR data.

``render(world)`` returns frames prefixed ``afas_`` (what Profit's GetConnectors serve, columns named as
in the reference §6 and AFAS's OpenAPI specs) and ``hr_`` (the HR data behind the project's HR
GetConnectors, snake_case). Everything comes from one ``numpy`` generator seeded with
``[world.seed, _AFAS_STREAM]``, so the same world renders the same frames byte for byte.

The frames it renders are described, column by column, by the pandera schemas in
``sandbox/world/afas_frames.py`` (strings are ``str``, money and hours ``Decimal``, every date a tz-aware
``Europe/Amsterdam`` timestamp, missing values ``None``/``NaT``); ``generate_world(check=True)`` and
tests/sandbox/test_world_afas.py validate rendered worlds against them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from koppel.clock import AMSTERDAM
from sandbox.world import _FIRST, _LAST, World, stable_uuid
from tasks.invoice_hours.money import CENT, round_cents

TZ = AMSTERDAM.key
ENVIRONMENT_NUMBER = "12345"  # the sandbox's AFAS environment (user ids are prefixed with it)
_AFAS_STREAM = 0xAF45  # second seed word: the AFAS side draws from its own stream
_MONTHS_NL = [
    "januari",
    "februari",
    "maart",
    "april",
    "mei",
    "juni",
    "juli",
    "augustus",
    "september",
    "oktober",
    "november",
    "december",
]
# Ledger accounts a journal entry may use (decision: the standard Dutch scheme of the sandbox company).
GL_ACCOUNTS = [
    ("1100", "Bank", "Balans"),
    ("1300", "Debiteuren", "Balans"),
    ("1500", "Te betalen btw hoog", "Balans"),
    ("1510", "Te betalen btw laag", "Balans"),
    ("8000", "Omzet dienstverlening", "Winst en verlies"),
    ("8010", "Omzet overig", "Winst en verlies"),
    ("8900", "Interne doorbelasting", "Winst en verlies"),
]
# Journals per administration, and the VAT codes of the sandbox company (standard Dutch rates).
JOURNALS = [("20", "Verkoopboek", "V"), ("90", "Memoriaal", "M")]
VAT_CODES = [
    ("0", "Geen btw", "", "0.00", "V"),
    ("1", "Btw hoog", "1500", "21.00", "V"),
    ("2", "Btw laag", "1510", "9.00", "V"),
    ("5", "Btw verlegd", "", "0.00", "V"),
]
# Units of measure (``BiUn`` on invoice lines, ``UnId`` on realisations; reference §6: ``stk``, ``uur``,
# ``*****``) and the country codes addresses may carry (``CoId``). Profit's country table is not in the
# reference; AFAS's own examples (organisations-and-persons.json) write Belgium as ``B`` and the United States
# as ``US`` next to ``NL``: international vehicle codes, so Germany is ``D``, Spain ``E``, and so on.
UNITS = [("uur", "Uur"), ("stk", "Stuks"), ("km", "Kilometer"), ("*****", "Geen eenheid")]
COUNTRIES = [
    ("NL", "Nederland"),
    ("B", "België"),
    ("D", "Duitsland"),
    ("F", "Frankrijk"),
    ("L", "Luxemburg"),
    ("GB", "Verenigd Koninkrijk"),
    ("A", "Oostenrijk"),
    ("CH", "Zwitserland"),
    ("DK", "Denemarken"),
    ("E", "Spanje"),
    ("I", "Italië"),
    ("PL", "Polen"),
    ("S", "Zweden"),
    ("IRL", "Ierland"),
    ("US", "Verenigde Staten"),
]
# VAT duty (``VatDuty``, "btw-plicht") of debtors: 1 = btw-plichtig in Nederland (the usual), 3 = verlegd
# (reverse charge, e.g. a Belgian customer). Profit's own codes are not in the reference; these are the
# sandbox's. About one debtor in twenty is a reverse-charge debtor.
VAT_DUTY_DOMESTIC, VAT_DUTY_REVERSE = "1", "3"
_FUNCTIONS = {"team": "Servicemedewerker", "department": "Medewerker", "root": "Directeur"}
EMPLOYMENT_COLUMNS = [
    "employee_id",
    "employment_id",
    "sequence_number",
    "org_unit_id",
    "function",
    "start_date",
    "end_date",
    "hours_per_week",
    "salary_monthly",
    "salary_four_weekly",
    "sv_wage",
    "modified",
]
_HOURS = [Decimal(h) for h in ("40", "36", "32", "24", "20")]


def render(world: World) -> dict[str, pd.DataFrame]:
    """Render the AFAS master data and the HR data of ``world``."""
    rng = np.random.default_rng([world.seed, _AFAS_STREAM])
    debtors = _debtors(rng, world)
    frames = {
        "afas_debtors": debtors,
        "afas_administrations": _administrations(world),
        "afas_projects": _projects(rng, world, debtors),
        "afas_worktypes": _worktypes(world),
        "afas_periods": _periods(world),
        "afas_sales_prices": _sales_prices(rng, world, debtors),
        "afas_contacts": _contacts(world, debtors),
        "afas_gl_accounts": _gl_accounts(world),
        "afas_journals": _journals(world),
        "afas_vat_codes": _vat_codes(),
        "afas_allocations": _allocations(world),
        "afas_units": pd.DataFrame(UNITS, columns=["UnitId", "Description"]),
        "afas_countries": pd.DataFrame(COUNTRIES, columns=["CountryId", "Description"]),
    }
    frames.update(_hr(rng, world))
    return {name: _nanoseconds(frame) for name, frame in frames.items()}


# ---------------------------------------------------------------------------- helpers


def _nanoseconds(frame: pd.DataFrame) -> pd.DataFrame:
    """One datetime dtype everywhere (``datetime64[ns, Europe/Amsterdam]``), whatever built the column."""
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.DatetimeTZDtype):
            frame[column] = frame[column].astype(f"datetime64[ns, {TZ}]")
    return frame


def first_of_month(day: date, shift: int = 0) -> date:
    """The first day of the month ``shift`` months after the month of ``day``."""
    index = day.year * 12 + day.month - 1 + shift
    return date(index // 12, index % 12 + 1, 1)


def _stamp(days: np.ndarray, anchor: date, rng: np.random.Generator, with_ms: bool = False) -> pd.Series:
    """Amsterdam-local office-hour timestamps ``days`` days before ``anchor`` (no DST-ambiguous hours)."""
    seconds = rng.integers(8 * 3600, 18 * 3600, len(days))
    millis = rng.integers(0, 1000, len(days)) if with_ms else np.zeros(len(days), dtype=int)
    base = np.datetime64(anchor.isoformat(), "ms")
    values = (
        base
        - days.astype("timedelta64[D]")
        + seconds.astype("timedelta64[s]")
        + millis.astype("timedelta64[ms]")
    )
    return pd.Series(pd.DatetimeIndex(values.astype("datetime64[ns]")).tz_localize(TZ))


def _midnight(days: Sequence[date | None]) -> pd.Series:
    """Tz-aware Amsterdam midnights for dates (``None`` → NaT)."""
    return pd.Series(pd.to_datetime(pd.Series(days, dtype=object)).dt.tz_localize(TZ))


def ascii_handle(text: str) -> str:
    """Lower-case ASCII letters of ``text`` (``Zoë de Vries`` → ``zoedevries``), for e-mail and user ids."""
    plain = unicodedata.normalize("NFKD", text.replace("Ø", "O").replace("ø", "o"))
    return re.sub(r"[^a-z0-9]", "", plain.encode("ascii", "ignore").decode().lower())


def _iban(rng: np.random.Generator, n: int) -> list[str]:
    """Dutch IBANs with a correct mod-97 check (fictitious bank code KOPB)."""
    result = []
    for account in rng.integers(10**9, 10**10 - 1, n):
        bban = f"KOPB{account:010d}"
        digits = "".join(str(int(ch, 36)) for ch in bban + "NL00")
        result.append(f"NL{98 - int(digits) % 97:02d}{bban}")
    return result


def org_number(customer_number: str) -> str:
    """AFAS organisation number (BcCo) of a customer: its own number range, distinct from the debtor id."""
    return str(1_000_000 + int(customer_number) - 10_000)


# ---------------------------------------------------------------------------- master data


def _debtors(rng: np.random.Generator, world: World) -> pd.DataFrame:
    c = world.customers[world.customers["in_afas"]].reset_index(drop=True)
    n = len(c)
    age = rng.integers(400, 3000, n)
    created = _stamp(age, world.anchor, rng)
    modified = _stamp(rng.integers(1, 400, n), world.anchor, rng)
    return pd.DataFrame(
        {
            "DebtorId": c["customer_number"],
            "DebtorName": c["name"],
            "BcCo": [org_number(x) for x in c["customer_number"]],
            "SearchName": [re.sub(r"[^A-Z0-9]", "", ascii_handle(x).upper())[:10] for x in c["name"]],
            "AdressLine1": c["street"] + " " + c["house_number"],
            "AdressLine3": c["postcode"] + " " + c["city"],
            "AdressLine4": "Nederland",
            "TelNr": c["phone"],
            "Email": c["email"],
            "IBAN": _iban(rng, n),
            "VatNr": c["vat_number"],
            "ChOfCommNr": c["coc_number"],
            "CollectAccount": "1300",
            "PayCon": rng.choice(["14", "30", "30", "30"], n),
            "VatDuty": _vat_duties(c["customer_number"]),
            "Blocked": c["blocked"].astype(bool),
            "CreditLimit": [Decimal(int(x)).quantize(CENT) for x in rng.choice([0, 5000, 10000, 25000], n)],
            "CurrencyId": "EUR",
            "AutoPayment": rng.random(n) < 0.3,
            "CreateDate": created,
            "ModifiedDate": modified.where(modified > created, created),
        }
    )


def _vat_duties(numbers: pd.Series) -> list[str]:
    """Mostly domestic; every debtor whose number hashes to 0 mod 20 has reverse charge.

    Derived from the number (not drawn from the generator) so every other AFAS frame stays as it was.
    """
    return [
        VAT_DUTY_REVERSE
        if int(stable_uuid("vat-duty", str(n)).replace("-", ""), 16) % 20 == 0
        else VAT_DUTY_DOMESTIC
        for n in numbers
    ]


def _administrations(world: World) -> pd.DataFrame:
    a = world.administrations
    return pd.DataFrame({"AdminId": a["admin_id"].astype(int), "AdminNm": a["name"], "AdminCd": a["code"]})


def _projects(rng: np.random.Generator, world: World, debtors: pd.DataFrame) -> pd.DataFrame:
    p = world.projects[world.projects["customer_number"].isin(debtors["DebtorId"])].reset_index(drop=True)
    n = len(p)
    created = _stamp(rng.integers(200, 2500, n), world.anchor, rng)
    period_start = first_of_month(world.anchor, -world.months)
    ready_days = rng.integers((world.anchor - period_start).days + 1, 400, n)
    ready = _stamp(ready_days, world.anchor, rng).dt.normalize()
    closed = p["closed"].astype(bool)
    return pd.DataFrame(
        {
            "ProjectId": p["project_id"],
            "Description": p["description"],
            "UnitId": p["admin_id"].astype(int),
            "ProjectGroup": np.where(p["is_default"], "SERVICE", "PROJECT"),
            "CheckedOut": closed,
            "BcCo": [org_number(x) for x in p["customer_number"]],
            "DebtorId": p["customer_number"],
            "DateStart": created.dt.normalize(),
            "DateReady": ready.where(closed, pd.NaT),
            "Chargeable": True,
            "CreateDate": created,
            "ModifiedDate": created.where(~closed, ready + pd.Timedelta(hours=9)),
        }
    )


def _worktypes(world: World) -> pd.DataFrame:
    items = world.items
    created = pd.Timestamp(first_of_month(world.anchor, -36)).tz_localize(TZ) + pd.Timedelta(hours=9)
    return pd.DataFrame(
        {
            "ItemCode": items["item_code"],
            "Description": items["description"],
            "CreateDate": created,
            "ModifiedDate": created,
            "Group": "UREN",
        }
    )


def _periods(world: World) -> pd.DataFrame:
    """Monthly periods 1–12 of every year touched; open from the first world month on, blocked before."""
    first_open = first_of_month(world.anchor, -world.months)
    years = range(first_open.year, world.anchor.year + 1)
    rows = []
    for unit in world.administrations["admin_id"].astype(int):
        for year in years:
            for month in range(1, 13):
                start = date(year, month, 1)
                rows.append((int(unit), year, month, start, first_of_month(start, 1) - timedelta(days=1)))
    frame = pd.DataFrame(rows, columns=["Unit", "Year", "Period", "from", "to"])
    return pd.DataFrame(
        {
            "Unit": frame["Unit"],
            "Year": frame["Year"],
            "Period": frame["Period"],
            "PeriodDesc": [
                f"{_MONTHS_NL[m - 1]} {y}" for y, m in zip(frame["Year"], frame["Period"], strict=True)
            ],
            "DateFrom": _midnight(list(frame["from"])),
            "DateTo": _midnight(list(frame["to"])),
            "Blocked": frame["from"] < first_open,
            "Periodtable": 1,
            "TableDesc": "Maanden",
        }
    )


def _sales_prices(rng: np.random.Generator, world: World, debtors: pd.DataFrame) -> pd.DataFrame:
    """A general price per item, plus a discounted price for a few debtors (about 1 in 25)."""
    valid_from = _midnight([date(first_of_month(world.anchor, -world.months).year, 1, 1)]).iloc[0]
    general = [
        (code, None, Decimal(price))
        for code, price in zip(world.items["item_code"], world.items["price"], strict=True)
    ]
    special = []
    chosen = debtors["DebtorId"][rng.random(len(debtors)) < 0.04]
    for debtor in chosen:
        k = int(rng.integers(0, len(general)))
        code, _, price = general[k]
        special.append((code, debtor, round_cents(price * Decimal("0.90"))))
    frame = pd.DataFrame(general + special, columns=["ItemCode", "DebtorId", "Price"])
    frame["DateStart"] = valid_from
    return frame


def _contacts(world: World, debtors: pd.DataFrame) -> pd.DataFrame:
    """Contact persons of the organisations behind the AFAS debtors."""
    c = world.contacts[world.contacts["customer_number"].isin(debtors["DebtorId"])].reset_index(drop=True)
    return pd.DataFrame(
        {
            "ContactId": np.arange(1, len(c) + 1),
            "BcCo": c["person_number"],
            "FirstName": c["first_name"],
            "LastName": c["last_name"],
            "Email": c["email"],
            "Phone": c["phone"],
            "OrgBcCo": [org_number(x) for x in c["customer_number"]],
            "DebtorId": c["customer_number"],
        }
    )


def _gl_accounts(world: World) -> pd.DataFrame:
    rows = [
        (int(unit), number, name, kind)
        for unit in world.administrations["admin_id"].astype(int)
        for number, name, kind in GL_ACCOUNTS
    ]
    rows += [
        (int(d.admin_id), d.cost_account, f"Kosten {d.name}", "Winst en verlies")
        for d in world.departments.itertuples()
    ]
    frame = pd.DataFrame(rows, columns=["Unit", "AccountNr", "Description", "AccountType"])
    return frame.sort_values(["Unit", "AccountNr"], kind="stable").reset_index(drop=True)


def _journals(world: World) -> pd.DataFrame:
    rows = [
        (int(unit), code, name, kind, False)
        for unit in world.administrations["admin_id"].astype(int)
        for code, name, kind in JOURNALS
    ]
    return pd.DataFrame(rows, columns=["UnitId", "JournalId", "Description", "JournalType", "Blocked"])


def _vat_codes() -> pd.DataFrame:
    rows = [
        (code, name, account, Decimal(rate), "1", False, "", kind)
        for code, name, account, rate, kind in VAT_CODES
    ]
    columns = ["VatCode", "Description", "AccountNr", "VatPerc", "VatDuty", "Blocked", "VatMethod", "VatType"]
    return pd.DataFrame(rows, columns=columns)


def _allocations(world: World) -> pd.DataFrame:
    """Cost centres (dimension axis 1) allowed on each department's cost account."""
    rows = [
        (int(d.admin_id), d.cost_account, "1", "Kostenplaats", d.cost_centre, d.name)
        for d in world.departments.itertuples()
        if d.cost_centre
    ]
    columns = ["Unit", "Account", "DimAx", "AxDescription", "DimCode", "CodeDescription"]
    return pd.DataFrame(rows, columns=columns)


# ---------------------------------------------------------------------------- HR


def _hr(rng: np.random.Generator, world: World) -> dict[str, pd.DataFrame]:
    employees = _employees(rng, world)
    units, placement = _org_units(rng, world, employees)
    employments = _employments(rng, world, employees, placement)
    return {
        "hr_org_units": units,
        "hr_employees": employees,
        "hr_employments": employments,
        "hr_illness": _illness(rng, world, employments),
        "hr_users": _users(rng, employees, units, employments),
    }


def _employees(rng: np.random.Generator, world: World) -> pd.DataFrame:
    """Every operator is an employee (same number), plus staff who never register time."""
    ops = world.operators
    extra = max(6, len(ops) // 5)
    first = list(ops["first_name"]) + list(rng.choice(_FIRST, extra))
    last = list(ops["last_name"]) + list(rng.choice(_LAST, extra))
    ids = list(ops["employee_number"]) + [str(1001 + len(ops) + i) for i in range(extra)]
    n = len(ids)
    born = [date(1960, 1, 1) + timedelta(days=int(d)) for d in rng.integers(0, 43 * 365, n)]
    return pd.DataFrame(
        {
            "employee_id": ids,
            "first_name": first,
            "last_name": last,
            "birth_date": _midnight(born),
            "email": [
                f"{ascii_handle(f)}.{ascii_handle(la)}.{i}@koppel.example.nl"
                for f, la, i in zip(first, last, ids, strict=True)
            ],
            "gender": rng.choice(["M", "V", "V", "M", "O"], n),
            "modified": _stamp(rng.integers(1, 120, n), world.anchor, rng, with_ms=True),
        }
    )


def _org_units(
    rng: np.random.Generator, world: World, employees: pd.DataFrame
) -> tuple[pd.DataFrame, dict[str, tuple[str, str]]]:
    """Company → departments → one team per operator group; returns the units and each employee's place.

    The place is ``(org_unit_id, kind)``; every unit's manager is an employee placed in that unit
    (teams without operators are led by the ICT manager).
    """
    ops = world.operators
    extras = list(employees["employee_id"].iloc[len(ops) :])
    depts = [
        (code.removeprefix("INT-"), name)
        for code, name in zip(world.departments["code"], world.departments["name"], strict=True)
    ]
    admin_name = str(world.administrations["name"].iloc[0])
    place = {extras[0]: ("KOPPEL", "root")}
    rows: list[tuple[str, str, str | None, Any]] = [("KOPPEL", admin_name, None, extras[0])]
    for k, (unit, name) in enumerate(depts):
        place[extras[1 + k]] = (unit, "department")
        rows.append((unit, name, "KOPPEL", extras[1 + k]))
    for k, employee in enumerate(extras[1 + len(depts) :]):
        place[employee] = (depts[k % len(depts)][0], "department")
    rows += _team_units(world, depts[0][0], rows[1][3], place)
    frame = pd.DataFrame(rows, columns=["org_unit_id", "description", "parent_id", "manager_employee_id"])
    frame["modified"] = _stamp(rng.integers(30, 700, len(frame)), world.anchor, rng, with_ms=True)
    return frame, place


def _team_units(world: World, parent: str, fallback: str, place: dict[str, tuple[str, str]]) -> list[tuple]:
    """One unit per operator group under ``parent``, led by its first operator (else by ``fallback``)."""
    ops, rows = world.operators, []
    for g, group_id in enumerate(world.operator_groups["id"]):
        unit = f"T{g + 1:02d}"
        members = list(ops["employee_number"][ops["group_id"] == group_id])
        place.update({m: (unit, "team") for m in members})
        name = str(world.operator_groups["name"].iloc[g])
        rows.append((unit, name, parent, members[0] if members else fallback))
    return rows


def _employments(
    rng: np.random.Generator, world: World, employees: pd.DataFrame, place: dict[str, tuple[str, str]]
) -> pd.DataFrame:
    """One open employment each; some had an earlier one, some left, a few hold two at once (flex)."""
    ids = list(employees["employee_id"])
    managers = {e for e, (_, kind) in place.items() if kind != "team"}
    draw = rng.random(len(ids))
    if not any(0.10 <= d < 0.14 for d in draw) and len(ids) > 1:
        draw[len(ids) // 2] = 0.12  # at least one flex construction in every world
    rows = []
    for employee, u in zip(ids, draw, strict=True):
        unit, kind = place[employee]
        rows += _employment_rows(rng, world.anchor, employee, unit, kind, u, employee in managers)
    frame = pd.DataFrame(rows)
    frame["start_date"] = _midnight(list(frame["start_date"]))
    frame["end_date"] = _midnight(list(frame["end_date"]))
    frame["modified"] = _stamp(rng.integers(1, 200, len(frame)), world.anchor, rng, with_ms=True)
    return frame[EMPLOYMENT_COLUMNS]


def _employment_rows(
    rng: np.random.Generator, anchor: date, employee: str, unit: str, kind: str, u: float, manager: bool
) -> list[dict[str, object]]:
    start = date(2008, 1, 1) + timedelta(days=int(rng.integers(0, (anchor - date(2008, 1, 1)).days - 90)))
    renumbered = rng.random() < 0.10  # DvSn differs from DvId after a contract change
    base = {"employee_id": employee, "org_unit_id": unit, "function": _FUNCTIONS[kind]}
    first = {
        **base,
        "employment_id": 1,
        "sequence_number": 2 if renumbered else 1,
        "start_date": start,
        "end_date": None,
    }
    rows = _history(rng, anchor, first, u, manager)
    for row in rows:
        row.update(_pay(rng, kind, row["function"] == "Oproepkracht"))
    return rows


def _history(
    rng: np.random.Generator, anchor: date, first: dict[str, Any], u: float, manager: bool
) -> list[dict[str, Any]]:
    """The employment rows of one employee, from the uniform draw ``u``."""
    start = first["start_date"]
    if u < 0.10 and start < anchor - timedelta(days=800):  # an earlier employment that ended
        end = start + timedelta(days=int(rng.integers(200, 600)))
        again = end + timedelta(days=int(rng.integers(30, 150)))
        second = {
            **first,
            "employment_id": 2,
            "sequence_number": first["sequence_number"] + 1,
            "start_date": again,
        }
        return [{**first, "end_date": end}, second]
    if u < 0.14:  # flex construction: a second, concurrent employment as on-call worker
        flex_start = start + timedelta(days=int(rng.integers(0, max(1, (anchor - start).days - 30))))
        flex = {
            "employment_id": 2,
            "sequence_number": 2,
            "function": "Oproepkracht",
            "start_date": flex_start,
        }
        return [first, {**first, **flex}]
    if u < 0.19 and not manager:  # left the company
        return [{**first, "end_date": anchor - timedelta(days=int(rng.integers(10, 300)))}]
    return [first]


def _pay(rng: np.random.Generator, kind: str, on_call: bool) -> dict[str, Decimal]:
    hours = Decimal(8) if on_call else _HOURS[int(rng.integers(0, len(_HOURS)))]
    low, high = (4800, 7500) if kind != "team" else (2800, 5200)
    full_time = Decimal(int(rng.integers(low, high)) // 25 * 25)
    monthly = round_cents(full_time * hours / 40)
    return {
        "hours_per_week": hours,
        "salary_monthly": monthly,
        "salary_four_weekly": round_cents(monthly * 12 / 13),
        "sv_wage": round_cents(monthly * Decimal("1.08")),  # incl. holiday pay
    }


def _illness(rng: np.random.Generator, world: World, employments: pd.DataFrame) -> pd.DataFrame:
    """Sick leave over the 30 months before the anchor; recent ones may still be open."""
    horizon = first_of_month(world.anchor, -30)
    last_day = world.anchor - timedelta(days=1)
    rows = []
    for k in rng.integers(0, len(employments), int(len(employments) * 1.2)):
        emp = employments.iloc[int(k)]
        low = max(emp["start_date"].date(), horizon)
        high = min(emp["end_date"].date(), last_day) if pd.notna(emp["end_date"]) else last_day
        if low < high:
            rows.append(
                _absence(
                    rng, emp, low + timedelta(days=int(rng.integers(0, (high - low).days))), world.anchor
                )
            )
    frame = pd.DataFrame(rows).sort_values(["start", "employee_id"], kind="stable").reset_index(drop=True)
    ids = np.arange(1, len(frame) + 1)
    return pd.DataFrame(
        {
            "absence_id": ids,
            "guid": ["{" + stable_uuid("absence", world.seed, i).upper() + "}" for i in ids],
            "employee_id": frame["employee_id"],
            "employment_id": frame["employment_id"].astype(int),
            "start_date": _local(frame["start"]),
            "report_date": _local(frame["report"]),
            "expected_end": _midnight(list(frame["expected"])),
            "end_date": _local(frame["end"]),
            "presence_pct": frame["presence"],
            "modified": _local(frame["modified"]),
        }
    )


def _absence(rng: np.random.Generator, emp: pd.Series, day: date, anchor: date) -> dict[str, object]:
    start = pd.Timestamp(day) + pd.Timedelta(minutes=int(rng.integers(8 * 60, 12 * 60)))
    report = start + pd.Timedelta(days=int(rng.integers(0, 3)), minutes=int(rng.integers(0, 240)))
    length = int(rng.choice([1, 2, 3, 4, 5, 8, 12, 20, 45, 120]))
    end = pd.Timestamp(day + timedelta(days=length)) + pd.Timedelta(hours=17)
    still_open = end >= pd.Timestamp(anchor)
    modified = min(
        report
        if still_open
        else end + pd.Timedelta(days=int(rng.integers(0, 3)), minutes=int(rng.integers(1, 59))),
        pd.Timestamp(anchor) - pd.Timedelta(hours=7),
    )
    return {
        "employee_id": emp["employee_id"],
        "employment_id": emp["employment_id"],
        "start": start,
        "report": max(report, start),
        "expected": day + timedelta(days=int(rng.integers(3, 29))),
        "end": pd.NaT if still_open else end,
        "presence": Decimal(50) if rng.random() < 0.2 else Decimal(0),
        "modified": max(modified, start),
    }


def _local(values: pd.Series) -> pd.Series:
    return pd.Series(pd.to_datetime(values).dt.tz_localize(TZ, ambiguous=False, nonexistent="shift_forward"))


def _users(
    rng: np.random.Generator, employees: pd.DataFrame, units: pd.DataFrame, employments: pd.DataFrame
) -> pd.DataFrame:
    """Profit user accounts: every manager and about one in ten other employees; leavers are blocked."""
    managers = set(units["manager_employee_id"])
    active = set(employments.loc[employments["end_date"].isna(), "employee_id"])
    rows, taken = [], set()
    for e in employees.itertuples():
        if e.employee_id not in managers and rng.random() >= 0.10:
            continue
        handle = (ascii_handle(e.first_name)[:1] + ascii_handle(e.last_name))[:20]
        while handle in taken:
            handle = handle + "2" if not handle[-1].isdigit() else handle[:-1] + str(int(handle[-1]) + 1)
        taken.add(handle)
        rows.append(
            {
                "user_id": f"{ENVIRONMENT_NUMBER}.{handle}",
                "employee_id": e.employee_id,
                "upn": f"{handle}@koppel.example.nl",
                "email": e.email,
                "blocked": e.employee_id not in active or rng.random() < 0.03,
            }
        )
    return pd.DataFrame(rows, columns=["user_id", "employee_id", "upn", "email", "blocked"])
