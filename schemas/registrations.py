"""Time registrations as the TOPdesk connector delivers them, and as validation lets them through.

``RawRegistrations`` is the normalised frame of docs/contracts.md §1: every column present, bad values kept
(NaT dates, ``<NA>`` minutes) so that validation can reject the row with a reason. ``ValidRegistrations``
adds the row rules a billable registration must meet; ``tasks/invoice_hours/validate.py`` runs it lazily and
turns
its failure cases into one reject per registration. Billing lines downstream are in ``schemas/billing.py``.
"""

from __future__ import annotations

import functools
from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

KINDS = ("incident", "change", "change_activity", "operational_activity", "problem")
TIME_UNITS = ("seconds", "minutes")
MAX_MINUTES = 720  # default ceiling per registration (12 h); the billing configuration may change it

_UTC = {"unit": "ns", "tz": "UTC"}


def _text(**kwargs: Any) -> Any:
    """A nullable text column; coerced so that an all-None object column becomes the string dtype."""
    return pa.Field(nullable=True, coerce=True, **kwargs)


class RawRegistrations(pa.DataFrameModel):
    """docs/contracts.md §1: one row per TOPdesk time registration, malformed values kept raw."""

    registration_id: Series[str] = _text()
    kind: Series[str] = _text()
    entry_date_raw: Series[str] = _text()
    entry_date: Series[pd.DatetimeTZDtype] = pa.Field(nullable=True, dtype_kwargs=_UTC)
    time_spent_raw: Series[float] = pa.Field(nullable=True)
    time_unit: Series[str] = _text()
    minutes: Series[pd.Int64Dtype] = pa.Field(nullable=True)
    creation_date: Series[pd.DatetimeTZDtype] = pa.Field(nullable=True, dtype_kwargs=_UTC)
    modification_date: Series[pd.DatetimeTZDtype] = pa.Field(nullable=True, dtype_kwargs=_UTC)
    operator_id: Series[str] = _text()
    operator_name: Series[str] = _text()
    operator_group_id: Series[str] = _text()
    operator_group_name: Series[str] = _text()
    reason_id: Series[str] = _text()
    reason_name: Series[str] = _text()
    notes: Series[str] = _text()
    ticket_id: Series[str] = _text()
    ticket_number: Series[str] = _text()
    ticket_description: Series[str] = _text()
    billed_ticket_id: Series[str] = _text()
    billed_ticket_number: Series[str] = _text()
    ticket_status: Series[str] = _text()
    branch_id: Series[str] = _text()
    branch_name: Series[str] = _text()
    customer_number: Series[str] = _text()
    category: Series[str] = _text()
    subcategory: Series[str] = _text()
    project_ref: Series[str] = _text()

    class Config:
        """Extra columns are allowed: the connector may add context the billing ignores."""

        strict = False


class ValidRegistrations(RawRegistrations):
    """A registration that can be billed: identified, dated, a known kind, whole minutes in range."""

    registration_id: Series[str] = pa.Field(nullable=False, unique=True, str_length={"min_value": 1})
    kind: Series[str] = pa.Field(nullable=False, isin=list(KINDS))
    entry_date: Series[pd.DatetimeTZDtype] = pa.Field(nullable=False, dtype_kwargs=_UTC)
    minutes: Series[pd.Int64Dtype] = pa.Field(nullable=False, gt=0, le=MAX_MINUTES)


@functools.cache
def valid_registrations_schema(max_minutes: int = MAX_MINUTES) -> pa.DataFrameSchema:
    """``ValidRegistrations`` with the configured ceiling on minutes per registration."""
    schema = ValidRegistrations.to_schema()
    return schema.update_column("minutes", checks=[pa.Check.gt(0), pa.Check.le(max_minutes)], nullable=False)


ROW_RULE_COLUMNS = ["registration_id", "kind", "entry_date", "minutes"]


@functools.cache
def row_rules_schema(max_minutes: int = MAX_MINUTES) -> pa.DataFrameSchema:
    """The columns of ``ValidRegistrations`` that carry row rules, and only those.

    Validation runs this lazily once the dtypes are normalised; the whole schema costs three times as much.
    """
    return valid_registrations_schema(max_minutes).select_columns(ROW_RULE_COLUMNS)
