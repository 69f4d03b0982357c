"""Reads started before anyone awaits them, and perhaps never awaited."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def started(read: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """``read`` running as a task whose failure logs nothing if nobody awaits it.

    For a read begun ahead of need (beside the pass's other reads): when the pass
    fails or no longer wants it, it is cancelled or left, and asyncio would log
    "exception was never retrieved"; whoever awaits it still gets the error.
    """
    task = asyncio.ensure_future(read)
    task.add_done_callback(lambda t: t.cancelled() or t.exception())
    return task
