"""Background-task helpers."""

from __future__ import annotations

import asyncio

__all__ = ["cancel_and_wait"]


async def cancel_and_wait(task: asyncio.Task[object] | None, *, grace: float = 1.0) -> None:
    """Cancel ``task`` and wait until it is really done.

    Python 3.11's ``asyncio.wait_for`` can swallow a cancellation that races with its inner
    future, so a single ``cancel()`` may be lost: cancel again until the task ends.
    """
    if task is None:
        return
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=grace)
    if not task.cancelled() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]
