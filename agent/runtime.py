"""The reference agent: register, heartbeat, poll, run stream workers, send feedback.

::

    Agent
    ├── identity      agent_id kept in <outbox>.agent-id (the outbox's seq belongs to it)
    ├── Outbox        durable feedback queue (sqlite, WAL) ── FeedbackSender ──► VIGIL_FEEDBACK
    ├── heartbeats    vigil.agent.<id>.heartbeat every heartbeat_interval_s
    ├── poller        vigil.agent.<id>.streams on notify, or every poll_interval_s
    ├── stats         per-stream deltas into the outbox every feedback_interval_s
    └── workers       one thread per stream running ``analytics.worker.run_stream``

Every feedback message goes through the outbox first, so a NATS outage loses nothing and a
restart on the same outbox counts nothing twice. ``tally`` keeps an independent in-memory sum of
every delta this process measured (tests compare it with the manager's daily statistics).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import shutil
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import msgspec
import nats
import orjson
import psutil
from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from agent.outbox import FeedbackDraft, Outbox, OutboxFull
from agent.sender import FeedbackSender
from analytics.registry import describe_all
from analytics.spool import DirectoryConfig, SpoolConfig, WebhookConfig
from analytics.worker import AnalyticSpec, Outcome, Report, StreamCounters, StreamJob, run_stream
from events.feedback import FeedbackError, StreamStats
from ops.config import ClientSettings
from ops.tasks import cancel_and_wait

__all__ = ["Agent", "AgentConfig"]

log = logging.getLogger(__name__)


def local_url(url: str) -> str:
    """``file:///path`` → ``/path`` (PyAV opens paths; other URLs pass through)."""
    if url.startswith("file://"):
        return unquote(urlsplit(url).path)
    return url


def utc_day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


@dataclass(frozen=True)
class AgentConfig:
    name: str
    outbox: Path
    capacity: int = 8
    groups: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    poll_interval_s: float = 5.0
    register_retry_s: float = 1.0
    outbox_max_rows: int = 100_000
    spool: SpoolConfig | None = None
    analytics: tuple[str, ...] | None = None  # None: every analytic this agent has


@dataclass
class Worker:
    stream_id: str
    version: int
    job: StreamJob
    stop: threading.Event
    counters: StreamCounters
    future: asyncio.Future[Outcome] | None = None
    running_reported: bool = False
    failed: bool = False


class Agent:
    """An async context manager: ``async with Agent(client, config) as agent: ...``."""

    def __init__(self, client: ClientSettings, config: AgentConfig) -> None:
        self.client = client
        self.config = config
        self.agent_id = self._identity()
        self.workers: dict[str, Worker] = {}
        self.ended: dict[str, int] = {}  # stream_id → assignment version whose worker ended
        self.tally: dict[str, StreamStats] = {}
        self.heartbeat_interval_s = 2.0
        self.feedback_interval_s = 2.0
        self.registered = asyncio.Event()
        self.alarms: list[str] = []
        self._poll_now = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._executor = ThreadPoolExecutor(max_workers=config.capacity + 2,
                                            thread_name_prefix=f"vigil-{config.name}")  # fmt: skip
        self.nc: Client
        self.outbox: Outbox
        self.sender: FeedbackSender

    def _identity(self) -> str:
        path = Path(f"{self.config.outbox}.agent-id")
        if path.is_file():
            text = path.read_text().strip()
            if text:
                return text
        agent_id = f"a-{uuid.uuid4().hex[:12]}"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(agent_id + "\n")
        os.replace(tmp, path)
        return agent_id

    # ---- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Agent:
        self.outbox = await Outbox.open(self.config.outbox, self.agent_id,
                                        max_rows=self.config.outbox_max_rows)  # fmt: skip
        if self.outbox.recovered_from is not None:
            alarm = f"outbox_recovered: {self.outbox.recovery_message}"
            log.error("%s", alarm)
            self.alarms.append(alarm)
        self.nc = await nats.connect(
            **self.client.connect_options(),  # type: ignore[arg-type]
            name=f"vigil-agent-{self.config.name}", max_reconnect_attempts=-1,
            reconnect_time_wait=0.5, allow_reconnect=True, connect_timeout=3,
        )  # fmt: skip
        self.sender = FeedbackSender(self.nc.jetstream(), self.outbox)
        await self.sender.__aenter__()
        await self.nc.subscribe(f"vigil.agent.{self.agent_id}.notify", cb=self._on_notify)
        await self.nc.flush()
        self._tasks = [
            asyncio.create_task(self._register_loop(), name="agent-register"),
            asyncio.create_task(self._heartbeat_loop(), name="agent-heartbeat"),
            asyncio.create_task(self._poll_loop(), name="agent-poll"),
            asyncio.create_task(self._stats_loop(), name="agent-stats"),
        ]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    async def shutdown(self, *, deregister: bool = True, drain_s: float = 5.0) -> None:
        """Stop workers, flush their last deltas, wait for the outbox to drain, deregister."""
        for task in self._tasks:
            await cancel_and_wait(task)
        self._tasks = []
        for worker in list(self.workers.values()):
            worker.stop.set()
        for worker in list(self.workers.values()):
            if worker.future is not None:
                with contextlib.suppress(Exception):
                    await worker.future
        await self._flush_stats(final=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.sender.wait_empty(), drain_s)
        if deregister and self.registered.is_set():
            with contextlib.suppress(Exception):
                await self.nc.request(f"vigil.agent.{self.agent_id}.deregister", b"{}", timeout=2)
        await self.sender.__aexit__(None, None, None)
        await self.outbox.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.nc.flush(), 2)
        await self.nc.close()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def kill(self) -> None:
        """Stop abruptly, as a crash would (for tests): no final feedback, no deregister."""
        for task in self._tasks:
            await cancel_and_wait(task)
        for worker in self.workers.values():
            worker.stop.set()
        await self.sender.__aexit__(None, None, None)
        await self.outbox.close()
        try:
            await self.nc.close()
        except OSError as exc:  # nats-py flushes its buffer into the dead socket while disconnected
            log.debug("kill during a NATS outage: %r", exc)
        self._executor.shutdown(wait=False, cancel_futures=True)

    # ---- protocol ----------------------------------------------------------------------------

    def _offers(self) -> list[dict[str, object]]:
        offers = describe_all()
        wanted = self.config.analytics
        return [o for o in offers if wanted is None or o["name"] in wanted]

    async def _request(
        self, subject: str, body: dict[str, Any], timeout: float = 5.0
    ) -> dict[str, Any]:
        msg = await self.nc.request(subject, orjson.dumps(body), timeout=timeout)
        reply: dict[str, Any] = orjson.loads(msg.data)
        return reply

    async def register(self) -> None:
        body = {
            "name": self.config.name, "capacity": self.config.capacity,
            "analytics": self._offers(), "groups": list(self.config.groups),
            "labels": self.config.labels, "agent_id": self.agent_id,
            "host": {"hostname": os.uname().nodename, "pid": os.getpid(),
                     "cpus": os.cpu_count() or 1},
        }  # fmt: skip
        reply = await self._request("vigil.agent.register", body)
        if not reply.get("ok"):
            raise RuntimeError(f"registration refused: {reply.get('error')}")
        result = reply["result"]
        self.heartbeat_interval_s = float(result["heartbeat_interval_s"])
        self.feedback_interval_s = float(result["feedback_interval_s"])
        self.registered.set()
        self._poll_now.set()
        log.info("agent %s registered as %s", self.config.name, self.agent_id)

    async def _register_loop(self) -> None:
        while not self.registered.is_set():
            try:
                await self.register()
            except (TimeoutError, NatsTimeout, NoRespondersError) as exc:
                log.info("no manager answered registration yet (%r); retrying", exc)
                await asyncio.sleep(self.config.register_retry_s)
            except Exception as exc:
                log.warning("registration failed: %s; retrying", exc)
                await asyncio.sleep(self.config.register_retry_s * 5)

    async def _on_notify(self, msg: Any) -> None:
        self._poll_now.set()

    def heartbeat_body(self) -> dict[str, Any]:
        vm = psutil.virtual_memory()
        disk = shutil.disk_usage(self.config.outbox.parent)
        return {
            "ts": time.time(), "running": sorted(self.workers),
            "cpu_percent": psutil.cpu_percent(interval=None), "mem_used": vm.used,
            "mem_total": vm.total, "disk_used": disk.used, "disk_total": disk.total,
            "outbox_depth": self.outbox.depth(), "alarms": self.alarms[-10:],
        }  # fmt: skip

    async def _heartbeat_loop(self) -> None:
        await self.registered.wait()
        subject = f"vigil.agent.{self.agent_id}.heartbeat"
        while True:
            with contextlib.suppress(Exception):
                await self.nc.publish(subject, orjson.dumps(self.heartbeat_body()))
            await asyncio.sleep(self.heartbeat_interval_s)

    async def _poll_loop(self) -> None:
        await self.registered.wait()
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._poll_now.wait(), self.config.poll_interval_s)
            self._poll_now.clear()
            try:
                await self.poll()
            except (NatsTimeout, NoRespondersError) as exc:
                log.debug("poll: %r", exc)
            except Exception:
                log.exception("poll failed")

    async def poll(self) -> None:
        reply = await self._request(f"vigil.agent.{self.agent_id}.streams",
                                    {"running": sorted(self.workers)})  # fmt: skip
        if not reply.get("ok"):
            if reply.get("error", {}).get("code") == "not_found":
                log.warning("manager does not know this agent; registering again")
                self.registered.clear()
                await self.register()
            return
        result = reply["result"]
        for stream_id in result["stop"]:
            self.stop_worker(stream_id)
        listed = {a["stream_id"]: a["version"] for a in result["start"]}
        # An assignment whose worker already ended stays listed until the manager has folded
        # our final feedback (it is in the outbox): never run it twice.
        self.ended = {k: v for k, v in self.ended.items() if listed.get(k) == v}
        for assignment in result["start"]:
            if self.ended.get(assignment["stream_id"]) == assignment["version"]:
                continue
            current = self.workers.get(assignment["stream_id"])
            if current is not None and current.version == assignment["version"]:
                continue
            if current is not None:
                self.stop_worker(current.stream_id)
            await self.start_worker(assignment)

    # ---- workers -----------------------------------------------------------------------------

    async def start_worker(self, a: dict[str, Any]) -> None:
        stream_id, version = a["stream_id"], int(a["version"])
        if len(self.workers) >= self.config.capacity:
            log.warning("over capacity; stream %s not started", stream_id)
            return
        if self.outbox.is_full():
            await self._put(stream_id, version, "failure",
                            FeedbackError(code="agent_outbox_full", fatal=False,
                                          message="the agent's feedback outbox is full"))  # fmt: skip
            return
        job = StreamJob(
            stream_id=stream_id, agent_id=self.agent_id, url=local_url(a["source"]["url"]),
            kind=a["kind"],
            analytics=tuple(AnalyticSpec(name=x["name"], params=x.get("params") or {})
                            for x in a["analytics"]),
            stall_timeout_s=float(a.get("stall_timeout_s") or 20.0),
            spool=self.spool_for(stream_id, a.get("spool")),
        )  # fmt: skip
        worker = Worker(stream_id, version, job, threading.Event(), StreamCounters())
        self.workers[stream_id] = worker
        loop = asyncio.get_running_loop()

        def on_report(report: Report) -> None:
            loop.call_soon_threadsafe(self._on_report, worker, report)

        worker.future = loop.run_in_executor(
            self._executor, run_stream, job, worker.stop, worker.counters, on_report
        )
        worker.future.add_done_callback(lambda f: self._on_done(worker, f))
        log.info("stream %s v%d started", stream_id, version)

    def spool_for(self, stream_id: str, target: dict[str, Any] | None) -> SpoolConfig | None:
        """The stream's record spooler: its own choice, else the agent's default (JetStream)."""
        kind = (target or {}).get("type", "jetstream")
        if target is None or kind == "jetstream":
            return self.config.spool
        if kind == "webhook":
            queue_dir = self.config.outbox.parent / "spool" / stream_id
            return WebhookConfig(url=str(target["url"]), queue_dir=str(queue_dir))
        return DirectoryConfig(path=str(target["path"]))

    def stop_worker(self, stream_id: str) -> None:
        worker = self.workers.get(stream_id)
        if worker is not None:
            worker.stop.set()
            log.info("stream %s v%d stopping", stream_id, worker.version)

    def _on_report(self, worker: Worker, report: Report) -> None:
        if self.workers.get(worker.stream_id) is not worker or worker.failed:
            return
        if report.kind == "running" and not worker.running_reported:
            worker.running_reported = True
            self._spawn(self._put(worker.stream_id, worker.version, "in_progress"))
        elif report.kind in ("error", "stall") and worker.job.kind == "stream":
            # A live source that cannot be read: tell the manager (it decides on restarts).
            worker.failed = True
            worker.stop.set()
            code = report.code or ("stream_stalled" if report.kind == "stall" else "source_error")
            err = FeedbackError(code=code, message=report.message, fatal=report.fatal)
            self._spawn(self._final(worker, "failure", err))

    def _on_done(self, worker: Worker, fut: asyncio.Future[Outcome]) -> None:
        if self.workers.get(worker.stream_id) is worker:
            del self.workers[worker.stream_id]
        self.ended[worker.stream_id] = worker.version
        if worker.failed or fut.cancelled():
            self._spawn(self._final(worker, None, None))  # counted work still reaches the stats
            self._poll_now.set()
            return
        exc = fut.exception()
        if exc is not None:
            log.error("worker for %s crashed: %r", worker.stream_id, exc)
            err = FeedbackError(code="worker_crashed", message=repr(exc)[:500], fatal=False)
            self._spawn(self._final(worker, "failure", err))
            return
        outcome = fut.result()
        log.info("stream %s v%d ended: %s %s", worker.stream_id, worker.version, outcome.status,
                 outcome.error_code)  # fmt: skip
        if outcome.status == "done":
            self._spawn(self._final(worker, "done", None))
        elif outcome.status == "failure":
            err = FeedbackError(code=outcome.error_code or "failure", message=outcome.message,
                                fatal=outcome.fatal)  # fmt: skip
            self._spawn(self._final(worker, "failure", err))
        else:
            self._spawn(self._final(worker, None, None))
        self._poll_now.set()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        task.add_done_callback(_log_failure)

    # ---- feedback ----------------------------------------------------------------------------

    def _count(self, stream_id: str, stats: StreamStats) -> None:
        prev = self.tally.get(stream_id)
        self.tally[stream_id] = stats if prev is None else prev.combine(stats)

    async def _put(self, stream_id: str, version: int, status: str,
                   error: FeedbackError | None = None, stats: StreamStats | None = None) -> None:  # fmt: skip
        now = time.time()
        draft = FeedbackDraft(stream_id=stream_id, version=version, status=status,  # type: ignore[arg-type]
                              day=utc_day(now), ts=now, error=error, stats=stats or StreamStats())  # fmt: skip
        try:
            await self._store([draft])
        except OutboxFull:
            log.error("outbox full: feedback for new stream %s refused", stream_id)
            return
        self.sender.wake()

    async def _store(self, drafts: list[FeedbackDraft]) -> None:
        """Put `drafts` into the outbox and add them to `tally` once they are stored.

        The tally is updated by a done-callback, not after the await: a caller cancelled while
        the write runs (``kill`` in a crash test) still counts what reached the disk, so `tally`
        is exactly what the outbox accepted. Raises what `Outbox.put_many` raises.
        """
        task = asyncio.ensure_future(self.outbox.put_many(drafts))
        task.add_done_callback(functools.partial(self._count_stored, drafts))
        await asyncio.shield(task)

    def _count_stored(self, drafts: list[FeedbackDraft], task: asyncio.Future[Any]) -> None:
        if not task.cancelled() and task.exception() is None:
            for d in drafts:
                self._count(d.stream_id, d.stats)

    async def _final(self, worker: Worker, status: str | None, error: FeedbackError | None) -> None:
        """Last delta of a worker, with its final status (None: stopped, stats only)."""
        delta = worker.counters.take_delta()
        if status is None:
            if not delta.is_zero():
                await self._put(worker.stream_id, worker.version, "in_progress", stats=delta)
            return
        await self._put(worker.stream_id, worker.version, status, error, delta)

    async def _flush_stats(self, final: bool = False) -> None:
        now = time.time()
        day = utc_day(now)
        drafts: list[FeedbackDraft] = []
        for worker in list(self.workers.values()):
            if not worker.running_reported or worker.failed:
                continue
            delta = worker.counters.take_delta()
            if delta.is_zero():
                continue
            drafts.append(FeedbackDraft(stream_id=worker.stream_id, version=worker.version,
                                        status="in_progress", day=day, ts=now, stats=delta))  # fmt: skip
        if not drafts:
            return
        await self._store(drafts)
        self.sender.wake()

    async def _stats_loop(self) -> None:
        await self.registered.wait()
        while True:
            await asyncio.sleep(self.feedback_interval_s)
            await self._flush_stats()

    def status(self) -> dict[str, Any]:
        return {
            "agent_id": self.agent_id,
            "workers": {k: w.version for k, w in self.workers.items()},
            "outbox_depth": self.outbox.depth(),
            "sender": msgspec.to_builtins(self.sender.stats()) if hasattr(self, "sender") else None,
        }


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("agent task failed: %r", task.exception())
