"""Where the hours come from: the ``[topdesk]`` and ``[price_checks]`` sections of the billing config.

``[topdesk]`` says which kinds of time registrations are read, whether partial and archived incidents
are included (default: yes), where incidents keep the AFAS project, and — for changes, change activities
and problems, which only TOPdesk's OData reporting feed serves — the entity sets and property names of
the tenant (``koppel topdesk sources`` lists what the tenant's feed offers). ``[price_checks]`` bounds the
hourly prices read from AFAS. Every key is checked when the file is loaded; see
``config/billing.example.toml``.

Operational activities (TOPdesk cannot filter their registrations by date) are read selectively: the
activities planned, created or modified (``operational_activities_date_fields``) since
``operational_activities_lookback_days`` before the period, plus those an earlier read saw hours on
since then; every ``operational_activities_sweep_days`` days, and on the first run of each calendar
month, every activity of the tenant is read (a *sweep*; ``0`` = every run sweeps).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from connectors.topdesk.timeregistrations import (
    ACTIVITY_DATE_FIELDS,
    KINDS,
    ODataOptions,
    TimeRegistrationOptions,
)

Kind = Literal["incident", "change", "change_activity", "operational_activity", "problem"]
ODataKind = Literal["change", "change_activity", "problem"]
ODATA_KINDS: tuple[ODataKind, ...] = ("change", "change_activity", "problem")
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")  # an OData identifier
_DEFAULTS = ODataOptions()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _identifier(value: str) -> str:
    if not NAME.match(value):
        raise ValueError(f"{value!r} is not an OData name (letters, digits, underscore)")
    return value


class EntitySets(_Strict):
    """The OData entity sets of one kind: its time registrations and its tickets."""

    registrations: str
    tickets: str

    _names = field_validator("registrations", "tickets")(_identifier)


class ODataFields(_Strict):
    """Property names in the OData entity sets (defaults: the sandbox's names)."""

    id: str = _DEFAULTS.id
    ticket_id: str = _DEFAULTS.ticket_id
    entry_date: str = _DEFAULTS.entry_date
    time_spent: str = _DEFAULTS.time_spent
    notes: str = _DEFAULTS.notes
    operator_id: str = _DEFAULTS.operator_id
    operator_name: str = _DEFAULTS.operator_name
    group_id: str = _DEFAULTS.group_id
    group_name: str = _DEFAULTS.group_name
    reason_id: str = _DEFAULTS.reason_id
    reason_name: str = _DEFAULTS.reason_name
    creation_date: str = _DEFAULTS.creation_date
    modification_date: str = _DEFAULTS.modification_date
    ticket_key: str = _DEFAULTS.ticket_key
    ticket_number: str = _DEFAULTS.ticket_number
    ticket_description: str = _DEFAULTS.ticket_description
    branch_id: str = _DEFAULTS.branch_id
    branch_name: str = _DEFAULTS.branch_name
    customer_number: str = _DEFAULTS.customer_number

    _names = field_validator("*")(_identifier)


def _all_kinds() -> list[Kind]:
    """Every kind the connector reads (``KINDS``), typed as ``Kind``."""
    return [kind for kind in get_args(Kind) if kind in KINDS]


def _default_sets() -> dict[ODataKind, EntitySets]:
    return {
        kind: EntitySets(registrations=_DEFAULTS.registration_sets[kind], tickets=_DEFAULTS.ticket_sets[kind])
        for kind in ODATA_KINDS
    }


class TopdeskSources(_Strict):
    """``[topdesk]``: which registrations are read and where they are."""

    kinds: list[Kind] = Field(default_factory=_all_kinds, min_length=1)
    include_partials_archived: bool = True
    project_field: str = Field(default="optionalFields1.text1", pattern=r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")
    # Where incidents keep the customer's purchase-order number (RfCs of direct invoices); None: not read.
    order_field: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")
    activity_query: str | None = None
    completeness: bool = True
    unit_sample: int = Field(default=10, ge=0, le=1000)
    odata_unit: Literal["minutes", "seconds"] = "minutes"
    entity_sets: dict[ODataKind, EntitySets] = Field(default_factory=_default_sets)
    odata_fields: ODataFields = Field(default_factory=ODataFields)
    operational_activities_lookback_days: int = Field(default=7, ge=0, le=366)
    operational_activities_sweep_days: int = Field(default=7, ge=0, le=366)
    operational_activities_date_fields: list[str] = Field(
        default_factory=lambda: list(ACTIVITY_DATE_FIELDS), min_length=1
    )

    _date_fields = field_validator("operational_activities_date_fields")(
        lambda names: [_identifier(name) for name in names]
    )

    @model_validator(mode="after")
    def _sets_for_kinds(self) -> TopdeskSources:
        missing = [k for k in self.kinds if k in ODATA_KINDS and k not in self.entity_sets]
        if missing:
            raise ValueError(f"entity_sets: no entity sets for {', '.join(missing)} (listed in kinds)")
        if len(set(self.kinds)) != len(self.kinds):
            raise ValueError("kinds: listed twice")
        return self

    def options(self) -> TimeRegistrationOptions:
        """The connector's options for these settings."""
        odata = ODataOptions(
            registration_sets={k: s.registrations for k, s in self.entity_sets.items()},
            ticket_sets={k: s.tickets for k, s in self.entity_sets.items()},
            unit=self.odata_unit,
            **self.odata_fields.model_dump(),
        )
        return TimeRegistrationOptions(
            kinds=tuple(self.kinds),
            include_partials_archived=self.include_partials_archived,
            project_field=self.project_field,
            order_field=self.order_field,
            activity_query=self.activity_query,
            unit_sample=self.unit_sample,
            odata=odata,
            totals=self.completeness,
        )


class PriceChecks(_Strict):
    """``[price_checks]``: the highest hourly price (excl. VAT) believed from AFAS's price list."""

    max_hourly_price: Decimal = Field(default=Decimal(1000), gt=0, allow_inf_nan=False)
