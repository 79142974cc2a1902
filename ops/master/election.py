"""The master election: a KV lease, and an election event every decision is fenced on.

``kv.create("lease")`` in bucket ``VIGIL_MASTER`` (max age = lease TTL, no limit markers) wins;
the winner renews with ``kv.update(last=revision)`` every third of the TTL (``keep``, a task of
its own, so no amount of work delays it) and steps down on a local monotonic deadline if renewals
fail. After winning it appends ``MasterElected{epoch}`` to
``vigil.evt.master`` (epoch = previous + 1, with the expected sequence so two winners cannot both
append) and catches its projections up to that event. Every decision is then appended fenced on
that event's sequence: once another manager is elected, the server refuses the old master's
writes (``Fenced``) and it steps down at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from nats.js.errors import KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue

from events import subjects
from events.codec import UndecodableEvent, decode_event
from events.jetstream import JetStreamStore
from events.model import Cause, MasterElected
from events.store import Conflict, Fence
from projections.engine import Projector

__all__ = ["LEASE_KEY", "Election", "Reign"]

log = logging.getLogger(__name__)

LEASE_KEY = "lease"


@dataclass(frozen=True)
class Reign:
    """One term as master: its fence, epoch and start (wall and monotonic)."""

    fence: Fence
    epoch: int
    since: float
    since_mono: float


class Election:
    """The lease and the election event of one manager."""

    def __init__(
        self,
        kv: KeyValue,
        store: JetStreamStore,
        projector: Projector,
        *,
        manager_id: str,
        lease_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.kv = kv
        self.store = store
        self.projector = projector
        self.manager_id = manager_id
        self.lease_s = lease_s
        self.clock = clock
        self.reign: Reign | None = None
        self.epoch = 0
        """Epoch of this manager's current or last reign (0: never master)."""
        self.stepdowns = 0
        self._deadline = 0.0
        self._renewed_at = 0.0
        self._revision = 0
        self.holding = False
        """This manager holds the lease (from winning it until it steps down or releases it);
        ``keep`` renews it all that time, also while the election event is being caught up."""
        self._renewing = asyncio.Lock()

    @property
    def is_master(self) -> bool:
        return self.reign is not None and time.monotonic() < self._deadline

    async def try_acquire(self) -> bool:
        try:
            self._revision = await self.kv.create(LEASE_KEY, self.manager_id.encode())
        except KeyWrongLastSequenceError:
            return False
        except Exception as exc:  # NATS unavailable: a standby simply tries again
            log.debug("lease create: %r", exc)
            return False
        self._deadline = time.monotonic() + self.lease_s * 0.9
        self._renewed_at = time.monotonic()
        self.holding = True
        log.info("manager %s won the master lease (revision %d)", self.manager_id, self._revision)
        return True

    async def renew(self) -> None:
        """Renew the lease if a third of its TTL has passed (one renewal at a time)."""
        async with self._renewing:
            if not self.holding or time.monotonic() - self._renewed_at < self.lease_s / 3:
                return
            try:
                self._revision = await self.kv.update(LEASE_KEY, self.manager_id.encode(),
                                                      last=self._revision)  # fmt: skip
                self._deadline = time.monotonic() + self.lease_s * 0.9
                self._renewed_at = time.monotonic()
            except KeyWrongLastSequenceError:
                self.step_down("lease taken by another manager")
            except Exception as exc:
                log.debug("lease renew: %r", exc)
                if time.monotonic() >= self._deadline:
                    self.step_down("lease not renewed in time")

    async def keep(self) -> None:
        """Renew the lease while it is held, whatever the master is busy with (a long placement,
        catching up with its election event): the lease measures liveness, not idleness."""
        while True:
            await asyncio.sleep(self.lease_s / 6)
            await self.renew()

    async def release(self) -> None:
        """Give the lease up (after stepping down, or at shutdown) so a standby takes over now."""
        self.holding = False
        with contextlib.suppress(Exception):
            await self.kv.delete(LEASE_KEY, last=self._revision)

    def step_down(self, why: str) -> None:
        if self.reign is not None:
            self.stepdowns += 1
            log.warning("manager %s steps down as master (epoch %d): %s", self.manager_id,
                        self.reign.epoch, why)  # fmt: skip
        self.reign = None
        self.holding = False

    async def last_election(self) -> tuple[int, int]:
        """(epoch, sequence) of the newest ``MasterElected`` in the log ((0, 0) if none)."""
        try:
            msg = await self.store.js.get_last_msg(self.store.stream, subjects.event("master"))
        except NotFoundError:
            return 0, 0
        try:
            event = decode_event(msg.data or b"")
        except UndecodableEvent:
            return 0, int(msg.seq or 0)
        epoch = event.epoch if isinstance(event, MasterElected) else 0
        return epoch, int(msg.seq or 0)

    async def elect(self) -> Reign | None:
        """After winning the lease: append the election event and wait for our projections."""
        last_epoch, last_seq = await self.last_election()
        epoch = last_epoch + 1
        event = MasterElected(at=self.clock(), epoch=epoch, manager_id=self.manager_id,
                              cause=Cause(kind="system", name="master.elected",
                                          manager_id=self.manager_id, epoch=epoch))  # fmt: skip
        try:
            [seq] = await self.store.append("master", [event], expected_seq=last_seq)
        except Conflict:
            log.warning("another manager appended an election concurrently; releasing the lease")
            await self.release()
            return None
        log.info("manager %s appended its election event (epoch %d, seq %d)", self.manager_id,
                 epoch, seq)  # fmt: skip
        if not await self.projector.wait_for(seq, timeout=max(self.lease_s, 5.0)):
            log.warning("projections did not reach our election event (seq %d) in time;"
                        " releasing the lease", seq)  # fmt: skip
            await self.release()
            return None
        self.reign = Reign(Fence("master", seq), epoch, self.clock(), time.monotonic())
        self.epoch = epoch
        log.info("manager %s is master, epoch %d (election event seq %d)", self.manager_id,
                 epoch, seq)  # fmt: skip
        return self.reign
