"""Daily statistics in the manager: the feed from ``VIGIL_FEEDBACK`` and the ``stats.daily`` query.

Every manager folds *all* feedback into its own `DailyStats` (an ordered push consumer from the
start of the stream, by callback, like ``projections.engine``), so any manager can answer the
query. This is not the shared durable work queue of ``ops.feedback``: that one hands each
message to one manager only.

Skipped, counted, never fatal (``StatsFeed.counts``): undecodable bodies or a subject that names
another agent (``invalid``), agents that never registered (``unknown_agent``), already counted
``<agent_id>:<seq>`` (``duplicates``). Before calling an agent unknown the feed catches the events
projection up with the end of ``VIGIL_EVENTS``, so a registration that this manager has not
folded yet does not lose the agent's first feedback. Deregistered agents are still known: their
feedback counts.

Retention: ``VIGIL_FEEDBACK`` keeps ~40 days (``ensure_feedback_stream(max_age=...)``); a manager
started later rebuilds only what the stream still holds. Older totals need the snapshots of
issue 7 (`DailyStats.state` is a plain Struct; resume the feed after ``state.feedback_seq``).
"""

from __future__ import annotations

import csv
import io
import logging
from collections import Counter
from datetime import date as Date
from typing import Annotated, Any, Literal

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api

from core.errors import Invalid
from events.feedback import Feedback, StreamStats, decode_feedback
from events.jetstream import EVENTS_STREAM
from ops.feedback import FEEDBACK_STREAM
from ops.requests import Id
from projections.agents import AgentsProjection
from projections.engine import Projector
from projections.stats import DailyStats, Grain, Key, summarize, totals_view
from projections.streams import StreamsProjection

__all__ = ["CSV_COLUMNS", "DailyStatsReq", "StatsFeed", "StatsQueries", "to_csv"]

log = logging.getLogger(__name__)

Day = Annotated[str, msgspec.Meta(pattern=r"^\d{4}-\d{2}-\d{2}$", description="UTC day")]


class DailyStatsReq(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of ``vigil.cmd.stats.daily``."""

    date: Day
    stream_id: Id | None = None
    agent_id: Id | None = None
    group: Id | None = None
    by: Literal["stream", "agent", "group", "row"] = "stream"
    limit: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 1000
    cursor: Annotated[str, msgspec.Meta(max_length=512)] | None = None


# ---- the feed ---------------------------------------------------------------------------------


class StatsFeed:
    """Folds ``VIGIL_FEEDBACK`` into `DailyStats`; an async context manager.

    Survives NATS restarts: the ordered consumer's idle heartbeat notices the lost consumer and
    re-creates it after the last sequence it delivered; anything delivered twice is ignored by
    stream sequence, and anything stored twice by the applied-seq set.
    """

    def __init__(
        self,
        nc: Client,
        stats: DailyStats,
        agents: AgentsProjection,
        projector: Projector,
        *,
        sync_timeout: float = 5.0,
    ) -> None:
        self.nc = nc
        self.stats = stats
        self.agents = agents
        self.projector = projector
        self.sync_timeout = sync_timeout
        self.counts: Counter[str] = Counter()
        """applied, duplicates, unknown_agent, invalid, errors (for /metrics)."""
        self._target = 0
        self._sub: Any = None

    @property
    def last_seq(self) -> int:
        """The last ``VIGIL_FEEDBACK`` sequence folded."""
        return self.stats.state.feedback_seq

    async def __aenter__(self) -> StatsFeed:
        js = self.nc.jetstream()
        info = await js.stream_info(FEEDBACK_STREAM)
        self._target = int(info.state.last_seq)
        if self._target <= self.last_seq:
            self.stats.caught_up = True
        config = api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=self.last_seq + 1,
        )
        self._sub = await js.subscribe(
            "vigil.feedback.>", stream=FEEDBACK_STREAM, cb=self._on_msg, ordered_consumer=True,
            idle_heartbeat=1.0, config=config, pending_msgs_limit=-1, pending_bytes_limit=-1,
        )  # fmt: skip
        return self

    async def __aexit__(self, *exc: object) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            try:
                await sub.unsubscribe()
            except Exception as exc:  # connection already closed: nothing to release
                log.debug("stats feed unsubscribe: %r", exc)

    async def _on_msg(self, msg: Msg) -> None:
        meta = msg.metadata
        seq = meta.sequence.stream
        try:
            if seq > self.last_seq:
                await self.handle(seq, msg.subject, msg.data)
        except Exception:
            # A bug, not bad input: count it, keep the seq unfolded-but-passed, and keep going so
            # one message cannot stop the statistics of the whole fleet.
            self.counts["errors"] += 1
            log.exception("stats: feedback at %s seq %d not folded", FEEDBACK_STREAM, seq)
            self.stats.skip(seq)
        if meta.num_pending == 0 or self.last_seq >= self._target:
            self.stats.caught_up = True

    async def handle(self, seq: int, subject: str, data: bytes) -> str:
        """Fold one stored message; returns the counter it went to."""
        try:
            fb = decode_feedback(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning(
                "stats: undecodable feedback at seq %d on %s skipped: %s", seq, subject, exc
            )
            return self._skip(seq, "invalid")
        if subject.rsplit(".", 1)[-1] != fb.agent_id:
            log.warning("stats: feedback on %s names agent %s; skipped", subject, fb.agent_id)
            return self._skip(seq, "invalid")
        if not await self._is_known(fb):
            log.warning("stats: feedback from unknown agent %s skipped", fb.agent_id)
            return self._skip(seq, "unknown_agent")
        outcome = self.stats.apply(seq, fb)
        key = {"applied": "applied", "duplicate": "duplicates", "invalid": "invalid"}[outcome]
        self.counts[key] += 1
        return key

    def _skip(self, seq: int, key: str) -> str:
        self.stats.skip(seq)
        self.counts[key] += 1
        return key

    async def _is_known(self, fb: Feedback) -> bool:
        """Ever registered (also if gone since). Catches the events projection up first when not."""
        if fb.agent_id in self.agents.agents:
            return True
        try:
            info = await self.nc.jetstream().stream_info(EVENTS_STREAM)
            await self.projector.wait_for(int(info.state.last_seq), timeout=self.sync_timeout)
        except Exception as exc:  # NATS down: decide with what this manager knows
            log.warning("stats: could not catch up with %s (%r)", EVENTS_STREAM, exc)
        return fb.agent_id in self.agents.agents

    def metrics(self) -> dict[str, int]:
        """Counters for /metrics: outcomes, gaps closed, last folded seq, caught-up flag."""
        return {
            **{k: self.counts[k] for k in ("applied", "duplicates", "unknown_agent", "invalid")},
            "errors": self.counts["errors"],
            "gaps_closed": self.stats.gaps_closed,
            "feedback_seq": self.last_seq,
            "caught_up": int(self.stats.caught_up),
        }


# ---- the query --------------------------------------------------------------------------------


class StatsQueries:
    """Handler of ``stats.daily``: totals of one UTC day by stream, agent, group or cell."""

    def __init__(self, stats: DailyStats, streams: StreamsProjection, projector: Projector) -> None:
        self.stats = stats
        self.streams = streams
        self.projector = projector

    def group_of(self, stream_id: str) -> str | None:
        state = self.streams.streams.get(stream_id)  # deleted streams too
        return None if state is None else state.group

    async def daily(self, req: DailyStatsReq) -> tuple[dict[str, Any], int]:
        """``{date, by, items[...], next_cursor, total, complete, feedback_seq}``.

        ``items`` are sorted by key and paged by ``limit``/``cursor``; ``total`` covers all items.
        ``complete`` is false while this manager is still replaying the feedback stream.
        """
        try:
            Date.fromisoformat(req.date)
        except ValueError:
            raise Invalid("$.date", f"{req.date!r} is not a calendar day; use YYYY-MM-DD") from None
        rows = self.stats.rows(req.date, self.group_of, stream_id=req.stream_id,
                               agent_id=req.agent_id, group=req.group)  # fmt: skip
        lines, total = summarize(rows, req.by)
        items = [
            {**_ident(key, req.by), **totals_view(stats)}
            for key, stats in lines
            if req.cursor is None or _cursor(key) > req.cursor
        ]
        page = items[: req.limit]
        more = len(items) > req.limit
        result = {
            "date": req.date, "by": req.by, "items": page,
            "next_cursor": _cursor(_key_of_item(page[-1], req.by)) if more else None,
            "total": totals_view(total), "complete": self.stats.caught_up,
            "feedback_seq": self.stats.state.feedback_seq,
        }  # fmt: skip
        return result, self.projector.last_seq


_IDENT: dict[str, tuple[str, ...]] = {
    "stream": ("stream_id", "group"),
    "agent": ("agent_id",),
    "group": ("group",),
    "row": ("stream_id", "agent_id", "group"),
}


def _ident(key: Key, by: Grain) -> dict[str, Any]:
    return {name: getattr(key, name) for name in _IDENT[by]}


def _key_of_item(item: dict[str, Any], by: Grain) -> Key:
    return Key(**{name: item[name] for name in _IDENT[by]})


def _cursor(key: Key) -> str:
    """Opaque, sortable position of a line: its key fields joined by a space (ids have none and
    a space sorts before every id character, so string order is key order)."""
    return " ".join(key.sort_key())


CSV_COLUMNS: tuple[str, ...] = (
    "date",
    "stream_id",
    "agent_id",
    "group",
    *totals_view(StreamStats()),
)


def to_csv(date: str, items: list[dict[str, Any]]) -> str:
    """Billing export: one line per item, the columns of `CSV_COLUMNS` (empty = not this grain)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for item in items:
        row = {**item, "date": date}
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in CSV_COLUMNS])
    return out.getvalue()
