"""The AFAS simulator's mutable state (``app.state.sim``): tables, master-data rules, sequences, helpers.

Tables are filled from the world's ``afas_*`` and ``hr_*`` frames; posted documents land in tables of
their own and show through the read-back GetConnectors. The ``require_*`` methods are the business
rules the UpdateConnectors share (they raise ``AfasError`` with Profit's messages). Test helpers:
``block_debtor``, ``close_period``, ``rename_organisation``, ``reject_next_post``, ``documents``,
``posted`` and ``ensure_master_data_for`` (in ``sandbox/afas/fixtures.py``).
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from sandbox.afas.connectors import CONNECTORS, GetConnector, get_connector
from sandbox.afas.errors import AfasError
from sandbox.afas.oauth import OAuthClient, OAuthServer, default_client
from sandbox.afas.query import Query, matching, ordered
from sandbox.afas.tables import AMSTERDAM, Table, fold, rows_from_frame
from sandbox.world import World
from sandbox.world import afas as world_afas

_STREAM = 0xAF45
_CACHE_SIZE = 32
_KEYS = {
    "debtors": "DebtorId",
    "administrations": "AdminId",
    "projects": "ProjectId",
    "worktypes": "ItemCode",
    "periods": "_key",
    "realizations": "Identity",
    "invoices": "OrNu",
    "invoice_lines": "GuLi",
    "contacts": "ContactId",
    "relations": "BcCo",
    "illness": "AbsenceId",
    "users": "UserId",
    "org_units": "OrgUnitId",
    "employees": "EmployeeId",
    "employments": "EmploymentKey",
    "journals": "_key",
    "vat_codes": "VatCode",
    "allocations": "_key",
    "units": "UnitId",
}
# Secondary indexes for the look-ups the rules do on every post.
_INDEXED = {
    "realizations": ("XpRe",),
    "invoice_lines": ("OrNu",),
    "debtors": ("BcCo",),
    "contacts": ("OrgNumber",),
    "employments": ("EmployeeId",),
    "illness": ("EmployeeId",),
}
_NO_ITEM_CHECK = {"3", "4"}  # text and subtotal lines carry no real item


@dataclass
class AfasOptions:
    """Configuration of one simulated Profit environment."""

    token: str | None = None  # full token XML or its 64-hex data; default derived from the world's seed
    environment_number: str = world_afas.ENVIRONMENT_NUMBER
    environment_type: str = "test"  # production | test | accept (only the envid letter depends on it)
    get_connectors: frozenset[str] | None = None  # granted by the app connector; None = all served
    update_connectors: frozenset[str] | None = None
    strict_quantity: bool = True  # PtRealization Qu must be a multiple of 0.05 (decision §11.11)
    oom_cells: int | None = None  # rows × columns above which a GetConnector answers "Out of memory"
    allowed_ips: frozenset[str] | None = None  # IP allow-list; others get 403
    profit_version: str = "6.6.9"
    app_name: str = "Koppel"
    default_unit: int = 1  # administration used when a body leaves UnId/Unit out
    # OAuth (Profit 9, sandbox/afas/oauth.py); every field can also be changed at run time on sim.options.
    auth_mode: str = "classic"  # app connector: classic (token only) | hybrid | oauth (OAuth only)
    oauth_client: OAuthClient | None = None  # client id, secret, certificate; default derived from the seed
    secret_expired: bool = False  # the client secret is past its expiry date (Profit 9 default 180 days)
    token_lifetime: int = 3600  # expires_in of issued access tokens, seconds
    max_body_bytes: int = 75 * 1024 * 1024  # larger bodies → 413 (reference §1: max 75 MB per call)


@dataclass
class Posted:
    """One successful UpdateConnector call, for tests."""

    connector: str
    verb: str
    body: Any
    result: Any


def token_xml(data: str) -> str:
    """The full token XML around its 64-hex data part."""
    return f"<token><version>1</version><data>{data}</data></token>"


def default_token(seed: int) -> str:
    """The sandbox's token XML for a seed (deterministic, so every run of a seed shares credentials)."""
    return token_xml(hashlib.sha256(f"koppel-afas-token|{seed}".encode()).hexdigest().upper())


def token_header(token: str) -> str:
    """The ``Authorization`` header value for a token XML: ``AfasToken base64(xml)``."""
    return "AfasToken " + base64.b64encode(token.encode()).decode()


def _token_data(token: str) -> str:
    match = re.search(r"<data>([0-9A-Fa-f]{64})</data>", token) or re.fullmatch(
        r"\s*([0-9A-Fa-f]{64})\s*", token
    )
    if match is None:
        raise ValueError("AFAS token must be the token XML or its 64 hex characters")
    return match.group(1).upper()


class AfasSim:
    """Everything one simulated AFAS environment knows and remembers."""

    def __init__(self, world: World, options: AfasOptions | None = None) -> None:
        if "afas_debtors" not in world.extra:  # a core-only world: render its AFAS side now
            world.extra.update(world_afas.render(world))
        self.world = world
        self.options = options or AfasOptions()
        self.token = (
            token_xml(_token_data(self.options.token)) if self.options.token else default_token(world.seed)
        )
        self.token_data = _token_data(self.token)
        self.oauth = OAuthServer(self.options.oauth_client or default_client(world.seed))
        self.client_id = self.oauth.client.client_id
        self.client_secret = self.oauth.client.client_secret
        self.private_key = self.oauth.client.private_key_pem
        letter = {"production": "O", "test": "T", "accept": "A"}.get(self.options.environment_type, "T")
        self.envid = f"{letter}{self.options.environment_number}AA"
        self.tables = _build_tables(world)
        self.accounts: set[tuple[int, str]] = set()
        self.creditors: set[str] = set()
        self.items: dict[str, set[str]] = {"1": {fold(r["ItemCode"]) for r in self.tables["worktypes"]}}
        self.posted: list[Posted] = []
        self.errors: list[dict[str, Any]] = []
        self.rejections: dict[str, str | None] = {}
        self.calls = 0
        self._sequences: dict[str, int] = {}
        self._rng = np.random.default_rng([world.seed, _STREAM, 1])
        self._cache: OrderedDict[tuple[object, ...], np.ndarray] = OrderedDict()
        frames = world.extra
        for row in frames["afas_gl_accounts"].itertuples():
            self.accounts.add((int(row.Unit), fold(row.AccountNr)))
        countries = frames.get("afas_countries")
        codes = countries["CountryId"] if countries is not None else [c for c, _ in world_afas.COUNTRIES]
        self.countries: set[str] = {fold(code) for code in codes}

    # ------------------------------------------------------------------ reading

    def run_get(self, connector: GetConnector, query: Query) -> list[dict[str, Any]]:
        """The rows of one GetConnector call: filtered, ordered (or shuffled per call) and paged."""
        table = self.tables[connector.table]
        self.calls += 1
        key = (connector.table, table.version, *query.signature())
        found = self._cache.get(key)
        if found is None:
            view = table.view()
            found = np.flatnonzero(matching(view, query.groups, table.types))
            if query.order:
                found = ordered(view, found, query.order)
            self._remember(key, found)
        if not query.order:
            found = np.random.default_rng([self.world.seed, _STREAM, 2, self.calls]).permutation(found)
        page = found if query.everything else found[query.skip : query.skip + query.take]
        rows = table.rows
        return [rows[int(i)] for i in page]

    def _remember(self, key: tuple[object, ...], found: np.ndarray) -> None:
        self._cache[key] = found
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)

    def documents(self, connector_id: str) -> list[dict[str, Any]]:
        """The rows a GetConnector would show (all of them, its columns only), e.g. posted invoices."""
        connector = get_connector(connector_id)
        if connector is None:
            raise KeyError(connector_id)
        names = [c.id for c in connector.columns]
        return [{name: row.get(name) for name in names} for row in self.tables[connector.table]]

    # ------------------------------------------------------------------ clocks, ids

    def now(self) -> datetime:
        """Amsterdam wall-clock time without zone, the way Profit stores it."""
        return datetime.now(AMSTERDAM).replace(tzinfo=None, microsecond=0)

    def new_guid(self) -> str:
        """A ``{UPPER-CASE-GUID}`` from the seeded stream."""
        return "{" + str(uuid.UUID(bytes=self._rng.bytes(16), version=4)).upper() + "}"

    def log_reference(self) -> str:
        """A 32-hex ``profitLogReference``."""
        return self._rng.bytes(16).hex()

    def next_id(self, table: str, start: int) -> str:
        """The next free number for a keyed table (one past the highest numeric key, at least ``start``)."""
        current = self._sequences.get(table)
        if current is None:
            key = self.tables[table].key or ""
            numbers = [
                int(v) for r in self.tables[table] if re.fullmatch(r"\d{1,15}", v := str(r.get(key) or ""))
            ]
            current = max([start - 1, *numbers]) + 1
        while self.tables[table].get(str(current)) is not None or self.tables[table].get(current) is not None:
            current += 1
        self._sequences[table] = current + 1
        return str(current)

    def counter(self, name: str, start: int) -> int:
        """The next value of a named counter (journal-entry numbers per administration, BcId, …)."""
        number = self._sequences.get(name, start)
        self._sequences[name] = number + 1
        return number

    # ------------------------------------------------------------------ business rules

    def require_debtor(self, debtor_id: object, blocked_ok: bool = False) -> dict[str, Any]:
        """The debtor row; refuses unknown and blocked debtors and pending test rejections."""
        row = self.tables["debtors"].get(str(debtor_id))
        if row is None:
            raise AfasError("not_exists", {"label": "Verkooprelatie"})
        pending = fold(row["DebtorId"])
        if pending in self.rejections:
            text = self.rejections.pop(pending)
            raise AfasError("rejected", {"debtor": row["DebtorId"]}, text=text)
        if row["Blocked"] and not blocked_ok:
            raise AfasError("debtor_blocked", {"debtor": row["DebtorId"]})
        return row

    def require_project(self, project_id: object, debtor_id: object | None = None) -> dict[str, Any]:
        """The project row; refuses unknown, closed and other debtors' projects."""
        row = self.tables["projects"].get(str(project_id))
        if row is None:
            raise AfasError("not_exists", {"label": "Project"})
        if debtor_id is not None and fold(row["DebtorId"]) != fold(str(debtor_id)):
            raise AfasError("project_other_debtor", {"project": row["ProjectId"], "debtor": debtor_id})
        if row["DateReady"] is not None or row["CheckedOut"]:
            raise AfasError("project_closed", {"project": row["ProjectId"]})
        return row

    def require_item(self, item_type: object, code: object) -> None:
        """Refuse an item code unknown for its item type (work type, article, costs, …)."""
        kind = str(item_type)
        if kind not in _NO_ITEM_CHECK and fold(str(code)) not in self.items.get(kind, set()):
            raise AfasError("not_exists", {"label": "Itemcode"})

    def require_employee(self, employee_id: object) -> dict[str, Any]:
        """The employee row (``EmId``)."""
        row = self.tables["employees"].get(str(employee_id))
        if row is None:
            raise AfasError("not_exists", {"label": "Medewerker"})
        return row

    def require_unit(self, unit: object) -> int:
        """The administration number, refusing unknown ones."""
        row = self.tables["administrations"].get(int(str(unit)) if str(unit).isdigit() else unit)
        if row is None:
            raise AfasError("not_exists", {"label": "Administratie"})
        return int(row["AdminId"])

    def require_open_period(self, unit: int, year: int, period: int) -> dict[str, Any]:
        """The period row; refuses missing and blocked periods."""
        row = self.tables["periods"].get(f"{unit}/{year}/{period}")
        if row is None:
            raise AfasError("period_missing", {"unit": unit, "year": year, "period": period})
        if row["Blocked"]:
            raise AfasError("period_blocked", {"unit": unit, "year": year, "period": period})
        return row

    def period_of(self, unit: int, moment: datetime) -> dict[str, Any]:
        """The open period of ``unit`` that contains ``moment`` (monthly periods)."""
        return self.require_open_period(unit, moment.year, moment.month)

    def require_account(self, unit: int, kind: str, number: object) -> None:
        """Ledger account (1), debtor (2) or creditor (3) must exist."""
        text = str(number)
        if kind == "2":
            self.require_debtor(text, blocked_ok=True)
        elif kind == "3" and fold(text) not in self.creditors:
            raise AfasError("not_exists", {"label": "Crediteur"})
        elif kind == "1" and (unit, fold(text)) not in self.accounts:
            raise AfasError("not_exists", {"label": "Grootboekrekening"})

    def require_journal(self, unit: int, journal: object) -> None:
        """The journal (``JoCo``) must exist in the administration and not be blocked."""
        row = self.tables["journals"].get(f"{unit}/{journal}")
        if row is None or row["Blocked"]:
            raise AfasError("not_exists", {"label": "Dagboek"})

    def require_vat_code(self, code: object) -> None:
        """The VAT code (``VaId``) must exist and not be blocked."""
        row = self.tables["vat_codes"].get(str(code))
        if row is None or row["Blocked"]:
            raise AfasError("not_exists", {"label": "Btw-code"})

    def require_allocation(self, unit: int, account: object, axis: int, code: object) -> None:
        """A dimension code (``DiC1``–``DiC5``; axis 1 = cost centre) must be allowed on the account."""
        if self.tables["allocations"].get(f"{unit}/{account}/{axis}/{code}") is None:
            label = "Kostenplaats" if axis == 1 else "Verbijzonderingscode"
            raise AfasError("not_exists", {"label": label})

    def require_unit_of_measure(self, unit: object) -> None:
        """The unit (``BiUn``, a realisation's ``UnId``) must exist."""
        if self.tables["units"].get(str(unit)) is None:
            raise AfasError("not_exists", {"label": "Eenheid"})

    def require_country(self, country: object) -> None:
        """The country code (``CoId``) must exist."""
        if fold(str(country)) not in self.countries:
            raise AfasError("not_exists", {"label": "Land"})

    # ------------------------------------------------------------------ helpers for tests and demos

    def block_debtor(self, debtor_id: str, blocked: bool = True) -> None:
        """Block (or unblock) a debtor for delivery."""
        row = self.tables["debtors"].get(debtor_id)
        if row is None:
            raise KeyError(debtor_id)
        self.tables["debtors"].update(row, {"Blocked": blocked, "ModifiedDate": self.now()})

    def unblock_debtor(self, debtor_id: str) -> None:
        """Undo ``block_debtor``."""
        self.block_debtor(debtor_id, blocked=False)

    def close_period(self, unit: int, year: int, period: int, blocked: bool = True) -> None:
        """Block (or reopen) a financial period."""
        row = self.tables["periods"].get(f"{unit}/{year}/{period}")
        if row is None:
            raise KeyError((unit, year, period))
        self.tables["periods"].update(row, {"Blocked": blocked})

    def open_period(self, unit: int, year: int, period: int) -> None:
        """Undo ``close_period``."""
        self.close_period(unit, year, period, blocked=False)

    def rename_organisation(self, number: str, name: str) -> None:
        """Rename an organisation (by its BcCo or a debtor id); its debtors and contacts follow."""
        debtor = self.tables["debtors"].get(number)
        bcco = debtor["BcCo"] if debtor is not None else number
        org = self.tables["relations"].get(bcco)
        if org is None:
            raise KeyError(number)
        self.apply_organisation(org, {"Name": name})

    def reject_next_post(self, debtor_id: str, message: str | None = None) -> None:
        """Make the next UpdateConnector call that references ``debtor_id`` fail with a business error."""
        self.rejections[fold(debtor_id)] = message

    def ensure_master_data_for(self, connector: str, body: Any, verb: str = "POST") -> None:
        """Add whatever ``body`` refers to, so the rules accept it (see ``sandbox/afas/fixtures.py``)."""
        from sandbox.afas.fixtures import ensure_master_data_for  # the fixtures build on this module

        ensure_master_data_for(self, connector, body, verb)

    def apply_organisation(self, org: dict[str, Any], changes: dict[str, Any]) -> None:
        """Change an organisation and mirror name/address/contact data onto its debtors and contacts."""
        now = self.now()
        self.tables["relations"].update(org, changes)
        mirror = {"Name": "DebtorName", "AdressLine1": "AdressLine1", "AdressLine3": "AdressLine3"}
        mirror |= {
            "AdressLine4": "AdressLine4",
            "TelWork": "TelNr",
            "MailWork": "Email",
            "ChOfCommNr": "ChOfCommNr",
        }
        debtor_changes = {mirror[k]: v for k, v in changes.items() if k in mirror}
        for debtor in self.tables["debtors"].where(BcCo=org["BcCo"]):
            self.tables["debtors"].update(debtor, {**debtor_changes, "ModifiedDate": now})
        if "Name" in changes:
            for contact in self.tables["contacts"].where(OrgNumber=org["BcCo"]):
                self.tables["contacts"].update(contact, {"Name": changes["Name"], "ModifiedDate": now})


# ---------------------------------------------------------------------------- building the tables


def _types(table: str) -> dict[str, str]:
    types: dict[str, str] = {}
    for connector in CONNECTORS:
        if connector.table == table:
            types.update(connector.types)
    return types


def _build_tables(world: World) -> dict[str, Table]:
    frames = world.extra
    names = {c.table for c in CONNECTORS}
    tables = {
        name: Table(name, _types(name), _KEYS.get(name), _INDEXED.get(name, ())) for name in sorted(names)
    }
    sources = {
        "debtors": frames["afas_debtors"],
        "administrations": frames["afas_administrations"],
        "projects": frames["afas_projects"],
        "worktypes": frames["afas_worktypes"],
        "periods": frames["afas_periods"].assign(
            _key=lambda f: f["Unit"].astype(str) + "/" + f["Year"].astype(str) + "/" + f["Period"].astype(str)
        ),
        "sales_prices": frames["afas_sales_prices"],
        "journals": frames["afas_journals"].assign(
            _key=lambda f: f["UnitId"].astype(str) + "/" + f["JournalId"].astype(str)
        ),
        "vat_codes": frames["afas_vat_codes"],
        "allocations": frames["afas_allocations"].assign(
            _key=lambda f: f["Unit"].astype(str) + "/" + f["Account"] + "/" + f["DimAx"] + "/" + f["DimCode"]
        ),
        "units": frames.get("afas_units", pd.DataFrame(world_afas.UNITS, columns=["UnitId", "Description"])),
        "contacts": _contacts(frames),
        "relations": _relations(frames),
        "org_units": _org_units(frames),
        "employees": _employees(frames),
        "employments": _employments(frames),
        "illness": _illness(frames),
        "users": _users(frames),
    }
    for name, frame in sources.items():
        rows = rows_from_frame(frame, tables[name].types)
        for row, extra in zip(rows, _hidden(frame), strict=True):
            tables[name].add({**row, **extra})
    return tables


def _hidden(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Columns starting with ``_`` are kept on the rows for the rules, never shown by a GetConnector."""
    hidden = [c for c in frame.columns if c.startswith("_")]
    if not hidden:
        return [{} for _ in range(len(frame))]
    values = [frame[c].astype(object).where(frame[c].notna(), None).tolist() for c in hidden]
    return [dict(zip(hidden, cells, strict=True)) for cells in zip(*values, strict=True)]


def _contacts(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    contacts, debtors = frames["afas_contacts"], frames["afas_debtors"].set_index("DebtorId")
    org = debtors.loc[contacts["DebtorId"]].reset_index()
    return pd.DataFrame(
        {
            "Type": "PRS",
            "ContactId": contacts["ContactId"],
            "Name": org["DebtorName"],
            "OrgNumber": contacts["OrgBcCo"],
            "PerNumber": contacts["BcCo"],
            "Blocked": False,
            "AddressLine1": org["AdressLine1"],
            "AddressLine3": org["AdressLine3"],
            "AddressLine4": org["AdressLine4"],
            "MobWork": contacts["Phone"],
            "MailWork": contacts["Email"],
            "FullName": contacts["FirstName"] + " " + contacts["LastName"],
            "CreateDate": org["CreateDate"],
            "ModifiedDate": org["ModifiedDate"],
        }
    )


def _relations(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    d, c = frames["afas_debtors"], frames["afas_contacts"]
    orgs = pd.DataFrame(
        {
            "BcCo": d["BcCo"],
            "Type": "O",
            "SearchName": d["SearchName"],
            "Name": d["DebtorName"],
            "AdressLine1": d["AdressLine1"],
            "AdressLine3": d["AdressLine3"],
            "AdressLine4": d["AdressLine4"],
            "TelWork": d["TelNr"],
            "MailWork": d["Email"],
            "ChOfCommNr": d["ChOfCommNr"],
            "_FiNr": d["VatNr"],
        }
    )
    people = pd.DataFrame(
        {
            "BcCo": c["BcCo"],
            "Type": "P",
            "SearchName": [n.upper()[:10] for n in c["LastName"]],
            "Name": c["FirstName"] + " " + c["LastName"],
            "TelWork": c["Phone"],
            "MailWork": c["Email"],
            "_FiNm": c["FirstName"],
            "_LaNm": c["LastName"],
        }
    )
    return pd.concat([orgs, people], ignore_index=True)


def _org_units(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    u = frames["hr_org_units"]
    return pd.DataFrame(
        {
            "OrgUnitId": u["org_unit_id"],
            "Description": u["description"],
            "ParentId": u["parent_id"],
            "ManagerId": u["manager_employee_id"],
            "ModifiedDate": u["modified"],
        }
    )


def _employees(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    e = frames["hr_employees"]
    # AFAS keeps the tussenvoegsel apart (KnPerson.Is): "van den Berg" is Prefix "van den", LastName "Berg"
    words = [str(name).split() for name in e["last_name"]]
    return pd.DataFrame(
        {
            "EmployeeId": e["employee_id"],
            "FirstName": e["first_name"],
            "Prefix": [" ".join(w[:-1]) or None for w in words],
            "LastName": [w[-1] if w else None for w in words],
            "BirthDate": e["birth_date"],
            "Email": e["email"],
            "Gender": e["gender"],
            "ModifiedDate": e["modified"],
        }
    )


def employment_key(employee_id: object, employment_id: object) -> str:
    """``EmploymentKey`` of Koppel_HR_Employments: ``<EmployeeId>.<DvId>``."""
    return f"{employee_id}.{employment_id}"


def employer_of(employee_id: object) -> str:
    """The sandbox's employer (werkgever) of an employee: "2" for every third employee number, else "1"."""
    digits = "".join(c for c in str(employee_id) if c.isdigit())
    return "2" if digits and int(digits) % 3 == 0 else "1"


def _employments(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    e = frames["hr_employments"]
    return pd.DataFrame(
        {
            "EmploymentKey": [
                employment_key(a, b) for a, b in zip(e["employee_id"], e["employment_id"], strict=True)
            ],
            "EmployeeId": e["employee_id"],
            "DvId": e["employment_id"],
            "DvSn": e["sequence_number"],
            "EmployerId": [employer_of(x) for x in e["employee_id"]],
            "OrgUnitId": e["org_unit_id"],
            "Function": e["function"],
            "StartDate": e["start_date"],
            "EndDate": e["end_date"],
            "HoursPerWeek": e["hours_per_week"],
            "SalaryMonthly": e["salary_monthly"],
            "SalaryFourWeekly": e["salary_four_weekly"],
            "SvWage": e["sv_wage"],
            "ModifiedDate": e["modified"],
        }
    )


def _illness(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    i = frames["hr_illness"]
    closed = i["end_date"].notna()
    return pd.DataFrame(
        {
            "GUID": i["guid"],
            "EmployerId": [employer_of(x) for x in i["employee_id"]],
            "EmployeeId": i["employee_id"],
            "AbsenceId": i["absence_id"],
            "StartDate": i["start_date"],
            "EndDate": i["end_date"],
            "AbsenceTypeId": "Z",
            "AbsenceTypeDesc": "Ziek",
            "Presence": i["presence_pct"],
            "ModifiedDate": i["modified"],
            "ReportDate": i["report_date"],
            "ExEndDate": i["expected_end"],
            "FirstDay": 0,
            "DvId": i["employment_id"],
            "Continuous": False,
            "Vangnet": 0,
            "NoStatistic": 0,
            "ReportEndDate": i["end_date"],
            "ReasonEnd": pd.Series(["1" if c else None for c in closed], dtype=object),
            "ApplyQualifyingDays": 0,
        }
    )


def _users(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    u, e = frames["hr_users"], frames["hr_employees"].set_index("employee_id")
    people = e.loc[u["employee_id"]].reset_index()
    return pd.DataFrame(
        {
            "UserId": u["user_id"],
            "Description": people["first_name"] + " " + people["last_name"],
            "UPN": u["upn"],
            "Blocked": u["blocked"],
            "Email": u["email"],
            "Windows": False,
            "Connector": False,
            "OutSite": True,
            "InSite": True,
            "EmployeeId": u["employee_id"],
        }
    )


def quantity_ok(quantity: Decimal) -> bool:
    """True when ``quantity`` (hours) is a whole multiple of 0.05 (three minutes, decision §11.11)."""
    return (quantity * 20) == (quantity * 20).to_integral_value()
