"""Prefect's sync-or-async calls, typed as the value they give in synchronous code.

Prefect 3 wraps ``Block.load``, ``run_deployment``, ``create_progress_artifact`` and others in
``async_dispatch``: one function that returns its value when called from synchronous code (or with
``_sync=True``) and a coroutine when called inside an event loop, typed ``R | Coroutine[Any, Any, R]``.
Koppel calls them from synchronous tasks and hooks only, so a coroutine here is a programming error.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def synchronous(result: T | Coroutine[Any, Any, T]) -> T:
    """The value of a dispatched Prefect call made from synchronous code; a coroutine raises TypeError."""
    if isinstance(result, Coroutine):
        result.close()  # never awaited: close it so Python does not warn about it later
        raise TypeError(
            "a Prefect call returned a coroutine: call it from synchronous code or with _sync=True"
        )
    return result
