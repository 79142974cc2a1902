"""Closed days in JetStream ``VIGIL_STATS``: loaded at start, followed, written by one writer.

::

    RollupStore
    ├── load()   before the feed starts: every seal, chunk and correction → closed days
    │            in `DailyStats` (the feed then rebuilds only the open days)
    └── run()    the supervised part "stats-rollups": follows VIGIL_STATS (what is written) and,
                 while ``is_writer()`` (the master), every ``interval_s`` or when the fold
                 closes a day or counts a correction:
                 1. publishes a close marker once a day is past the lateness horizon
                 2. writes the chunks, then the seal, of every day a marker closed (oldest
                    first; a day that only has late deltas has no seal, only corrections)
                 3. writes every correction not written yet

Every record is written once: ``Nats-Expected-Last-Subject-Sequence: 0`` on its own subject
(the server refuses a second copy with 10071) and ``Nats-Msg-Id`` = its key. The records are a
pure function of the fold (``projections.rollup``), and the fold closes a day at the close
marker's position in the feedback stream, so a second writer — a new master after a failover,
or a deposed one that has not noticed yet — would write the same bytes: a refusal is success.
No fencing is needed. A manager that was not the writer knows from following the stream what
is written, so it can take over the writing at any moment.

Reading: the newest message of a subject is the record (a record overwritten by hand is what
``vigil stats verify`` finds). Nothing here deletes: the stream denies deletes, and keeps
records ``stats_retention_years`` (0: forever).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import api
from nats.js.errors import APIError

from events import subjects
from events.jetstream import TRANSIENT_CODES, WRONG_LAST_SEQUENCE
from projections.rollup import (
    CloseMarker,
    DaySeal,
    RollupDamaged,
    assemble,
    decode_chunk,
    decode_correction,
    decode_seal,
    encode,
    seal_day,
)
from projections.stats import Correction, DailyStats, closable_through

__all__ = ["RollupRecords", "RollupStore", "read_rollups"]

log = logging.getLogger(__name__)

_WRITE_ONCE = "Nats-Expected-Last-Subject-Sequence"


class RollupRecords:
    """Records of ``VIGIL_STATS`` by kind; the newest message of a subject wins."""

    def __init__(self) -> None:
        self.seals: dict[str, DaySeal] = {}
        self.chunks: dict[str, dict[int, bytes]] = {}
        self.fixes: dict[str, dict[str, Correction]] = {}
        self.versions: Counter[str] = Counter()
        """subject → messages stored on it (more than one: overwritten)."""
        self.invalid: list[str] = []
        self.last_seq = 0

    def add(self, seq: int, subject: str, data: bytes) -> str:
        """File one stored message; returns its kind (``day``, ``seal``, ``fix``, ``invalid``)."""
        self.last_seq = max(self.last_seq, seq)
        self.versions[subject] += 1
        try:
            kind, day = subjects.rollup_of(subject)
            if kind == "seal":
                self.seals[day] = decode_seal(data)
            elif kind == "day":
                decode_chunk(data)  # must at least decode
                self.chunks.setdefault(day, {})[int(subject.rsplit(".", 1)[1])] = data
            else:
                fix = decode_correction(data)
                self.fixes.setdefault(day, {})[fix.key] = fix
        except (ValueError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.error("stats: unreadable rollup record at %s seq %d (%s): %s",
                      subjects.STATS_STREAM, seq, subject, exc)  # fmt: skip
            self.invalid.append(subject)
            return "invalid"
        return kind

    def days(self) -> list[str]:
        return sorted(set(self.seals) | set(self.fixes))

    def overwritten(self) -> list[str]:
        return sorted(s for s, n in self.versions.items() if n > 1)


async def read_rollups(nc: Client, *, timeout: float = 600.0) -> RollupRecords:
    """Every record in ``VIGIL_STATS`` as it is now."""
    records = RollupRecords()
    js = nc.jetstream()
    info = await js.stream_info(subjects.STATS_STREAM)
    target = int(info.state.last_seq)
    if not info.state.messages:
        records.last_seq = target
        return records
    done = asyncio.Event()

    async def on_msg(msg: Msg) -> None:
        meta = msg.metadata
        records.add(meta.sequence.stream, msg.subject, msg.data)
        if meta.sequence.stream >= target or meta.num_pending == 0:
            done.set()

    sub = await js.subscribe(subjects.ROLLUP_ALL, stream=subjects.STATS_STREAM, cb=on_msg,
                             ordered_consumer=True, idle_heartbeat=1.0, pending_msgs_limit=-1,
                             pending_bytes_limit=-1)  # fmt: skip
    try:
        await asyncio.wait_for(done.wait(), timeout)
    finally:
        await _unsubscribe(sub)
    return records


class RollupStore:
    """``VIGIL_STATS`` for one manager's `DailyStats`: load, follow, and write when the writer."""

    def __init__(
        self,
        nc: Client,
        stats: DailyStats,
        *,
        is_writer: Callable[[], bool],
        feed_caught_up: Callable[[], bool],
        lateness_s: float,
        interval_s: float = 5.0,
        manager_id: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.nc = nc
        self.stats = stats
        self.is_writer = is_writer
        self.feed_caught_up = feed_caught_up
        self.lateness_s = lateness_s
        self.interval_s = interval_s
        self.manager_id = manager_id
        self.clock = clock
        self.sealed: set[str] = set()
        """Days whose seal is in VIGIL_STATS."""
        self.fixed: set[tuple[str, str]] = set()
        """(day, ``<agent>:<seq>``) of the corrections in VIGIL_STATS."""
        self.damaged: dict[str, str] = {}
        """day → what is wrong with its records (found at load, or by following)."""
        self.counts: Counter[str] = Counter()
        self.last_seq = 0
        self._to_seal: set[str] = set()
        self._to_fix: dict[tuple[str, str], Correction] = {}
        self._marker_sent = ""
        self._wake = asyncio.Event()
        stats.on_close.append(self._note_closed)
        stats.on_correction.append(self._note_correction)

    # ---- what the fold produced ----------------------------------------------------------------

    def _note_closed(self, day: str) -> None:
        if day not in self.sealed:
            self._to_seal.add(day)
            self._wake.set()

    def _note_correction(self, c: Correction) -> None:
        if (c.day, c.key) not in self.fixed:
            self._to_fix[(c.day, c.key)] = c
            self._wake.set()

    # ---- load ----------------------------------------------------------------------------------

    async def load(self) -> None:
        """Put every closed day of ``VIGIL_STATS`` into the fold (call before the feed starts)."""
        started = time.monotonic()
        records = await read_rollups(self.nc)
        self.last_seq = records.last_seq
        for day in records.days():
            seal = records.seals.get(day)
            fixes = records.fixes.get(day, {}).values()
            try:
                d = assemble(seal, records.chunks.get(day, {}), fixes)
            except RollupDamaged as exc:
                log.error("stats: %s; loaded what is there — run `vigil stats verify`", exc)
                self.damaged[day] = str(exc)
                d = exc.state
            self.stats.restore_day(day, d)
            if seal is not None:
                self.sealed.add(day)
            self.fixed.update((day, key) for key in records.fixes.get(day, {}))
        log.info("stats: %d closed days (through %s) loaded from %s in %.2f s", len(self.sealed),
                 self.stats.state.closed_through or "-", subjects.STATS_STREAM,
                 time.monotonic() - started)  # fmt: skip

    # ---- the part ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Follow ``VIGIL_STATS``; write what is due while this manager is the writer."""
        js = self.nc.jetstream()
        config = api.ConsumerConfig(deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
                                    opt_start_seq=self.last_seq + 1)  # fmt: skip
        sub = await js.subscribe(subjects.ROLLUP_ALL, stream=subjects.STATS_STREAM,
                                 cb=self._on_msg, ordered_consumer=True, idle_heartbeat=1.0,
                                 config=config, pending_msgs_limit=-1,
                                 pending_bytes_limit=-1)  # fmt: skip
        try:
            while True:
                try:
                    await asyncio.wait_for(self._wake.wait(), self.interval_s)
                except TimeoutError:
                    pass
                self._wake.clear()
                if self.is_writer():
                    await self.write_due()
        finally:
            await _unsubscribe(sub)

    async def _on_msg(self, msg: Msg) -> None:
        meta = msg.metadata
        seq = meta.sequence.stream
        if seq <= self.last_seq:
            return
        self.last_seq = seq
        records = RollupRecords()
        kind = records.add(seq, msg.subject, msg.data)
        self.counts[f"read_{kind}"] += 1
        if kind == "seal":
            ((day, seal),) = records.seals.items()
            self.sealed.add(day)
            self._to_seal.discard(day)
            self._check(day, seal)
        elif kind == "fix":
            ((day, fixes),) = records.fixes.items()
            for key in fixes:
                self.fixed.add((day, key))
                self._to_fix.pop((day, key), None)

    def _check(self, day: str, seal: DaySeal) -> None:
        """A seal someone wrote for a day this manager has closed too must be this manager's."""
        d = self.stats.state.days.get(day)
        if d is None or not d.closed_at or not self.stats.is_closed(day):
            return
        _, mine = seal_day(day, d)
        if mine != seal:
            self.counts["seal_mismatch"] += 1
            self.damaged[day] = f"seal in {subjects.STATS_STREAM} differs from this manager's"
            log.error("stats: the seal of %s in %s is %s, this manager's fold gives %s",
                      day, subjects.STATS_STREAM, seal, mine)  # fmt: skip

    # ---- writing -------------------------------------------------------------------------------

    async def write_due(self) -> None:
        """Close what is past the horizon, seal closed days, write corrections (oldest first).
        NATS trouble is logged and retried at the next turn."""
        try:
            if self.feed_caught_up():
                through = closable_through(self.clock(), self.lateness_s)
                if through > self.stats.state.closed_through and through != self._marker_sent:
                    await self.publish_close(through, reason="horizon")
                    self._marker_sent = through
            for day in sorted(self._to_seal):
                await self._seal(day)
            due = sorted(self._to_fix.values(), key=lambda c: (c.day, c.feedback_seq))
            for c in due:  # (one may meanwhile be read back as written by another writer)
                if (c.day, c.key) in self._to_fix:
                    await self._fix(c)
        except (NatsError, TimeoutError, ConnectionError) as exc:
            self.counts["write_errors"] += 1
            log.warning("stats: rollup writing interrupted (%r); retrying", exc)

    async def publish_close(self, through: str, *, reason: str) -> int:
        """Put a close marker for every day up to `through` into the feedback stream; returns its
        stream sequence (every manager closes those days when its fold reaches it)."""
        marker = CloseMarker(through=through, reason=reason,  # type: ignore[arg-type]
                             by=self.manager_id, at=self.clock())  # fmt: skip
        ack = await self.nc.jetstream().publish(
            subjects.STATS_CLOSE, encode(marker), stream=subjects.FEEDBACK_STREAM,
            headers={"Nats-Msg-Id": f"close:{through}"})  # fmt: skip
        log.info("stats: close marker through %s (%s) at feedback seq %d", through, reason, ack.seq)
        return int(ack.seq)

    async def _seal(self, day: str) -> None:
        d = self.stats.state.days.get(day)
        if day in self.sealed or d is None or not d.closed_at:
            self._to_seal.discard(day)
            return
        chunks, seal = seal_day(day, d)
        for i, data in enumerate(chunks):
            await self._put_once(subjects.rollup_chunk(day, i), data, f"day:{day}:{i}")
        written = await self._put_once(subjects.rollup_seal(day), encode(seal), f"seal:{day}")
        self.counts["sealed" if written else "seal_existed"] += 1
        self._to_seal.discard(day)
        log.info("stats: %s sealed: %d rows, %d agents, %d chunks", day, seal.rows, seal.agents,
                 seal.chunks)  # fmt: skip

    async def _fix(self, c: Correction) -> None:
        written = await self._put_once(subjects.rollup_fix(c.day, c.agent_id, c.seq), encode(c),
                                       f"fix:{c.day}:{c.key}")  # fmt: skip
        self.counts["corrections_written" if written else "correction_existed"] += 1
        self._to_fix.pop((c.day, c.key), None)

    async def _put_once(self, subject: str, data: bytes, msg_id: str) -> bool:
        """Store `data` on `subject` unless something is there already; True if stored now."""
        headers = {"Nats-Msg-Id": msg_id, _WRITE_ONCE: "0"}
        for attempt in range(10):
            try:
                ack = await self.nc.jetstream().publish(
                    subject, data, stream=subjects.STATS_STREAM, headers=headers
                )
            except APIError as exc:
                if exc.err_code in WRONG_LAST_SEQUENCE:
                    return False
                if exc.err_code not in TRANSIENT_CODES or attempt == 9:
                    raise
                await asyncio.sleep(0.05 * (attempt + 1))  # a clustered leader: not ready yet
                continue
            return not ack.duplicate
        raise AssertionError("unreachable")

    # ---- facts ---------------------------------------------------------------------------------

    def pending(self) -> tuple[int, int]:
        """(days closed but not sealed yet, corrections not written yet)."""
        return len(self._to_seal), len(self._to_fix)

    def metrics(self) -> dict[str, int | str]:
        seals, fixes = self.pending()
        return {
            "closed_through": self.stats.state.closed_through,
            "sealed_days": len(self.sealed),
            "pending_seals": seals,
            "pending_corrections": fixes,
            "damaged_days": len(self.damaged),
            **{k: self.counts[k] for k in ("sealed", "corrections_written", "seal_mismatch",
                                           "write_errors")},
        }  # fmt: skip


async def _unsubscribe(sub: Any) -> None:
    try:
        await sub.unsubscribe()
    except Exception as exc:  # connection already closed: nothing to release
        log.debug("rollups unsubscribe: %r", exc)
