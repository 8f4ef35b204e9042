"""The document-kinds table (schemas/kinds.py) agrees with AFAS as the simulator holds it; Koppel uses it."""

import pytest
from sqlalchemy import CheckConstraint

import tasks.invoice_hours.payloads as payloads
from connectors.afas.getconnectors import REGISTRY
from sandbox.afas.connectors import get_connector
from sandbox.afas.schemas import UPDATE_CONNECTORS
from schemas.kinds import BY_MODE, DOCUMENT_KINDS, INTERNAL_ENTRY, KINDS, NUMBER_KEYS, Mode, kind
from store.models import documents
from tasks.invoice_hours.load import CONNECTORS, reference_for
from tasks.invoice_hours.report import afas_number


@pytest.mark.parametrize("row", KINDS, ids=lambda row: row.name)
def test_each_kind_names_a_connector_root_and_read_back_that_afas_has(row):
    assert UPDATE_CONNECTORS[row.connector][1].casefold() == row.root.casefold()
    served = get_connector(row.read_back)
    assert served is not None
    assert served.column(row.reference_field) is not None
    assert row.read_back in REGISTRY
    assert callable(getattr(payloads, row.builder))


def test_every_mode_has_exactly_one_kind_and_internal_hours_the_other():
    assert set(BY_MODE) == set(Mode)
    assert [row.name for row in KINDS if row.mode is None] == [INTERNAL_ENTRY]
    assert all(row.name == row.mode.value for row in KINDS if row.mode is not None)


def test_the_ledger_and_the_load_step_take_their_kinds_from_the_table():
    checks = [str(c.sqltext) for c in documents.constraints if isinstance(c, CheckConstraint)]
    kind_check = next(text for text in checks if text.startswith("kind IN"))
    assert kind_check == "kind IN (" + ", ".join(f"'{name}'" for name in DOCUMENT_KINDS) + ")"
    assert CONNECTORS == {"direct_invoice": "FbDirectInvoice", "project_realisation": "PtRealization"} | {
        "sales_booking": "FiEntries",
        "internal_entry": "FiEntries",
    }


def test_reference_for_uses_the_read_back_row_and_the_first_realisation_key():
    def where(found):
        return found.connector, found.field, found.value

    assert where(reference_for("direct_invoice", "KPL-1", {})) == ("Koppel_DirectInvoices", "Fref", "KPL-1")
    assert reference_for("direct_invoice", "KPL-1", {}).earlier_fields == ("RfCs",)  # invoices before Fref
    assert where(reference_for("internal_entry", "KPL-2", {})) == ("Koppel_Entries", "BpNr", "KPL-2")
    body = {"PtRealization": {"Element": [{"Fields": {"XpRe": "KPL-3-1"}}, {"Fields": {"XpRe": "KPL-3-2"}}]}}
    assert where(reference_for("project_realisation", "KPL-3", body)) == (
        "Koppel_Realizations",
        "XpRe",
        "KPL-3-1",
    )
    with pytest.raises(ValueError, match="unknown document kind 'credit_note'"):
        kind("credit_note")


def test_the_report_finds_each_kinds_number():
    assert afas_number({"ornu": "70000001"}, "") == "70000001"
    assert afas_number({"EnNo": "70001", "UnId": "1"}, "F-1") == "70001"
    assert afas_number({"XpRe": "KPL-3-1", "Id": "12", "Sessieguid": "x"}, "") == "12"
    assert afas_number({}, "F-1") == "F-1"
    assert set(NUMBER_KEYS) == {"OrNu", "EnNo", "Id", "Identity", "XpRe"}
