from decimal import Decimal
from pathlib import Path

import pytest

from tasks.invoice_hours.config import (
    DEFAULT_CONFIG_PATH,
    BillingConfigError,
    Grouping,
    Mode,
    load_billing_config,
    parse_billing_config,
)
from tests.billing_factories import CONFIG_TOML

EXAMPLE = DEFAULT_CONFIG_PATH.with_name("billing.example.toml")


def test_default_config_matches_the_sandbox_world():
    from sandbox.world import DEPARTMENTS, ITEMS

    config = load_billing_config()
    assert config.administrations[1].mode == Mode.DIRECT_INVOICE
    assert config.administrations[1].grouping == Grouping.PER_TICKET_ITEM
    assert config.administrations[2].mode == Mode.PROJECT_REALISATION
    assert {code: Decimal(price) for code, price in ((c, p) for c, _, p in ITEMS)} == config.rates.items
    departments = config.department_table()
    assert {code: (1, account, centre) for code, _, account, centre in DEPARTMENTS} == {
        code: (admin, dep.cost_account, dep.cost_centre) for code, (admin, dep) in departments.items()
    }
    assert config.administrations[1].accounts.vat_rate == Decimal("0.21")
    assert [s.name for s in config.surcharges] == ["avond", "nacht", "weekend"]
    assert config.surcharges[0].start == 18 * 60 and config.surcharges[0].end == 24 * 60


def test_example_config_documents_a_valid_configuration():
    config = load_billing_config(EXAMPLE)
    assert config.rates.customers["10002"]["*"] == Decimal("90.00")
    assert config.projects.mapping == {"10001": "P10001-02"}
    assert config.exclusions.below_minutes == 2


USER_TABLES = {
    "departments",
    "mapping",
    "by_reason",
    "by_category",
    "by_operator_group",
    "items",
    "operator_groups",
    "customers",
}


def _key_paths(table: dict, prefix: str = "") -> set[str]:
    """Dotted key paths; administration numbers become N, user-named entries (departments, rates) *."""
    found = set()
    for key, value in table.items():
        name = prefix + ("N" if key.isdigit() else key)
        found.add(name)
        if isinstance(value, dict):
            if key in USER_TABLES and prefix:  # top-level [items] is a section, rates.items a table
                found |= {f"{name}.*" for _ in value}
                for entry in value.values():
                    if isinstance(entry, dict):
                        found |= _key_paths(entry, f"{name}.*.")
            else:
                found |= _key_paths(value, name + ".")
        if isinstance(value, list) and value and isinstance(value[0], dict):
            for item in value:
                found |= _key_paths(item, name + "[].")
    return found


def test_every_key_of_the_default_is_documented_in_the_example():
    import tomllib

    default = _key_paths(tomllib.loads(DEFAULT_CONFIG_PATH.read_text()))
    example = _key_paths(tomllib.loads(EXAMPLE.read_text()))
    assert default - example == set()
    assert "administrations.N.internal.departments.*.cost_centre" in example
    assert "surcharges[].percent" in example


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ('SUPPORT = "95.00"', "rates.items.SUPPORT: write decimals as quoted strings"),
        ('SUPPORT = "-1"', "rates.items.SUPPORT: must not be negative"),
        ('SUPPORT = "95.123456"', "rates.items.SUPPORT: at most 4 decimals"),
        ('SUPPORT = "abc"', "rates.items.SUPPORT: not a decimal number"),
    ],
)
def test_rate_errors_name_the_key(change, message):
    replacement = change if "95.00" not in change else "SUPPORT = 95.0"
    text = CONFIG_TOML.replace('SUPPORT = "95.00"', replacement)
    with pytest.raises(BillingConfigError) as raised:
        parse_billing_config(text, source="billing.toml")
    assert str(raised.value).startswith("billing.toml: ")
    assert message in str(raised.value)


def test_unknown_key_is_an_error_naming_it():
    with pytest.raises(BillingConfigError, match=r"administrations\.1\.grouping_mode: unknown key"):
        parse_billing_config(CONFIG_TOML.replace('grouping = "per_ticket_item"', 'grouping_mode = "x"'))


def test_bad_mode_names_the_key_and_the_choices():
    with pytest.raises(
        BillingConfigError, match=r"administrations\.1\.mode: Input should be 'direct_invoice'"
    ):
        parse_billing_config(CONFIG_TOML.replace('mode = "direct_invoice"', 'mode = "invoice"'))


def test_an_assigned_item_without_rate_is_an_error():
    text = CONFIG_TOML.replace(
        'default = "SUPPORT"', 'default = "SUPPORT"\n[items.by_reason]\n"Spoed" = "NIGHT"'
    )
    with pytest.raises(BillingConfigError, match=r"rates\.items\.NIGHT: missing \(item 'NIGHT' is assigned"):
        parse_billing_config(text)


def test_an_afas_rate_source_needs_no_item_rates():
    text = CONFIG_TOML.replace('SUPPORT = "95.00"\n', "").replace(
        "[rates.items]", '[rates]\nsource = "afas"\n[rates.items]'
    )
    assert parse_billing_config(text).rates.source == "afas"


def test_default_administration_must_exist():
    with pytest.raises(BillingConfigError, match=r"projects\.default_administration: 7 is not one of"):
        parse_billing_config(CONFIG_TOML.replace("default_administration = 1", "default_administration = 7"))


def test_a_department_in_two_administrations_is_an_error():
    text = CONFIG_TOML.replace(
        "[administrations.2.accounts]",
        '[administrations.2.internal.departments.INT-ICT]\ncost_account = "1"\n[administrations.2.accounts]',
    )
    with pytest.raises(
        BillingConfigError, match=r"departments\.INT-ICT: also configured in administration 1"
    ):
        parse_billing_config(text)


def test_unknown_time_zone_and_bad_clock_are_errors():
    with pytest.raises(BillingConfigError, match="timezone: unknown time zone 'Europe/Amsterdan'"):
        parse_billing_config(CONFIG_TOML.replace('"Europe/Amsterdam"', '"Europe/Amsterdan"'))
    text = (
        CONFIG_TOML
        + '[[surcharges]]\nname = "x"\ndays = ["mon"]\nstart = "25:00"\nend = "24:00"\npercent = "10"\n'
    )
    with pytest.raises(BillingConfigError, match=r"surcharges\.0\.start: .*expected a time as HH:MM"):
        parse_billing_config(text)


def test_toml_syntax_and_missing_file_errors(tmp_path: Path):
    with pytest.raises(BillingConfigError, match="not valid TOML"):
        parse_billing_config("mode = ")
    with pytest.raises(BillingConfigError, match="cannot read"):
        load_billing_config(tmp_path / "absent.toml")


def test_for_administration_restricts_the_run_and_names_the_modes():
    config = load_billing_config()
    assert config.for_administration(None) is config
    assert config.modes_text() == "1: direct_invoice (per_ticket_item), 2: project_realisation"
    only = config.for_administration(2)
    assert only.only_administration == 2 and only.modes_text() == "2: project_realisation"
    assert (only.in_scope(1), only.in_scope(2)) == (False, True)
    with pytest.raises(BillingConfigError, match=r"administration: 5 is not configured \(configured: 1, 2\)"):
        config.for_administration(5)
