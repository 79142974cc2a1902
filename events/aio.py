"""Asyncio plumbing shared by managers and agents: supervised parts under one TaskGroup.

Every long-lived part of a process (the projector, the master loop, the feedback consumer, an
agent's heartbeat loop...) runs under one `Supervisor`, which owns one ``asyncio.TaskGroup``::

    async with Supervisor("manager m-1") as sup:
        sup.spawn("projector", projector.run, restart=Restart(), on_failure=rebuild)
        sup.spawn("master", master.run)              # no restart: its death stops the process
        ...

A part is a coroutine function that runs until cancelled. When it raises:

- with a `Restart` policy, the supervisor logs one line with the part's name and the error,
  marks it ``restarting`` (so ``healthy()`` is False), awaits ``on_failure`` if given (e.g. reset
  the state the part owned), waits the policy's backoff and runs it again;
- without one, the error propagates: the TaskGroup cancels every sibling and the process ends
  with that error (logged with the part's name) — never a dead part behind a "ready" answer.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

__all__ = ["PartDied", "PartState", "Restart", "Supervisor", "cancel_and_wait"]

log = logging.getLogger(__name__)

PartState = Literal["running", "restarting", "stopped", "failed"]


class PartDied(RuntimeError):
    """A part without a restart policy ended with an error (or returned while it should run)."""


@dataclass(frozen=True)
class Restart:
    """Backoff for a part that dies: ``initial_s × factor^n`` capped at ``max_s``, ±10 % jitter;
    the count resets once the part has run ``healthy_s`` without dying."""

    initial_s: float = 0.2
    factor: float = 2.0
    max_s: float = 30.0
    healthy_s: float = 60.0

    def delay(self, attempt: int, jitter: float) -> float:
        base = min(self.initial_s * self.factor ** max(attempt - 1, 0), self.max_s)
        return float(base * (0.9 + 0.2 * jitter))


class _Part:
    def __init__(self, name: str, restart: Restart | None) -> None:
        self.name = name
        self.restart = restart
        self.state: PartState = "running"
        self.restarts = 0
        self.last_error: str | None = None
        self.task: asyncio.Task[None] | None = None


class Supervisor:
    """One TaskGroup for the long-lived parts of a process; an async context manager."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._tg: asyncio.TaskGroup | None = None
        self._parts: dict[str, _Part] = {}
        self._rng = random.Random()
        self._closing = False

    async def __aenter__(self) -> Supervisor:
        self._tg = asyncio.TaskGroup()
        await self._tg.__aenter__()
        return self

    async def __aexit__(self, et: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:  # fmt: skip
        assert self._tg is not None
        self._closing = True
        tasks = [p.task for p in self._parts.values() if p.task is not None]
        # Python 3.11's wait_for can swallow a cancellation that races with its inner future:
        # cancel again until every part has really ended.
        while pending := [t for t in tasks if not t.done()]:
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=1.0)
        try:
            await self._tg.__aexit__(et, exc, tb)
        finally:
            for part in self._parts.values():
                if part.state in ("running", "restarting"):
                    part.state = "stopped"

    def spawn(
        self,
        name: str,
        run: Callable[[], Awaitable[None]],
        *,
        restart: Restart | None = None,
        on_failure: Callable[[BaseException], Awaitable[None]] | None = None,
    ) -> None:
        """Run ``run()`` as the part ``name`` until the supervisor closes."""
        if self._tg is None:
            raise RuntimeError(f"supervisor {self.name} is not running: enter it first")
        if name in self._parts and self._parts[name].state in ("running", "restarting"):
            raise ValueError(f"part {name!r} is already running under {self.name}")
        part = _Part(name, restart)
        self._parts[name] = part
        part.task = self._tg.create_task(self._supervise(part, run, on_failure), name=name)

    async def _supervise(
        self,
        part: _Part,
        run: Callable[[], Awaitable[None]],
        on_failure: Callable[[BaseException], Awaitable[None]] | None,
    ) -> None:
        attempt = 0
        while True:
            started = time.monotonic()
            part.state = "running"
            try:
                await run()
                if self._closing:
                    return
                raise PartDied(f"part {part.name} returned while it should keep running")
            except asyncio.CancelledError:
                part.state = "stopped"
                raise
            except Exception as exc:
                part.last_error = f"{type(exc).__name__}: {exc}"
                if part.restart is None:
                    part.state = "failed"
                    log.critical("%s: part %s died (%s); stopping the process", self.name,
                                 part.name, part.last_error, exc_info=exc)  # fmt: skip
                    raise
                if time.monotonic() - started >= part.restart.healthy_s:
                    attempt = 0
                attempt += 1
                part.restarts += 1
                part.state = "restarting"
                delay = part.restart.delay(attempt, self._rng.random())
                log.error("%s: part %s died (%s); restart %d in %.2fs", self.name, part.name,
                          part.last_error, part.restarts, delay, exc_info=exc)  # fmt: skip
                if on_failure is not None:
                    await on_failure(exc)
                await asyncio.sleep(delay)

    def state(self, name: str) -> PartState | None:
        part = self._parts.get(name)
        return None if part is None else part.state

    def healthy(self, *names: str) -> bool:
        """True when every named part (all parts when none is named) is running."""
        parts = [self._parts.get(n) for n in names] if names else list(self._parts.values())
        return all(p is not None and p.state == "running" for p in parts)

    def report(self) -> dict[str, tuple[PartState, int, str | None]]:
        """name → (state, restarts, last error), for /readyz and /metrics."""
        return {n: (p.state, p.restarts, p.last_error) for n, p in self._parts.items()}


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
