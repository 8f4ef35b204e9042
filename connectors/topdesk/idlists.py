"""Long id lists in as few GETs as the URL allows (decision §9.6).

TOPdesk runs behind Tomcat, whose request line and headers share one 8 KB buffer: a longer request is
refused (the sandbox answers 414 above ``sandbox.topdesk.http.MAX_HEAD_BYTES``). A list of ids —
``id=in=(…)`` on ``/incidents``, ``parent.id=in=(…)`` on the bulk registrations, ``Id eq … or …`` on an
OData entity set — is therefore cut into chunks whose whole encoded request target stays within
``MAX_TARGET_BYTES`` (≈ 180 UUIDs in an ``=in=`` list, ≈ 150 in an OData ``or`` filter), leaving room for
the headers. The chunks are measured with the same encoding httpx sends.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from connectors.topdesk.client import TopdeskClient

MAX_TARGET_BYTES = 7168  # of Tomcat's 8,192-byte header buffer; the rest is headers (auth, accept, host)

Params = Callable[[Sequence[str]], Mapping[str, Any]]


def id_chunks(
    client: TopdeskClient,
    path: str,
    ids: Sequence[str],
    params: Params,
    *,
    budget: int = MAX_TARGET_BYTES,
    at_most: int | None = None,
) -> list[list[str]]:
    """``ids`` in order, cut so that ``GET path?params(chunk)`` stays within ``budget`` bytes.

    ``at_most`` also caps the ids per chunk (e.g. a page size). Grows each chunk by an estimate of the
    bytes per id and then measures the real target, shrinking until it fits.
    """
    chunks: list[list[str]] = []
    rest = list(ids)
    while rest:
        size = _largest_fit(client, path, rest, params, budget, at_most or len(rest))
        chunks.append(rest[:size])
        rest = rest[size:]
    return chunks


def _largest_fit(
    client: TopdeskClient, path: str, ids: list[str], params: Params, budget: int, cap: int
) -> int:
    def fits(n: int) -> bool:
        return client.target_length(path, params(ids[:n])) <= budget

    one = client.target_length(path, params(ids[:1]))
    if one > budget:
        raise ValueError(f"one id alone makes the request to {path} longer than {budget} bytes")
    high = min(cap, len(ids))
    if high > 1:  # bound the search near the estimate (ids of one kind have one length)
        each = max(1, client.target_length(path, params(ids[:2])) - one)
        guess = min(high, 1 + (budget - one) // each)
        # Ids of one length make the estimate exact: two measurements confirm it (each measurement
        # encodes a whole ≈ 7 KB target, ≈ 1 ms of the event loop), else the search below finds it.
        if guess > 1 and fits(guess) and (guess == high or not fits(guess + 1)):
            return guess
        high = min(high, 2 * (1 + (budget - one) // each))
    low = 1  # invariant: fits(low); the answer lies in [low, high]
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low
