"""Prometheus metrics, read from a manager's state at scrape time (no global registry).

`ManagerCollector` reads a `MetricsSource` (the manager satisfies it); counts come from the
projections' own indexes, so a scrape never walks every stream.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from events.aio import Supervisor
from ops.api.router import Router
from ops.commands.feedback import FeedbackConsumer
from ops.commands.heartbeats import Heartbeats
from ops.commands.waiting import WaitingReasons
from ops.master.loop import Master
from ops.stats.feed import StatsFeed
from ops.stats.rollups import RollupStore
from projections.agents import AgentsProjection
from projections.alarms import AlarmsProjection
from projections.engine import Projector
from projections.groups import GroupsProjection
from projections.streams import StreamsProjection

__all__ = ["CONTENT_TYPE", "ManagerCollector", "MetricsSource", "render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

STATUSES = ("pending", "in_progress", "done", "failure", "restarting", "stopped")


class MetricsSource(Protocol):
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


class ManagerCollector(Collector):
    def __init__(self, source: MetricsSource) -> None:
        self.m = source

    def collect(self) -> Iterator[Metric]:
        m = self.m
        streams = GaugeMetricFamily("vigil_streams", "Streams by status", labels=["status"])
        for status in STATUSES:
            streams.add_metric([status], m.streams.counts.get(status, 0))
        yield streams
        agents = GaugeMetricFamily("vigil_agents", "Agents by status", labels=["status"])
        by_agent: Counter[str] = Counter(a.status for a in m.agents.active().values())
        for status in ("ready", "not_ready"):
            agents.add_metric([status], by_agent.get(status, 0))
        yield agents
        load = GaugeMetricFamily(
            "vigil_agent_load", "Streams assigned to an agent", labels=["agent_id"]
        )
        capacity = GaugeMetricFamily("vigil_agent_capacity", "Agent capacity", labels=["agent_id"])
        depth = GaugeMetricFamily("vigil_agent_outbox_depth", "Unsent feedback rows on an agent",
                                  labels=["agent_id"])  # fmt: skip
        for agent in m.agents.active().values():
            load.add_metric([agent.agent_id], m.streams.load_of(agent.agent_id))
            capacity.add_metric([agent.agent_id], agent.capacity)
            seen = m.heartbeats.last.get(agent.agent_id)
            if seen is not None:
                depth.add_metric([agent.agent_id], seen[1].outbox_depth)
        yield load
        yield capacity
        yield depth
        yield from _hosts(m)
        yield from _groups_and_alarms(m)
        yield GaugeMetricFamily(
            "vigil_event_seq", "Last event sequence applied", value=m.projector.last_seq
        )
        yield CounterMetricFamily("vigil_events_undecodable", "Events skipped as undecodable",
                                  value=m.projector.undecodable)  # fmt: skip
        yield GaugeMetricFamily(
            "vigil_master", "1 if this manager is master", value=int(m.master.is_master)
        )
        yield GaugeMetricFamily(
            "vigil_master_epoch", "Epoch of this manager's reign", value=m.master.epoch
        )
        yield GaugeMetricFamily("vigil_master_tick_seconds", "Duration of the last master tick",
                                value=m.master.last_tick_s)  # fmt: skip
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


def _hosts(m: MetricsSource) -> Iterator[Metric]:
    """Each agent's own process tree, from its last heartbeat (AddPac's monitoring screen)."""
    labels = ["agent_id", "name"]
    cpu = GaugeMetricFamily("vigil_agent_cpu_percent", "CPU of the agent's process tree"
                            " (100 = one core)", labels=labels)  # fmt: skip
    mem = GaugeMetricFamily("vigil_agent_memory_bytes", "Resident memory of the agent's process"
                            " tree", labels=labels)  # fmt: skip
    disk = GaugeMetricFamily("vigil_agent_disk_used_bytes", "Used bytes of the agent's outbox"
                             " volume", labels=labels)  # fmt: skip
    disk_total = GaugeMetricFamily("vigil_agent_disk_total_bytes", "Size of the agent's outbox"
                                   " volume", labels=labels)  # fmt: skip
    for agent in m.agents.active().values():
        seen = m.heartbeats.last.get(agent.agent_id)
        if seen is None:
            continue
        hb, key = seen[1], [agent.agent_id, agent.name]
        cpu.add_metric(key, hb.cpu_percent)
        mem.add_metric(key, hb.mem_used)
        disk.add_metric(key, hb.disk_used)
        disk_total.add_metric(key, hb.disk_total)
    yield from (cpu, mem, disk, disk_total)


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
    counts: Counter[tuple[str, str]] = Counter()
    for key in m.alarms.active:
        state = m.alarms.keys.get(key)
        current = state.active if state is not None else None
        if current is not None:
            counts[(current.kind, current.severity)] += 1
    for (kind, severity), n in sorted(counts.items()):
        alarms.add_metric([kind, severity], n)
    yield alarms


def render(collector: Collector | None) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    if collector is not None:
        registry.register(collector)
    return generate_latest(registry)
