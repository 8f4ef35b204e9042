"""The six flows keeping a run record share one decorator: validated parameters, record closed on failure."""

import importlib

import pytest

from koppel.notifications import notify_failure
from tasks.state import mark_run_ended

RECORDED = [
    ("flows.invoice_hours", "invoice_hours", "invoice-hours"),
    ("flows.sync_companies", "sync_companies", "sync-companies"),
    ("flows.create_missing_debtors", "create_missing_debtors", "create-missing-debtors"),
    ("flows.import_debtors", "import_debtors", "import-debtors"),
    ("flows.hr_sync", "hr_sync", "hr-sync"),
    ("flows.absence_to_afas", "absence_to_afas", "absence-to-afas"),
]


@pytest.mark.parametrize(("module", "attribute", "name"), RECORDED)
def test_a_failed_or_crashed_run_closes_its_record_and_notifies(module, attribute, name):
    flow = getattr(importlib.import_module(module), attribute)
    assert flow.name == name
    assert flow.should_validate_parameters
    assert flow.on_failure_hooks == [mark_run_ended, notify_failure]
    assert flow.on_crashed_hooks == [mark_run_ended, notify_failure]


def test_invoice_hours_keeps_its_own_run_name_and_task_runner():
    from flows.invoice_hours import invoice_hours

    assert invoice_hours.flow_run_name is not None
    assert type(invoice_hours.task_runner).__name__ == "ThreadPoolTaskRunner"
