"""Run a spooler on its own event loop in a daemon thread, for :func:`analytics.worker.run_stream`
(whose analysis thread must never wait for a network)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque

from analytics.counters import StreamCounters
from analytics.records import AnalysisRecord
from analytics.spool import OnSent, SpoolConfig, Spooler, open_spooler

__all__ = ["SpoolRunner"]

log = logging.getLogger(__name__)


class SpoolRunner:
    """A spooler on its own event loop in a daemon thread.

    ``submit`` is thread-safe and never blocks: records submitted before the spooler is ready
    (e.g. NATS still unreachable) wait in memory, at most ``max_pending`` of them.
    """

    def __init__(
        self, config: SpoolConfig, on_sent: OnSent | None, max_pending: int = 10_000
    ) -> None:
        self.config = config
        self.max_pending = max_pending
        self._on_sent = on_sent
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._spooler: Spooler | None = None
        self._waiting: deque[AnalysisRecord] = deque(maxlen=max_pending)
        self._drain_s = config.drain_s
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="spooler", daemon=True)

    @classmethod
    def start(cls, config: SpoolConfig, counters: StreamCounters | None = None) -> SpoolRunner:
        """Start a runner; ``counters.records_sent`` counts each delivered record."""
        on_sent = None if counters is None else (lambda _rid: counters.add(records_sent=1))
        runner = cls(config, on_sent)
        runner._thread.start()
        return runner

    def submit(self, record: AnalysisRecord) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the runner failed
            self._loop.call_soon_threadsafe(self._accept, record)

    def close(self, drain_s: float | None = None) -> None:
        """Deliver what is pending for up to ``drain_s`` seconds (default: the config's), then
        stop the thread."""
        self._drain_s = self.config.drain_s if drain_s is None else drain_s
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(self._drain_s + 5.0)

    def _accept(self, record: AnalysisRecord) -> None:
        if self._spooler is None:
            self._waiting.append(record)
        else:
            self._spooler.put(record)

    def _main(self) -> None:
        try:
            self._loop.run_until_complete(self._serve())
        except Exception as exc:
            self.error = exc
            log.exception("records spooler for %s failed", type(self.config).__name__)
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        delivery = asyncio.create_task(self._deliver())
        stopped = asyncio.create_task(self._stop.wait())
        await asyncio.wait({delivery, stopped}, return_when=asyncio.FIRST_COMPLETED)
        # Stopped before the spooler could even start (NATS unreachable): nats-py's connect loop
        # can swallow a cancellation that races with its own wait_for, so cancel until it ends.
        while not delivery.done() and self._spooler is None:
            delivery.cancel()
            await asyncio.wait({delivery}, timeout=0.5)
        with contextlib.suppress(asyncio.CancelledError):
            await delivery
        stopped.cancel()

    async def _deliver(self) -> None:
        async with open_spooler(self.config, self._on_sent) as spooler:
            self._spooler = spooler
            while self._waiting:
                spooler.put(self._waiting.popleft())
            await self._stop.wait()
            await spooler.drain(self._drain_s)
