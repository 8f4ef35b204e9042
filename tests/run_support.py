"""Run a flow to its end and read its result, also when it ended Failed after finishing its work.

A write flow whose writes were refused, uncertain or skipped returns a Failed state carrying a
``RunNotClean`` (tasks/state.py); its result is then the exception's ``result``, with ``not_clean`` saying
why. Anything else that failed is raised.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tasks.state import RunNotClean


def finished(flow: Callable[..., Any], **parameters: Any) -> dict[str, Any]:
    """The flow run's result plus ``not_clean``: ``None`` when the run is green, else its state message."""
    state = flow(**parameters, return_state=True)
    if state.is_completed():
        return {**state.result(), "not_clean": None}
    error = state.result(raise_on_failure=False)
    if not isinstance(error, RunNotClean):
        raise error if isinstance(error, BaseException) else AssertionError(state)
    return {**error.result, "not_clean": state.message}
