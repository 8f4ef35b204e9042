"""The ignore list in the database: add, list, remove, and the frame the billing rules receive."""

from __future__ import annotations

from datetime import UTC

import pytest
from sqlalchemy import Engine

from store import exclusions
from store.exclusions import ExclusionError, UnknownExclusion
from tests.store_support import (  # noqa: F401
    db_url_fixture,
    engine_fixture,
    postgres_admin,
    postgres_schema_url,
)


def test_add_list_remove_and_frame(engine: Engine) -> None:
    ticket = exclusions.add(engine, "ticket", " I2610-0042 ", "warranty work", "finance@example.nl")
    customer = exclusions.add(engine, "customer", "10007", "pays a fixed fee", "finance@example.nl")
    assert ticket != customer
    listed = exclusions.list_exclusions(engine)
    assert [(e.kind, e.value, e.reason) for e in listed] == [
        ("customer", "10007", "pays a fixed fee"),
        ("ticket", "I2610-0042", "warranty work"),
    ]
    assert listed[0].created_at.tzinfo is UTC
    assert [e.value for e in exclusions.list_exclusions(engine, "ticket")] == ["I2610-0042"]
    frame = exclusions.as_frame(engine)
    assert list(frame.columns) == ["id", "kind", "value", "reason", "created_by", "created_at"]
    assert frame[["kind", "value"]].values.tolist() == [["customer", "10007"], ["ticket", "I2610-0042"]]
    removed = exclusions.remove(engine, ticket)
    assert (removed.id, removed.kind, removed.value) == (ticket, "ticket", "I2610-0042")
    assert [e.id for e in exclusions.list_exclusions(engine)] == [customer]


def test_empty_ignore_list_gives_an_empty_frame_with_the_columns(engine: Engine) -> None:
    frame = exclusions.as_frame(engine)
    assert frame.empty and list(frame.columns) == [
        "id",
        "kind",
        "value",
        "reason",
        "created_by",
        "created_at",
    ]


def test_errors_are_clear(engine: Engine) -> None:
    exclusions.add(engine, "operator", "op-1", "trainee", "lead")
    with pytest.raises(ExclusionError, match="operator 'op-1' is already excluded"):
        exclusions.add(engine, "operator", "op-1", "again", "lead")
    with pytest.raises(
        ExclusionError, match="unknown exclusion kind 'person'; use one of: registration, ticket"
    ):
        exclusions.add(engine, "person", "x", "y", "z")
    with pytest.raises(ExclusionError, match="exclusion reason must not be empty"):
        exclusions.add(engine, "branch", "b-1", "  ", "lead")
    with pytest.raises(ExclusionError, match="longer than 200"):
        exclusions.add(engine, "branch", "b" * 201, "too long", "lead")
    with pytest.raises(UnknownExclusion, match="no exclusion with id 999"):
        exclusions.remove(engine, 999)
    with pytest.raises(ExclusionError, match="unknown exclusion kind"):
        exclusions.list_exclusions(engine, "person")
    assert len(exclusions.list_exclusions(engine)) == 1
