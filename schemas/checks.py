"""The pandera checks Koppel's contracts share, registered once with ``register_check_method``.

Models use them as ``pa.Field`` keywords: ``cents={}`` (a ``Decimal`` with at most two places),
``finite_decimal={}``, ``amsterdam_datetime={}`` (a tz-aware column in Europe/Amsterdam, any resolution)
and ``percentage={"error": ...}`` (a number from 0 to 100, as text or a number). Each schema module imports
this one before defining its models, so the checks are registered (once) before any model uses them.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import pandas as pd
from pandera import extensions

from koppel.clock import AMSTERDAM
from tasks.invoice_hours.money import CENT


def as_decimal(value: Any) -> Decimal | None:
    """``value`` as a finite Decimal, or None when it is no number."""
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


@extensions.register_check_method(check_type="element_wise")
def finite_decimal(value: object) -> bool:
    """A finite ``Decimal`` (money is never a float)."""
    return isinstance(value, Decimal) and value.is_finite()


@extensions.register_check_method(check_type="element_wise")
def cents(value: object) -> bool:
    """A finite ``Decimal`` with at most two places: an amount, price or quantity as AFAS takes it."""
    return isinstance(value, Decimal) and value.is_finite() and value == value.quantize(CENT)


@extensions.register_check_method(check_type="vectorized")
def amsterdam_datetime(series: pd.Series) -> bool:
    """A tz-aware datetime column in Amsterdam time (ns or, from pandas 3 parsing, us)."""
    dtype = series.dtype
    return isinstance(dtype, pd.DatetimeTZDtype) and str(dtype.tz) == AMSTERDAM.key


@extensions.register_check_method(check_type="element_wise")
def percentage(value: object) -> bool:
    """A number from 0 to 100 (text such as ``"50.00"`` or a number)."""
    number = as_decimal(value)
    return number is not None and 0 <= number <= 100
