"""Billing configuration: what is billed how, per administration, loaded from a TOML file.

``config/billing.example.toml`` documents every key. ``load_billing_config(path)`` raises
``BillingConfigError`` whose message names each offending key (``rates.items.SUPPORT: ...``), so a typo
stops the run with one readable line instead of a traceback. Unknown keys are errors too: a misspelt key
silently falling back to a default would bill the wrong amount.
"""

from __future__ import annotations

from datetime import date, time
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from koppel.clock import AMSTERDAM
from koppel.config_files import ConfigFileError, load_toml, parse_toml
from schemas.kinds import ExclusionKind, Mode
from tasks.invoice_hours.sources import PriceChecks, TopdeskSources
from tasks.invoice_hours.writeback import Writeback

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parents[2] / "config" / "billing.toml"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class BillingConfigError(ConfigFileError):
    """The billing configuration is invalid; the message names every offending key."""


class Grouping(StrEnum):
    """How registrations become direct-invoice lines."""

    PER_TICKET_ITEM = "per_ticket_item"
    PER_REGISTRATION = "per_registration"


def _decimal(value: object) -> Decimal:
    # TOML floats are binary: 0.1 would arrive as 0.1000000000000000055..., so money must be quoted.
    if isinstance(value, float):
        raise ValueError(f'write decimals as quoted strings (e.g. "{value:.2f}"), not as TOML floats')
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise ValueError(f"expected a decimal string, got {value!r}")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation as error:
        raise ValueError(f"not a decimal number: {value!r}") from error
    if not number.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return number


def _money(value: object) -> Decimal:
    number = _decimal(value)
    if number < 0:
        raise ValueError(f"must not be negative, got {number}")
    if number != number.quantize(Decimal("0.0001")):
        raise ValueError(f"at most 4 decimals, got {number}")
    return number


def _clock(value: object) -> int:
    """``"HH:MM"`` → minutes after midnight; ``"24:00"`` is the end of the day."""
    text = str(value).strip()
    if text == "24:00":
        return 24 * 60
    try:
        parsed = time.fromisoformat(text)
    except ValueError as error:
        raise ValueError(f"expected a time as HH:MM, got {value!r}") from error
    return parsed.hour * 60 + parsed.minute


Money = Annotated[Decimal, BeforeValidator(_money)]
ClockMinutes = Annotated[int, BeforeValidator(_clock)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Department(_Strict):
    """An internal department: its hours are charged internally to its cost account."""

    name: str | None = None
    cost_account: str = Field(min_length=1, max_length=16)
    cost_centre: str | None = Field(default=None, max_length=16)


class Internal(_Strict):
    """Internal charging of one administration."""

    departments: dict[str, Department] = Field(default_factory=dict)
    rate: Money | None = None
    journal_description: str = "Interne doorbelasting uren"


class Journals(_Strict):
    """AFAS journal codes (``JoCo``)."""

    sales: str = Field(default="20", min_length=1, max_length=6)
    memorial: str = Field(default="90", min_length=1, max_length=6)


class Accounts(_Strict):
    """Ledger accounts and the default VAT of one administration."""

    revenue: str = Field(min_length=1, max_length=16)  # default revenue account (sales bookings)
    # Revenue account per item code; items not listed book on ``revenue``.
    revenue_by_item: dict[str, Annotated[str, Field(min_length=1, max_length=16)]] = Field(
        default_factory=dict
    )
    internal_revenue: str = Field(min_length=1, max_length=16)
    vat: str = Field(min_length=1, max_length=16)
    vat_code: str = Field(min_length=1, max_length=3)
    vat_rate: Annotated[Decimal, BeforeValidator(_decimal)] = Field(ge=0, le=1)

    def revenue_account(self, item_code: str) -> str:
        """The revenue account an item's hours book on."""
        return self.revenue_by_item.get(item_code, self.revenue)


class VatCode(_Strict):
    """One AFAS VAT code (``VaId``) as sales bookings use it: rate and VAT payable account."""

    rate: Annotated[Decimal, BeforeValidator(_decimal)] = Field(ge=0, le=1)
    # VAT payable account; may be left out when no VAT is due (rate 0, reverse charge).
    account: str | None = Field(default=None, min_length=1, max_length=16)
    # Reverse charge ("btw verlegd"): the customer accounts for the VAT; no VAT amount, rate must be 0.
    reverse_charge: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> VatCode:
        if self.reverse_charge and self.rate != 0:
            raise ValueError(
                f"rate: a reverse-charge code has no VAT amount, so rate must be 0 (got {self.rate})"
            )
        if self.rate != 0 and self.account is None:
            raise ValueError(f"account: a VAT code with rate {self.rate} needs its VAT payable account")
        return self


class Vat(_Strict):
    """VAT per debtor of a sales-booking administration; the first that applies wins.

    1. ``debtors``: VAT code per AFAS debtor id (``DebtorId``), from this file;
    2. ``by_vat_duty``: VAT code per the debtor's VAT duty in AFAS (``Profit_Debtor.VatDuty``);
    3. the administration's ``accounts.vat_code`` / ``vat_rate`` / ``vat``.
    Every code named here is described in ``codes`` (rate, account, reverse charge).
    """

    codes: dict[str, VatCode] = Field(default_factory=dict)
    debtors: dict[str, Annotated[str, Field(min_length=1, max_length=3)]] = Field(default_factory=dict)
    by_vat_duty: dict[str, Annotated[str, Field(min_length=1, max_length=3)]] = Field(default_factory=dict)


class Employees(_Strict):
    """``[employees]``: TOPdesk operator → AFAS employee (``EmId`` on project realisations).

    Keys are TOPdesk operator ids (UUIDs) or operator names as TOPdesk shows them; the id wins.
    """

    operators: dict[str, Annotated[str, Field(min_length=1, max_length=15)]] = Field(default_factory=dict)


class Administration(_Strict):
    """One AFAS administration (``Unit``/``UnId``) and how its hours are billed."""

    name: str | None = None
    mode: Mode
    grouping: Grouping = Grouping.PER_TICKET_ITEM
    max_lines_per_document: int = Field(default=500, ge=1, le=1000)
    # Unit of measure (BiUn) of direct-invoice lines; must exist in AFAS (Koppel_Units).
    hours_unit: str = Field(default="uur", min_length=1, max_length=15)
    journals: Journals = Field(default_factory=Journals)
    accounts: Accounts
    vat: Vat = Field(default_factory=Vat)
    # Project realisation: an operator without an AFAS employee ([employees]) is rejected when true,
    # posted without ``EmId`` when false.
    require_employee: bool = False
    internal: Internal = Field(default_factory=Internal)
    # "required": the run pauses before posting until someone approves its plan (tasks/approval.py).
    approval: Literal["required", "off"] = "off"

    @model_validator(mode="after")
    def _employee_only_for_realisations(self) -> Administration:
        if self.require_employee and self.mode != Mode.PROJECT_REALISATION:
            raise ValueError(f"require_employee: only project_realisation posts EmId, not {self.mode.value}")
        return self

    def vat_codes(self) -> dict[str, VatCode]:
        """Every VAT code this administration can book: ``[vat.codes]`` plus the ``accounts`` default."""
        default = VatCode(rate=self.accounts.vat_rate, account=self.accounts.vat)
        return {self.accounts.vat_code: default, **self.vat.codes}

    def vat_code_for(self, debtor_id: str | None, vat_duty: str | None) -> str:
        """The VAT code of a debtor: per debtor, else per its AFAS VAT duty, else the default."""
        if debtor_id and debtor_id in self.vat.debtors:
            return self.vat.debtors[debtor_id]
        if vat_duty and vat_duty in self.vat.by_vat_duty:
            return self.vat.by_vat_duty[vat_duty]
        return self.accounts.vat_code

    def vat_problems(self, key: str) -> list[str]:
        """Codes in ``[vat]`` that ``[vat.codes]`` does not describe, or that contradict ``accounts``."""
        known = self.vat_codes()
        named = [*(("debtors", k, c) for k, c in self.vat.debtors.items())]
        named += [("by_vat_duty", k, c) for k, c in self.vat.by_vat_duty.items()]
        problems = [
            f"{key}.vat.{section}.{name}: VAT code {code!r} is not described in [{key}.vat.codes]"
            for section, name, code in named
            if code not in known
        ]
        same = self.vat.codes.get(self.accounts.vat_code)
        if same is not None and same.rate != self.accounts.vat_rate:
            problems.append(
                f"{key}.vat.codes.{self.accounts.vat_code}.rate: {same.rate} differs from "
                f"accounts.vat_rate {self.accounts.vat_rate}"
            )
        return problems


ProjectSource = Literal["incident_field", "mapping", "debtor_default"]
PROJECT_SOURCES: tuple[ProjectSource, ...] = ("incident_field", "mapping", "debtor_default")


class Projects(_Strict):
    """Where a registration's AFAS project comes from, first source that yields one wins."""

    sources: list[ProjectSource] = Field(default_factory=lambda: list(PROJECT_SOURCES), min_length=1)
    mapping: dict[str, str] = Field(default_factory=dict)
    required: bool = True
    default_administration: int


class Items(_Strict):
    """Which AFAS work type (item) a registration is billed as; first match in this order wins."""

    default: str = Field(min_length=1, max_length=40)
    by_reason: dict[str, str] = Field(default_factory=dict)
    by_category: dict[str, str] = Field(default_factory=dict)
    by_operator_group: dict[str, str] = Field(default_factory=dict)

    def all_codes(self) -> set[str]:
        """Every item code this section can assign."""
        mapped = [*self.by_reason.values(), *self.by_category.values(), *self.by_operator_group.values()]
        return {self.default, *mapped}


class Rates(_Strict):
    """Hourly rates (excl. VAT): from this file, or AFAS's price list with this file as fallback."""

    source: Literal["config", "afas"] = "config"
    items: dict[str, Money] = Field(default_factory=dict)
    operator_groups: dict[str, Money] = Field(default_factory=dict)
    customers: dict[str, dict[str, Money]] = Field(default_factory=dict)


class Rounding(_Strict):
    """Rounding of each registration's minutes and the minimum billed per ticket."""

    unit_minutes: int = Field(default=1, ge=1, le=240)
    direction: Literal["up", "nearest", "down"] = "up"
    minimum_minutes_per_ticket: int = Field(default=0, ge=0, le=24 * 60)


class Surcharge(_Strict):
    """A time window (Amsterdam local time) whose hours cost ``percent`` more."""

    name: str
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(min_length=1)
    start: ClockMinutes
    end: ClockMinutes
    percent: Annotated[Decimal, BeforeValidator(_decimal)] = Field(gt=0, le=1000, decimal_places=2)


class ExclusionRule(_Strict):
    """Registrations matching ``kind``/``value`` are not billed (bucket *excluded*)."""

    kind: ExclusionKind
    value: str = Field(min_length=1)
    reason: str = Field(min_length=1)


class Exclusions(_Strict):
    """Exclusions from the configuration (the database ignore list is added at run time)."""

    below_minutes: int = Field(default=0, ge=0)
    rules: list[ExclusionRule] = Field(default_factory=list)


class ConfigBundle(_Strict):
    """A prepaid bundle ("strippenkaart") kept in this file; every run copies it into the store."""

    name: str = Field(min_length=1, max_length=60, pattern=r"^[A-Za-z0-9_.-]+$")
    customer_number: str = Field(min_length=1, max_length=32)
    hours: Annotated[Decimal, BeforeValidator(_decimal)] = Field(gt=0)
    valid_from: date
    valid_to: date | None = None
    description: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> ConfigBundle:
        if self.hours * 60 != int(self.hours * 60):
            raise ValueError(f"hours: {self.hours} is not a whole number of minutes")
        if self.valid_to is not None and self.valid_to < self.valid_from:
            raise ValueError(f"valid_to: {self.valid_to} lies before valid_from {self.valid_from}")
        return self

    @property
    def minutes(self) -> int:
        """The bundle's size in minutes."""
        return int(self.hours * 60)


class Allowance(_Strict):
    """Contract hours: minutes a customer gets each calendar month at zero (invoice_hours/allowances.py)."""

    name: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.-]+$")
    customer_number: str = Field(min_length=1, max_length=32)
    hours_per_month: Annotated[Decimal, BeforeValidator(_decimal)] = Field(gt=0)
    # Only registrations billed with one of these item codes use the allowance (empty: every item).
    items: list[str] = Field(default_factory=list)
    # Unused minutes of a month stay usable this many following months (0: use them or lose them).
    carry_over_months: int = Field(default=0, ge=0, le=12)
    valid_from: date  # first month with an allowance (its day is ignored)
    valid_to: date | None = None  # last month with an allowance (inclusive)
    description: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> Allowance:
        if self.hours_per_month * 60 != int(self.hours_per_month * 60):
            raise ValueError(f"hours_per_month: {self.hours_per_month} is not a whole number of minutes")
        if self.valid_to is not None and self.valid_to < self.valid_from:
            raise ValueError(f"valid_to: {self.valid_to} lies before valid_from {self.valid_from}")
        if len(set(self.items)) != len(self.items) or not all(code.strip() for code in self.items):
            raise ValueError(f"items: {self.items} names an item twice or an empty code")
        return self

    @property
    def minutes(self) -> int:
        """The monthly allowance in minutes."""
        return int(self.hours_per_month * 60)


class CustomerReferences(_Strict):
    """``[customer_references]``: the customer's purchase-order number in ``RfCs`` of direct invoices.

    Unset (the default), ``RfCs`` carries Koppel's document reference as before. Koppel's own reference is
    always in ``Fref`` (docs/invoice-hours.md, "Invoice references").
    """

    # Purchase-order number per AFAS debtor id (``DebtorId``), at most 100 characters (RfCs).
    debtors: dict[str, Annotated[str, Field(min_length=1, max_length=100)]] = Field(default_factory=dict)


class Specifications(_Strict):
    """Hours specifications per customer document (CSV and XLSX), written under ``folder``/<run id>/."""

    folder: str | None = None  # unset: no specification files


class Reconciliation(_Strict):
    """How a regular run reconciles AFAS with TOPdesk (docs/invoice-hours.md, "Horizon" and "The diff")."""

    # A regular run considers every registration from the first open AFAS period, but at most this many
    # calendar months before the cut-off (the end of the previous month): late and changed hours of every
    # period AFAS still accepts are billed, and the read stays bounded when periods are left open for years.
    horizon_months: int = Field(default=3, ge=1, le=24)
    # A registration billed and then excluded or rejected: "credit" reverses the charge, "keep" leaves it
    # in AFAS and reports it (bucket "kept after billing").
    after_billing: Literal["credit", "keep"] = "credit"
    # A charge or reversal whose AFAS period is closed: "next_open" books it in the first open period after
    # it (original date in the line text), "reject" rejects it with the reason.
    closed_period: Literal["next_open", "reject"] = "next_open"


class BillingConfig(_Strict):
    """The whole billing configuration."""

    timezone: str = AMSTERDAM.key  # the zone billing days and periods are cut in (koppel/clock.py)
    max_minutes_per_registration: int = Field(default=720, ge=1)
    administrations: dict[int, Administration] = Field(min_length=1)
    projects: Projects
    items: Items
    rates: Rates = Field(default_factory=Rates)
    rounding: Rounding = Field(default_factory=Rounding)
    surcharges: list[Surcharge] = Field(default_factory=list)
    exclusions: Exclusions = Field(default_factory=Exclusions)
    # How long a run waits for approval (administrations with approval = "required") before it gives up.
    approval_timeout_minutes: float = Field(default=24 * 60, gt=0, le=30 * 24 * 60)
    specifications: Specifications = Field(default_factory=Specifications)
    bundles: list[ConfigBundle] = Field(default_factory=list)
    # Notify when a bundle's balance falls below this many minutes in a run (and when it is used up).
    bundle_alert_below_minutes: int = Field(default=120, ge=0)
    allowances: list[Allowance] = Field(default_factory=list)  # contract hours per customer and month
    reconciliation: Reconciliation = Field(default_factory=Reconciliation)
    topdesk: TopdeskSources = Field(default_factory=TopdeskSources)  # tasks/invoice_hours/sources.py
    price_checks: PriceChecks = Field(default_factory=PriceChecks)
    # Notes on billed TOPdesk tickets after AFAS confirmed (tasks/invoice_hours/writeback.py); off by default.
    writeback: Writeback = Field(default_factory=Writeback)
    employees: Employees = Field(default_factory=Employees)
    customer_references: CustomerReferences = Field(default_factory=CustomerReferences)
    # A run parameter rather than a file setting: bill only this administration (``for_administration``).
    only_administration: int | None = None
    # Filled at run time from AFAS (``with_debtor_vat``), never from the file: ``DebtorId`` → ``VatDuty``
    # of the debtors whose VAT duty a ``[vat.by_vat_duty]`` mapping names.
    debtor_vat_duties: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> BillingConfig:
        problems = [
            *self._zone_problems(),
            *self._reference_problems(),
            *self._department_problems(),
            *self._bundle_problems(),
            *self._writeback_problems(),
            *self._allowance_problems(),
            *(
                p
                for a, admin in self.administrations.items()
                for p in admin.vat_problems(f"administrations.{a}")
            ),
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def zone(self) -> ZoneInfo:
        """``timezone`` as a zone: billing days, periods and run windows are cut in it."""
        return ZoneInfo(self.timezone)

    def _zone_problems(self) -> list[str]:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            return [f"timezone: unknown time zone {self.timezone!r}"]
        return []

    def _reference_problems(self) -> list[str]:
        problems = []
        if self.projects.default_administration not in self.administrations:
            problems.append(
                f"projects.default_administration: {self.projects.default_administration} "
                "is not one of [administrations]"
            )
        if self.rates.source == "config":
            for code in sorted(self.items.all_codes() - set(self.rates.items)):
                problems.append(f"rates.items.{code}: missing (item {code!r} is assigned in [items])")
        return problems

    def _department_problems(self) -> list[str]:
        seen: dict[str, int] = {}
        problems = []
        for admin_id, admin in self.administrations.items():
            for code in admin.internal.departments:
                if code in seen:
                    problems.append(
                        f"administrations.{admin_id}.internal.departments.{code}: "
                        f"also configured in administration {seen[code]}"
                    )
                seen[code] = admin_id
        return problems

    def _bundle_problems(self) -> list[str]:
        names = [bundle.name for bundle in self.bundles]
        return [
            f"bundles: name {name!r} is used twice"
            for name in sorted({n for n in names if names.count(n) > 1})
        ]

    def _writeback_problems(self) -> list[str]:
        """Koppel must not overwrite the incident field it reads the AFAS project from."""
        field = self.writeback.incident.optional_field
        if field and "incident_field" in self.projects.sources and field == self.topdesk.project_field:
            return [
                f"writeback.incident.optional_field {field!r} is where incidents keep their AFAS project "
                "(topdesk.project_field): writing the billed status there would move the hours; pick another"
            ]
        return []

    def _allowance_problems(self) -> list[str]:
        names = [allowance.name for allowance in self.allowances]
        problems = [
            f"allowances: name {name!r} is used twice"
            for name in sorted({n for n in names if names.count(n) > 1})
        ]
        known = self.items.all_codes()
        for index, allowance in enumerate(self.allowances):
            problems += [
                f"allowances.{index}.items: {code!r} is not an item of [items] (known: {sorted(known)})"
                for code in allowance.items
                if code not in known
            ]
        return problems

    def approval_required(self) -> list[int]:
        """The administrations of this run whose documents wait for approval before posting."""
        return [
            a
            for a, admin in sorted(self.administrations.items())
            if admin.approval == "required" and self.in_scope(a)
        ]

    def for_administration(self, admin_id: int | None) -> BillingConfig:
        """The configuration for a run that bills one administration only (``None``: all of them).

        Registrations of the other administrations are then excluded with a reason, not rejected.
        """
        if admin_id is None:
            return self
        if admin_id not in self.administrations:
            configured = ", ".join(str(a) for a in sorted(self.administrations))
            raise BillingConfigError(
                f"administration: {admin_id} is not configured (configured: {configured})"
            )
        return self.model_copy(update={"only_administration": admin_id})

    def in_scope(self, admin_id: int) -> bool:
        """Whether this run bills administration ``admin_id``."""
        return self.only_administration is None or admin_id == self.only_administration

    def modes_text(self) -> str:
        """``1: direct_invoice (per_ticket_item), 2: project_realisation`` for the run summary."""
        parts = []
        for admin_id, admin in sorted(self.administrations.items()):
            if not self.in_scope(admin_id):
                continue
            grouping = f" ({admin.grouping.value})" if admin.mode == Mode.DIRECT_INVOICE else ""
            parts.append(f"{admin_id}: {admin.mode.value}{grouping}")
        return ", ".join(parts)

    def with_debtor_vat(self, debtors: pd.DataFrame) -> BillingConfig:
        """A copy with each debtor's AFAS VAT duty (``Profit_Debtor.VatDuty``) where it matters.

        Only debtors whose VAT duty some administration's ``[vat.by_vat_duty]`` names are kept, so the
        configuration stays small when the mapping is not used.
        """
        duties = {d for admin in self.administrations.values() for d in admin.vat.by_vat_duty}
        if not duties or "VatDuty" not in debtors:
            return self
        values = debtors["VatDuty"].astype("string").str.strip()
        chosen = debtors[values.isin(duties).fillna(False).to_numpy()]
        table = dict(zip(chosen["DebtorId"].astype("str"), values[chosen.index].astype("str"), strict=True))
        return self.model_copy(update={"debtor_vat_duties": table})

    def debtor_vat_code(self, admin_id: int, debtor_id: str | None) -> str:
        """The VAT code of ``debtor_id``'s sales bookings in ``admin_id`` (see ``Vat``)."""
        duty = self.debtor_vat_duties.get(debtor_id or "")
        return self.administrations[admin_id].vat_code_for(debtor_id, duty)

    def operator_employee(self, operator_id: str | None, operator_name: str | None) -> str | None:
        """The AFAS employee (``EmId``) of a TOPdesk operator, by id first, then by name."""
        operators = self.employees.operators
        return operators.get(operator_id or "\x00") or operators.get(operator_name or "\x00")

    def department_table(self) -> dict[str, tuple[int, Department]]:
        """Internal department code → (administration, department)."""
        return {
            code: (admin_id, department)
            for admin_id, admin in self.administrations.items()
            for code, department in admin.internal.departments.items()
        }


def parse_billing_config(text: str, source: str = "<text>") -> BillingConfig:
    """Parse TOML text into a ``BillingConfig``; errors name ``source`` and each bad key."""
    return parse_toml(BillingConfig, text, source, BillingConfigError)


def load_billing_config(path: Path | str = DEFAULT_CONFIG_PATH) -> BillingConfig:
    """Load and check the configuration from a TOML file."""
    return load_toml(BillingConfig, path, BillingConfigError)
