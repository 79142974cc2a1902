"""Tools of the chaos suite: a TCP proxy to partition a client, load that remembers what was
acknowledged, and judges that read the event log and the statistics (never log lines)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass, field

import nats.errors
import orjson
from nats.aio.client import Client

from core import stream as S
from core.stream import StreamState
from events.jetstream import JetStreamStore
from events.model import Event, MasterElected, StreamAssigned, StreamEvent
from events.store import StoredEvent

SCALE = os.environ.get("VIGIL_CHAOS_SCALE", "small")
"""``small`` in ``make test``; ``full`` in ``make chaos`` (10,000 streams, longer loads)."""


def scaled(small: int, full: int) -> int:
    return full if SCALE == "full" else small


class Proxy:
    """Forwards a local port to ``target``; ``cut()`` drops every connection and refuses new
    ones (a network partition with the processes alive), ``restore()`` heals it."""

    def __init__(self, target_host: str, target_port: int, port: int) -> None:
        self.target = (target_host, target_port)
        self.port = port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for w in list(self._writers):
            with contextlib.suppress(Exception):
                w.transport.abort()
        self._writers.clear()

    async def restore(self) -> None:
        await self.start()


@dataclass
class Load:
    """Creates streams and publishes feedback deltas as fast as replies come back, remembering
    only what was acknowledged; stops on ``stop``."""

    nc: Client
    agent_id: str
    created: set[str] = field(default_factory=set)
    fed: int = 0
    failures: int = 0
    longest_gap_s: float = 0.0
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _last_ok: float = field(default_factory=time.monotonic)

    def _ok(self) -> None:
        now = time.monotonic()
        self.longest_gap_s = max(self.longest_gap_s, now - self._last_ok)
        self._last_ok = now

    async def creates(self) -> None:
        i = 0
        while not self._stop.is_set():
            i += 1
            body = {"source": {"url": f"rtsp://load-{i}.example/x"}, "request_id": f"load-{i}"}
            while not self._stop.is_set():  # the same request_id until it is acknowledged
                try:
                    msg = await self.nc.request("vigil.cmd.stream.create", orjson.dumps(body),
                                                timeout=5)  # fmt: skip
                    reply = orjson.loads(msg.data)
                except Exception:
                    self.failures += 1
                    await asyncio.sleep(0.2)
                    continue
                if reply.get("ok"):
                    self.created.add(reply["result"]["stream_id"])
                    self._ok()
                    break
                self.failures += 1
                await asyncio.sleep(0.2)

    async def feedback(self) -> None:
        js = self.nc.jetstream(timeout=5)
        seq = 0
        while not self._stop.is_set():
            seq += 1
            body = orjson.dumps({"seq": seq, "stream_id": "s-load", "version": 1,
                                 "status": "in_progress", "ts": time.time(),
                                 "stats": {"frames_decoded": 1}})  # fmt: skip
            while True:  # retried with the same msg id until acknowledged: stored at most once
                try:
                    await js.publish(f"vigil.feedback.{self.agent_id}", body,
                                     headers={"Nats-Msg-Id": f"{self.agent_id}:{seq}"})  # fmt: skip
                    self.fed += 1
                    break
                except Exception:
                    self.failures += 1
                    if self._stop.is_set():
                        return
                    await asyncio.sleep(0.2)
            await asyncio.sleep(0.005)

    def stop(self) -> None:
        self._stop.set()


@dataclass
class Verdict:
    streams: dict[str, StreamState]
    double_assignments: list[str]
    deposed_decisions: list[int]
    elections: list[tuple[int, int]]


async def judge(nc: Client, *, attempts: int = 5) -> Verdict:
    """Fold the whole log with the pure core, checking on the way: no stream assigned while it
    was assigned, and no decision of a master epoch after a later election.

    A cluster that has just lost a server may time out creating the reading consumer; the
    whole log is then read again from the start (a verdict is never built from part of it)."""
    for attempt in range(attempts):
        try:
            return await _judge_once(nc)
        except (TimeoutError, nats.errors.TimeoutError):
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(1.0)
    raise AssertionError("unreachable")


async def _judge_once(nc: Client) -> Verdict:
    store = JetStreamStore(nc)
    states: dict[str, StreamState] = {}
    doubles: list[str] = []
    deposed: list[int] = []
    elections: list[tuple[int, int]] = []  # (seq, epoch)
    newest_epoch = 0
    async for stored in store.read_all():
        event: Event = stored.event
        if isinstance(event, MasterElected):
            elections.append((stored.seq, event.epoch))
            newest_epoch = max(newest_epoch, event.epoch)
            continue
        cause = event.cause
        if cause.kind == "master" and cause.epoch is not None and cause.epoch < newest_epoch:
            deposed.append(stored.seq)
        if isinstance(event, StreamEvent):
            _fold(states, doubles, stored, event)
    return Verdict(states, doubles, deposed, elections)


def _fold(states: dict[str, StreamState], doubles: list[str], stored: StoredEvent,
          event: StreamEvent) -> None:  # fmt: skip
    before = states.get(event.stream_id)
    after = S.evolve(before, event)
    if (isinstance(event, StreamAssigned) and after is not before and before is not None
            and before.agent_id is not None):  # fmt: skip
        doubles.append(f"{event.stream_id}@{stored.seq}")
    if after is not None:
        states[event.stream_id] = after
