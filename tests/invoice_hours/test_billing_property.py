"""Property: whatever TOPdesk sends, every registration ends in exactly one bucket and no minute is lost.

Hypothesis generates registrations, malformed ones included (NaT dates, missing/negative/huge/non-whole
durations, missing/unknown/blocked/internal customer numbers, wrong projects, duplicates exact and
conflicting, odd Unicode), runs validate → exclude → join → price → plan → reconcile → documents, then
reruns with the ledger of the first run after changing, crediting and deleting some registrations.
"""

from __future__ import annotations

import math
from collections import Counter

import pandas as pd
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from schemas.billing import DocumentLines
from schemas.registrations import KINDS
from tasks.invoice_hours.buckets import BESIDE
from tasks.invoice_hours.payloads import build_payloads, entry_balance
from tasks.invoice_hours.pipeline import Scope, bill
from tests.billing_factories import AMS, config, masters, posted_from, registration, registrations

CONFIG = config(
    "[exclusions]\nbelow_minutes = 2\n"
    '[[exclusions.rules]]\nkind = "reason"\nvalue = "Garantie"\nreason = "garantie"\n'
)
MASTERS = masters().checked_copy()
OCTOBER = (pd.Timestamp("2026-10-01", tz=AMS), pd.Timestamp("2026-11-01", tz=AMS))
IDS = [f"r{i:02d}" for i in range(60)] + ["ü-∂-Ω", "0" * 36]
GOOD_CUSTOMERS = ["10001", "10001", "10002", " 10002 ", "INT-ICT", "INT-HR"]

odd_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)

# Each defect turns a good registration into one that must be rejected or excluded (or, for the last
# ones, billed differently); a row gets none, one or two of them.
DEFECTS = {
    "unparseable date": {"entry_date": pd.NaT, "entry_date_raw": "31-10-2026 14:00"},
    "missing date": {"entry_date": pd.NaT, "entry_date_raw": None},
    "closed period": {"entry_date": pd.Timestamp("2025-12-15T10:00Z")},
    "zero minutes": {"minutes": 0},
    "negative minutes": {"minutes": -45},
    "huge minutes": {"minutes": 1800},
    "missing minutes": {"minutes": pd.NA, "time_spent_raw": math.nan},
    "seconds not whole minutes": {"minutes": pd.NA, "time_spent_raw": 1234.0},
    "no customer": {"customer_number": None},
    "blank customer": {"customer_number": "  "},
    "unknown customer": {"customer_number": "99999"},
    "blocked debtor": {"customer_number": "10003"},
    "debtor without project": {"customer_number": "10004"},
    "project of another debtor": {"project_ref": "P10002-01"},
    "closed project": {"project_ref": "P10001-03"},
    "unknown project": {"project_ref": "NOPE"},
    "unknown kind": {"kind": "bogus"},
    "missing id": {"registration_id": None},
    "empty id": {"registration_id": ""},
    "excluded reason": {"reason_name": "Garantie"},
    "too short": {"minutes": 1},
    "other project": {"project_ref": "P10001-02"},
}


@st.composite
def raw_registration(draw):
    """A good registration (October/November 2026, 1–300 min) with none, one or two defects."""
    stamp = OCTOBER[0].tz_convert("UTC") + pd.Timedelta(minutes=draw(st.integers(0, 61 * 24 * 60 - 1)))
    ticket = draw(st.sampled_from(["T1", "T2", "T3", None]))
    row = {
        "registration_id": draw(st.one_of(st.sampled_from(IDS), odd_text.filter(bool))),
        "kind": draw(st.sampled_from(KINDS)),
        "entry_date": stamp,
        "minutes": draw(st.integers(2, 300)),
        "customer_number": draw(st.sampled_from(GOOD_CUSTOMERS)),
        "notes": draw(st.one_of(st.none(), odd_text)),
        "ticket_id": ticket,
        "billed_ticket_id": ticket,
        "ticket_number": None if ticket is None else f"I {ticket}",
        "billed_ticket_number": None if ticket is None else f"I {ticket}",
    }
    defects = draw(st.one_of(st.just([]), st.lists(st.sampled_from(sorted(DEFECTS)), max_size=2)))
    for defect in defects:
        event(f"defect: {defect}")
        row.update(DEFECTS[defect])
    return registration(**row)


@st.composite
def reads(draw):
    """A read with exact duplicates (the same row served twice) added."""
    rows = draw(st.lists(raw_registration(), max_size=14))
    if rows:
        copies = draw(st.lists(st.integers(0, len(rows) - 1), max_size=3))
        rows += [dict(rows[i]) for i in copies]
    return registrations(*rows)


def assert_conserved(read: pd.DataFrame, result) -> None:
    outcome = result.conservation
    assert outcome["holds"], outcome  # bill() also validated the buckets and documents
    read_ids = set(read["registration_id"].dropna())
    read_buckets = result.buckets[~result.buckets["bucket"].isin(BESIDE)]
    counted = Counter(read_buckets["registration_id"].dropna())
    assert set(counted) == read_ids
    assert max(counted.values(), default=1) == 1
    assert outcome["read"]["minutes"] == sum(b["minutes"] for b in outcome["buckets"].values())


def assert_documents_consistent(result) -> None:
    lines, documents = result.document_lines, result.documents
    if documents.empty:
        assert lines.empty
        return
    DocumentLines.validate(lines)
    charges = lines[lines["line_kind"].eq("charge")]
    assert charges["registration_id"].is_unique
    per_document = lines.groupby("reference")["amount_cents"].sum()
    assert (documents.set_index("reference")["amount_cents"] == per_document).all()
    for payload in build_payloads(documents, lines, CONFIG).values():
        if "FiEntryPar" in payload:
            assert entry_balance(payload) == 0


def ledger_after(result, changes: dict[str, str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ledger after posting ``result``, with some registrations changed, moved or credited since."""
    state, posted = posted_from(result)
    fate = posted["registration_id"].map(changes)
    changed = fate.isin(["changed", "moved"])
    posted.loc[changed, "fields_hash"] = "0" * 32  # billed with other fields than today's
    posted.loc[fate.eq("moved"), ["customer_number", "debtor"]] = "10009"  # ... and to another customer
    credited = posted[fate.eq("credited")].assign(line_kind="credit")
    credited = credited.assign(
        amount=[-a for a in credited["amount"]], reverses=credited["document_reference"]
    )
    return state, pd.concat([posted, credited], ignore_index=True)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(read=reads(), data=st.data())
def test_conservation_and_exactly_once_across_a_rerun(read, data):
    first = bill(read, MASTERS, CONFIG)
    assert_conserved(read, first)
    assert_documents_consistent(first)
    assert first.reconciled.billed_before.empty

    billed = sorted(
        first.document_lines.loc[first.document_lines["line_kind"].eq("charge"), "registration_id"]
    )
    fates = data.draw(
        st.lists(
            st.sampled_from(["same", "changed", "moved", "credited", "deleted"]),
            min_size=len(billed),
            max_size=len(billed),
        )
    )
    changes = dict(zip(billed, fates, strict=True))
    for fate in set(fates):
        event(f"a registration {fate} before the rerun")
    event(f"documents planned: {'none' if first.documents.empty else 'some'}")
    state, posted = ledger_after(first, changes)
    deleted = {rid for rid, fate in changes.items() if fate == "deleted"}
    reread = read[~read["registration_id"].isin(deleted)]
    scope = Scope(regular=True, window=OCTOBER, deleted=frozenset(deleted))
    second = bill(reread, MASTERS, CONFIG, state=state, posted=posted, scope=scope)
    assert_conserved(reread, second)
    assert_documents_consistent(second)

    lines = second.document_lines
    kinds = lines.groupby("registration_id")["line_kind"].apply(sorted).to_dict()
    bucket = (
        second.buckets.set_index("registration_id")["bucket"].to_dict() if not second.buckets.empty else {}
    )
    charges = posted[posted["line_kind"].eq("charge")].set_index("registration_id")
    stamps = read.drop_duplicates("registration_id").set_index("registration_id")["entry_date"]
    in_october = {rid: OCTOBER[0] <= stamps[rid] < OCTOBER[1] for rid in charges.index}
    for rid, fate in changes.items():
        if fate != "deleted" and not in_october[rid]:  # the window guard: not this run's range, untouched
            assert bucket[rid] == "outside window" and rid not in kinds
        elif fate == "same":
            assert bucket[rid] == "billed before" and rid not in kinds  # never billed twice
        elif fate == "changed":
            assert kinds[rid] == ["charge", "credit"]  # exactly one correction
        elif fate == "moved":
            assert kinds[rid] == ["charge", "credit"] and bucket[rid] == "re-charged"  # in the same run
        elif fate == "credited":
            assert kinds[rid] == ["charge"]
        elif in_october[rid]:
            assert kinds[rid] == ["credit"]  # gone from TOPdesk inside the range read: credited once
        else:
            assert rid not in kinds
    credits = lines[lines["line_kind"].eq("credit")]
    old_amounts = charges["amount"]
    assert all(credits["amount"] == -credits["registration_id"].map(old_amounts))
