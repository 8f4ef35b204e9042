"""The GetConnectors Koppel reads, described as data (docs/contracts.md §2, docs/afas-getconnectors.md).

Each entry names the unique sort key the client always sends (reference §3.4: paging without
``orderbyfieldids`` loses and duplicates rows), whether keyset paging (``key > last`` sorted by key) is
possible — it needs one unique, never-empty key — and the page size. Without an explicit ``take`` a
connector with a known column count reads the largest page within AFAS's cell guidance (columns × rows
< 150,000, reference §3.4), at most ``MAX_TAKE`` rows; without a column count it reads ``DEFAULT_TAKE``.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_TAKE = 1000  # when the column count is unknown (decision §11.5)
MAX_TAKE = 10_000  # never more rows per page, however narrow the connector
CELL_BUDGET = 150_000  # columns × rows per page above which AFAS risks "Out of memory" (reference §3.4)


def take_for(columns: int | None) -> int:
    """The largest page within the cell budget for ``columns`` columns (``DEFAULT_TAKE`` when unknown)."""
    if not columns:
        return DEFAULT_TAKE
    return max(1, min(MAX_TAKE, (CELL_BUDGET - 1) // columns))


@dataclass(frozen=True)
class GetConnector:
    """One GetConnector: id, unique sort key, paging style, page size and (optionally) its key fields."""

    id: str
    sort_key: tuple[str, ...]
    keyset: bool = False
    take: int = 0  # 0: ``take_for(columns)``
    columns: int | None = None  # expected column count, to check the page size against the budget
    key_fields: tuple[str, ...] = ()  # the document key(s) a read-back returns (``find_by_reference``)

    def __post_init__(self) -> None:
        if self.take == 0:
            object.__setattr__(self, "take", take_for(self.columns))
        if not self.sort_key:
            raise ValueError(f"GetConnector {self.id} needs a unique sort key")
        if self.keyset and len(self.sort_key) != 1:
            raise ValueError(f"GetConnector {self.id}: keyset paging needs exactly one key field")
        if any("." in name for name in self.sort_key):
            raise ValueError(f"GetConnector {self.id}: AFAS refuses dotted sort fields ({self.sort_key})")
        if self.columns and self.columns * self.take >= CELL_BUDGET:
            raise ValueError(f"GetConnector {self.id}: take {self.take} × {self.columns} columns is too much")

    @property
    def order_by(self) -> str:
        """The ``orderbyfieldids`` value."""
        return ",".join(self.sort_key)


REGISTRY: dict[str, GetConnector] = {
    c.id: c
    for c in (
        # Standard Profit connectors (reference §6–§8).
        GetConnector("Profit_Debtor", ("DebtorId",), keyset=True, columns=21),
        GetConnector("Profit_Administrations", ("AdminId",), keyset=True, columns=3),
        GetConnector("Profit_Projects", ("ProjectId",), keyset=True, columns=12),
        GetConnector("Profit_Worktype", ("ItemCode",), keyset=True, columns=5),
        GetConnector("Profit_Realization", ("Identity",), keyset=True, columns=16),
        GetConnector("Profit_periods_per_administration", ("Unit", "Year", "Period"), columns=9),
        GetConnector("Profit_Contacts", ("ContactId",), keyset=True, columns=23),
        GetConnector("Profit_OrgPer", ("BcCo",), keyset=True, columns=14),
        GetConnector("Profit_Illness", ("AbsenceId",), keyset=True, columns=40),
        GetConnector("Profit_Users", ("UserId",), keyset=True, columns=11),
        GetConnector("Profit_Journals", ("UnitId", "JournalId"), columns=5),
        GetConnector("Profit_VAT_code", ("VatCode",), keyset=True, columns=8),
        GetConnector("Profit_Allocation_Assigments", ("Unit", "Account", "DimAx", "DimCode"), columns=6),
        # Project-defined connectors (docs/afas-getconnectors.md); the read-backs expose our references.
        GetConnector("Koppel_Sales_Prices", ("ItemCode", "DebtorId", "DateStart"), columns=4),
        GetConnector("Koppel_Units", ("UnitId",), keyset=True, columns=2),
        GetConnector("Koppel_DirectInvoices", ("OrNu",), keyset=True, columns=8, key_fields=("OrNu",)),
        GetConnector(
            "Koppel_DirectInvoiceLines", ("GuLi",), keyset=True, columns=8, key_fields=("OrNu", "GuLi")
        ),
        GetConnector("Koppel_Entries", ("UnId", "EnNo"), columns=14, key_fields=("UnId", "EnNo")),
        GetConnector(
            "Koppel_Realizations", ("Identity",), keyset=True, columns=9, key_fields=("XpRe", "Identity")
        ),
        GetConnector("Koppel_HR_OrgUnits", ("OrgUnitId",), keyset=True, columns=5),
        GetConnector("Koppel_HR_Employees", ("EmployeeId",), keyset=True, columns=7),
        GetConnector("Koppel_HR_Employments", ("EmploymentKey",), keyset=True, columns=13),
    )
}


def lookup(connector: str | GetConnector, registry: dict[str, GetConnector] | None = None) -> GetConnector:
    """The registered description of ``connector``; raises when it has no sort key configured."""
    if isinstance(connector, GetConnector):
        return connector
    found = (registry if registry is not None else REGISTRY).get(connector)
    if found is None:
        raise KeyError(
            f"GetConnector {connector!r} has no configured sort key; "
            "register it in connectors/afas/getconnectors.py"
        )
    return found
