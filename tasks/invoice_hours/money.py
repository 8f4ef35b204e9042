"""Exact money arithmetic for whole frames: integers of cents inside, ``Decimal`` at the edges.

Amounts are computed as int64 cents (and hourly quantities as int64 hundredths of an hour) so that
250,000 registrations are priced without a Python loop and without float; rounding is ROUND_HALF_UP
(away from zero on .5), the rule Dutch invoices use. ``Decimal`` columns are built only at the end.
This module is the one place money (and hours shown to 0.01 h) is rounded: ``CENT``, ``round_cents``,
``div_half_up``, ``minutes_to_hours``.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pandas as pd

CENT = Decimal("0.01")


def div_half_up(numerator: np.ndarray | pd.Series, denominator: int) -> np.ndarray:
    """Integer division rounded half away from zero, element-wise on int64 values."""
    values = np.asarray(numerator, dtype=np.int64)
    magnitude = (np.abs(values) * 2 + denominator) // (2 * denominator)
    return np.sign(values) * magnitude


def as_decimal(value: object) -> Decimal:
    """A price or amount as ``Decimal``; a float is taken by its shortest repr (what the JSON said)."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool) or value is None:
        raise ValueError(f"not an amount: {value!r}")
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(str(value).strip())


def to_cents(value: Decimal) -> int:
    """``Decimal`` euros → whole cents, refusing anything that is not a whole number of cents."""
    cents = value * 100
    if cents != cents.to_integral_value():
        raise ValueError(f"{value} is not a whole number of cents")
    return int(cents)


def round_cents(value: Decimal) -> Decimal:
    """Round a ``Decimal`` half-up to cents."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def minutes_to_hours(minutes: int) -> Decimal:
    """Whole minutes as hours to 0.01 h, half-up (as every hours column and total shows them)."""
    return round_cents(Decimal(int(minutes)) / 60)


def cents_to_decimal(cents: pd.Series) -> pd.Series:
    """int64 cents → object column of ``Decimal`` euros with two places."""
    # Amounts repeat a lot: one ``Decimal`` per distinct value, then spread by position (no per-row Python).
    codes, unique = pd.factorize(cents.to_numpy(dtype=np.int64))
    decimals = np.empty(len(unique), dtype=object)
    decimals[:] = [Decimal(int(c)).scaleb(-2) for c in unique]
    return pd.Series(decimals.take(codes), index=cents.index, dtype=object)


def decimal_to_cents(values: pd.Series) -> pd.Series:
    """Object column of ``Decimal`` euros → int64 cents (each must be whole cents)."""
    return pd.Series([to_cents(as_decimal(v)) for v in values], index=values.index, dtype="int64")
