"""One manager instance: event store, projections, command handlers; an async context manager.

Any number of managers share one JetStream. Each serves commands (one NATS queue group) and the
status API from its own projections; the master role (distribution, restarts, downgrades) is taken
by one of them at a time in ``ops.master``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from contextlib import AsyncExitStack
from typing import Any

import nats
from nats.aio.client import Client
from nats.js import api
from nats.js.errors import BucketNotFoundError
from nats.js.kv import KeyValue

from events.jetstream import JetStreamStore
from events.model import MasterElected
from ops import requests as R
from ops.agents import AgentService, Heartbeats, serve_agent_protocol
from ops.config import ClientSettings, ManagerSettings
from ops.feedback import FeedbackConsumer, ensure_feedback_stream, ensure_records_stream
from ops.master import MASTER_BUCKET, Master
from ops.rpc import Route, Router
from ops.service import StreamService
from ops.stats import DailyStatsReq, StatsFeed, StatsQueries
from ops.verify import DumpReq, dump_handler
from ops.views import iso
from projections.agents import AgentsProjection
from projections.engine import Projector
from projections.snapshot import Snapshotter, restore_latest
from projections.stats import DailyStats
from projections.streams import StreamsProjection

__all__ = ["Manager", "connect"]

log = logging.getLogger(__name__)

REQUESTS_BUCKET = "VIGIL_REQUESTS"


async def connect(client: ClientSettings, *, name: str = "vigil") -> Client:
    """Connect with reconnects forever (a manager outlives NATS restarts)."""
    opts: dict[str, Any] = client.connect_options()
    return await nats.connect(
        **opts,
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        connect_timeout=5,
        allow_reconnect=True,
    )


async def _kv(nc: Client, bucket: str, *, ttl: float, replicas: int, history: int = 1) -> KeyValue:
    js = nc.jetstream()
    try:
        return await js.key_value(bucket)
    except BucketNotFoundError:
        pass
    config = api.KeyValueConfig(
        bucket=bucket, history=history, ttl=ttl, storage=api.StorageType.FILE, replicas=replicas
    )
    return await js.create_key_value(config)


class Manager:
    def __init__(
        self,
        client: ClientSettings,
        settings: ManagerSettings | None = None,
        *,
        manager_id: str | None = None,
        run_master: bool = True,
    ) -> None:
        self.run_master = run_master
        self.client = client
        self.settings = settings or ManagerSettings()
        self.manager_id = manager_id or f"m-{uuid.uuid4().hex[:8]}"
        self.started_at = time.time()
        self.streams = StreamsProjection()
        self.agents = AgentsProjection()
        self.daily_stats = DailyStats()  # folded from VIGIL_FEEDBACK by self.stats_feed
        self._stack = AsyncExitStack()
        self.nc: Client
        self.store: JetStreamStore
        self.projector: Projector
        self.service: StreamService
        self.router: Router

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
        self.nc = await connect(self.client, name=f"vigil-manager-{self.manager_id}")
        self._stack.push_async_callback(self._close_nc)
        self.store = JetStreamStore(
            self.nc, duplicate_window=s.duplicate_window_s, replicas=s.replicas
        )
        await self.store.ensure()
        requests_kv = await _kv(self.nc, REQUESTS_BUCKET, ttl=s.request_ttl_s, replicas=s.replicas)
        # -- snapshots (issue 7): start from the newest valid snapshot, replay the tail ------
        start_seq = await restore_latest(self.nc, self.projections(), self.store.stream)
        self.projector = Projector(self.nc, self.projections(), start_seq=start_seq)
        self.snapshots = Snapshotter(self.nc, self.projector, self.projections(),
                                     is_writer=lambda: self.master.is_master,
                                     manager_id=self.manager_id,
                                     interval_s=s.snapshot_interval_s,
                                     min_events=s.snapshot_min_events)  # fmt: skip
        # -- end snapshots --------------------------------------------------------------------
        await self.projector.start()
        self._stack.push_async_callback(self.projector.stop)
        await self.projector.wait_caught_up(timeout=600)
        self.heartbeats = Heartbeats()
        self.agent_service = AgentService(
            self.store, self.projector, self.agents, self.streams, s,
            manager_id=self.manager_id, heartbeats=self.heartbeats,
        )  # fmt: skip
        self.service = StreamService(
            self.store, self.projector, self.streams, manager_id=self.manager_id,
            validate_analytics=self.agent_service.validate_analytics,
        )  # fmt: skip
        self.router = Router(self.routes(), requests_kv=requests_kv)
        sub = await self.router.serve(self.nc)
        self._stack.push_async_callback(self.router.drain)
        self._stack.push_async_callback(sub.unsubscribe)
        for agent_sub in await serve_agent_protocol(self.nc, self.agent_service, self.router):
            self._stack.push_async_callback(agent_sub.unsubscribe)
        await ensure_feedback_stream(
            self.nc, duplicate_window=s.duplicate_window_s, replicas=s.replicas
        )
        await ensure_records_stream(self.nc, replicas=s.replicas)
        # -- daily statistics (issue 6): every manager folds all of VIGIL_FEEDBACK ----------
        self.stats_feed = await self._stack.enter_async_context(
            StatsFeed(self.nc, self.daily_stats, self.agents, self.projector)
        )
        # -- end daily statistics ---------------------------------------------------------------
        master_kv = await _kv(self.nc, MASTER_BUCKET, ttl=s.master_lease_s, replicas=s.replicas)
        self.master = Master(self, master_kv, s)
        fb_sub = await self.nc.subscribe("vigil.feedback.>", cb=self.master.on_feedback_msg)
        self._stack.push_async_callback(fb_sub.unsubscribe)
        self.feedback = await self._stack.enter_async_context(
            FeedbackConsumer(
                self.nc, self.service, self.agents, on_feedback=self.master.note_feedback
            )
        )
        if self.run_master:
            await self._stack.enter_async_context(self.master)
        await self._stack.enter_async_context(self.snapshots)  # writes only while master
        log.info("manager %s ready at event seq %d", self.manager_id, self.projector.last_seq)

    async def _close_nc(self) -> None:
        """Everything above has stopped and replied; flush what is buffered and close."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.nc.flush(), 2)
        with contextlib.suppress(ConnectionError):  # nats-py raises if closed while disconnected
            await self.nc.close()

    def projections(self) -> list[Any]:
        return [self.streams, self.agents]

    def routes(self) -> list[Route]:
        svc = self.service
        return [
            Route("stream.create", R.CreateStreamReq, svc.create),
            Route("stream.get", R.GetStreamReq, svc.get, writes=False),
            Route("stream.list", R.ListStreamsReq, svc.list_streams, writes=False),
            Route("stream.patch", R.PatchStreamReq, svc.patch),
            Route("stream.delete", R.DeleteStreamReq, svc.delete),
            Route("agent.register", R.RegisterAgentReq, self.agent_service.register),
            Route("agent.deregister", R.AgentIdReq, self.agent_service.deregister),
            Route("agent.get", R.AgentIdReq, self.agent_service.get, writes=False),
            Route("agent.list", R.ListAgentsReq, self.agent_service.list_agents, writes=False),
            Route("master.get", R.EmptyReq, self.master_info, writes=False),
            Route("projections.dump", DumpReq, dump_handler(self), writes=False),
            Route("stats.daily", DailyStatsReq, self._stats_daily, writes=False),
        ]

    async def _stats_daily(self, req: DailyStatsReq) -> tuple[dict[str, Any], int]:
        return await StatsQueries(self.daily_stats, self.streams, self.projector).daily(req)

    async def master_info(self, _req: R.EmptyReq) -> tuple[dict[str, Any], int]:
        """The current master as recorded in the log (any manager can answer)."""
        from events.codec import decode_event, subject_of

        info: dict[str, Any] = {"manager_id": None, "epoch": 0, "since": None}
        try:
            msg = await self.store.js.get_last_msg(self.store.stream, subject_of("master"))
        except Exception:
            return info, self.projector.last_seq
        event = decode_event(msg.data or b"")
        if isinstance(event, MasterElected):
            info = {"manager_id": event.manager_id, "epoch": event.epoch, "since": iso(event.at),
                    "election_seq": msg.seq}  # fmt: skip
        info["this_manager"] = self.master.info() | {"since": iso(self.master.since)}
        return info, self.projector.last_seq

    @property
    def ready(self) -> bool:
        return self.nc.is_connected and self.projector.caught_up
