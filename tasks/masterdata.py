"""Master-data check at the start of invoice-hours: every AFAS code the billing config names must exist.

A typo in ``config/billing.toml`` (an item, administration, journal, VAT code, cost centre or unit AFAS does
not know, or a VAT rate that is not the code's rate in AFAS) would otherwise surface as one refused document
after another in AFAS. ``master_data_problems`` (a plain function over AFAS's GetConnector frames) names each
offending config key; ``check_afas_master_data`` (the task) reads ``Profit_Administrations``,
``Profit_Worktype``, ``Profit_Journals``, ``Profit_VAT_code``, ``Profit_Allocation_Assigments`` and
``Koppel_Units`` and fails the run before anything is read from TOPdesk or planned.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from decimal import Decimal

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from connectors.afas.client import AfasClient
from connectors.afas.settings import AfasSettings
from tasks.invoice_hours.config import Administration, BillingConfig, BillingConfigError, Mode
from tasks.secrets import load_settings

CONNECTORS = {
    "administrations": "Profit_Administrations",
    "items": "Profit_Worktype",
    "journals": "Profit_Journals",
    "vat_codes": "Profit_VAT_code",
    "allocations": "Profit_Allocation_Assigments",
    "units": "Koppel_Units",
}
COST_CENTRE_AXIS = "1"  # the internal entry puts the cost centre on dimension axis 1
# (tasks/invoice_hours/payloads)


class MasterDataError(BillingConfigError):
    """The billing config names codes AFAS does not have; the message names each config key."""


def _codes(frame: pd.DataFrame, *columns: str) -> set[tuple[str, ...]]:
    if frame.empty:
        return set()
    blocked = frame["Blocked"].fillna(False).astype(bool) if "Blocked" in frame else False
    usable = frame[~blocked] if "Blocked" in frame else frame
    return {
        tuple(str(v).strip().casefold() for v in row) for row in usable[list(columns)].itertuples(index=False)
    }


def item_keys(config: BillingConfig) -> Iterator[tuple[str, str]]:
    """(config key, item code) for every item the config assigns or prices."""
    yield "items.default", config.items.default
    for section in ("by_reason", "by_category", "by_operator_group"):
        for name, code in getattr(config.items, section).items():
            yield f"items.{section}.{name}", code
    for code in config.rates.items:
        yield f"rates.items.{code}", code
    for admin_id, admin in sorted(config.administrations.items()):
        for code in admin.accounts.revenue_by_item:
            yield f"administrations.{admin_id}.accounts.revenue_by_item.{code}", code


def master_data_problems(config: BillingConfig, frames: Mapping[str, pd.DataFrame]) -> list[str]:
    """One line per config key whose code AFAS does not hold (blocked codes count as missing)."""
    items = _codes(frames["items"], "ItemCode")
    admins = _codes(frames["administrations"], "AdminId")
    problems = [
        f"{key}: item {code!r} is not an AFAS work type (Profit_Worktype)"
        for key, code in item_keys(config)
        if (code.casefold(),) not in items
    ]
    for admin_id, admin in sorted(config.administrations.items()):
        if not config.in_scope(admin_id):
            continue
        if (str(admin_id),) not in admins:
            problems.append(
                f"administrations.{admin_id}: administration {admin_id} does not exist in AFAS "
                "(Profit_Administrations)"
            )
            continue
        problems += _administration_problems(admin_id, admin, frames)
    return problems


def _administration_problems(
    admin_id: int, admin: Administration, frames: Mapping[str, pd.DataFrame]
) -> list[str]:
    key, unit = f"administrations.{admin_id}", str(admin_id)
    journals = _codes(frames["journals"], "UnitId", "JournalId")
    allocations = _codes(frames["allocations"], "Unit", "Account", "DimAx", "DimCode")
    problems = []
    used = {"memorial": admin.journals.memorial}
    if admin.mode == Mode.SALES_BOOKING:
        used["sales"] = admin.journals.sales
        problems += _vat_problems(key, admin, frames["vat_codes"])
    units = _codes(frames["units"], "UnitId") if "units" in frames else None
    if (
        admin.mode == Mode.DIRECT_INVOICE
        and units is not None
        and (admin.hours_unit.casefold(),) not in units
    ):
        problems.append(f"{key}.hours_unit: unit {admin.hours_unit!r} does not exist (Koppel_Units)")
    for name, journal in used.items():
        if (unit, journal.casefold()) not in journals:
            problems.append(
                f"{key}.journals.{name}: journal {journal!r} does not exist in administration {admin_id} "
                "(Profit_Journals)"
            )
    for code, department in admin.internal.departments.items():
        centre, account = department.cost_centre, department.cost_account
        if centre and (unit, account.casefold(), COST_CENTRE_AXIS, centre.casefold()) not in allocations:
            problems.append(
                f"{key}.internal.departments.{code}.cost_centre: cost centre {centre!r} is not allowed on "
                f"account {account} in administration {admin_id} (Profit_Allocation_Assigments)"
            )
    return problems


def _vat_problems(key: str, admin: Administration, vat_codes: pd.DataFrame) -> list[str]:
    """Every VAT code a sales booking can carry exists, unblocked, at the rate the config gives it."""
    known = _codes(vat_codes, "VatCode")
    rates = {}
    if "VatPerc" in vat_codes:
        rates = {
            str(c).strip().casefold(): p
            for c, p in zip(vat_codes["VatCode"], vat_codes["VatPerc"], strict=True)
        }
    default = admin.accounts.vat_code
    problems = []
    for code, described in admin.vat_codes().items():
        where = (
            f"{key}.accounts.vat_code"
            if code == default and code not in admin.vat.codes
            else f"{key}.vat.codes.{code}"
        )
        if (code.casefold(),) not in known:
            problems.append(f"{where}: VAT code {code!r} does not exist (Profit_VAT_code)")
            continue
        percent = rates.get(code.casefold())
        if percent is not None and not pd.isna(percent) and Decimal(str(percent)) != described.rate * 100:
            rate_key = f"{key}.accounts.vat_rate" if where.endswith("vat_code") else f"{where}.rate"
            problems.append(
                f"{rate_key}: {described.rate} is not the rate of VAT code {code!r} in AFAS "
                f"({percent} %, Profit_VAT_code)"
            )
    return problems


async def read_master_data(settings: AfasSettings) -> dict[str, pd.DataFrame]:
    """The GetConnectors the check needs, read in parallel."""
    async with AfasClient.from_settings(settings) as client:
        frames = await asyncio.gather(*(client.read_frame(c) for c in CONNECTORS.values()))
    return dict(zip(CONNECTORS, frames, strict=True))


@task(name="check-afas-master-data", cache_policy=NO_CACHE)
def check_afas_master_data(config: BillingConfig) -> None:
    """Fail the run at once, naming every config key, when the config names codes AFAS does not have."""
    problems = master_data_problems(config, asyncio.run(read_master_data(load_settings(AfasSettings))))
    if problems:
        raise MasterDataError("billing config does not match AFAS: " + "; ".join(problems))
