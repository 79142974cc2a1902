"""The reference agent: register, heartbeat, poll, run stream workers, send feedback.

::

    Agent
    ├── identity      agent_id kept in <outbox>.agent-id (the outbox's seq belongs to it)
    ├── Outbox        durable feedback queue (sqlite, WAL) ── FeedbackSender ──► VIGIL_FEEDBACK
    ├── heartbeats    vigil.agent.<id>.heartbeat every heartbeat_interval_s
    ├── poller        vigil.agent.<id>.streams on notify, or every poll_interval_s
    ├── stats         per-stream deltas into the outbox every feedback_interval_s
    ├── refusals      vigil.agent.<id>.refused: feedback the managers refused (logged, counted)
    └── workers       one thread per stream running ``analytics.worker.run_stream``

The loops are parts of one `Supervisor` (``events.aio``): a part that dies is logged and
restarted with backoff. The agent speaks only the protocol (``events.protocol``,
``events.subjects``): it needs nothing from the manager's code.

Every feedback message goes through the outbox first, so a NATS outage loses nothing and a
restart on the same outbox counts nothing twice. ``tally`` keeps an independent in-memory sum of
every delta this process measured (tests compare it with the manager's daily statistics).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import os
import stat
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import msgspec
import nats
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from agent.causes import CAUSES, cause_of
from agent.host import ProcessTree
from agent.outbox import FeedbackDraft, Outbox, OutboxFull
from agent.probe import is_video_file
from agent.sender import FeedbackSender
from agent.spooling import records_spool
from analytics.registry import describe_all
from analytics.spool import DirectoryConfig, SpoolConfig, WebhookConfig
from analytics.worker import AnalyticSpec, Outcome, Report, StreamCounters, StreamJob, run_stream
from core.sources import (
    SourcePolicy,
    check_host,
    check_path,
    check_source,
    check_spool_path,
    literal_address,
    local_path,
    scrub,
)
from events import logctx, subjects
from events.aio import Restart, Supervisor
from events.bounded import decode
from events.connection import ConnectionSettings, connect
from events.feedback import FeedbackError, StreamStats, utc_day
from events.model import HostInfo
from events.protocol import (
    AnalyticOfferIn,
    Assignment,
    ErrorBody,
    Heartbeat,
    Poll,
    PollResult,
    Refused,
    Register,
    Registered,
    SpoolOut,
)

__all__ = ["Agent", "AgentConfig", "IdentityMismatch", "Refusal", "utc_day"]

log = logging.getLogger(__name__)


def local_url(url: str) -> str:
    """``file:///path`` → ``/path`` (PyAV opens paths; other URLs pass through)."""
    if url.startswith("file://"):
        return unquote(urlsplit(url).path)
    return url


class _Reply(msgspec.Struct):
    ok: bool
    result: msgspec.Raw = msgspec.Raw(b"null")
    error: ErrorBody | None = None


class IdentityMismatch(RuntimeError):
    """The credentials name another agent than the outbox's identity."""


class Refusal(Exception):
    """A manager refused a request of this agent (the envelope's error)."""

    def __init__(self, error: ErrorBody | None) -> None:
        super().__init__(f"{error.code}: {error.message}" if error else "refused")
        self.code = error.code if error else "internal"


_decode_reply = msgspec.json.Decoder(_Reply)
_decode_refused = msgspec.json.Decoder(Refused)
_encode = msgspec.json.Encoder().encode


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
    sources: SourcePolicy = field(default_factory=SourcePolicy)
    """What this agent agrees to open (media roots, denied hosts...), checked before it does,
    whatever a manager assigned."""


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

    def __init__(self, client: ConnectionSettings, config: AgentConfig) -> None:
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
        self.refused: dict[str, int] = {}
        """Feedback the managers refused, per reason (pushed on vigil.agent.<id>.refused)."""
        self._poll_now = asyncio.Event()
        self._beat_now = asyncio.Event()
        self._unregistered = asyncio.Event()
        self._supervisor: Supervisor | None = None
        self._executor = ThreadPoolExecutor(max_workers=config.capacity + 2,
                                            thread_name_prefix=f"vigil-{config.name}")  # fmt: skip
        self.host = ProcessTree(config.outbox.parent)
        self.nc: Client
        self.outbox: Outbox
        self.sender: FeedbackSender

    def _identity(self) -> str:
        """The agent id: the one its credentials name (a NATS identity is bound to one agent),
        else the one kept beside its outbox (whose feedback seqs belong to it), else new."""
        path = Path(f"{self.config.outbox}.agent-id")
        kept = path.read_text().strip() if path.is_file() else ""
        bound = self.client.identity()
        if bound and kept and kept != bound:
            raise IdentityMismatch(
                f"the outbox {self.config.outbox} belongs to agent {kept}, but the credentials"
                f" are those of agent {bound}: give this agent its own --outbox, or credentials"
                f" minted for {kept} (vigil creds agent --agent-id {kept} ...)"
            )
        if kept:
            return kept
        agent_id = bound or f"a-{uuid.uuid4().hex[:12]}"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(agent_id + "\n")
        os.replace(tmp, path)
        return agent_id

    # ---- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Agent:
        with logctx.bound(agent=self.agent_id):  # every task started here logs its agent id
            await self._enter()
        return self

    async def _enter(self) -> None:
        self.outbox = await Outbox.open(self.config.outbox, self.agent_id,
                                        max_rows=self.config.outbox_max_rows)  # fmt: skip
        if self.outbox.recovered_from is not None:
            alarm = f"outbox_recovered: {self.outbox.recovery_message}"
            log.error("%s", alarm)
            self.alarms.append(alarm)
        self.nc = await connect(self.client, name=f"vigil-agent-{self.config.name}",
                                connect_timeout=3)  # fmt: skip
        self.sender = FeedbackSender(self.nc, self.outbox)
        await self.sender.__aenter__()
        await self.nc.subscribe(subjects.agent_notify(self.agent_id), cb=self._on_notify)
        await self.nc.subscribe(subjects.agent_refused(self.agent_id), cb=self._on_refused)
        await self.nc.flush()
        sup = Supervisor(f"agent {self.config.name}")
        await sup.__aenter__()
        self._supervisor = sup
        restart = Restart(initial_s=0.5, max_s=10.0)
        sup.spawn("register", self._register_loop, restart=restart)
        sup.spawn("heartbeat", self._heartbeat_loop, restart=restart)
        sup.spawn("poll", self._poll_loop, restart=restart)
        sup.spawn("stats", self._stats_loop, restart=restart)

    async def _stop_parts(self) -> None:
        sup, self._supervisor = self._supervisor, None
        if sup is not None:
            await sup.__aexit__(None, None, None)

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    async def shutdown(self, *, deregister: bool = True, drain_s: float = 5.0) -> None:
        """Stop workers, flush their last deltas, wait for the outbox to drain, deregister."""
        await self._stop_parts()
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
                await self.nc.request(subjects.agent_deregister(self.agent_id), b"{}", timeout=2)
        await self.sender.__aexit__(None, None, None)
        await self.outbox.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.nc.flush(), 2)
        await self.nc.close()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def kill(self) -> None:
        """Stop abruptly, as a crash would (for tests): no final feedback, no deregister."""
        await self._stop_parts()
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

    def _offers(self) -> list[AnalyticOfferIn]:
        wanted = self.config.analytics
        return [
            msgspec.convert(o, AnalyticOfferIn)
            for o in describe_all()
            if wanted is None or o["name"] in wanted
        ]

    async def _request(self, subject: str, body: bytes, timeout: float = 5.0) -> msgspec.Raw:
        """The result of a request; raises `Refusal` when a manager refuses it."""
        msg = await self.nc.request(subject, body, timeout=timeout)
        reply = decode(msg.data, _Reply, decoder=_decode_reply)
        if not reply.ok:
            raise Refusal(reply.error)
        return reply.result

    async def register(self) -> None:
        body = Register(
            name=self.config.name, capacity=self.config.capacity, analytics=self._offers(),
            groups=list(self.config.groups), labels=self.config.labels, agent_id=self.agent_id,
            host=HostInfo(hostname=os.uname().nodename, pid=os.getpid(), cpus=os.cpu_count() or 1),
        )  # fmt: skip
        raw = await self._request(subjects.agent_register(self.agent_id), _encode(body))
        result = msgspec.json.decode(raw, type=Registered)
        self.heartbeat_interval_s = result.heartbeat_interval_s
        self.feedback_interval_s = result.feedback_interval_s
        self.registered.set()
        self._poll_now.set()
        log.info("agent %s registered as %s", self.config.name, self.agent_id)

    async def _register_loop(self) -> None:
        """Register, and again whenever a manager says it does not know this agent."""
        while True:
            if self.registered.is_set():
                await self._unregistered.wait()
                self._unregistered.clear()
                continue
            try:
                await self.register()
            except (TimeoutError, NatsTimeout, NoRespondersError) as exc:
                log.info("no manager answered registration yet (%r); retrying", exc)
                await asyncio.sleep(self.config.register_retry_s)
            except Refusal as exc:
                log.warning("registration refused: %s; retrying", exc)
                await asyncio.sleep(self.config.register_retry_s * 5)

    async def _on_notify(self, msg: Msg) -> None:
        self._poll_now.set()

    async def _on_refused(self, msg: Msg) -> None:
        try:
            notice = decode(msg.data, Refused, decoder=_decode_refused)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return
        self.refused[notice.reason] = self.refused.get(notice.reason, 0) + 1
        log.warning("a manager refused feedback #%s (stream %s): %s: %s", notice.seq,
                    notice.stream_id, notice.reason, notice.message)  # fmt: skip

    def heartbeat_body(self) -> Heartbeat:
        """Keep-alive with this agent's own figures (its process tree, its outbox volume)."""
        host = self.host.sample()
        alarms = self.alarms[-10:]
        if self.outbox.is_full():
            alarms = [*alarms[-9:], f"outbox_full: {self.outbox.depth()} rows unsent"]
        return Heartbeat(
            ts=time.time(), running=sorted(self.workers), cpu_percent=host.cpu_percent,
            mem_used=host.mem_used, mem_total=host.mem_total, disk_used=host.disk_used,
            disk_total=host.disk_total, outbox_depth=self.outbox.depth(), alarms=alarms,
            capacity=self.config.capacity,
        )  # fmt: skip

    async def _heartbeat_loop(self) -> None:
        await self.registered.wait()
        subject = subjects.agent_heartbeat(self.agent_id)
        while True:
            try:
                await self.nc.publish(subject, _encode(self.heartbeat_body()))
            except (ConnectionError, OSError, nats.errors.Error) as exc:  # reconnecting
                log.debug("heartbeat: %r", exc)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._beat_now.wait(), self.heartbeat_interval_s)
            self._beat_now.clear()

    async def _poll_loop(self) -> None:
        await self.registered.wait()
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._poll_now.wait(), self.config.poll_interval_s)
            self._poll_now.clear()
            try:
                await self.poll()
            except (NatsTimeout, NoRespondersError, ConnectionError, nats.errors.Error) as exc:
                log.debug("poll: %r", exc)

    async def poll(self) -> None:
        running = sorted(self.workers)
        result: PollResult | None = None
        after: str | None = None
        while True:  # a big assignment set comes in pages
            body = _encode(Poll(running=running, after=after))
            try:
                raw = await self._request(subjects.agent_streams(self.agent_id), body)
            except Refusal as exc:
                if exc.code == "not_found":
                    log.warning("manager does not know this agent; registering again")
                    self.registered.clear()
                    self._unregistered.set()
                else:
                    log.warning("poll refused: %s", exc)
                return
            page = msgspec.json.decode(raw, type=PollResult)
            if result is None:
                result = page
            else:
                result.start.extend(page.start)
            if page.next is None:
                break
            after = page.next
        if result.heartbeat_interval_s and result.heartbeat_interval_s != self.heartbeat_interval_s:
            log.info("heartbeat interval now %.2fs (told by the manager)",
                     result.heartbeat_interval_s)  # fmt: skip
            self.heartbeat_interval_s = result.heartbeat_interval_s
            self._beat_now.set()
        for stream_id in result.stop:
            self.stop_worker(stream_id)
        listed = {a.stream_id: a.version for a in result.start}
        # An assignment whose worker already ended stays listed until the manager has folded
        # our final feedback (it is in the outbox): never run it twice.
        self.ended = {k: v for k, v in self.ended.items() if listed.get(k) == v}
        for assignment in result.start:
            if self.ended.get(assignment.stream_id) == assignment.version:
                continue
            current = self.workers.get(assignment.stream_id)
            if current is not None and current.version == assignment.version:
                continue
            if current is not None:
                self.stop_worker(current.stream_id)
            await self.start_worker(assignment)

    # ---- workers -----------------------------------------------------------------------------

    async def start_worker(self, a: Assignment) -> None:
        stream_id, version = a.stream_id, a.version
        if len(self.workers) >= self.config.capacity:
            log.warning("over capacity; stream %s not started", stream_id)
            return
        if self.outbox.is_full():
            await self._put(stream_id, version, "failure",
                            FeedbackError(code="agent_outbox_full", fatal=False,
                                          message="the agent's feedback outbox is full"))  # fmt: skip
            return
        refused = await self._refuse_source(a)
        if refused is not None:
            log.warning("stream %s not started: %s", stream_id, refused)
            self.ended[stream_id] = version
            await self._put(stream_id, version, "failure",
                            FeedbackError(code="source_not_allowed", message=refused, fatal=True))  # fmt: skip
            return
        job = StreamJob(
            stream_id=stream_id, agent_id=self.agent_id, url=local_url(a.source.url),
            kind=a.kind,
            analytics=tuple(AnalyticSpec(name=x.name, params=x.params) for x in a.analytics),
            stall_timeout_s=float(a.stall_timeout_s or 20.0),
            spool=self.spool_for(stream_id, a.spool),
            keyframes_only=a.keyframes_only, analysis_fps=a.analysis_fps,
        )  # fmt: skip
        worker = Worker(stream_id, version, job, threading.Event(), StreamCounters())
        self.workers[stream_id] = worker
        loop = asyncio.get_running_loop()

        def on_report(report: Report) -> None:
            loop.call_soon_threadsafe(self._on_report, worker, report)

        with logctx.bound(stream=stream_id):  # the worker thread logs its stream id
            context = contextvars.copy_context()
        worker.future = loop.run_in_executor(
            self._executor, context.run, run_stream, job, worker.stop, worker.counters, on_report
        )
        worker.future.add_done_callback(lambda f: self._on_done(worker, f))
        log.info("stream %s v%d started", stream_id, version, extra={"stream_id": stream_id})

    async def _refuse_source(self, a: Assignment) -> str | None:
        """Why this agent will not open ``a``'s source or spool (its own policy), or None."""
        policy = self.config.sources
        url = a.source.url
        path = local_path(url)
        host = urlsplit(url).hostname if path is None else None
        addresses: list[str] = []
        if host and literal_address(host) is not None:
            addresses = [str(literal_address(host))]
        elif host:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(host, None)
                addresses = sorted({str(i[4][0]) for i in infos})
            except (OSError, UnicodeError):
                addresses = []  # unresolvable: the decoder will report it as unreachable
        why = check_source(url, policy, addresses)
        if why is None and path is not None:
            real = await asyncio.to_thread(os.path.realpath, path)
            why = check_path(real, policy.media_roots)  # a symlink may not lead out of a root
            if why is None:
                why = await asyncio.to_thread(_refuse_file, real)
        if why is None and a.spool is not None and a.spool.type == "directory":
            why = check_spool_path(a.spool.path or "", policy)
        if why is None and a.spool is not None and a.spool.type == "webhook":
            target = urlsplit(a.spool.url or "").hostname or ""
            why = check_host(target, [], policy)
        return None if why is None else scrub(why, url)

    def spool_for(self, stream_id: str, target: SpoolOut | None) -> SpoolConfig | None:
        """The stream's record spooler: its own choice, else the agent's default (JetStream)."""
        if target is None or target.type == "jetstream":
            return self.config.spool or records_spool(self.client, self.agent_id)
        if target.type == "webhook":
            queue_dir = self.config.outbox.parent / "spool" / stream_id
            return WebhookConfig(url=str(target.url), queue_dir=str(queue_dir))
        return DirectoryConfig(path=str(target.path))

    def stop_worker(self, stream_id: str) -> None:
        worker = self.workers.get(stream_id)
        if worker is not None:
            worker.stop.set()
            log.info("stream %s v%d stopping", stream_id, worker.version,
                     extra={"stream_id": stream_id})  # fmt: skip

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
            err = FeedbackError(code=code, message=scrub(report.message, worker.job.url)[:2048],
                                fatal=report.fatal)  # fmt: skip
            self._spawn(self._warn_source(worker, err))
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
            err = FeedbackError(code="worker_crashed", message=scrub(repr(exc), worker.job.url)[:500],
                                fatal=False)  # fmt: skip
            self._spawn(self._final(worker, "failure", err))
            return
        outcome = fut.result()
        log.info("stream %s v%d ended: %s %s", worker.stream_id, worker.version, outcome.status,
                 outcome.error_code, extra={"stream_id": worker.stream_id})  # fmt: skip
        if outcome.status == "done":
            self._spawn(self._final(worker, "done", None))
        elif outcome.status == "failure":
            err = FeedbackError(code=outcome.error_code or "failure",
                                message=scrub(outcome.message, worker.job.url)[:2048],
                                fatal=outcome.fatal)  # fmt: skip
            self._spawn(self._warn_source(worker, err))
            self._spawn(self._final(worker, "failure", err))
        else:
            self._spawn(self._final(worker, None, None))
        self._poll_now.set()

    async def _warn_source(self, worker: Worker, err: FeedbackError) -> None:
        """A WARNING that says why the camera (or file) could not be read: DNS, refused,
        timeout, auth... (``agent.causes``), with the agent and stream ids."""
        host = urlsplit(worker.job.url).hostname if "://" in worker.job.url else None
        resolves: bool | None = None
        if host and err.code != "stream_stalled":
            try:
                await asyncio.wait_for(asyncio.get_running_loop().getaddrinfo(host, None), 5)
                resolves = True
            except (OSError, UnicodeError):
                resolves = False
            except TimeoutError:
                resolves = None
        cause = cause_of(err.message, err.code, resolves=resolves)
        log.warning("stream %s: %s source failed (%s: %s)%s: %s", worker.stream_id,
                    worker.job.kind, cause, CAUSES[cause], "" if err.fatal else ", will retry",
                    err.message, extra={"stream_id": worker.stream_id, "cause": cause})  # fmt: skip

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


def _refuse_file(real: str) -> str | None:
    """Why a file source (symlinks resolved, inside a media root) will not be decoded: not a
    regular file, or not a video container. The same words whatever it is (nothing told about
    what a path holds). A missing file passes: the decoder reports it (``source_not_found``)."""
    if _not_a_file(real):
        return "file sources must be regular video files under a media root"
    if os.path.exists(real) and not is_video_file(real):
        return "file sources must be regular video files under a media root"
    return None


def _not_a_file(path: str) -> bool:
    """True for something that exists but is no regular file (a device, directory, fifo, a
    /proc entry), symlinks resolved. A missing file is left to the decoder (``source_not_found``,
    inside a media root only)."""
    real = os.path.realpath(path)
    if real.startswith(("/proc/", "/sys/", "/dev/")):
        return True
    try:
        return not stat.S_ISREG(os.stat(real).st_mode)
    except FileNotFoundError:
        return False
    except OSError:
        return True


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("agent task failed: %r", task.exception())
