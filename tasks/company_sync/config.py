"""Configuration of the company and person sync, loaded from ``config/companies.toml``.

Which AFAS column feeds which TOPdesk field, the archiving reason, and the guard of create-missing-debtors
(``[create_debtors] enabled = false`` unless someone turns it on). Unknown keys are errors, and every
error names its key (``branches.fields.nmae: not a TOPdesk branch field``), so a typo stops the run with one
readable line instead of silently syncing the wrong field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from koppel.config_files import ConfigFileError, load_toml, parse_toml
from schemas.companies import BRANCH_KEY, BRANCH_LIMITS, PERSON_KEY, PERSON_KEYS, PERSON_LIMITS

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parents[2] / "config" / "companies.toml"
ORGANISATION_NUMBER_LENGTH = 15  # KnOrganisation.BcCo maxLength (organisations-and-persons.json)
MIN_ID_DIGITS = 12  # hex digits of the TOPdesk branch id kept in the organisation number


class CompaniesConfigError(ConfigFileError):
    """The configuration file is missing, not TOML, or has a bad key."""


def _sources(value: object) -> tuple[str, ...]:
    """One AFAS column or a list of them (the first non-empty value wins)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items or not all(isinstance(i, str) and i for i in items):
        raise ValueError("must be an AFAS column name or a non-empty list of them")
    return tuple(items)


Sources = Annotated[tuple[str, ...], BeforeValidator(_sources)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


DEFAULT_BRANCH_FIELDS: dict[str, tuple[str, ...]] = {
    "name": ("DebtorName",),
    "phone": ("TelNr",),
    "email": ("Email",),
    "vatNumber": ("VatNr",),
    "address.street": ("Street",),
    "address.number": ("HouseNumber",),
    "address.postcode": ("PostalCode",),
    "address.city": ("City",),
    "address.country.name": ("Country",),
}
DEFAULT_PERSON_FIELDS: dict[str, tuple[str, ...]] = {
    "firstName": ("FirstName",),
    "prefixes": ("Prefix",),
    "surName": ("LastName",),
    "email": ("MailWork",),
    "phoneNumber": ("TelWork", "MobWork"),
}


def _check_targets(fields: dict[str, tuple[str, ...]], allowed: dict, key: str, what: str) -> None:
    unknown = sorted(set(fields) - set(allowed))
    if unknown:
        raise ValueError(f"not a TOPdesk {what} field: {', '.join(unknown)} (allowed: {', '.join(allowed)})")
    if key in fields:
        raise ValueError(f"{key} is the sync key and is always the AFAS number; do not map it")


class BranchSync(_Strict):
    """AFAS debtor (``Profit_Debtor`` plus the parsed address columns) → TOPdesk branch."""

    fields: dict[str, Sources] = Field(default_factory=lambda: dict(DEFAULT_BRANCH_FIELDS))

    @field_validator("fields")
    @classmethod
    def _targets(cls, fields: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        _check_targets(fields, BRANCH_LIMITS, BRANCH_KEY, "branch")
        if "name" not in fields:
            raise ValueError("name must be mapped: TOPdesk requires it")
        return fields


class PersonSync(_Strict):
    """AFAS contact person (``Profit_Contacts`` plus the split name columns) → TOPdesk person."""

    enabled: bool = True
    # The TOPdesk person field holding the AFAS person number: employeeNumber, or an optional text field
    # (optionalFields1.text1 … optionalFields2.text5), decision §9.13.
    key: str = PERSON_KEY
    fields: dict[str, Sources] = Field(default_factory=lambda: dict(DEFAULT_PERSON_FIELDS))

    @model_validator(mode="after")
    def _targets(self) -> PersonSync:
        if self.key not in PERSON_KEYS:
            raise ValueError(f"key: {self.key!r} is not employeeNumber or optionalFields1/2.text1-5")
        _check_targets(self.fields, PERSON_LIMITS, self.key, "person")
        if "surName" not in self.fields:
            raise ValueError("fields: surName must be mapped: TOPdesk requires it")
        return self


class DebtorDefaults(_Strict):
    """Fields of every new ``KnSalesRelationOrg`` (reference §7)."""

    currency: str = Field("EUR", min_length=1, max_length=3)  # CuId
    payment_condition: str = Field("30", min_length=1, max_length=5)  # PaCd
    vat_duty: str = Field("1", min_length=1, max_length=3)  # VaDu
    collective_account: str | None = Field(None, max_length=16)  # ColA
    profile: str | None = Field(None, max_length=16)  # PfId


class CreateDebtors(_Strict):
    """create-missing-debtors: off unless enabled; how new AFAS debtors look."""

    enabled: bool = False
    # invoice-hours creates the missing debtors of branches with hours before planning (needs ``enabled``)
    while_invoicing: bool = False
    organisation_prefix: str = Field(
        "TD", max_length=ORGANISATION_NUMBER_LENGTH - MIN_ID_DIGITS, pattern=r"^[A-Z0-9]*$"
    )
    never_create: list[str] = Field(default_factory=list)  # branch ids or customer numbers
    defaults: DebtorDefaults = Field(default_factory=DebtorDefaults)
    countries: dict[str, str] = Field(
        # AFAS country codes (CoId) are vehicle codes: AFAS's own examples write Belgium as "B".
        default_factory=lambda: {"Nederland": "NL", "België": "B", "Duitsland": "D"}
    )
    default_country: str = Field("NL", min_length=1, max_length=3)

    @model_validator(mode="after")
    def _guarded(self) -> CreateDebtors:
        if self.while_invoicing and not self.enabled:
            raise ValueError(
                "while_invoicing = true needs enabled = true (the guard of every debtor created)"
            )
        return self


class CompaniesConfig(_Strict):
    """The whole ``companies.toml``."""

    archiving_reason: str = Field(min_length=1)  # TOPdesk archiving reason: its id or its exact name
    clear_when_empty: bool = False  # an empty AFAS value clears the TOPdesk field (else it is left alone)
    concurrency: int = Field(4, ge=1, le=16)  # TOPdesk writes in flight at once
    max_gone: int = Field(25, ge=0)  # more records gone from AFAS in one run go to review, not archived
    branches: BranchSync = Field(default_factory=BranchSync)
    persons: PersonSync = Field(default_factory=PersonSync)
    create_debtors: CreateDebtors = Field(default_factory=CreateDebtors)


def parse_companies_config(text: str, source: str = "<text>") -> CompaniesConfig:
    """Parse TOML text into a ``CompaniesConfig``; errors name ``source`` and each bad key."""
    return parse_toml(CompaniesConfig, text, source, CompaniesConfigError)


def load_companies_config(path: Path | str = DEFAULT_CONFIG_PATH) -> CompaniesConfig:
    """Load and check the configuration from a TOML file."""
    return load_toml(CompaniesConfig, path, CompaniesConfigError)
