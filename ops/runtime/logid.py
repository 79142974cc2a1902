"""The identity of the event log, so a manager never mixes two logs.

The first manager to meet an empty ``VIGIL_EVENTS`` appends ``LogStarted{log_id}`` on
``vigil.evt.log`` (expected sequence 0: exactly one wins). Every manager reads it at start and
then checks, every few seconds, that the store still holds *that* log, no shorter than what it
folded. If the store was deleted, replaced or restored from elsewhere under a running system, the
manager says so (``problem``) and stops answering (``/readyz`` 503, every command
``unavailable``) until it is restarted — it never serves stale state as if it were the new log's,
nor folds the new log on top of the old.

A manager can also be pinned to a log (``ManagerSettings.expected_log_id``; ``vigil up`` pins
its own in ``<data-dir>/log-id``): then it refuses to start on any other, instead of starting a
fresh empty log silently.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from nats.js.errors import NotFoundError

from events import subjects
from events.codec import UndecodableEvent, decode_event
from events.jetstream import JetStreamStore
from events.model import Cause, LogStarted
from events.store import Conflict
from projections.engine import Projector

__all__ = ["LogIdentity", "LogReplaced"]

log = logging.getLogger(__name__)


class LogReplaced(RuntimeError):
    """The store holds another log than the one this manager was pinned to or folded."""


class LogIdentity:
    def __init__(self, store: JetStreamStore, projector: Projector, *,
                 interval_s: float = 2.0) -> None:  # fmt: skip
        self.store = store
        self.projector = projector
        self.interval_s = interval_s
        self.log_id: str | None = None
        self.problem: str | None = None

    async def _read(self) -> str | None:
        try:
            msg = await self.store.js.get_last_msg(self.store.stream, subjects.event("log"))
        except NotFoundError:
            return None
        try:
            event = decode_event(msg.data or b"")
        except UndecodableEvent:
            return None
        return event.log_id if isinstance(event, LogStarted) else None

    async def establish(self, *, expected: str | None = None, clock_s: float = 0.0) -> str:
        """The log's id, creating the genesis event on an empty log. ``expected``: refuse any
        other log (``LogReplaced``)."""
        log_id = await self._read()
        if log_id is None:
            last = await self.store.last_seq()
            if last > 0 and expected is None:
                # An older log without a genesis event: give it one (its identity from now on).
                log.info("the event log has no identity yet; adding one")
            fresh = f"log-{uuid.uuid4().hex}"
            event = LogStarted(at=clock_s, cause=Cause(kind="system", name="log.started"),
                               log_id=fresh)  # fmt: skip
            try:
                await self.store.append("log", [event], expected_seq=0)
            except Conflict:
                pass  # another manager did it at the same time: read theirs
            log_id = await self._read() or fresh
        if expected is not None and log_id != expected:
            raise LogReplaced(
                f"the event log in this NATS is {log_id}, but this installation's is {expected}:"
                " the JetStream store was deleted or replaced. Restore it, or remove the pin"
                " (<data-dir>/log-id, VIGIL_EXPECTED_LOG_ID) to start over on the new log."
            )
        self.log_id = log_id
        return log_id

    async def check(self) -> str | None:
        """Why the store no longer holds the log this manager folded (None: it does)."""
        try:
            await self.store.js.stream_info(self.store.stream)
        except NotFoundError:
            return (f"the event log is gone from the store (this manager folded {self.log_id}):"
                    " restore the store, or restart the manager to start over")  # fmt: skip
        current = await self._read()
        if current != self.log_id:
            return (f"the event log was replaced under this manager (it folded {self.log_id},"
                    f" the store now holds {current or 'no log'}): restart the manager to fold"
                    " the new one, or restore the store")  # fmt: skip
        folded = self.projector.last_seq  # before asking: it may fold more while we wait
        last = await self.store.last_seq()
        if last < folded:
            return (f"the event log went back (the store ends at {last}, this manager folded up"
                    f" to {folded}): it was truncated or replaced; restart the manager, or"
                    " restore the store")  # fmt: skip
        return None

    async def run(self) -> None:
        """The supervised part: check every ``interval_s``; a problem stays until restart."""
        while True:
            await asyncio.sleep(self.interval_s)
            if self.problem is not None:
                continue
            try:
                problem = await self.check()
            except (TimeoutError, ConnectionError, OSError) as exc:
                log.debug("log identity check: %r", exc)  # NATS away: the next check tells
                continue
            if problem is not None:
                # Confirm before stopping for good: a cluster electing a new leader can answer
                # one check from a lagging view.
                await asyncio.sleep(self.interval_s)
                try:
                    problem = await self.check()
                except (TimeoutError, ConnectionError, OSError) as exc:
                    log.debug("log identity check: %r", exc)
                    continue
            if problem is not None:
                self.problem = problem
                log.critical("%s", problem)
                self.projector.stop_applying(problem)
