"""``id_chunks``: every chunk as long as the URL budget allows, measured with few encodings (issue #15)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.topdesk.idlists import id_chunks


class Measured:
    """Stands in for ``TopdeskClient.target_length`` (httpx's own encoding) and counts the calls."""

    root = "https://topdesk.example/tas/api"

    def __init__(self) -> None:
        self.calls = 0

    def target_length(self, path: str, params: Mapping[str, Any]) -> int:
        self.calls += 1
        return len(httpx.URL(f"{self.root}/{path}", params=dict(params)).raw_path)


def id_in(chunk: Sequence[str]) -> dict[str, str]:
    return {"query": "id=in=(" + ",".join(chunk) + ")", "fields": "id,number"}


@settings(deadline=None)  # the shared 2-core machine: a case's time says nothing here
@given(
    ids=st.lists(st.text(alphabet="abc-_é 0123", min_size=1, max_size=40), min_size=1, max_size=300),
    budget=st.sampled_from([400, 2_000, 7_168]),
    at_most=st.sampled_from([None, 1, 7, 10_000]),
)
def test_chunks_keep_order_fit_the_budget_and_cannot_grow(
    ids: list[str], budget: int, at_most: int | None
) -> None:
    client = Measured()
    chunks = id_chunks(client, "incidents", ids, id_in, budget=budget, at_most=at_most)  # type: ignore[arg-type]
    assert [i for chunk in chunks for i in chunk] == ids
    for number, chunk in enumerate(chunks):
        assert client.target_length("incidents", id_in(chunk)) <= budget
        assert at_most is None or len(chunk) <= at_most
        following = chunks[number + 1][:1] if number + 1 < len(chunks) else []
        same_length = len({len(i.encode()) for i in chunk + following}) == 1
        if following and same_length and (at_most is None or len(chunk) < at_most):
            assert client.target_length("incidents", id_in(chunk + following)) > budget


def test_uuid_lists_take_four_encodings_per_chunk() -> None:
    """Ids of one length: the estimate is exact and two measurements confirm it (was a bisection)."""
    ids = [str(uuid.UUID(int=n)) for n in range(15_000)]
    client = Measured()
    chunks = id_chunks(client, "incidents", ids, id_in)  # type: ignore[arg-type]
    assert len({len(chunk) for chunk in chunks[:-1]}) == 1  # every full chunk equally long
    assert client.target_length("incidents", id_in(ids[: len(chunks[0]) + 1])) > 7_168
    client.calls -= 1
    assert client.calls <= 4 * len(chunks)
