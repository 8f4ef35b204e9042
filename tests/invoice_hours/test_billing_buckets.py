from collections import Counter

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from schemas.billing import Buckets
from tasks.invoice_hours.buckets import SHOWN_IDS, _identity_check, conservation, equation_line
from tasks.invoice_hours.pipeline import bill
from tests.billing_factories import at, config, masters, posted_from, registration, registrations

EXCLUDE_GARANTIE = (
    '[exclusions]\n[[exclusions.rules]]\nkind = "reason"\nvalue = "Garantie"\nreason = "garantie"\n'
)


def mixed():
    rows = [
        registration(registration_id="inv", minutes=45),
        registration(registration_id="int", minutes=30, customer_number="INT-ICT"),
        registration(registration_id="exc", minutes=20, reason_name="Garantie"),
        registration(registration_id="bad", minutes=0),
        registration(registration_id="nodate", minutes=15, entry_date=pd.NaT, entry_date_raw="morgen"),
        registration(registration_id="unknown", minutes=25, customer_number="99999"),
        registration(registration_id=None, minutes=10),
    ]
    twice = registration(registration_id="twice", minutes=5)
    read = registrations(*rows, twice, dict(twice))
    return read, bill(read, masters(), config(EXCLUDE_GARANTIE))


def test_every_registration_in_exactly_one_bucket_with_a_reason():
    _, result = mixed()
    buckets = result.buckets.set_index("registration_id", drop=False)
    Buckets.validate(result.buckets)
    assert buckets.loc[["inv", "twice"], "bucket"].tolist() == ["invoiced", "invoiced"]
    assert buckets.loc["int", "bucket"] == "internal"
    assert buckets.loc["exc", ["bucket", "reason"]].tolist() == [
        "excluded",
        "garantie (billing.toml: reason 'Garantie')",
    ]
    assert buckets.loc["bad", ["bucket", "reason"]].tolist() == ["rejected", "minutes: must be > 0"]
    assert buckets.loc["nodate", "reason"] == "entry_date: unparseable 'morgen'"
    assert buckets.loc["unknown", "reason"] == "unknown customer: '99999'"
    assert result.buckets["reason"].notna().all()
    assert len(result.buckets) == 8  # 9 rows read, the exact duplicate counted once


def test_conservation_counts_and_minutes_per_bucket():
    _, result = mixed()
    outcome = result.conservation
    assert outcome["holds"]
    assert outcome["read"] == {"count": 8, "minutes": 150, "rows": 9}
    assert outcome["buckets"] == {
        "invoiced": {"count": 2, "minutes": 50},
        "internal": {"count": 1, "minutes": 30},
        "excluded": {"count": 1, "minutes": 20},
        "rejected": {"count": 4, "minutes": 50},  # 0 + 15 + 25 + 10 (the id-less row)
        "billed before": {"count": 0, "minutes": 0},
        "failed": {"count": 0, "minutes": 0},
    }
    assert outcome["line"] == (
        "read = invoiced + internal + excluded + rejected + billed before: "
        "150 = 50 + 30 + 20 + 50 + 0 minutes; 8 = 2 + 1 + 1 + 4 + 0 registrations (holds)"
    )


def test_a_lost_registration_breaks_the_equation_and_is_named():
    read, result = mixed()
    lost = conservation(read, result.buckets[result.buckets["registration_id"].ne("inv")])
    assert not lost["holds"]
    assert lost["missing_ids"] == ["inv"]
    assert lost["line"].endswith("(**DOES NOT HOLD**)")


def test_a_doubled_registration_breaks_the_equation_and_is_named():
    read, result = mixed()
    doubled = pd.concat([result.buckets, result.buckets[result.buckets["registration_id"].eq("int")]])
    outcome = conservation(read, doubled)
    assert not outcome["holds"]
    assert outcome["duplicate_ids"] == ["int"]


def test_an_unknown_id_or_bucket_breaks_the_equation():
    read, result = mixed()
    extra = pd.DataFrame({"registration_id": ["ghost"], "bucket": ["invoiced"], "minutes": [0]})
    outcome = conservation(read, pd.concat([result.buckets, extra], ignore_index=True))
    assert not outcome["holds"] and outcome["unexpected_ids"] == ["ghost"]
    renamed = result.buckets.assign(bucket=result.buckets["bucket"].replace("internal", "intern"))
    outcome = conservation(read, renamed)
    assert not outcome["holds"] and outcome["unknown_buckets"] == ["intern"]


def test_failed_bucket_joins_the_equation_when_the_load_step_uses_it():
    read, result = mixed()
    failed = result.buckets.assign(bucket=result.buckets["bucket"].replace("invoiced", "failed"))
    outcome = conservation(read, failed)
    assert outcome["holds"]
    assert outcome["buckets"]["failed"] == {"count": 2, "minutes": 50}
    assert "billed before + failed: 150 = 0 + 30 + 20 + 50 + 0 + 50 minutes" in outcome["line"]


def test_billed_before_bucket_on_a_rerun():
    rows = [registration(registration_id="a", entry_date=at("2026-10-07 09:00"))]
    first = bill(registrations(*rows), masters(), config())
    state, posted = posted_from(first)
    again = bill(registrations(*rows), masters(), config(), state=state, posted=posted)
    assert again.buckets["bucket"].tolist() == ["billed before"]
    assert again.conservation["line"].startswith(
        "read = invoiced + internal + excluded + rejected + billed before: 60 ="
    )


def test_equation_line_formats_thousands():
    outcome = {
        "read": {"count": 250000, "minutes": 30001127},
        "buckets": {
            name: {"count": 0, "minutes": 0} for name in ("internal", "excluded", "rejected", "failed")
        }
        | {"invoiced": {"count": 250000, "minutes": 30001127}, "billed before": {"count": 0, "minutes": 0}},
        "holds": True,
    }
    assert equation_line(outcome) == (
        "read = invoiced + internal + excluded + rejected + billed before: "
        "30,001,127 = 30,001,127 + 0 + 0 + 0 + 0 minutes; "
        "250,000 = 250,000 + 0 + 0 + 0 + 0 registrations (holds)"
    )


def test_a_run_for_one_administration_excludes_the_others_with_a_reason():
    rows = [
        registration(registration_id="adm1"),
        registration(registration_id="adm2", customer_number="10002"),
        registration(registration_id="bad", minutes=0, customer_number="10002"),
    ]
    read = registrations(*rows)
    result = bill(read, masters(), config().for_administration(1))
    buckets = result.buckets.set_index("registration_id")
    assert buckets["bucket"].to_dict() == {"adm1": "invoiced", "adm2": "excluded", "bad": "rejected"}
    assert buckets.loc["adm2", "reason"] == (
        "administration not in this run (run bills administration 1 only): 2"
    )
    assert set(result.documents["administration"]) == {1}
    assert result.conservation["holds"]


def test_a_document_replanned_in_the_load_that_fails_moves_its_registrations_out_of_invoiced():
    """Found by the sequence property test: a held document is re-planned without the held registration and
    posts under a new reference; when AFAS refuses that one, its registrations are pending, not invoiced."""
    from tasks.invoice_hours.buckets import settle_buckets
    from tasks.invoice_hours.load import Outcome

    read = registrations(
        registration(registration_id="moved", minutes=60), registration(registration_id="new", minutes=30)
    )
    result = bill(read, masters(), config())
    planned = result.buckets.set_index("registration_id")["reference"]
    assert planned["moved"] == planned["new"]  # one document holds both
    outcomes = [
        Outcome(str(planned["moved"]), "direct_invoice", "held", message="its reversal did not post",
                registration_ids=("moved",)),
        Outcome("KPL-1-202610-replanned", "direct_invoice", "failed", message="Verkooprelatie geblokkeerd.",
                registration_ids=("new",)),
    ]  # fmt: skip
    settled = settle_buckets(result.buckets, outcomes).set_index("registration_id")
    assert settled.loc["moved", ["bucket", "reason"]].tolist() == [
        "failed",
        "held: its reversal did not post",
    ]
    assert settled.loc["new", ["bucket", "reason"]].tolist() == [
        "failed",
        "failed: Verkooprelatie geblokkeerd.",
    ]


ids = st.lists(st.one_of(st.none(), st.sampled_from(["1", "2", "3", "10", "x"])), max_size=12)


@given(read=ids, bucketed=ids, dtype=st.sampled_from(["str", "object"]))
def test_identity_check_names_every_id_lost_doubled_or_unexpected(read, bucketed, dtype):
    got = _identity_check(pd.Series(read, dtype=dtype), pd.Series(bucketed, dtype="object"))
    read_ids = [i for i in read if i is not None]
    counts = Counter(i for i in bucketed if i is not None)
    assert got["missing_ids"] == sorted(i for i in read_ids if not counts[i])[:SHOWN_IDS]
    assert got["duplicate_ids"] == sorted(i for i, n in counts.items() if n > 1)[:SHOWN_IDS]
    assert got["unexpected_ids"] == sorted(set(counts) - set(read_ids))[:SHOWN_IDS]
    same_id_less = read.count(None) == bucketed.count(None)
    assert got["ok"] == (
        same_id_less and not (got["missing_ids"] or got["duplicate_ids"] or got["unexpected_ids"])
    )
