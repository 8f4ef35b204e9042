"""``koppel.dispatch.synchronous``: a Prefect sync-or-async call's value, or a loud error for a coroutine."""

from __future__ import annotations

import warnings

import pytest

from koppel.dispatch import synchronous


def test_a_value_passes_through() -> None:
    marker = object()
    assert synchronous(marker) is marker
    assert synchronous(None) is None


def test_a_coroutine_raises_and_is_closed_so_python_does_not_warn() -> None:
    async def answer() -> int:
        return 42

    coroutine = answer()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a "never awaited" RuntimeWarning would fail the test
        with pytest.raises(TypeError, match="returned a coroutine"):
            synchronous(coroutine)
    assert coroutine.cr_frame is None  # closed
