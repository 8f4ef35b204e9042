"""Fixtures and builders shared by the tests/test_store_*.py modules.

``engine`` runs a test twice: on a fresh SQLite file and on a fresh schema of the session's throwaway
PostgreSQL cluster (``search_path`` set through the URL), both migrated with ``store.db.connect``.
Import the fixtures into a test module with ``from tests.store_support import engine_fixture  # noqa: F401``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from store.db import connect
from store.ledger import DocumentClaim, LineClaim
from store.settings import StoreSettings

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{folder / 'state.db'}"


@pytest.fixture(scope="session")
def postgres_admin(postgres_url: str) -> Iterator[Engine]:
    admin = create_engine(postgres_url)
    yield admin
    admin.dispose()


@pytest.fixture
def postgres_schema_url(postgres_url: str, postgres_admin: Engine) -> Iterator[str]:
    """A URL whose connections work in a fresh, private schema; the schema is dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with postgres_admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    yield f"{postgres_url}?options=-csearch_path%3D{schema}"
    with postgres_admin.begin() as connection:
        connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))


@pytest.fixture(params=BACKENDS, name="db_url")
def db_url_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return sqlite_url(tmp_path)
    return str(request.getfixturevalue("postgres_schema_url"))


@pytest.fixture(name="engine")
def engine_fixture(db_url: str) -> Iterator[Engine]:
    engine = connect(StoreSettings(db_url=db_url))
    yield engine
    engine.dispose()


ENTRY_DATE = date(2026, 10, 5)


def line(
    registration_id: str,
    *,
    kind: str = "charge",
    fields_hash: str | None = None,
    minutes: int = 30,
    amount: str = "42.50",
    expected_version: int | None = None,
    entry_date: date = ENTRY_DATE,
    customer: str = "10001",
) -> LineClaim:
    return LineClaim(
        registration_id=registration_id,
        line_kind=kind,
        fields_hash=fields_hash or f"hash-{registration_id}",
        minutes=minutes,
        amount=Decimal(amount),
        entry_date=entry_date,
        customer_number=customer,
        expected_version=expected_version,
    )


def document(
    reference: str,
    lines: list[LineClaim],
    *,
    kind: str = "direct_invoice",
    administration: int = 1,
    period: str = "2026-10",
    needs_invoice_number: bool = False,
) -> DocumentClaim:
    return DocumentClaim(
        reference=reference,
        kind=kind,
        administration=administration,
        debtor="10001",
        project="P-100",
        period=period,
        payload={"FbDirectInvoice": {"Element": {"Fields": {"DbId": "10001", "RfCs": reference}}}},
        minutes=sum(item.minutes for item in lines),
        amount=sum((item.amount for item in lines), Decimal("0.00")),
        needs_invoice_number=needs_invoice_number,
        lines=tuple(lines),
    )


def charges(reference: str, registration_ids: list[str], **options: object) -> DocumentClaim:
    return document(reference, [line(rid) for rid in registration_ids], **options)  # type: ignore[arg-type]
