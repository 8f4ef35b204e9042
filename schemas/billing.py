"""The frames between the billing steps.

Billable lines, planned documents and their lines, rejects, exclusions, bundle draws and buckets.
Money columns hold ``Decimal`` (object dtype, checked per element); minutes are int64; dates are
tz-aware. The ``validate`` of each model is the post-condition of the step that produces it, and the
contract for the flow's load step (claim → post → confirm) and report.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

import schemas.checks  # noqa: F401  (registers the shared checks the fields below use)
from schemas.kinds import DOCUMENT_KINDS

LINE_KINDS = ("charge", "credit")
TARGETS = ("customer", "internal")
# Every registration read ends in one of the first eleven or "outside window"; "reversed (deleted)" and
# "possibly deleted" are ledger registrations not read.
BUCKETS = (
    "invoiced",
    "internal",
    "re-charged",
    "excluded",
    "rejected",
    "billed before",
    "reversed after billing",
    "kept after billing",
    "left for the regular run",
    "failed",
    "awaiting confirmation",
    "reversed (deleted)",
    "possibly deleted",
    "outside window",
)
STEPS = ("validate", "join", "rules")
REFERENCE_PATTERN = r"^KPL-\d+-\d{6}-[0-9a-f]{16}$"


class BillableLines(pa.DataFrameModel):
    """``plan.plan_lines``: one line per priced registration, amounts in the administration's mode."""

    registration_id: Series[str] = pa.Field(unique=True)
    kind: Series[str] = pa.Field(isin=list(DOCUMENT_KINDS))
    target: Series[str] = pa.Field(isin=list(TARGETS))
    administration: Series[int]
    customer_number: Series[str]
    debtor_id: Series[str] = pa.Field(nullable=True)
    project_id: Series[str] = pa.Field(nullable=True)
    period: Series[str] = pa.Field(str_matches=r"^\d{4}-\d{2}$")
    work_date: Series[Any]
    item_code: Series[str]
    minutes: Series[int] = pa.Field(gt=0)
    billed_minutes: Series[int] = pa.Field(ge=0)
    drawn_minutes: Series[int] = pa.Field(ge=0)
    chargeable_minutes: Series[int] = pa.Field(ge=0)
    unit_price: Series[Any] = pa.Field(cents={})
    quantity: Series[Any] = pa.Field(cents={})
    amount: Series[Any] = pa.Field(cents={})
    amount_cents: Series[int]
    fields_hash: Series[str] = pa.Field(str_matches=r"^[0-9a-f]{32}$")

    @pa.dataframe_check(name="included within drawn")
    def _included_within_drawn(cls, frame: pd.DataFrame) -> pd.Series:
        if "included_minutes" not in frame:
            return pd.Series(True, index=frame.index)
        return frame["included_minutes"].between(0, frame["drawn_minutes"])

    @pa.dataframe_check(name="drawn + chargeable = billed")
    def _minutes_add_up(cls, frame: pd.DataFrame) -> pd.Series:
        return frame["drawn_minutes"] + frame["chargeable_minutes"] == frame["billed_minutes"]

    class Config:
        """The line also carries the registration's own columns and the rule outcomes."""

        strict = False


class DocumentLines(pa.DataFrameModel):
    """``plan.build_documents``: each registration line with its document reference and line kind."""

    reference: Series[str] = pa.Field(str_matches=REFERENCE_PATTERN)
    registration_id: Series[str]
    line_kind: Series[str] = pa.Field(isin=list(LINE_KINDS))
    is_correction: Series[bool]
    expected_version: Series[pd.Int64Dtype] = pa.Field(nullable=True)
    fields_hash: Series[str] = pa.Field(str_matches=r"^[0-9a-f]{32}$")
    billed_minutes: Series[int]
    quantity: Series[Any] = pa.Field(cents={})
    unit_price: Series[Any] = pa.Field(cents={})
    amount: Series[Any] = pa.Field(cents={})
    amount_cents: Series[int]

    @pa.dataframe_check(name="a registration at most once per line kind and document")
    def _once(cls, frame: pd.DataFrame) -> pd.Series:
        return ~frame.duplicated(["reference", "registration_id", "line_kind"], keep=False)

    @pa.dataframe_check(name="credits are negative, charges are not")
    def _signs(cls, frame: pd.DataFrame) -> pd.Series:
        credit = frame["line_kind"] == "credit"
        return (credit & (frame["amount_cents"] <= 0)) | (~credit & (frame["amount_cents"] >= 0))

    class Config:
        """Context columns (ticket, description, accounts) ride along for the payloads."""

        strict = False


class PlannedDocuments(pa.DataFrameModel):
    """One AFAS document to claim and post."""

    reference: Series[str] = pa.Field(
        unique=True, str_matches=REFERENCE_PATTERN, str_length={"max_value": 32}
    )
    kind: Series[str] = pa.Field(isin=list(DOCUMENT_KINDS))
    administration: Series[int]
    debtor_id: Series[str]
    project_id: Series[str]
    period: Series[str] = pa.Field(str_matches=r"^\d{4}-\d{2}$")
    period_year: Series[int]
    period_number: Series[int]
    is_correction: Series[bool]
    line_count: Series[int] = pa.Field(gt=0)
    minutes: Series[int]
    amount: Series[Any] = pa.Field(cents={})
    vat_amount: Series[Any] = pa.Field(cents={})
    total: Series[Any] = pa.Field(cents={})
    needs_invoice_number: Series[bool]
    document_date: Series[str] = pa.Field(str_matches=r"^\d{4}-\d{2}-\d{2}$")

    @pa.dataframe_check(name="total = amount + VAT")
    def _total(cls, frame: pd.DataFrame) -> pd.Series:
        return frame["total"] == frame["amount"] + frame["vat_amount"]

    class Config:
        """Extra columns allowed."""

        strict = False


class Rejects(pa.DataFrameModel):
    """A registration that cannot be billed as it is: the §1 columns plus why and at which step."""

    registration_id: Series[str] = pa.Field(nullable=True)
    reason: Series[str] = pa.Field(str_length={"min_value": 1})
    step: Series[str] = pa.Field(isin=list(STEPS))

    class Config:
        """Every original column is kept."""

        strict = False


class Exclusions(pa.DataFrameModel):
    """A registration deliberately not billed, with the rule that excluded it."""

    registration_id: Series[str] = pa.Field(unique=True)
    reason: Series[str] = pa.Field(str_length={"min_value": 1})

    class Config:
        """Every original column is kept."""

        strict = False


class BundleDraws(pa.DataFrameModel):
    """Minutes the charged registrations draw from allowances and bundles, for the load step to record."""

    registration_id: Series[str]
    bundle_id: Series[int]
    customer_number: Series[str]
    source: Series[str] = pa.Field(isin=["allowance", "bundle"])
    minutes: Series[int] = pa.Field(gt=0)

    @pa.dataframe_check(name="one draw per registration and pool")
    def _unique(cls, frame: pd.DataFrame) -> bool:
        return not frame.duplicated(["registration_id", "bundle_id"]).any()

    class Config:
        """``work_date`` rides along."""

        strict = False


class Buckets(pa.DataFrameModel):
    """Where each registration read ended: exactly one row per registration."""

    registration_id: Series[str] = pa.Field(nullable=True)
    bucket: Series[str] = pa.Field(isin=list(BUCKETS))
    minutes: Series[pd.Int64Dtype] = pa.Field(nullable=True)

    @pa.dataframe_check(name="each registration id once")
    def _once(cls, frame: pd.DataFrame) -> pd.Series:
        ids = frame["registration_id"]
        return ids.isna() | ~ids.duplicated(keep=False)

    class Config:
        """``reason``, ``billed_minutes``, ``amount``, ``reference`` ride along."""

        strict = False
