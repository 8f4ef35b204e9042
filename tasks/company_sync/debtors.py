"""create-missing-debtors: TOPdesk branches with billable hours but no AFAS debtor become sales relations.

**Which branches.** A branch is billable when it has time registrations with minutes in the window
(``read_time_registrations``: the same five kinds and the same branch attribution the invoice flow uses).
It misses a debtor when its ``clientReferenceNumber`` is empty or no AFAS ``DebtorId``. Archived branches,
internal departments, the ignore list and ``never_create`` are skipped, each with its reason.

**Exactly once.** The new organisation gets a number derived from the TOPdesk branch id
(``organisation_number``: prefix + the id's first hex digits, AFAS ``BcCo`` ≤ 15) and ``MatchOga = 0``
(match on that number). AFAS keeps ``BcCo`` on the debtor (``Profit_Debtor.BcCo``), so:

- before planning, every debtor is read: a branch whose organisation number already has a debtor (an
  earlier run created it and crashed before writing the number back to TOPdesk) is only linked;
- the insert goes through ``insert_once`` with that reference: after a lost answer it looks the debtor
  up by ``BcCo`` instead of posting again;
- should two runs race, AFAS itself refuses the second ``KnSalesRelationOrg`` for an organisation that is
  already a debtor ("Organisatie X is al verkooprelatie Y"), and the look-up finds the first one.

The debtor number AFAS assigns is then written back to the branch (``PATCH clientReferenceNumber``).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from connectors.afas.client import AfasClient
from connectors.afas.payloads import Reference, element
from connectors.errors import BusinessError, RequestRejected, UncertainOutcome
from connectors.topdesk import masterdata as md
from connectors.topdesk.client import TopdeskClient
from tasks.company_sync.config import ORGANISATION_NUMBER_LENGTH, CreateDebtors
from tasks.company_sync.fields import split_house_number, text
from tasks.company_sync.plan import is_archived, records

PLAN_COLUMNS = [
    "branch_id",
    "branch_name",
    "current_number",
    "minutes",
    "registrations",
    "organisation_number",
    "action",
    "debtor_number",
    "reason",
]
OUTCOME_COLUMNS = [
    "branch_id",
    "branch_name",
    "action",
    "organisation_number",
    "current_number",  # the branch's clientReferenceNumber before …
    "debtor_number",  # … and after: the AFAS debtor
    "status",
    "message",
]
VAT_ID_LENGTH = 21  # KnSalesRelationOrg.VaId maxLength
CONNECTOR = "KnSalesRelationOrg"


def organisation_number(branch_id: str, prefix: str = "TD") -> str:
    """The AFAS organisation number (``BcCo``) for a TOPdesk branch: stable, unique, at most 15 characters.

    A TOPdesk id is a UUID: its hex digits are kept (52 bits behind a two-letter prefix; a clash among
    even a million branches has a chance below one in ten million). Any other id is hashed.
    """
    try:
        digits = uuid.UUID(str(branch_id)).hex
    except ValueError:
        digits = hashlib.sha256(str(branch_id).encode()).hexdigest()
    return f"{prefix}{digits.upper()}"[:ORGANISATION_NUMBER_LENGTH]


def reference(org_number: str) -> Reference:
    """Where the debtor of an organisation Koppel created is found: ``Profit_Debtor`` by ``BcCo``."""
    return Reference("Profit_Debtor", "BcCo", org_number, key_fields=("DebtorId", "BcCo"))


def billable_branches(registrations: pd.DataFrame) -> pd.DataFrame:
    """Per branch id: the minutes and number of registrations with a positive duration."""
    minutes = pd.to_numeric(registrations.get("minutes"), errors="coerce")
    mask = (
        minutes.gt(0).fillna(False).to_numpy()
        & registrations["branch_id"].map(lambda v: bool(text(v))).to_numpy()
    )
    kept = pd.DataFrame(
        {"branch_id": registrations.loc[mask, "branch_id"].map(text), "minutes": minutes[mask]}
    )
    grouped = kept.groupby("branch_id", sort=True)["minutes"].agg(["sum", "count"]).reset_index()
    return pd.DataFrame(
        {
            "branch_id": grouped["branch_id"].astype(object),
            "minutes": grouped["sum"].astype(int).astype(object),
            "registrations": grouped["count"].astype(int).astype(object),
        }
    )


def plan_missing_debtors(
    branches: pd.DataFrame,
    billable: pd.DataFrame,
    debtors: pd.DataFrame,
    skip: Mapping[str, str],
    prefix: str = "TD",
) -> pd.DataFrame:
    """One row per billable branch without a debtor: ``create``, ``link`` (debtor exists) or ``skip``.

    ``skip``: branch id, branch name or customer number → why it never becomes a debtor.
    """
    numbers = {text(v) for v in debtors["DebtorId"]} - {""}
    by_org = {text(o): text(d) for o, d in zip(debtors["BcCo"], debtors["DebtorId"], strict=True) if text(o)}
    by_id = {text(b["id"]): b for b in records(branches)}
    rows = []
    for hours in records(billable):
        branch = by_id.get(hours["branch_id"], {"id": hours["branch_id"]})
        if text(branch.get("clientReferenceNumber")) not in numbers:
            rows.append(_candidate(branch, hours, by_org, skip, prefix))
    return pd.DataFrame(rows, columns=PLAN_COLUMNS, dtype=object)


def _candidate(
    branch: Mapping, hours: Mapping, by_org: Mapping[str, str], skip: Mapping[str, str], prefix: str
) -> dict:
    org = organisation_number(text(branch["id"]), prefix)
    number, name = text(branch.get("clientReferenceNumber")), text(branch.get("name"))
    row = {
        "branch_id": text(branch["id"]),
        "branch_name": name,
        "current_number": number,
        **hours,
        "organisation_number": org,
    }
    row |= {"action": "create", "debtor_number": None, "reason": "billable hours, no AFAS debtor"}
    skipped = _skip_reason(branch, skip)
    if skipped:
        row |= {"action": "skip", "reason": skipped}
    elif org in by_org:
        row |= {
            "action": "link",
            "debtor_number": by_org[org],
            "reason": f"AFAS has debtor {by_org[org]} for this branch already: write it back",
        }
    return row


def _skip_reason(branch: Mapping, skip: Mapping[str, str]) -> str:
    if "name" not in branch:
        return "branch not found in TOPdesk"
    if is_archived(branch):
        return "archived branch: unarchive it first if it is a customer"
    for value in (text(branch["id"]), text(branch.get("name")), text(branch.get("clientReferenceNumber"))):
        if value and value in skip:
            return skip[value]
    if not text(branch.get("name")):
        return "branch has no name"
    if len(text(branch.get("vatNumber"))) > VAT_ID_LENGTH:
        return f"vatNumber longer than AFAS's {VAT_ID_LENGTH} characters: {text(branch.get('vatNumber'))!r}"
    return ""


def sales_relation(branch: Mapping[str, Any], org_number: str, config: CreateDebtors) -> dict[str, Any]:
    """The ``KnSalesRelationOrg`` element for a branch: a new debtor with a nested new organisation.

    Field codes (reference §7): ``CuId`` currency, ``IsDb`` is a debtor, ``PaCd`` payment condition,
    ``VaDu`` VAT duty, ``ColA`` collective account, ``PfId`` profile, ``VaId`` VAT number.
    """
    d = config.defaults
    fields = {"CuId": d.currency, "IsDb": True, "PaCd": d.payment_condition, "VaDu": d.vat_duty}
    optional = {"ColA": d.collective_account, "PfId": d.profile, "VaId": text(branch.get("vatNumber"))}
    fields |= {k: v for k, v in optional.items() if v}
    return element(fields, objects={"KnOrganisation": organisation(branch, org_number, config)})


def organisation(branch: Mapping[str, Any], org_number: str, config: CreateDebtors) -> dict[str, Any]:
    """The nested ``KnOrganisation``: matched on its number (``MatchOga`` 0 = ``BcCo``), never auto-numbered.

    ``Nm`` name, ``TeNr`` phone, ``EmAd`` e-mail, ``Re`` remark (the TOPdesk branch id, for people),
    ``PadAdr`` the visiting address is the postal address.
    """
    fields = {
        "MatchOga": "0",
        "BcCo": org_number,
        "AutoNum": False,
        "PadAdr": True,
        "Nm": text(branch["name"]),
    }
    optional = {"TeNr": text(branch.get("phone")), "EmAd": text(branch.get("email"))}
    fields |= {k: v for k, v in optional.items() if v}
    fields["Re"] = f"TOPdesk branch {text(branch['id'])} (created by Koppel)"
    address = visiting_address(branch, config)
    return element(fields, objects={"KnBasicAddressAdr": element(address)} if address else None)


def visiting_address(branch: Mapping[str, Any], config: CreateDebtors) -> dict[str, Any] | None:
    """``KnBasicAddressAdr`` from the branch address; ``None`` when the branch has no address.

    ``Ad`` street, ``HmNr``/``HmAd`` number and addition, ``ZpCd`` postcode, ``Rs`` city, ``CoId`` country.
    """
    street, city = text(branch.get("address.street")), text(branch.get("address.city"))
    if not street and not city:
        return None
    number, addition = split_house_number(branch.get("address.number"))
    country = config.countries.get(text(branch.get("address.country.name")), config.default_country)
    address = {"CoId": country, "PbAd": False, "Ad": street, "HmNr": number, "HmAd": addition}
    address |= {"ZpCd": text(branch.get("address.postcode")), "Rs": city, "ResZip": False}
    return {k: v for k, v in address.items() if v not in (None, "")}


async def create_missing_debtors(
    afas: AfasClient,
    topdesk: TopdeskClient,
    plan: pd.DataFrame,
    branches: pd.DataFrame,
    config: CreateDebtors,
) -> pd.DataFrame:
    """Create (or find) the debtor of every ``create``/``link`` row and write its number to the branch."""
    by_id = {text(b["id"]): b for b in records(branches)}
    outcomes = []
    for row in records(plan):
        if row["action"] in ("create", "link"):
            outcomes.append(await _one(afas, topdesk, row, by_id.get(row["branch_id"], {}), config))
    return pd.DataFrame(outcomes, columns=OUTCOME_COLUMNS, dtype=object)


async def _one(
    afas: AfasClient, topdesk: TopdeskClient, row: dict, branch: Mapping, config: CreateDebtors
) -> dict:
    result = {k: row[k] for k in OUTCOME_COLUMNS if k in row}
    try:
        number = row["debtor_number"] or await insert_debtor(
            afas, sales_relation(branch, row["organisation_number"], config), row["organisation_number"]
        )
        result["debtor_number"] = number
        await md.update_branch(topdesk, row["branch_id"], {"clientReferenceNumber": number})
    except UncertainOutcome as error:
        return result | {"status": "uncertain", "message": f"{error}; the next run looks it up by BcCo"}
    except (BusinessError, RequestRejected) as error:
        return result | {"status": "failed", "message": str(error)}
    return result | {"status": "done", "message": ""}


async def insert_debtor(afas: AfasClient, payload: dict[str, Any], org_number: str) -> str:
    """Post the sales relation once; the debtor number from the answer or, failing that, from AFAS itself."""
    ref = reference(org_number)
    try:
        keys = await afas.insert_once(CONNECTOR, payload, reference=ref)
    except BusinessError:
        found = await afas.find_by_reference(ref)  # refused because it exists (another run)? then use it
        if found is None:
            raise
        keys = found
    number = keys.get("DbId") or keys.get("DebtorId")
    if not number:  # an answer without keys (reference §5.2: some inserts return none)
        found = await afas.find_by_reference(ref)
        number = found.get("DebtorId") if found else None
    if not number:
        raise UncertainOutcome(f"AFAS gave no debtor number for organisation {org_number}", system="AFAS")
    return str(number)


def skip_list(config: CreateDebtors, departments: Iterable[str], ignore: pd.DataFrame) -> dict[str, str]:
    """Branch ids, names and customer numbers that never become debtors, each with the reason.

    Internal departments are charged internally (billing configuration); the ignore list's ``branch``
    (id or name) and ``customer`` entries have no billable hours; ``never_create`` is the config's own list.
    """
    skip = {code: "internal department (billing configuration)" for code in departments}
    for row in records(ignore):
        if row["kind"] in ("branch", "customer"):
            skip[text(row["value"])] = f"on the ignore list ({row['kind']}): {text(row['reason'])}"
    skip |= {text(v): "listed in create_debtors.never_create" for v in config.never_create}
    return skip
