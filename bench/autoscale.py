"""The autoscale duty's cost per master pass (``ops.master.autoscale.Autoscale.decide``).

In-process, no NATS: the projections are fed events directly. A fleet of ``--agents`` agents
(default 1,000) of which ``--groups`` groups (default 50) have a scale policy, 20 agents each
launched by the autoscaler, 10 streams per agent, one pending schedule per group. Rows:

- ``pass, indexed``: one pass as the master runs it (its per-group agent index and demand
  counter, kept by listeners);
- ``pass, walking``: the same pass with the views' reads (every agent and stream walked per
  group) — the baseline the index is measured against;
- ``per group``: the indexed pass divided by the groups.

The master runs one pass per tick (``VIGIL_MASTER_TICK_S``, 0.5 s) while work is left.

Usage: python bench/autoscale.py [--agents 1000] [--groups 50] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict

from common import Report

from core import scaling as SG
from events.model import (
    AgentRegistered,
    Cause,
    LaunchConfigSet,
    PolicySet,
    ScheduleCreated,
    ScheduleRegion,
    Source,
    StreamAssigned,
    StreamCreated,
    StreamRunning,
)
from ops.commands.scaling import ScaleFacts
from ops.master.autoscale import Autoscale
from ops.master.decisions import Decisions
from projections.fleet import Fleet

CAUSE = Cause(kind="command", name="bench")


def build(n_agents: int, n_groups: int) -> Fleet:
    fleet = Fleet()
    seq = 0
    now = time.time()

    def apply(aggregate: str, event: object) -> None:
        nonlocal seq
        seq += 1
        for p in fleet.all():
            if aggregate.split(".", 1)[0] in p.kinds:
                p.apply(seq, aggregate, event)  # type: ignore[arg-type]

    apply("launch.edge", LaunchConfigSet(at=now, cause=CAUSE, launch="edge", capacity=10))
    per_group = n_agents // max(n_groups, 1)
    sid = 0
    for g in range(n_groups):
        group = f"g{g}"
        apply(f"policy.{group}", PolicySet(at=now, cause=CAUSE, policy=group, group=group,
                                           launch="edge", min_agents=per_group,
                                           max_agents=per_group * 2))  # fmt: skip
        apply(f"schedule.s{g}", ScheduleCreated(
            at=now, cause=CAUSE, schedule=f"s{g}", date_ms=int((now + 86400) * 1000), group=group,
            regions=(ScheduleRegion(name="r", min_agents=per_group * 2, max_agents=per_group * 2),),
        ))  # fmt: skip
        state = None
        for i in range(per_group):
            for e in SG.decide(state, SG.DecideLaunch(group=group, at=now, cause=CAUSE,
                                                      launch="edge", provider="local",
                                                      deadline_s=3600, target=i + 1, reason="b")):  # fmt: skip
                apply(f"scaling.{group}", e)
                state = SG.evolve(state, e)
            name = SG.launch_name(group, i + 1)
            aid = f"a-{group}-{i}"
            apply(f"agent.{aid}", AgentRegistered(at=now, cause=CAUSE, agent_id=aid, name=name,
                                                  capacity=20, groups=(group,)))  # fmt: skip
            for e in SG.decide(state, SG.MarkRegistered(group=group, at=now, cause=CAUSE,
                                                        launch_id=name, agent_id=aid,
                                                        agent_name=name, registered_at=now)):  # fmt: skip
                apply(f"scaling.{group}", e)
                state = SG.evolve(state, e)
            for _ in range(10):
                sid += 1
                s = f"s-{sid}"
                apply(f"stream.{s}", StreamCreated(at=now, cause=CAUSE, stream_id=s, name=s,
                                                   source=Source(url="rtsp://cam/x"), kind="stream",
                                                   group=group))  # fmt: skip
                apply(f"stream.{s}", StreamAssigned(at=now, cause=CAUSE, stream_id=s, agent_id=aid,
                                                    base_version=1))  # fmt: skip
                apply(f"stream.{s}", StreamRunning(at=now, cause=CAUSE, stream_id=s, agent_id=aid,
                                                   assignment_version=2))  # fmt: skip
    return fleet


def timed(duty: Autoscale, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        d = Decisions(manager_id="bench", epoch=1)
        t0 = time.perf_counter()
        duty.decide(d, time.time(), 50)
        best = min(best, time.perf_counter() - t0)
        assert not d.items, f"a steady fleet needs no decision, got {len(d.items)}"
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    fleet = build(args.agents, args.groups)
    facts = ScaleFacts(fleet.agents, fleet.groups, fleet.streams, fleet.scaling, fleet.schedules,
                       buffer_s=60)  # fmt: skip
    duty = Autoscale(facts)
    duty.activate()
    indexed = timed(duty, 20)
    facts.candidates, facts.demand_of = facts.all_agents, facts.count_demand
    walking = timed(duty, 5)
    report = Report(f"autoscale pass: {args.groups} scaled groups, {args.agents} agents,"
                    f" {args.agents * 10} streams, {args.groups} pending schedules")  # fmt: skip
    report.add("pass, indexed", round(indexed * 1000, 2), "ms", "the master's pass")
    report.add("pass, walking", round(walking * 1000, 2), "ms", "baseline: views' reads")
    report.add("per group", round(indexed / max(args.groups, 1) * 1e6, 1), "µs")
    if args.json:
        json.dump(asdict(report), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        report.emit(False)


if __name__ == "__main__":
    main()
