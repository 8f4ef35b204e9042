"""``[topdesk]`` and ``[price_checks]`` in the billing config: checked on load, mapped to the connector."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from tasks.invoice_hours.config import BillingConfigError, load_billing_config, parse_billing_config

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "billing.example.toml"


def with_section(text: str) -> str:
    """The example up to its ``[topdesk]`` table (the header line, not a comment naming it), then ``text``."""
    return EXAMPLE.read_text(encoding="utf-8").split("\n[topdesk]\n")[0] + "\n" + text


def test_the_example_documents_every_source_key_and_maps_onto_the_connector():
    config = load_billing_config(EXAMPLE)
    options = config.topdesk.options()
    assert options.include_partials_archived and options.totals
    assert options.odata.registration_sets["problem"] == "ProblemTimeRegistrations"
    assert config.price_checks.max_hourly_price == Decimal("1000.00")


def test_renamed_sets_fields_and_kinds_reach_the_connector():
    config = parse_billing_config(
        with_section(
            '[topdesk]\nkinds = ["incident", "problem"]\ninclude_partials_archived = false\n'
            '[topdesk.entity_sets.problem]\nregistrations = "ProbleemUren"\ntickets = "Problemen"\n'
            '[topdesk.odata_fields]\ntime_spent = "Minuten"\n'
        )
    )
    options = config.topdesk.options()
    assert options.kinds == ("incident", "problem") and not options.include_partials_archived
    assert options.odata.registration_sets["problem"] == "ProbleemUren"
    assert options.odata.ticket_sets["problem"] == "Problemen" and options.odata.time_spent == "Minuten"


@pytest.mark.parametrize(
    ("section", "named"),
    [
        ('[topdesk]\nkinds = ["incident", "tickets"]\n', "topdesk.kinds"),
        ('[topdesk]\nkinds = ["problem"]\nentity_sets = {}\n', "entity_sets: no entity sets for problem"),
        (
            '[topdesk.entity_sets.change]\nregistrations = "Change Hours"\ntickets = "Changes"\n',
            "not an OData",
        ),
        ('[topdesk.odata_fields]\nid = "Id;drop"\n', "topdesk.odata_fields.id"),
        ("[topdesk]\nunknown_key = 1\n", "topdesk.unknown_key"),
        ('[price_checks]\nmax_hourly_price = "-5"\n', "price_checks.max_hourly_price"),
    ],
)
def test_a_wrong_source_setting_stops_the_load_naming_the_key(section, named):
    with pytest.raises(BillingConfigError, match=named.replace(".", r"\.").replace("(", r"\(")):
        parse_billing_config(with_section(section))
