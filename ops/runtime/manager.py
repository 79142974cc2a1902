"""One manager instance: the composition root of the command side, the read side and the master.

Any number of managers share one JetStream. Each serves commands (one NATS queue group) and the
status API from its own projections; the master role is taken by one of them at a time.

::

    Manager (async context manager)
    ├── store (VIGIL_EVENTS), buckets (requests, master lease), feedback/records/alarms streams
    ├── Fleet of projections ◄── projector (part "projector": restarts by rebuilding)
    ├── alarms ◄── alarm projector (VIGIL_ALARMS, part "alarm-projector")
    ├── router ◄── commands (streams, agents, groups, alarms, schedules, launch configs,
    │              policies), queries (stats, master, dump, scaling)
    ├── daily stats: closed days loaded from VIGIL_STATS, open days folded from VIGIL_FEEDBACK
    └── Supervisor: projector · alarm-projector · stats-feed · stats-rollups · feedback ·
                    master · alarms · provision · snapshots · housekeeping

While any part is down, or the projections are not caught up, the router answers
``unavailable`` and ``/readyz`` says 503 with the reason: never an answer from a dead part.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path

from nats.aio.client import Client
from nats.aio.subscription import Subscription
from prometheus_client.core import Metric

from events import subjects
from events.aio import Restart, Supervisor
from events.connection import connect
from events.jetstream import JetStreamStore
from ops.api import requests as R
from ops.api.router import AnyRoute, Route, Router
from ops.api.views import MasterView, StreamList, StreamView
from ops.commands.agents import AgentCommands, agent_routes, serve_agent_protocol
from ops.commands.alarms import AlarmCommands, AlarmWriter, alarm_routes
from ops.commands.analytics import AnalyticsRegistry
from ops.commands.connections import Connections
from ops.commands.executor import Executor
from ops.commands.feedback import FeedbackConsumer
from ops.commands.groups import GroupCommands, group_routes
from ops.commands.heartbeats import Heartbeats
from ops.commands.rates import StreamRates
from ops.commands.scaling import ScaleFacts, ScalingCommands, scaling_routes
from ops.commands.schedules import ScheduleCommands, schedule_routes
from ops.commands.secrets import SecretStore
from ops.commands.streams import StreamCommands
from ops.commands.waiting import WaitingReasons
from ops.http.backend import FleetView
from ops.http.metrics import Instruments, families
from ops.logtools.verify import DumpResult, dump_handler
from ops.master.alarms import AlarmDuty
from ops.master.autoscale import Autoscale
from ops.master.election import Election
from ops.master.loop import Master
from ops.master.providers import CommandProvider, LocalProvider, Providers, load_commands
from ops.master.provision import Provisioner
from ops.runtime.logid import LogIdentity, LogReplaced
from ops.runtime.storage import ensure_all, until_jetstream_ready
from ops.settings import ClientSettings, ManagerSettings, autoscale_root
from ops.stats.commands import StatsCommands, stats_routes
from ops.stats.feed import StatsFeed
from ops.stats.queries import DailyStatsView, StatsQueries
from ops.stats.rollups import RollupStore
from projections.alarms import AlarmsProjection
from projections.engine import Projector, freeze_heap, freeze_survivors
from projections.fleet import Fleet
from projections.snapshot import Snapshotter, restore_latest
from projections.stats import DailyStats

__all__ = ["Manager"]

log = logging.getLogger(__name__)

LOOP_PROBE_S = 0.05


class Manager:
    def __init__(
        self,
        client: ClientSettings,
        settings: ManagerSettings | None = None,
        *,
        manager_id: str | None = None,
        run_master: bool = True,
        agent_identity: Callable[[str, Path], ClientSettings] | None = None,
        stop_launched: bool = False,
    ) -> None:
        self.agent_identity = agent_identity
        """Credentials for agents the local provider launches (``vigil up``: minted by the
        installation's authority); None: the manager's connection without its credentials."""
        self.stop_launched = stop_launched
        """Stop the agents this process launched when it stops (``vigil up``, tests)."""
        self.run_master = run_master
        self.client = client
        self.settings = settings or ManagerSettings()
        self.manager_id = manager_id or f"m-{uuid.uuid4().hex[:8]}"
        self.started_at = time.time()
        self.fleet = Fleet()
        self.streams = self.fleet.streams
        self.agents = self.fleet.agents
        self.groups = self.fleet.groups
        self.alarms = AlarmsProjection(retention_s=self.settings.alarm_retention_s)
        self.daily_stats = DailyStats()  # folded from VIGIL_FEEDBACK by self.stats_feed
        self.as_of_seq: int | None = None
        self.instruments = Instruments()  # latency histograms, failures by code (/metrics)
        self.rates = StreamRates()  # per-stream fps, bitrate, drops from live feedback
        self._stack = AsyncExitStack()
        self.nc: Client
        self.store: JetStreamStore
        self.projector: Projector
        self.router: Router
        self.supervisor: Supervisor

    # ---- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Manager:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def _start(self) -> None:
        s = self.settings
        freeze_survivors()
        self.nc = await connect(self.client, name=f"vigil-manager-{self.manager_id}")
        self._stack.push_async_callback(self._close_nc)
        self.store = JetStreamStore(self.nc, duplicate_window=s.duplicate_window_s,
                                    replicas=s.replicas)  # fmt: skip
        await until_jetstream_ready(self.nc)
        await self.store.ensure()
        requests_kv, lease_kv, secrets_kv = await ensure_all(self.nc, s)
        self.secrets = SecretStore(secrets_kv)
        start_seq = await restore_latest(self.nc, self.fleet.all(), self.store.stream)
        self.projector = Projector(self.nc, self.fleet.all(), start_seq=start_seq)
        self.log_identity = LogIdentity(self.store, self.projector)
        try:
            await self.log_identity.establish(expected=s.expected_log_id, clock_s=time.time())
        except LogReplaced as exc:
            raise SystemExit(f"error: {exc}") from None
        self.alarm_projector = await self._alarm_projector()
        self.heartbeats = Heartbeats()
        self.agents.listeners.append(self.heartbeats.on_agent)
        self.connections = Connections()
        executor = Executor(self.store, self.projector)
        self.analytics = AnalyticsRegistry(self.agents)
        self.waiting = WaitingReasons(self.streams, self.agents, self.groups)
        self.stream_commands = StreamCommands(
            executor, self.projector, self.streams, manager_id=self.manager_id,
            validate_analytics=self.analytics.validate, policy=s.source_policy(),
            secrets=self.secrets, waiting=self.waiting.for_stream,
            resolve_timeout_s=s.resolve_timeout_s,
        )  # fmt: skip
        self.group_commands = GroupCommands(executor, self.projector, self.groups, self.agents,
                                            self.streams, manager_id=self.manager_id)  # fmt: skip
        alarm_store = JetStreamStore(self.nc, stream=subjects.ALARMS_STREAM, subject_prefix="vigil",
                                     duplicate_window=min(s.duplicate_window_s,
                                                          s.alarm_retention_s),
                                     replicas=s.replicas)  # fmt: skip
        self.alarm_writer = AlarmWriter(Executor(alarm_store, self.alarm_projector), self.alarms,
                                        manager_id=self.manager_id)  # fmt: skip
        self.alarm_commands = AlarmCommands(self.alarm_writer, self.alarms,
                                            lambda: self.alarm_projector.last_seq)  # fmt: skip
        self.alarm_duty = AlarmDuty(self.alarm_writer, self.alarms, self.streams, self.agents,
                                    self.groups, self.heartbeats, self.waiting,
                                    unplaceable_s=s.alarm_unplaceable_s,
                                    schedules=self.fleet.schedules)  # fmt: skip
        commands = load_commands(s.scale_commands_file)
        self.scale_facts = ScaleFacts(self.agents, self.groups, self.streams, self.fleet.scaling,
                                      self.fleet.schedules, buffer_s=s.schedule_buffer_s)  # fmt: skip
        self.scaling_commands = ScalingCommands(executor, self.projector, self.scale_facts,
                                                manager_id=self.manager_id,
                                                commands=frozenset(commands))  # fmt: skip
        self.schedule_commands = ScheduleCommands(executor, self.projector, self.scale_facts,
                                                  manager_id=self.manager_id)  # fmt: skip
        self.autoscale = Autoscale(self.scale_facts)
        self.stats_feed = StatsFeed(self.nc, self.daily_stats, self.agents, self.projector)
        self.agent_commands = AgentCommands(
            executor, self.projector, self.agents, self.streams, s, manager_id=self.manager_id,
            heartbeats=self.heartbeats, refused=self.stats_feed.refused_for, secrets=self.secrets,
            keepalive=self.groups.keepalive_for, roles=self.groups.roles_of,
        )  # fmt: skip
        election = Election(lease_kv, self.store, self.projector, manager_id=self.manager_id,
                            lease_s=s.master_lease_s)  # fmt: skip
        self.master = Master(election, self.store, self.projector, self.streams, self.agents,
                             self.heartbeats, self.nc, s, manager_id=self.manager_id,
                             groups=self.groups, connections=self.connections,
                             alarms=self.alarm_duty, autoscale=self.autoscale,
                             foreground=lambda: self.router.serving())  # fmt: skip
        local = LocalProvider(autoscale_root(s), self.client, identity=self.agent_identity,
                              sources=s.source_policy(), stop_on_close=self.stop_launched)  # fmt: skip
        self.provisioner = Provisioner(election, self.store, self.projector, self.fleet.scaling,
                                       self.agents,
                                       Providers(local, CommandProvider(commands, self.client)),
                                       manager_id=self.manager_id)  # fmt: skip
        self.feedback = FeedbackConsumer(self.nc, self.stream_commands, self.agents,
                                         on_feedback=self.master.note_feedback,
                                         on_refused=self._feedback_refused)  # fmt: skip
        self.snapshots = Snapshotter(self.nc, self.projector, self.fleet.all(),
                                     is_writer=lambda: self.master.is_master,
                                     manager_id=self.manager_id, interval_s=s.snapshot_interval_s,
                                     min_events=s.snapshot_min_events)  # fmt: skip
        self.stats = StatsQueries(self.daily_stats, self.streams, self.projector)
        self.rollups = RollupStore(self.nc, self.daily_stats,
                                   is_writer=lambda: self.master.is_master,
                                   feed_caught_up=lambda: self.daily_stats.caught_up,
                                   lateness_s=s.stats_lateness_s,
                                   interval_s=s.stats_writer_interval_s,
                                   manager_id=self.manager_id)  # fmt: skip
        self.stats_commands = StatsCommands(self.nc, self.stats, self.rollups, self.stats_feed,
                                            self.agents, self.projector)  # fmt: skip
        self.router = Router(self.routes(), requests_kv=requests_kv, gate=self.readiness)
        self.instruments.wire(router=self.router, store=self.store, master=self.master,
                              streams=self.streams, caught_up=lambda: self.projector.caught_up)  # fmt: skip

        self.supervisor = await self._stack.enter_async_context(
            Supervisor(f"manager {self.manager_id}")
        )
        restart = Restart()
        self.supervisor.spawn("projector", self.projector.run, restart=restart,
                              on_failure=self._rebuild)  # fmt: skip
        self.supervisor.spawn("alarm-projector", self.alarm_projector.run, restart=restart,
                              on_failure=self._rebuild_alarms)  # fmt: skip
        await self.projector.wait_caught_up(timeout=600)
        if s.feedback_retention_s < s.stats_lateness_s + 2 * 86400:
            log.warning("feedback_retention_s (%.0f s) is not well above stats_lateness_s (%.0f s):"
                        " open days are lost if every manager restarts after their feedback"
                        " expired", s.feedback_retention_s, s.stats_lateness_s)  # fmt: skip
        await self.rollups.load()  # closed days first: the feed then folds only open days
        self.supervisor.spawn("stats-feed", self.stats_feed.run, restart=restart)
        self.supervisor.spawn("stats-rollups", self.rollups.run, restart=restart)
        if self.serves_commands:
            self.supervisor.spawn("feedback", self.feedback.run, restart=restart)
        if self.stands_for_master:
            self.supervisor.spawn("master", self.master.run, restart=restart)
            self.supervisor.spawn("alarms", self.alarm_duty.run, restart=restart)
            self.supervisor.spawn("provision", self.provisioner.run, restart=restart)
        self.supervisor.spawn("snapshots", self.snapshots.run, restart=restart)
        self.supervisor.spawn("housekeeping", self._housekeeping, restart=restart)
        self.supervisor.spawn("loop-probe", self._probe_loop, restart=restart)
        self.supervisor.spawn("log-identity", self.log_identity.run, restart=restart)

        self._stack.push_async_callback(self.router.drain)  # after the unsubscribes below
        subs: list[Subscription] = []
        if self.serves_commands:
            subs.append(await self.router.serve(self.nc))
        subs += await serve_agent_protocol(self.nc, self.router, self.heartbeats,
                                           requests=self.serves_commands)  # fmt: skip
        subs.append(await self.nc.subscribe(subjects.FEEDBACK_ALL, cb=self.master.on_feedback_msg))
        subs.append(await self.nc.subscribe(subjects.FEEDBACK_ALL, cb=self.rates.on_msg))
        for subject in (subjects.ADVISORY_CONNECT_ALL, subjects.ADVISORY_DISCONNECT_ALL):
            subs.append(await self.nc.subscribe(subject, cb=self.connections.on_msg))
        for sub in subs:
            self._stack.push_async_callback(_unsubscribe, sub)
        log.info("manager %s (role %s) ready at event seq %d", self.manager_id, s.role,
                 self.projector.last_seq)  # fmt: skip

    @property
    def serves_commands(self) -> bool:
        """Answers commands and the agent protocol's requests over NATS, and counts feedback
        (role ``all`` or ``commands``). The HTTP API answers on any role."""
        return self.settings.role != "master"

    @property
    def stands_for_master(self) -> bool:
        """Contends for the master lease (role ``all`` or ``master``)."""
        return self.run_master and self.settings.role != "commands"

    async def _rebuild(self, _exc: BaseException) -> None:
        """The projector died: throw its state away, restore the newest snapshot, fold the tail
        again (the part restarts after this)."""
        self.fleet.reset()
        try:
            start_seq = await restore_latest(self.nc, self.fleet.all(), self.store.stream)
        except Exception as exc:  # NATS down: fold from zero once it is back
            log.warning("no snapshot for the rebuild (%r); folding from zero", exc)
            self.fleet.reset()
            start_seq = 1
        self.projector.reset(start_seq)

    async def _alarm_projector(self) -> Projector:
        """The projector of ``VIGIL_ALARMS``, from its first kept message (older ones expired)."""
        info = await self.nc.jetstream().stream_info(subjects.ALARMS_STREAM)
        first = max(int(info.state.first_seq or 1), 1)
        return Projector(self.nc, [self.alarms], stream=subjects.ALARMS_STREAM,
                         subject_prefix="vigil", start_seq=first)  # fmt: skip

    async def _rebuild_alarms(self, _exc: BaseException) -> None:
        self.alarms.reset()
        try:
            info = await self.nc.jetstream().stream_info(subjects.ALARMS_STREAM)
            first = max(int(info.state.first_seq or 1), 1)
        except Exception as exc:  # NATS down: fold from the start once it is back
            log.warning("alarm stream unreadable for the rebuild (%r)", exc)
            first = 1
        self.alarm_projector.reset(first)

    async def _feedback_refused(self, agent_id: str, reason: str, message: str) -> None:
        await self.alarm_writer.raise_("invalid_feedback", f"agent.{agent_id}",
                                       f"feedback of agent {agent_id} refused ({reason}):"
                                       f" {message}", severity="minor")  # fmt: skip

    async def _housekeeping(self) -> None:
        """Keep long-lived state out of the cyclic GC's full collections (``freeze_heap``);
        forget alarms older than the retention."""
        while True:
            await asyncio.sleep(min(self.settings.gc_freeze_interval_s,
                                    self.settings.alarm_retention_s))  # fmt: skip
            freeze_heap()
            self.alarms.prune()

    async def _probe_loop(self) -> None:
        """The event loop's lag (``vigil_event_loop_lag_seconds``): how late a 50 ms sleep ends."""
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + LOOP_PROBE_S
            await asyncio.sleep(LOOP_PROBE_S)
            self.instruments.loop_lag.observe(max(0.0, loop.time() - due))

    async def _close_nc(self) -> None:
        """Everything above has stopped and replied; flush what is buffered and close."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.nc.flush(), 2)
        with contextlib.suppress(ConnectionError):  # nats-py raises if closed while disconnected
            await self.nc.close()

    # ---- routes ------------------------------------------------------------------------------

    def routes(self) -> list[AnyRoute]:
        svc = self.stream_commands
        routes: list[AnyRoute] = [
            Route("stream.create", R.CreateStreamReq, svc.create, result=StreamView,
                  remember=False),
            Route("stream.get", R.GetStreamReq, svc.get, writes=False, result=StreamView),
            Route("stream.list", R.ListStreamsReq, svc.list_streams, writes=False,
                  result=StreamList),
            Route("stream.patch", R.PatchStreamReq, svc.patch, result=StreamView),
            Route("stream.delete", R.DeleteStreamReq, svc.delete),
            Route("master.get", R.EmptyReq, self.master_info, writes=False, result=MasterView),
            Route("projections.dump", R.DumpReq, dump_handler(self.fleet, self.projector,
                                                              self.manager_id),
                  writes=False, result=DumpResult),
            Route("stats.daily", R.DailyStatsReq, self._stats_daily, writes=False,
                  result=DailyStatsView),
        ]  # fmt: skip
        return (routes + agent_routes(self.agent_commands)
                + stats_routes(self.stats, self.stats_commands)
                + group_routes(self.group_commands) + alarm_routes(self.alarm_commands)
                + schedule_routes(self.schedule_commands)
                + scaling_routes(self.scaling_commands))  # fmt: skip

    async def _stats_daily(self, req: R.DailyStatsReq) -> tuple[DailyStatsView, int]:
        return await self.stats.daily(req)

    async def master_info(self, _req: R.EmptyReq) -> tuple[MasterView, int]:
        try:
            view = await self.master.view()
        except Exception as exc:  # the log cannot be read: say who this manager is at least
            log.debug("master view: %r", exc)
            view = MasterView(this_manager=self.master.this_manager())
        return view, self.projector.last_seq

    # ---- health ------------------------------------------------------------------------------

    def readiness(self) -> str | None:
        """Why this manager cannot serve right now, or None when it can."""
        if not self.nc.is_connected:
            return "not connected to NATS"
        if self.log_identity.problem is not None:
            return self.log_identity.problem
        for name, (state, _restarts, error) in self.supervisor.report().items():
            if state != "running":
                return f"part {name} is {state}" + (f" ({error})" if error else "")
        if not self.projector.caught_up:
            return "projections are catching up with the event log"
        return None

    @property
    def ready(self) -> bool:
        return self.readiness() is None

    @property
    def last_seq(self) -> int:
        return self.projector.last_seq

    async def metric_families(self, *, agents: bool, streams: bool) -> list[Metric]:
        return await families(self, agents=agents, streams=streams)

    def read_side(self) -> FleetView:
        """The read side the dashboard's overview and live updates use (``ops.http``)."""
        return self


async def _unsubscribe(sub: Subscription) -> None:
    try:
        await sub.unsubscribe()
    except Exception as exc:  # connection already closed: nothing to release
        log.debug("unsubscribe: %r", exc)
