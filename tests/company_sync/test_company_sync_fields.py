"""Company sync: value helpers, the configuration file and the AFAS → TOPdesk field mapping."""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
import pytest

from connectors.topdesk.masterdata import BRANCH_FIELDS, PERSON_FIELDS, flat
from schemas.companies import AfasContacts, AfasDebtors, TopdeskBranches, TopdeskPersons
from tasks.company_sync.config import (
    CompaniesConfigError,
    load_companies_config,
    parse_companies_config,
)
from tasks.company_sync.extract import with_branch_columns
from tasks.company_sync.fields import (
    name_key,
    nest,
    split_full_name,
    split_house_number,
    split_postcode,
    split_street,
    text,
)
from tasks.company_sync.mapping import MappingError, branch_records, person_records, with_name_parts
from tasks.names import join_name, split_dutch_name


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Industrieweg 127", ("Industrieweg", "127")),
        ("Kerkstraat 12 A", ("Kerkstraat", "12 A")),
        ("2e Helmersstraat 5-3", ("2e Helmersstraat", "5-3")),
        ("Dorpsplein", ("Dorpsplein", None)),
        (None, (None, None)),
    ],
)
def test_street_lines_split_into_street_and_number(line, expected) -> None:
    assert split_street(line) == expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("7511 AA Enschede", ("7511 AA", "Enschede")),
        ("7511AA Den Haag", ("7511AA", "Den Haag")),
        ("1000 Brussel", ("1000", "Brussel")),
        ("D-10115 Berlin", ("D-10115", "Berlin")),
        ("Amsterdam", (None, "Amsterdam")),
    ],
)
def test_postcode_lines_split_into_postcode_and_city(line, expected) -> None:
    assert split_postcode(line) == expected


def test_names_numbers_and_bodies() -> None:
    assert split_full_name("Hanna van den Berg") == ("Hanna", "van den Berg")
    assert split_full_name("Cher") == (None, "Cher")
    assert split_full_name("Jan Willem de Vries") == ("Jan Willem", "de Vries")
    assert split_house_number("12 A") == (12, "A") and split_house_number("7-bis") == (7, "bis")
    assert split_house_number("zonder") == (None, "zonder")
    assert name_key("Zoë\u00a0Çelik Cafe\u0301 \u200bSupport B.V.") == name_key("zoe celik café support bv")
    assert text(float("nan")) == "" and text(pd.NA) == "" and text("  x ") == "x"
    body = nest({"name": "A", "address.city": "Breda", "address.country.name": "Nederland"})
    assert body == {"name": "A", "address": {"city": "Breda", "country": {"name": "Nederland"}}}


def test_the_shipped_config_is_valid_and_guarded() -> None:
    config = load_companies_config("config/companies.toml")
    assert config.create_debtors.enabled is False
    assert config.archiving_reason == "Niet meer actief in AFAS"
    assert config.branches.fields["address.city"] == ("City",)
    assert config.persons.fields["phoneNumber"] == ("TelWork", "MobWork")


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('archiving_reason = "x"\n[branches.fields]\nname = "DebtorName"\nnmae = "X"', "branches.fields: "),
        ('archiving_reason = "x"\n[branches.fields]\nphone = "TelNr"', "name must be mapped"),
        ('archiving_reason = "x"\n[branches.fields]\nname = "A"\nclientReferenceNumber = "B"', "sync key"),
        ('archiving_reason = "x"\n[create_debtors]\norganisation_prefix = "ABCD"', "organisation_prefix"),
        ('archiving_reason = "x"\ncolour = "blue"', "colour: unknown key"),
        ("clear_when_empty = true", "archiving_reason: Field required"),
        ('archiving_reason = "x"\n[persons.fields]\nsurName = []', "persons.fields.surName"),
    ],
)
def test_config_errors_name_the_key(toml, message) -> None:
    with pytest.raises(CompaniesConfigError, match="<text>") as error:
        parse_companies_config(toml)
    assert message in str(error.value)


def debtor_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "DebtorId": ["10001", " 10002 ", None],
            "DebtorName": ["Alfa B.V.", "Beta", "Gamma"],
            "BcCo": ["1000001", "1000002", "1000003"],
            "AdressLine1": ["Kerkstraat 12 A", None, "Laan 3"],
            "AdressLine3": ["1234 AB Utrecht", None, "9999 ZZ Zwolle"],
            "AdressLine4": ["Nederland", None, "België"],
            "TelNr": [None, "030-1", "040-2"],
            "Email": ["a@alfa.nl", "", None],
            "Blocked": pd.array([False, True, None], dtype="boolean"),
        }
    )


def test_branch_records_parse_addresses_and_take_the_first_filled_source() -> None:
    fields = {
        "name": ("DebtorName",),
        "phone": ("TelNr", "Email"),
        "address.street": ("Street",),
        "address.number": ("HouseNumber",),
        "address.postcode": ("PostalCode",),
        "address.city": ("City",),
        "address.country.name": ("Country",),
    }
    records = branch_records(debtor_frame(), fields)
    first = records.iloc[0].to_dict()
    assert first["clientReferenceNumber"] == "10001" and first["phone"] == "a@alfa.nl"
    assert (first["address.street"], first["address.number"]) == ("Kerkstraat", "12 A")
    assert (first["address.postcode"], first["address.city"]) == ("1234 AB", "Utrecht")
    assert records["clientReferenceNumber"].tolist() == ["10001", "10002", None]
    assert records["blocked"].tolist() == [False, True, False]
    assert records.iloc[1]["address.street"] is None and records.iloc[1]["phone"] == "030-1"


def test_a_field_map_naming_an_unknown_column_is_a_configuration_error() -> None:
    with pytest.raises(MappingError, match=r"branches.fields.website: AFAS column Homepage not in the read"):
        branch_records(debtor_frame(), {"name": ("DebtorName",), "website": ("Homepage",)})


def test_person_records_split_names_and_find_the_debtor_of_their_organisation() -> None:
    contacts = pd.DataFrame(
        {
            "ContactId": [1, 2, 3, 4],
            "Type": ["PRS", "PRS", "AFD", "PRS"],
            "OrgNumber": ["1000001", "1000002", "1000001", "1000009"],
            "PerNumber": ["50001", "50002", None, "50004"],
            "FullName": ["Hanna de Vries", "Sem Smits", None, "Eva Bos"],
            "MailWork": ["h@alfa.nl", None, None, None],
            "Blocked": pd.array([False, False, False, True], dtype="boolean"),
        }
    )
    fields = {
        "firstName": ("FirstName",),
        "prefixes": ("Prefix",),
        "surName": ("LastName",),
        "email": ("MailWork",),
    }
    records = person_records(contacts, debtor_frame(), fields)
    assert records["employeeNumber"].tolist() == ["50001", "50002", "50004"]  # the AFD row is no person
    assert records[["firstName", "prefixes", "surName"]].values.tolist() == [
        ["Hanna", "de", "Vries"],
        ["Sem", None, "Smits"],
        ["Eva", None, "Bos"],
    ]
    assert records["branch_key"].tolist() == ["10001", "10002", None]  # 1000009 is no debtor
    assert records["blocked"].tolist() == [False, True, True]  # 50002: its debtor is blocked


def test_the_read_contracts_accept_empty_reads_and_refuse_broken_ones() -> None:
    persons = with_branch_columns(flat([], PERSON_FIELDS))
    assert TopdeskPersons.validate(persons).empty and TopdeskBranches.validate(flat([], BRANCH_FIELDS)).empty
    with pytest.raises(pa.errors.SchemaError, match="DebtorId"):
        AfasDebtors.validate(pd.DataFrame({"DebtorName": ["x"], "BcCo": ["1"], "Blocked": [False]}))
    with pytest.raises(pa.errors.SchemaError, match="ContactId"):
        AfasContacts.validate(
            debtor_frame().assign(ContactId=[1, 1, 2], Type="PRS", OrgNumber="1", PerNumber="2", FullName="A")
        )


@pytest.mark.parametrize(
    ("full", "parts"),
    [
        ("Jan Willem de Vries", ("Jan Willem", "de", "Vries")),
        ("Hanna van den Berg", ("Hanna", "van den", "Berg")),
        ("Kees van 't Hek", ("Kees", "van 't", "Hek")),
        ("Jan Willem Jansen", ("Jan Willem", None, "Jansen")),
        ("Jan De Smet", ("Jan", None, "De Smet")),  # capitalised (Flemish): part of the last name
        ("Anne Smit-de Boer", ("Anne", None, "Smit-de Boer")),
        ("Maria van der Berg-de Vries", ("Maria", "van der", "Berg-de Vries")),
        ("Jan de", ("Jan", None, "de")),
        ("Cher", (None, None, "Cher")),
        ("  ", (None, None, None)),
    ],
)
def test_dutch_names_split_into_first_name_prefix_and_last_name(full, parts) -> None:
    assert split_dutch_name(full) == parts
    if full.strip():
        assert join_name(*parts) == " ".join(full.split())  # nothing lost, nothing added


def test_separate_name_columns_of_the_read_win_over_the_split() -> None:
    contacts = pd.DataFrame(
        {
            "FullName": ["Jan Willem de Vries"],
            "FirstName": ["Jan-Willem"],
            "Prefix": ["de"],
            "LastName": ["Vries"],
        }
    )
    assert with_name_parts(contacts)[["FirstName", "Prefix", "LastName"]].values.tolist() == [
        ["Jan-Willem", "de", "Vries"]
    ]
    split = with_name_parts(contacts[["FullName"]])
    assert split[["FirstName", "Prefix", "LastName"]].values.tolist() == [["Jan Willem", "de", "Vries"]]
