"""``GET /api/v1/overview``: the fleet at a glance, from the projections' own indexes.

Counts come from indexes (streams per status, pending streams per requirement), so the overview
costs O(agents + groups + active alarms) whatever the number of streams: the dashboard reads it
at load and receives it again over ``/api/v1/live`` whenever something changed.
"""

from __future__ import annotations

from collections import Counter

from aiohttp import web

from ops.api.envelope import error_reply, ok_reply
from ops.api.views import (
    AgentsSummary,
    AlarmsSummary,
    GroupsSummary,
    Overview,
    WaitingCount,
)
from ops.http.backend import BACKEND, FleetView
from ops.http.respond import json_response

__all__ = ["STATUSES", "Overview", "build_overview", "overview"]

STATUSES = ("pending", "in_progress", "restarting", "failure", "done", "stopped")


def build_overview(f: FleetView) -> Overview:
    counts = f.streams.counts
    streams = {status: max(counts.get(status, 0), 0) for status in STATUSES}
    waiting = [WaitingCount(code=why.code, group=req[1], message=why.message, count=n)
               for req, why, n in f.waiting.summary()]  # fmt: skip
    waiting.sort(key=lambda w: (-w.count, w.code, w.group or ""))
    return Overview(
        manager_id=f.manager_id, seq=f.last_seq, streams_total=sum(streams.values()),
        streams=streams, waiting=waiting, agents=_agents(f), groups=_groups(f),
        alarms=_alarms(f), this_manager=f.master.this_manager(),
    )  # fmt: skip


def _agents(f: FleetView) -> AgentsSummary:
    ready = not_ready = capacity = load = depth = silent = 0
    for agent in f.agents.active().values():
        seen = f.heartbeats.last.get(agent.agent_id)
        if seen is not None:
            depth += seen[1].outbox_depth
        if agent.status == "ready":
            ready += 1
            capacity += agent.capacity
            load += f.streams.load_of(agent.agent_id)
            silent += seen is None
        else:
            not_ready += 1
    return AgentsSummary(total=ready + not_ready, ready=ready, not_ready=not_ready,
                         capacity=capacity, load=load, outbox_depth=depth, silent=silent)  # fmt: skip


def _groups(f: FleetView) -> GroupsSummary:
    total = redundant = standby = without = 0
    for g in f.groups.live():
        total += 1
        if not g.is_redundant:
            continue
        redundant += 1
        if g.active is None:
            without += 1
        elif g.active != g.primary:
            standby += 1
    return GroupsSummary(total=total, active_standby=redundant, on_standby=standby,
                         without_active=without)  # fmt: skip


def _alarms(f: FleetView) -> AlarmsSummary:
    severities: Counter[str] = Counter()
    unacked = 0
    for key in f.alarms.active:
        state = f.alarms.keys.get(key)
        current = state.active if state is not None else None
        if current is not None:
            severities[current.severity] += 1
            unacked += current.acked_by is None
    return AlarmsSummary(active=sum(severities.values()), unacked=unacked,
                         by_severity=dict(sorted(severities.items())))  # fmt: skip


async def overview(request: web.Request) -> web.StreamResponse:
    backend = request.app[BACKEND]
    fleet = backend.read_side()
    if fleet is None:
        return json_response(error_reply("not_found", "no live fleet here (a replay of the"
                                         " past serves its lists only)"), 404)  # fmt: skip
    why = backend.readiness()
    if why is not None:
        return json_response(error_reply("unavailable", f"this manager cannot serve now: {why}"),
                             503)  # fmt: skip
    return json_response(ok_reply(build_overview(fleet), fleet.last_seq))
