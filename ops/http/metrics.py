"""Prometheus metrics of a manager: what an on-call engineer looks at.

Two kinds, both per manager (no global registry: tests run several managers in one process):

- `Instruments`: what happens over time — command latency by command and outcome, event-log
  append latency, master tick duration (histograms), stream failures by error code and
  restarts (counters, from the projection once caught up). The manager wires them to its
  router, event store, master and streams projection (``Instruments.wire``).
- `ManagerCollector`: what is true now, read at scrape time from the projections' indexes (a
  scrape never walks every stream): streams by status and by waiting reason, agents' host
  figures labelled with name and groups, per-stream fps/bitrate/drops (``ops.commands.rates``),
  alarms, projection lag, snapshot age, master, NATS connection, supervised parts, statistics.

A scrape never holds the event loop for long, at any fleet size: ``families`` builds the
per-agent and per-stream families in chunks with the loop free in between (20,000 streams are
140,000 samples), and ``render`` — the text formatting, ~10 µs a sample — runs in a worker
thread over those finished families (``ops.http.pages``). ``/metrics?streams=0`` (and
``agents=0``) leaves the per-stream (per-agent) series out, for a frequent fleet-level scrape.

``render`` adds the default process, platform and GC collectors of prometheus-client.
docs/grafana-dashboard.json plots them; docs/operations.md lists them.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol

from nats.aio.client import Client
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from core.agent import AgentState
from core.stream import StreamState
from events.aio import Supervisor
from events.jetstream import JetStreamStore
from ops.api.router import Router
from ops.commands.feedback import FeedbackConsumer
from ops.commands.heartbeats import Heartbeats
from ops.commands.rates import StreamRate, StreamRates
from ops.commands.waiting import WaitingReasons
from ops.master.loop import Master
from ops.stats.feed import StatsFeed
from ops.stats.rollups import RollupStore
from projections.agents import AgentsProjection
from projections.alarms import AlarmsProjection
from projections.engine import Projector
from projections.groups import GroupsProjection
from projections.snapshot import Snapshotter
from projections.streams import StreamsProjection

__all__ = ["CONTENT_TYPE", "Instruments", "ManagerCollector", "MetricsSource", "families", "render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

STATUSES = ("pending", "in_progress", "done", "failure", "restarting", "stopped")
LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CHUNK = 500
"""Agents or streams added to their families between two yields to the event loop (~5 ms)."""
TICK = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class Instruments:
    """Histograms and counters fed as things happen (unregistered: ``ManagerCollector``
    yields them into the scrape)."""

    def __init__(self) -> None:
        self.commands = Histogram("vigil_command_seconds", "Time to answer a command (NATS or"
                                  " HTTP), by command and outcome (ok or the error code)",
                                  ["command", "outcome"], buckets=LATENCY, registry=None)  # fmt: skip
        self.appends = Histogram("vigil_append_seconds", "Time to append to the event log"
                                 " (until JetStream acknowledged), by kind and outcome",
                                 ["kind", "outcome"], buckets=LATENCY, registry=None)  # fmt: skip
        self.ticks = Histogram("vigil_master_tick_seconds", "Duration of the master's ticks",
                               buckets=TICK, registry=None)  # fmt: skip
        self.loop_lag = Histogram("vigil_event_loop_lag_seconds", "How late the manager's event"
                                  " loop woke a 50 ms timer: every command, fold and tick waits"
                                  " this long behind whatever held the loop",
                                  buckets=TICK, registry=None)  # fmt: skip
        self.failures: Counter[tuple[str, str]] = Counter()
        self.restarts = 0
        self._counting: Callable[[], bool] = lambda: False

    def wire(self, *, router: Router, store: JetStreamStore, master: Master,
             streams: StreamsProjection, caught_up: Callable[[], bool]) -> None:  # fmt: skip
        router.observe = self.observe_command
        store.observe = self.observe_append
        master.on_tick = self.ticks.observe
        streams.listeners.append(self.on_stream)
        self._counting = caught_up

    def observe_command(self, command: str, outcome: str, seconds: float) -> None:
        self.commands.labels(command, outcome).observe(seconds)

    def observe_append(self, kind: str, outcome: str, seconds: float) -> None:
        self.appends.labels(kind, outcome).observe(seconds)

    def on_stream(self, before: StreamState | None, after: StreamState) -> None:
        """Failures by error code and restarts, counted once the projections caught up (the
        replay at start is history, not news)."""
        if not self._counting():
            return
        error = after.last_error
        failed = after.status in ("failure", "restarting") and error is not None
        if failed and (
            before is None or before.status != after.status or before.last_error != error
        ):
            assert error is not None
            self.failures[(error.code, "fatal" if error.fatal else "retried")] += 1
        if before is not None and after.restarts > before.restarts:
            self.restarts += after.restarts - before.restarts

    def collect(self) -> Iterator[Metric]:
        yield from self.commands.collect()
        yield from self.appends.collect()
        yield from self.ticks.collect()
        yield from self.loop_lag.collect()
        failures = CounterMetricFamily("vigil_stream_failures", "Streams that failed, by error"
                                       " code and whether autorestart may retry",
                                       labels=["code", "kind"])  # fmt: skip
        for (code, kind), n in sorted(self.failures.items()):
            failures.add_metric([code, kind], n)
        yield failures
        yield CounterMetricFamily("vigil_stream_restarts", "Automatic restarts of failed streams",
                                  value=self.restarts)  # fmt: skip


class MetricsSource(Protocol):
    nc: Client
    streams: StreamsProjection
    agents: AgentsProjection
    heartbeats: Heartbeats
    projector: Projector
    master: Master
    feedback: FeedbackConsumer
    router: Router
    supervisor: Supervisor
    stats_feed: StatsFeed
    rollups: RollupStore
    groups: GroupsProjection
    alarms: AlarmsProjection
    waiting: WaitingReasons
    snapshots: Snapshotter
    instruments: Instruments
    rates: StreamRates


class ManagerCollector(Collector):
    """The fleet-level families: small at any size (``families`` adds the per-agent and
    per-stream ones)."""

    def __init__(self, source: MetricsSource) -> None:
        self.m = source

    def collect(self) -> Iterator[Metric]:
        m = self.m
        yield from m.instruments.collect()
        streams = GaugeMetricFamily("vigil_streams", "Streams by status", labels=["status"])
        for status in STATUSES:
            streams.add_metric([status], m.streams.counts.get(status, 0))
        yield streams
        agents = GaugeMetricFamily("vigil_agents", "Agents by status", labels=["status"])
        by_agent: Counter[str] = Counter(a.status for a in m.agents.active().values())
        for status in ("ready", "not_ready"):
            agents.add_metric([status], by_agent.get(status, 0))
        yield agents
        yield from _groups_and_alarms(m)
        yield from _log(m)
        fb = CounterMetricFamily("vigil_feedback", "Feedback messages handled", labels=["outcome"])
        for outcome, n in sorted(m.feedback.counts.items()):
            fb.add_metric([outcome], n)
        yield fb
        cmds = CounterMetricFamily(
            "vigil_commands", "Commands handled", labels=["command", "outcome"]
        )
        for key, n in sorted(m.router.counts.items()):
            command, _, outcome = key.rpartition(".")
            cmds.add_metric([command or key, outcome], n)
        yield cmds
        yield CounterMetricFamily("vigil_heartbeats_invalid", "Heartbeats that did not decode",
                                  value=m.heartbeats.invalid)  # fmt: skip
        parts = GaugeMetricFamily("vigil_part_up", "1 if a supervised part of this manager runs",
                                  labels=["part"])  # fmt: skip
        restarts = CounterMetricFamily("vigil_part_restarts", "Restarts of a supervised part",
                                       labels=["part"])  # fmt: skip
        for name, (state, n, _err) in sorted(m.supervisor.report().items()):
            parts.add_metric([name], int(state == "running"))
            restarts.add_metric([name], n)
        yield parts
        yield restarts
        yield from _stats(m)


def _log(m: MetricsSource) -> Iterator[Metric]:
    """The event log, the projections' lag behind it, snapshots, the master, NATS."""
    now = time.time()
    p = m.projector
    yield GaugeMetricFamily("vigil_event_seq", "Last event sequence applied", value=p.last_seq)
    yield CounterMetricFamily("vigil_events_undecodable", "Events skipped as undecodable",
                              value=p.undecodable)  # fmt: skip
    yield GaugeMetricFamily("vigil_projection_lag_events", "Events stored but not yet applied"
                            " by this manager's projections", value=p.pending)  # fmt: skip
    yield GaugeMetricFamily("vigil_projection_lag_seconds", "How far behind the log the"
                            " projections are (0 when caught up)", value=p.lag_s(now))  # fmt: skip
    yield GaugeMetricFamily("vigil_projections_caught_up", "1 once the projections caught up"
                            " with the log", value=int(p.caught_up))  # fmt: skip
    snaps = m.snapshots
    yield GaugeMetricFamily("vigil_snapshot_age_events", "Events since the snapshot this"
                            " manager started from or last wrote",
                            value=max(p.last_seq - snaps.last_written, 0))  # fmt: skip
    if snaps.last_written_at is not None:
        yield GaugeMetricFamily("vigil_snapshot_age_seconds", "Seconds since this manager last"
                                " wrote a snapshot (the master writes them)",
                                value=max(now - snaps.last_written_at, 0.0))  # fmt: skip
    yield GaugeMetricFamily("vigil_master", "1 if this manager is master",
                            value=int(m.master.is_master))  # fmt: skip
    yield GaugeMetricFamily("vigil_master_epoch", "Epoch of this manager's reign",
                            value=m.master.epoch)  # fmt: skip
    yield GaugeMetricFamily("vigil_master_last_tick_seconds", "Duration of the last master tick",
                            value=m.master.last_tick_s)  # fmt: skip
    yield CounterMetricFamily("vigil_master_decisions", "Decisions the master appended",
                              value=m.master.decisions)  # fmt: skip
    nc = m.nc
    yield GaugeMetricFamily("vigil_nats_connected", "1 while this manager is connected to NATS",
                            value=int(nc.is_connected))  # fmt: skip
    stats = nc.stats
    yield CounterMetricFamily("vigil_nats_reconnects", "Reconnections to NATS",
                              value=stats.get("reconnects", 0))  # fmt: skip
    for key, text in (("in_msgs", "Messages received"), ("out_msgs", "Messages sent"),
                      ("in_bytes", "Bytes received"), ("out_bytes", "Bytes sent")):  # fmt: skip
        yield CounterMetricFamily(f"vigil_nats_{key}", f"{text} over NATS",
                                  value=stats.get(key, 0))  # fmt: skip


def _host_families() -> list[GaugeMetricFamily]:
    """Each agent's own process tree, from its last heartbeat (AddPac's monitoring screen)."""
    labels = ["agent_id", "name", "groups"]
    load = GaugeMetricFamily("vigil_agent_load", "Streams assigned to an agent", labels=labels)
    capacity = GaugeMetricFamily("vigil_agent_capacity", "Agent capacity", labels=labels)
    ready = GaugeMetricFamily("vigil_agent_ready", "1 while the agent is ready", labels=labels)
    cpu = GaugeMetricFamily("vigil_agent_cpu_percent", "CPU of the agent's process tree"
                            " (100 = one core)", labels=labels)  # fmt: skip
    mem = GaugeMetricFamily("vigil_agent_memory_bytes", "Resident memory of the agent's process"
                            " tree", labels=labels)  # fmt: skip
    mem_total = GaugeMetricFamily("vigil_agent_memory_total_bytes", "Memory of the agent's host",
                                  labels=labels)  # fmt: skip
    disk = GaugeMetricFamily("vigil_agent_disk_used_bytes", "Used bytes of the agent's outbox"
                             " volume", labels=labels)  # fmt: skip
    disk_total = GaugeMetricFamily("vigil_agent_disk_total_bytes", "Size of the agent's outbox"
                                   " volume", labels=labels)  # fmt: skip
    depth = GaugeMetricFamily("vigil_agent_outbox_depth", "Unsent feedback rows on an agent",
                              labels=labels)  # fmt: skip
    age = GaugeMetricFamily("vigil_agent_heartbeat_age_seconds", "Seconds since this manager"
                            " heard the agent's last heartbeat", labels=labels)  # fmt: skip
    return [load, capacity, ready, cpu, mem, mem_total, disk, disk_total, depth, age]


def _add_hosts(m: MetricsSource, fams: Sequence[GaugeMetricFamily],
               agents: Iterable[AgentState]) -> None:  # fmt: skip
    load, capacity, ready, cpu, mem, mem_total, disk, disk_total, depth, age = fams
    for agent in agents:
        key = [agent.agent_id, agent.name, ",".join(sorted(agent.groups))]
        load.add_metric(key, m.streams.load_of(agent.agent_id))
        capacity.add_metric(key, agent.capacity)
        ready.add_metric(key, int(agent.status == "ready"))
        seen = m.heartbeats.last.get(agent.agent_id)
        if seen is None:
            continue
        hb = seen[1]
        cpu.add_metric(key, hb.cpu_percent)
        mem.add_metric(key, hb.mem_used)
        mem_total.add_metric(key, hb.mem_total)
        disk.add_metric(key, hb.disk_used)
        disk_total.add_metric(key, hb.disk_total)
        depth.add_metric(key, hb.outbox_depth)
        age.add_metric(key, max(m.heartbeats.clock() - seen[0], 0.0))


def _rate_families() -> list[GaugeMetricFamily | CounterMetricFamily]:
    """Per running stream, from its feedback (``ops.commands.rates``)."""
    labels = ["stream_id", "name", "agent_id", "group"]
    fps = GaugeMetricFamily("vigil_stream_fps", "Frames decoded per second (the last feedback"
                            " interval)", labels=labels)  # fmt: skip
    bitrate = GaugeMetricFamily("vigil_stream_bitrate_bps", "Bits per second read from the"
                                " source (the last feedback interval)", labels=labels)  # fmt: skip
    frames = CounterMetricFamily("vigil_stream_frames_decoded", "Frames decoded (since this"
                                 " manager started)", labels=labels)  # fmt: skip
    dropped = CounterMetricFamily("vigil_stream_frames_dropped", "Frames dropped because"
                                  " analysis fell behind", labels=labels)  # fmt: skip
    read = CounterMetricFamily("vigil_stream_bytes_read", "Media bytes read", labels=labels)
    reconnects = CounterMetricFamily("vigil_stream_reconnects", "Times the source was reopened",
                                     labels=labels)  # fmt: skip
    stalls = CounterMetricFamily("vigil_stream_stalls", "Times no frame came within the stall"
                                 " deadline", labels=labels)  # fmt: skip
    return [fps, bitrate, frames, dropped, read, reconnects, stalls]


def _add_rates(m: MetricsSource, fams: Sequence[GaugeMetricFamily | CounterMetricFamily],
               rows: Iterable[tuple[str, StreamRate]]) -> None:  # fmt: skip
    fps, bitrate, frames, dropped, read, reconnects, stalls = fams
    for stream_id, r in rows:
        state = m.streams.get(stream_id)
        key = [stream_id, state.name if state else "", r.agent_id,
               (state.group or "") if state else ""]  # fmt: skip
        fps.add_metric(key, r.fps)
        bitrate.add_metric(key, r.bitrate_bps)
        frames.add_metric(key, r.frames_decoded)
        dropped.add_metric(key, r.frames_dropped)
        read.add_metric(key, r.bytes_read)
        reconnects.add_metric(key, r.reconnects)
        stalls.add_metric(key, r.stalls)


def _groups_and_alarms(m: MetricsSource) -> Iterator[Metric]:
    waiting = GaugeMetricFamily(
        "vigil_streams_waiting", "Pending streams no agent runs yet, by placement reason",
        labels=["reason", "group", "message"])  # fmt: skip
    for req, why, count in m.waiting.summary():
        waiting.add_metric([why.code, req[1] or "", why.message], count)
    yield waiting
    active = GaugeMetricFamily("vigil_group_active_member", "1 for the active member of an"
                               " active_standby group", labels=["group", "agent"])  # fmt: skip
    failovers = CounterMetricFamily("vigil_group_failovers", "Failovers of a group",
                                    labels=["group"])  # fmt: skip
    failbacks = CounterMetricFamily("vigil_group_failbacks", "Failbacks of a group",
                                    labels=["group"])  # fmt: skip
    for g in m.groups.live():
        if g.is_redundant and g.active is not None:
            active.add_metric([g.name, g.active], 1)
        failovers.add_metric([g.name], g.failovers)
        failbacks.add_metric([g.name], g.failbacks)
    yield from (active, failovers, failbacks)
    alarms = GaugeMetricFamily("vigil_alarms_active", "Active alarms", labels=["kind", "severity"])
    unacked = GaugeMetricFamily("vigil_alarms_unacked", "Active alarms nobody acknowledged",
                                labels=["kind", "severity"])  # fmt: skip
    counts: Counter[tuple[str, str]] = Counter()
    open_: Counter[tuple[str, str]] = Counter()
    for key in m.alarms.active:
        state = m.alarms.keys.get(key)
        current = state.active if state is not None else None
        if current is not None:
            counts[(current.kind, current.severity)] += 1
            open_[(current.kind, current.severity)] += current.acked_by is None
    for (kind, severity), n in sorted(counts.items()):
        alarms.add_metric([kind, severity], n)
        unacked.add_metric([kind, severity], open_[(kind, severity)])
    yield alarms
    yield unacked


def _stats(m: MetricsSource) -> Iterator[Metric]:
    feed = CounterMetricFamily("vigil_stats_feedback", "Feedback folded into statistics",
                               labels=["outcome"])  # fmt: skip
    for key, value in m.stats_feed.metrics().items():
        if key in ("feedback_seq", "caught_up"):
            continue
        feed.add_metric([key], value)
    yield feed
    yield GaugeMetricFamily("vigil_stats_feedback_seq", "Last VIGIL_FEEDBACK sequence folded",
                            value=m.stats_feed.last_seq)  # fmt: skip
    rollup = m.rollups.metrics()
    for key in ("sealed_days", "pending_seals", "pending_corrections", "damaged_days"):
        yield GaugeMetricFamily(f"vigil_stats_{key}", f"Closed days: {key.replace('_', ' ')}",
                                value=float(rollup[key]))  # fmt: skip
    for key in ("sealed", "corrections_written", "seal_mismatch", "write_errors"):
        yield CounterMetricFamily(f"vigil_stats_rollup_{key}", f"Rollups: {key}",
                                  value=float(rollup[key]))  # fmt: skip


async def families(m: MetricsSource, *, agents: bool = True, streams: bool = True) -> list[Metric]:
    """Every family of a scrape, built on the event loop (where the state lives) in chunks of
    ``CHUNK`` agents or streams with the loop free in between. The result is plain data:
    ``render`` may format it in another thread."""
    out = list(ManagerCollector(m).collect())
    if agents:
        hosts = _host_families()
        rows = list(m.agents.active().values())
        for i in range(0, len(rows), CHUNK):
            await asyncio.sleep(0)
            _add_hosts(m, hosts, rows[i : i + CHUNK])
        out += hosts
    if streams:
        per_stream = _rate_families()
        rates = list(m.rates.current())
        for i in range(0, len(rates), CHUNK):
            await asyncio.sleep(0)
            _add_rates(m, per_stream, rates[i : i + CHUNK])
        out += per_stream
    return out


class _Built(Collector):
    def __init__(self, built: Sequence[Metric]) -> None:
        self.built = built

    def collect(self) -> Iterator[Metric]:
        yield from self.built


def render(built: Sequence[Metric]) -> bytes:
    """The exposition of finished families, with the process's own (CPU, memory, file
    descriptors, GC, Python version). Safe in a worker thread: it reads no manager state."""
    registry = CollectorRegistry(auto_describe=False)
    for default in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(default)
    registry.register(_Built(built))
    return generate_latest(registry)
