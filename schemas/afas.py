"""AFAS master data as the billing reads it (docs/contracts.md §2): AFAS's own column names.

Datetimes are tz-aware ``Europe/Amsterdam`` (any resolution: a connector parsing with pandas 3 gets
microseconds). Only the columns the billing uses are required; the connector may deliver more
(``strict = False``). Master data that breaks these schemas stops the run: it is AFAS configuration,
not a registration that can be rejected row by row.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

import schemas.checks  # noqa: F401  (registers the shared checks the fields below use)


class Debtors(pa.DataFrameModel):
    """``Profit_Debtor``: sales relations; ``DebtorId`` = TOPdesk branch ``clientReferenceNumber``."""

    DebtorId: Series[str] = pa.Field(unique=True, coerce=True)
    DebtorName: Series[str] = pa.Field(nullable=True, coerce=True)
    Blocked: Series[bool] = pa.Field(coerce=True)

    class Config:
        """Profit_Debtor has many more columns (reference §6)."""

        strict = False


class Projects(pa.DataFrameModel):
    """``Profit_Projects``: ``DateReady`` set means the project is closed."""

    ProjectId: Series[str] = pa.Field(unique=True, coerce=True)
    Description: Series[str] = pa.Field(nullable=True, coerce=True)
    UnitId: Series[pd.Int64Dtype] = pa.Field(nullable=True, coerce=True)
    DebtorId: Series[str] = pa.Field(nullable=True, coerce=True)
    DateStart: Series[Any] = pa.Field(nullable=True, amsterdam_datetime={})
    DateReady: Series[Any] = pa.Field(nullable=True, amsterdam_datetime={})

    class Config:
        """Profit_Projects has more columns (``Chargeable``, …)."""

        strict = False


class Periods(pa.DataFrameModel):
    """``Profit_periods_per_administration``: one row per administration, year and period."""

    Unit: Series[int] = pa.Field(coerce=True)
    Year: Series[int] = pa.Field(coerce=True, ge=1900, le=2999)
    Period: Series[int] = pa.Field(coerce=True, ge=0, le=99)
    DateFrom: Series[Any] = pa.Field(nullable=True, amsterdam_datetime={})
    DateTo: Series[Any] = pa.Field(nullable=True, amsterdam_datetime={})
    Blocked: Series[bool] = pa.Field(coerce=True)

    class Config:
        """One period per (Unit, Year, Period); dates present on every row."""

        strict = False
        unique = ("Unit", "Year", "Period")


class SalesPrices(pa.DataFrameModel):
    """``Koppel_Sales_Prices``: hourly price per item, per debtor (``DebtorId`` null = general price)."""

    ItemCode: Series[str] = pa.Field(coerce=True)
    DebtorId: Series[str] = pa.Field(nullable=True, coerce=True)
    Price: Series[Any] = pa.Field(finite_decimal={})
    DateStart: Series[Any] = pa.Field(nullable=True, amsterdam_datetime={})

    class Config:
        """Prices are ``Decimal`` (never float): money is exact."""

        strict = False
