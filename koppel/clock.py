"""The time zone Koppel cuts days in, defined once: Europe/Amsterdam.

Billing periods, HR dates and the local time AFAS keeps are all Amsterdam time (design: "Time is explicit").
``AMSTERDAM`` is the zone; ``AMSTERDAM.key`` its name where pandas or a payload wants a string. The billing
run itself follows ``timezone`` in billing.toml (``BillingConfig.zone``), which defaults to this zone.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

AMSTERDAM = ZoneInfo("Europe/Amsterdam")


def today(zone: ZoneInfo = AMSTERDAM) -> date:
    """The local date now in ``zone`` (Amsterdam unless a billing configuration names another)."""
    return datetime.now(tz=zone).date()
