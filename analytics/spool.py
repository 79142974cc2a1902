"""Spoolers: deliver analysis records to JetStream, an HTTP webhook or a directory.

Each spooler is an async context manager with a non-blocking ``put(record)`` and a background
delivery task; ``on_sent(record_id)`` is called once per delivered record.

- :class:`JetStreamSpooler` publishes to ``vigil.records.<stream_id>`` (stream ``VIGIL_RECORDS``)
  with ``Nats-Msg-Id: <record_id>``, waiting for the ack and retrying with backoff, so a retried
  publish is deduplicated by the server.
- :class:`WebhookSpooler` POSTs the record JSON; records wait in a :class:`DiskQueue` (one file per
  record) and are removed only after a 2xx, so they survive an agent restart.
- :class:`DirectorySpooler` writes ``<record_id>.json`` atomically.

:class:`analytics.spoolrunner.SpoolRunner` runs one on its own event loop in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from collections import deque
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

import aiohttp
import msgspec
import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from analytics.diskqueue import DiskQueue
from analytics.records import AnalysisRecord, encode_record
from events.connection import ConnectionSettings, connect

__all__ = [
    "DirectoryConfig",
    "DirectorySpooler",
    "JetStreamConfig",
    "JetStreamSpooler",
    "SpoolConfig",
    "Spooler",
    "WebhookConfig",
    "WebhookSpooler",
    "connect_nats",
    "open_spooler",
]

OnSent = Callable[[str], None]
log = logging.getLogger(__name__)


class JetStreamConfig(msgspec.Struct, frozen=True, kw_only=True, tag="jetstream"):
    """Publish to JetStream. ``servers`` is used by :class:`SpoolRunner` to connect; records still
    unacknowledged ``drain_s`` after the stream ended are lost (they are only in memory)."""

    servers: tuple[str, ...] = ("nats://127.0.0.1:4222",)
    connection: ConnectionSettings | None = None
    """How to connect (credentials, TLS); when set, ``servers`` is not used."""
    stream: str = "VIGIL_RECORDS"
    subject_prefix: str = "vigil.records"
    ensure: bool = True
    """Create the stream if missing (agents with their own identity may not: managers do)."""
    ack_timeout_s: float = 5.0
    backoff_base_s: float = 0.2
    backoff_max_s: float = 10.0
    max_pending: int = 10_000
    drain_s: float = 5.0


class WebhookConfig(msgspec.Struct, frozen=True, kw_only=True, tag="webhook"):
    """POST JSON to ``url``; pending records wait as files in ``queue_dir`` (one owner at a time:
    give each stream its own directory, or share one spooler per agent). ``drain_s`` is how long
    :class:`SpoolRunner` tries to deliver when its stream ends; undelivered records stay queued
    and the next spooler on the same directory sends them."""

    url: str
    queue_dir: str
    max_pending: int = 10_000
    timeout_s: float = 10.0
    backoff_base_s: float = 0.5
    backoff_max_s: float = 60.0
    drain_s: float = 2.0


class DirectoryConfig(msgspec.Struct, frozen=True, kw_only=True, tag="directory"):
    """One JSON file per record in ``path``."""

    path: str
    drain_s: float = 0.0


SpoolConfig = JetStreamConfig | WebhookConfig | DirectoryConfig


class Spooler(Protocol):
    def put(self, record: AnalysisRecord) -> None: ...
    async def drain(self, timeout_s: float) -> bool: ...
    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None: ...


def _backoff(attempt: int, base_s: float, max_s: float) -> float:
    return min(max_s, base_s * 2.0 ** min(attempt, 30)) * random.uniform(0.8, 1.2)


class _Delivering:
    """Shared background-task plumbing: a wake-up event and a task started/stopped with ``async
    with``. Subclasses implement ``_deliver_forever`` and ``pending``."""

    def __init__(self) -> None:
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        raise NotImplementedError

    async def _deliver_forever(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._deliver_forever())
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def drain(self, timeout_s: float) -> bool:
        """Wait until nothing is pending (True) or ``timeout_s`` passed (False)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.pending and loop.time() < deadline:
            if self._task is not None and self._task.done():
                self._task.result()  # surface a crashed delivery task
            await asyncio.sleep(0.02)
        return not self.pending


class JetStreamSpooler(_Delivering):
    """Acked, retried publishes of records; a bounded in-memory queue drops the oldest when full."""

    def __init__(
        self, js: JetStreamContext, config: JetStreamConfig, on_sent: OnSent | None = None
    ) -> None:
        super().__init__()
        self.js = js
        self.config = config
        self.on_sent = on_sent
        self.dropped = 0
        self._queue: deque[AnalysisRecord] = deque()

    @property
    def pending(self) -> int:
        return len(self._queue)

    def put(self, record: AnalysisRecord) -> None:
        if len(self._queue) >= self.config.max_pending:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(record)
        self._wake.set()

    async def ensure_stream(self) -> None:
        """Create the records stream if it does not exist yet (unless ``ensure`` is off)."""
        if not self.config.ensure:
            return
        try:
            await self.js.stream_info(self.config.stream)
        except NotFoundError:
            await self.js.add_stream(
                name=self.config.stream, subjects=[f"{self.config.subject_prefix}.>"]
            )

    async def _deliver_forever(self) -> None:
        attempt = 0
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            record = self._queue[0]
            subject = f"{self.config.subject_prefix}.{record.stream_id}"
            try:
                await self.js.publish(
                    subject,
                    encode_record(record),
                    timeout=self.config.ack_timeout_s,
                    headers={"Nats-Msg-Id": record.record_id},
                )
            except (TimeoutError, nats.errors.Error):
                await asyncio.sleep(
                    _backoff(attempt, self.config.backoff_base_s, self.config.backoff_max_s)
                )
                attempt += 1
                continue
            attempt = 0
            if self._queue and self._queue[0] is record:
                self._queue.popleft()
            if self.on_sent is not None:
                self.on_sent(record.record_id)


class WebhookSpooler(_Delivering):
    """POSTs records in order; each stays in the disk queue until the receiver answered 2xx."""

    def __init__(self, config: WebhookConfig, on_sent: OnSent | None = None) -> None:
        super().__init__()
        self.config = config
        self.on_sent = on_sent
        self.queue = DiskQueue(config.queue_dir, config.max_pending)
        self.attempts = 0

    @property
    def pending(self) -> int:
        return len(self.queue)

    def put(self, record: AnalysisRecord) -> None:
        self.queue.add(record.record_id, encode_record(record))
        self._wake.set()

    async def _deliver_forever(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            failures = 0
            while True:
                item = self.queue.peek()
                if item is None:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                self.attempts += 1
                if await self._post(session, item.record_id, item.read()):
                    self.queue.remove(item.record_id)
                    failures = 0
                    if self.on_sent is not None:
                        self.on_sent(item.record_id)
                    continue
                await asyncio.sleep(
                    _backoff(failures, self.config.backoff_base_s, self.config.backoff_max_s)
                )
                failures += 1

    async def _post(self, session: aiohttp.ClientSession, record_id: str, body: bytes) -> bool:
        headers = {"Content-Type": "application/json", "Idempotency-Key": record_id}
        try:
            async with session.post(self.config.url, data=body, headers=headers) as response:
                await response.read()
                return 200 <= response.status < 300
        except (TimeoutError, aiohttp.ClientError):
            return False


class DirectorySpooler(_Delivering):
    """Writes each record to ``<path>/<record_id>.json`` atomically (tmp file, fsync, rename)."""

    def __init__(self, config: DirectoryConfig, on_sent: OnSent | None = None) -> None:
        super().__init__()
        self.path = Path(config.path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.on_sent = on_sent

    @property
    def pending(self) -> int:
        return 0

    def put(self, record: AnalysisRecord) -> None:
        target = self.path / f"{record.record_id}.json"
        tmp = target.with_suffix(".tmp")
        with open(tmp, "wb") as handle:
            handle.write(encode_record(record))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        if self.on_sent is not None:
            self.on_sent(record.record_id)

    async def _deliver_forever(self) -> None:
        await asyncio.Event().wait()


async def connect_nats(config: JetStreamConfig) -> Client:
    """Connect to ``config.servers``, retrying with backoff until it works (or cancelled)."""
    attempt = 0
    while True:
        try:
            if config.connection is not None:
                return await connect(config.connection, name="vigil-records",
                                     connect_timeout=config.ack_timeout_s)  # fmt: skip
            return await nats.connect(
                list(config.servers),
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                connect_timeout=config.ack_timeout_s,
            )
        except (OSError, TimeoutError, nats.errors.Error) as exc:
            delay = _backoff(attempt, config.backoff_base_s, config.backoff_max_s)
            log.warning("records spooler: NATS unreachable (%s); retrying in %.1f s", exc, delay)
            await asyncio.sleep(delay)
            attempt += 1


@contextlib.asynccontextmanager
async def open_spooler(
    config: SpoolConfig, on_sent: OnSent | None = None
) -> AsyncIterator[Spooler]:
    """The spooler for ``config``, connecting to NATS itself for :class:`JetStreamConfig`."""
    if isinstance(config, JetStreamConfig):
        nc = await connect_nats(config)
        try:
            spooler = JetStreamSpooler(nc.jetstream(), config, on_sent)
            await spooler.ensure_stream()
            async with spooler:
                yield spooler
        finally:
            await nc.close()
    elif isinstance(config, WebhookConfig):
        async with WebhookSpooler(config, on_sent) as webhook:
            yield webhook
    else:
        async with DirectorySpooler(config, on_sent) as directory:
            yield directory
