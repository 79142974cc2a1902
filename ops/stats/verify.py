"""``stats.verify``: recompute the closed days the feedback stream still holds, compare them with
their rollups in ``VIGIL_STATS``, and name every key that differs.

A day is *held* when nothing of it can have expired from ``VIGIL_FEEDBACK``: the stream never
dropped a message, or its oldest message was stored before the day began. The recomputation is
a fresh fold (its own `DailyStats`, nothing loaded) of the whole stream up to its last message at
the start of the check; it closes days at the same close markers as the live fold, so a held,
closed day has one right answer: its base (cells and applied seqs as at its close marker) and
its corrections. Compared per key::

    <day>                        seal missing / damaged (chunks vs seal) / overwritten record /
                                 sealed but open / closed_at
    <day>/<stream>/<agent>       a figure of the base, or a correction (``correction <a>:<seq>``)
    <day>/<agent>                the applied seqs (what later replays are checked against)

Not compared: open days (nothing is written for them), days no longer held (``skipped``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

import msgspec
from nats.aio.client import Client

from events import subjects
from events.feedback import StreamStats
from ops.stats.feed import StatsFeed
from ops.stats.rollups import RollupRecords, RollupStore, read_rollups
from projections.agents import AgentsProjection
from projections.engine import Projector
from projections.rollup import RollupDamaged, assemble, seal_day
from projections.stats import DailyStats, DayState

__all__ = ["Difference", "VerifyView", "verify"]

log = logging.getLogger(__name__)

Value = str | int | float | None


class Difference(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    field: str
    rollup: Value
    recomputed: Value


class VerifyView(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    """No difference (``checked`` may still be empty)."""
    checked: list[str]
    """Closed days recomputed and compared."""
    open: list[str]
    """Held days that are not closed yet (nothing written to compare)."""
    skipped: list[str]
    """Days with rollups that the feedback no longer holds completely."""
    held_from: str | None
    """The first day the feedback holds completely (None: it never dropped anything)."""
    differences: list[Difference]
    feedback_seq: int
    """The feedback recomputed: up to this stream sequence."""
    seconds: float


async def verify(
    nc: Client,
    agents: AgentsProjection,
    projector: Projector,
    store: RollupStore,
    *,
    day: str | None = None,
    timeout: float = 600.0,
) -> VerifyView:
    """Recompute and compare (see the module doc). `store` is the live one: the check waits a
    little for its writer to have written what the live fold has produced up to now."""
    started = time.monotonic()
    js = nc.jetstream()
    info = await js.stream_info(subjects.FEEDBACK_STREAM)
    until = int(info.state.last_seq)
    held_from: str | None = None
    if info.state.first_seq > 1:
        if info.state.messages:
            first = await js.get_msg(subjects.FEEDBACK_STREAM, int(info.state.first_seq))
            assert first.time is not None
            held_from = _next_day(first.time.timestamp())
        else:
            held_from = _next_day(time.time())
    await _settled(store, until)
    records = await read_rollups(nc, timeout=timeout)
    fresh = DailyStats()
    marked: set[str] = set()  # closed by a marker: these days have a seal
    fresh.on_close.append(marked.add)
    feed = StatsFeed(nc, fresh, agents, projector, until=until)
    async with feed:
        await asyncio.wait_for(feed.caught_up.wait(), timeout)
    days = sorted(set(records.days()) | set(fresh.state.days))
    if day is not None:
        days = [day]
    checked: list[str] = []
    still_open: list[str] = []
    skipped: list[str] = []
    diffs: list[Difference] = []
    for d in days:
        if held_from is not None and d < held_from:
            skipped.append(d)
        elif not fresh.is_closed(d):
            still_open.append(d)
            if d in records.seals:
                diffs.append(Difference(key=d, field="seal", rollup="sealed",
                                        recomputed="open"))  # fmt: skip
        else:
            checked.append(d)
            diffs += compare_day(d, records, fresh.state.days.get(d), sealed=d in marked)
    return VerifyView(ok=not diffs, checked=checked, open=still_open, skipped=skipped,
                      held_from=held_from, differences=diffs, feedback_seq=until,
                      seconds=round(time.monotonic() - started, 3))  # fmt: skip


async def _settled(store: RollupStore, until: int, wait_s: float = 10.0) -> None:
    """Give the live writer a moment to write what the fold has produced up to `until`."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if store.stats.state.feedback_seq >= until and store.pending() == (0, 0):
            return
        await asyncio.sleep(0.1)
    log.warning("stats verify: records still pending after %.0f s: %s", wait_s, store.pending())


def _next_day(ts: float) -> str:
    """The first day that starts at or after `ts` (the day of `ts` may have lost its start)."""
    day = datetime.fromtimestamp(ts, UTC)
    start = day.replace(hour=0, minute=0, second=0, microsecond=0)
    if start.timestamp() < ts:
        start = datetime.fromtimestamp(start.timestamp() + 86400, UTC)
    return start.strftime("%Y-%m-%d")


def compare_day(day: str, records: RollupRecords, fresh: DayState | None, *,
                sealed: bool) -> list[Difference]:  # fmt: skip
    """What differs between `day`'s records and its recomputation `fresh` (a closed day; None
    when the recomputation has nothing for it). `sealed`: a close marker closed the day, so it
    must have a seal (a day that only has late deltas has none)."""
    diffs: list[Difference] = []
    seal = records.seals.get(day)
    fixes = records.fixes.get(day, {})
    for subject in records.overwritten():
        if subjects.rollup_of(subject)[1] == day:
            diffs.append(Difference(key=day, field="overwritten", rollup=subject,
                                    recomputed=None))  # fmt: skip
    try:
        stored = assemble(seal, records.chunks.get(day, {}), fixes.values())
    except RollupDamaged as exc:
        diffs.append(Difference(key=day, field="integrity", rollup=str(exc), recomputed=None))
        stored = exc.state
    if seal is None and sealed:
        diffs.append(Difference(key=day, field="seal", rollup=None, recomputed="closed"))
    elif seal is not None:
        _, mine = seal_day(day, fresh or DayState())
        if seal.closed_at != mine.closed_at:
            diffs.append(Difference(key=day, field="closed_at", rollup=seal.closed_at,
                                    recomputed=mine.closed_at))  # fmt: skip
    fresh = fresh or DayState()
    for sid in sorted(set(stored.cells) | set(fresh.cells)):
        a, b = stored.cells.get(sid, {}), fresh.cells.get(sid, {})
        for aid in sorted(set(a) | set(b)):
            diffs += _stats_diff(f"{day}/{sid}/{aid}", "", a.get(aid), b.get(aid))
    for aid in sorted(set(stored.applied) | set(fresh.applied)):
        x, y = stored.applied.get(aid), fresh.applied.get(aid)
        if x != y:
            diffs.append(Difference(key=f"{day}/{aid}", field="applied_seqs", rollup=_seqs(x),
                                    recomputed=_seqs(y)))  # fmt: skip
    for key in sorted(set(stored.corrections) | set(fresh.corrections)):
        x_fix, y_fix = stored.corrections.get(key), fresh.corrections.get(key)
        if x_fix == y_fix:
            continue
        any_fix = x_fix or y_fix
        assert any_fix is not None
        where = f"{day}/{any_fix.stream_id}/{any_fix.agent_id}"
        if x_fix is None or y_fix is None:
            diffs.append(Difference(key=where, field=f"correction {key}",
                                    rollup="written" if x_fix else None,
                                    recomputed="counted" if y_fix else None))  # fmt: skip
        else:
            diffs += _stats_diff(where, f"correction {key} ", x_fix.stats, y_fix.stats)
            if x_fix.stats == y_fix.stats:
                diffs.append(Difference(key=where, field=f"correction {key}",
                                        rollup=repr(x_fix), recomputed=repr(y_fix)))  # fmt: skip
    return diffs


def _stats_diff(key: str, prefix: str, x: StreamStats | None,
                y: StreamStats | None) -> list[Difference]:  # fmt: skip
    if x == y:
        return []
    if x is None or y is None:
        return [Difference(key=key, field=f"{prefix}row", rollup="present" if x else None,
                           recomputed="present" if y else None)]  # fmt: skip
    a, b = msgspec.structs.asdict(x), msgspec.structs.asdict(y)
    return [Difference(key=key, field=prefix + name, rollup=a[name], recomputed=b[name])
            for name in a if a[name] != b[name]]  # fmt: skip


def _seqs(s: object) -> str | None:
    return None if s is None else msgspec.json.encode(s).decode()
