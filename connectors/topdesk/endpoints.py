"""The TOPdesk endpoints Koppel uses, described as data (reference §2–§5).

Each endpoint names its path (relative to the tenant root; ``{id}`` placeholders are percent-encoded
when filled), its paging family, the largest page it allows (reference §2.1; TOPdesk answers 400 above
it, decision §9.10) and the page size Koppel asks for (the largest: fewest requests), where the rows sit
in the body, the vendor ``Accept`` type where one is required, the name of its projection parameter and
its stop rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

from connectors.topdesk.paging import Family

API = "tas/api"
ODATA = "services/reporting/v2/odata"
PERSON_LIST = "application/x.topdesk-collection-person-v2+json"
PERSON = "application/x.topdesk-person-v2+json"
OM_ACTIVITY_LIST = "application/x.topdesk-collection-om-activity-v1+json"


@dataclass(frozen=True)
class Endpoint:
    """One readable TOPdesk collection."""

    name: str
    path: str
    family: Family
    page_size: int = 0
    max_page_size: int = 0  # 0: unpaged or server-driven (OData)
    rows_key: str | None = None  # None: the body is the list
    accept: str | None = None
    fields_param: str = "fields"
    signal: Literal["short_page", "status"] = "short_page"

    def __post_init__(self) -> None:
        if self.max_page_size and not 0 < self.page_size <= self.max_page_size:
            raise ValueError(f"{self.name}: page size {self.page_size} outside 1..{self.max_page_size}")

    def checked_page_size(self, size: int) -> int:
        """``size`` if the endpoint allows it; a larger page would be refused (400), so never ask."""
        if self.max_page_size and not 0 < size <= self.max_page_size:
            raise ValueError(
                f"{self.name} pages hold at most {self.max_page_size} rows (and at least 1), not {size}"
            )
        return size

    def url(self, **values: str) -> str:
        """The path with placeholders filled, each value percent-encoded (numbers contain spaces)."""
        return self.path.format(**{k: quote(str(v), safe="") for k, v in values.items()})


INCIDENTS = Endpoint(
    "incidents", f"{API}/incidents", Family.A, page_size=10_000, max_page_size=10_000, signal="status"
)
TIME_REGISTRATIONS = Endpoint(
    "incident time registrations",
    f"{API}/incidents/timeregistrations",
    Family.A,
    page_size=10_000,
    max_page_size=10_000,
    rows_key="results",
)
BRANCHES = Endpoint("branches", f"{API}/branches", Family.UNPAGED, fields_param="$fields")
PERSONS = Endpoint(
    "persons",
    f"{API}/persons",
    Family.C,
    page_size=5000,
    max_page_size=5000,
    rows_key="item",
    accept=PERSON_LIST,
)
OPERATORS = Endpoint("operators", f"{API}/operators", Family.B, page_size=100, max_page_size=100)
OPERATOR_GROUPS = Endpoint(
    "operator groups", f"{API}/operatorgroups", Family.B, page_size=100, max_page_size=100
)
REASONS = Endpoint("time-spent reasons", f"{API}/timespent-reasons", Family.UNPAGED)
ARCHIVING_REASONS = Endpoint("archiving reasons", f"{API}/archiving-reasons", Family.UNPAGED)
OM_ACTIVITIES = Endpoint(
    "operational activities",
    f"{API}/operationalActivities",
    Family.C,
    page_size=5000,  # decision §9.17: the OM list's maximum is taken as 5,000 (undocumented)
    max_page_size=5000,
    rows_key="item",
    accept=OM_ACTIVITY_LIST,
)
OM_REGISTRATIONS = Endpoint(
    "operational activity time registrations",
    f"{API}/operationalActivities/{{id}}/timeRegistrations",
    Family.UNPAGED,
    rows_key="results",
)


def odata(entity_set: str) -> Endpoint:
    """The OData reporting feed of one entity set (decision §9.2)."""
    return Endpoint(f"odata {entity_set}", f"{ODATA}/{entity_set}", Family.ODATA, rows_key="value")
