"""``GET /api/v1/live``: what changed, pushed to the dashboard as server-sent events.

The projections call their listeners on every change; `LiveFeed` only notes *which* streams,
agents, groups and alarms changed, then at most every ``interval_s`` builds their views once and
hands the same bytes to every connected page::

    event: hello      {"manager_id", "seq"}                      on connect: fetch your lists now
    event: overview   Overview                                    the cards (counts, summaries)
    event: streams    {"changed": [StreamView], "removed": [id], "more": n}
    event: agents     {"agents": [AgentView]}                     also heartbeats, every 2 s (slower
                                                                  past 100 agents: 50 views a second)
    event: groups     {"groups": [GroupView], "removed": [name]}
    event: alarms     {"alarms": [AlarmView]}
    event: records    {"records": [{"stream_id", "seq"}]}         new analysis records (no pixels)

``changed`` holds at most ``max_streams`` views (the newest changes); ``more`` says how many were
left out — a page then reloads the one page it shows. Nothing is sent while no page listens, and
a page that cannot keep up is disconnected (its browser reconnects and resynchronises on
``hello``), so a slow client never holds memory or the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import TypeVar

import msgspec
from aiohttp import web
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import DeliverPolicy

from core.agent import AgentState
from core.group import GroupState
from core.stream import StreamState
from events import subjects
from events.model import AlarmEvent
from ops.api.envelope import error_reply
from ops.api.views import AgentView, AlarmView, GroupView, StreamView, alarm_view, stream_view
from ops.http.backend import BACKEND, FleetView
from ops.http.overview import build_overview
from ops.http.respond import json_response

__all__ = ["LIVE", "LiveFeed", "live", "live_feed"]

log = logging.getLogger(__name__)

_encode = msgspec.json.Encoder().encode


class StreamsChanged(msgspec.Struct, frozen=True, kw_only=True):
    changed: list[StreamView]
    removed: list[str]
    more: int


class AgentsChanged(msgspec.Struct, frozen=True, kw_only=True):
    agents: list[AgentView]


class GroupsChanged(msgspec.Struct, frozen=True, kw_only=True):
    groups: list[GroupView]
    removed: list[str]


class AlarmsChanged(msgspec.Struct, frozen=True, kw_only=True):
    alarms: list[AlarmView]


class NewRecord(msgspec.Struct, frozen=True, kw_only=True):
    stream_id: str
    seq: int
    """Its sequence in VIGIL_RECORDS (GET /api/v1/streams/{id}/records lists it)."""


class RecordsAdded(msgspec.Struct, frozen=True, kw_only=True):
    records: list[NewRecord]


L = TypeVar("L")


def _remove(listeners: list[L], listener: L) -> None:
    with contextlib.suppress(ValueError):
        listeners.remove(listener)


def sse(event: str, data: object) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + _encode(data) + b"\n\n"


class LiveFeed:
    """Notes what changed (listeners) and pushes views of it to subscribers (``run``)."""

    def __init__(self, fleet: FleetView, *, interval_s: float = 0.25, max_streams: int = 200,
                 agents_every_s: float = 2.0, queue_size: int = 256) -> None:  # fmt: skip
        self.fleet = fleet
        self.interval_s = interval_s
        self.max_streams = max_streams
        self.agents_every_s = agents_every_s
        self.queue_size = queue_size
        self.clients: set[asyncio.Queue[bytes | None]] = set()
        self.sent = 0
        self.dropped_clients = 0
        self._streams: dict[str, None] = {}
        self._streams_more = 0
        self._agents: set[str] = set()
        self._beats: set[str] = set()
        self._groups: set[str] = set()
        self._alarms: set[str] = set()
        self._records: dict[str, int] = {}
        self._dirty = False
        self._wake = asyncio.Event()
        self._agents_sent_at = 0.0

    # ---- listeners (called inside the projections' fold: note ids, nothing more) --------------

    def attach(self) -> None:
        f = self.fleet
        f.streams.listeners.append(self._on_stream)
        f.agents.listeners.append(self._on_agent)
        f.groups.listeners.append(self._on_group)
        f.alarms.listeners.append(self._on_alarm)
        f.heartbeats.listeners.append(self._on_heartbeat)

    def detach(self) -> None:
        f = self.fleet
        _remove(f.streams.listeners, self._on_stream)
        _remove(f.agents.listeners, self._on_agent)
        _remove(f.groups.listeners, self._on_group)
        _remove(f.alarms.listeners, self._on_alarm)
        _remove(f.heartbeats.listeners, self._on_heartbeat)

    def _changed(self) -> None:
        self._dirty = True
        self._wake.set()

    def _on_stream(self, before: StreamState | None, after: StreamState) -> None:
        if not self.clients:
            return
        sid = after.stream_id
        if sid in self._streams:
            del self._streams[sid]  # keep the order of the latest change
        elif len(self._streams) >= self.max_streams:
            oldest = next(iter(self._streams))
            del self._streams[oldest]
            self._streams_more += 1
        self._streams[sid] = None
        for agent in (before.agent_id if before else None, after.agent_id):
            if agent is not None:
                self._agents.add(agent)
        if after.group is not None and (before is None or after.status == "deleted"):
            self._groups.add(after.group)
        self._changed()

    def _on_agent(self, before: AgentState | None, after: AgentState) -> None:
        if not self.clients:
            return
        self._agents.add(after.agent_id)
        for g in self.fleet.groups.of_member(after.name):
            self._groups.add(g.name)
        self._changed()

    def _on_group(self, before: GroupState | None, after: GroupState) -> None:
        if not self.clients:
            return
        self._groups.add(after.name)
        self._changed()

    def _on_alarm(self, key: str, event: AlarmEvent) -> None:
        if not self.clients:
            return
        self._alarms.add(key)
        self._changed()

    async def on_record(self, msg: Msg) -> None:
        """A new analysis record (headers only: the pixels stay in JetStream)."""
        if not self.clients:
            return
        stream_id = msg.subject.removeprefix(subjects.RECORDS_PREFIX + ".").partition(".")[2]
        if stream_id:
            self._records[stream_id] = msg.metadata.sequence.stream
            self._changed()

    def _on_heartbeat(self, agent_id: str, _at: float) -> None:
        if self.clients:
            self._beats.add(agent_id)
            self._wake.set()

    # ---- subscribers ----------------------------------------------------------------------------

    def subscribe(self) -> asyncio.Queue[bytes | None]:
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(self.queue_size)
        self.clients.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[bytes | None]) -> None:
        self.clients.discard(queue)

    def close(self) -> None:
        """Ends every subscriber's response (the server is shutting down)."""
        for queue in list(self.clients):
            self._end(queue)
        self.clients.clear()

    def _end(self, queue: asyncio.Queue[bytes | None]) -> None:
        while True:
            try:
                queue.put_nowait(None)
                return
            except asyncio.QueueFull:
                queue.get_nowait()

    def hello(self) -> bytes:
        f = self.fleet
        return sse("hello", {"manager_id": f.manager_id, "seq": f.last_seq}) + sse(
            "overview", build_overview(f)
        )

    # ---- pushing ----------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.interval_s)  # let a burst of changes coalesce
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # a bug building a view: log it, keep the feed (pages resync)
                log.exception("live feed: building the changes failed")

    def flush(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if not self.clients:
            self._clear()
            return
        # heartbeats only refresh figures: every agents_every_s, slower for big fleets (50
        # agents' views per second at most), never more than the page can use
        period = max(self.agents_every_s, len(self._beats) / 50)
        beats_due = self._beats and now - self._agents_sent_at >= period
        if not self._dirty and not beats_due:
            if self._beats:
                self._wake.set()  # heartbeats wait for their period
            return
        messages: list[bytes] = []
        f = self.fleet
        if self._streams:
            changed: list[StreamView] = []
            removed: list[str] = []
            for sid in self._streams:
                state = f.streams.streams.get(sid)
                if state is None or state.status == "deleted":
                    removed.append(sid)
                else:
                    changed.append(stream_view(state, f.waiting.for_stream(state)))
            messages.append(sse("streams", StreamsChanged(changed=changed, removed=removed,
                                                          more=self._streams_more)))  # fmt: skip
        agents = set(self._agents)
        if beats_due:
            agents |= self._beats
            self._beats.clear()
            self._agents_sent_at = now
        if agents:
            views = [f.agent_commands.view(a) for aid in sorted(agents)
                     if (a := f.agents.get(aid)) is not None]  # fmt: skip
            messages.append(sse("agents", AgentsChanged(agents=views)))
        if self._groups:
            groups, gone = [], []
            for name in sorted(self._groups):
                g = f.groups.get(name)
                if g is None:
                    gone.append(name)
                else:
                    groups.append(f.group_commands.view(g))
            messages.append(sse("groups", GroupsChanged(groups=groups, removed=gone)))
        if self._alarms:
            alarms: list[AlarmView] = []
            for key in sorted(self._alarms):
                kept = f.alarms.keys.get(key)
                if kept is not None:
                    alarms += [alarm_view(a) for a in kept.alarms[-20:]]
            messages.append(sse("alarms", AlarmsChanged(alarms=alarms)))
        if self._records:
            added = [NewRecord(stream_id=k, seq=v) for k, v in self._records.items()]
            messages.append(sse("records", RecordsAdded(records=added)))
        if self._dirty:
            messages.append(sse("overview", build_overview(f)))
        self._clear()
        self._broadcast(b"".join(messages))

    def _clear(self) -> None:
        self._streams.clear()
        self._streams_more = 0
        self._agents.clear()
        self._groups.clear()
        self._alarms.clear()
        self._records.clear()
        self._dirty = False
        if not self.clients:
            self._beats.clear()

    def _broadcast(self, data: bytes) -> None:
        if not data:
            return
        for queue in list(self.clients):
            try:
                queue.put_nowait(data)
                self.sent += 1
            except asyncio.QueueFull:  # too slow: let it reconnect and resynchronise
                self.dropped_clients += 1
                self.clients.discard(queue)
                self._end(queue)


LIVE: web.AppKey[LiveFeed] = web.AppKey("live", LiveFeed)


async def live_feed(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: a feed over the backend's projections while the app runs (none for a
    replay of the past)."""
    fleet = app[BACKEND].read_side()
    if fleet is None:
        yield
        return
    feed = LiveFeed(fleet)
    feed.attach()
    app[LIVE] = feed
    task = asyncio.create_task(feed.run(), name="live-feed")
    records = await _watch_records(app[BACKEND].nc, feed)
    try:
        yield
    finally:
        if records is not None:
            with contextlib.suppress(Exception):
                await records.unsubscribe()
        feed.close()
        feed.detach()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _watch_records(nc: Client, feed: LiveFeed) -> Subscription | None:
    """New records, headers only, from now on (an ordered consumer: no state on the server)."""
    try:
        return await nc.jetstream().subscribe(
            subjects.RECORDS_ALL, stream=subjects.RECORDS_STREAM, cb=feed.on_record,
            ordered_consumer=True, deliver_policy=DeliverPolicy.NEW, headers_only=True,
            idle_heartbeat=5.0,
        )  # fmt: skip
    except Exception as exc:  # no records stream yet, or not allowed: pages refresh on changes
        log.warning("live feed: no push of new analysis records (%r)", exc)
        return None


async def close_live(app: web.Application) -> None:
    """``on_shutdown``: end the open event streams, so shutting down never waits for them."""
    feed = app.get(LIVE)
    if feed is not None:
        feed.close()


async def live(request: web.Request) -> web.StreamResponse:
    feed = request.app.get(LIVE)
    if feed is None:
        return json_response(error_reply("not_found", "no live updates here (a replay of the"
                                         " past does not change)"), 404)  # fmt: skip
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})  # fmt: skip
    await response.prepare(request)
    queue = feed.subscribe()
    try:
        await response.write(b"retry: 2000\n" + feed.hello())
        while True:
            try:
                data = await asyncio.wait_for(queue.get(), 15)
            except TimeoutError:
                data = b": keep-alive\n\n"
            if data is None:
                break
            await response.write(data)
    except (ConnectionResetError, ConnectionError):
        pass  # the page went away
    finally:
        feed.unsubscribe(queue)
    return response
