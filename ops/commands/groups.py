"""Group commands and queries: ``vigil.cmd.group.create|update|get|list|delete``.

Writes go through the shared `Executor` (load → ``core.group.decide`` → append → retry). A
group's members are agent *names*; the view says, per member, its role (active, standby) and
the status of the agent(s) registered under that name.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from core import group as G
from core.errors import IllegalTransition, NotFound
from core.group import GroupConfig, GroupState
from events.model import Cause, GroupEvent, GroupMember
from ops.api import requests as R
from ops.api.router import AnyRoute, Route
from ops.api.views import GroupDeletedView, GroupList, GroupView, MemberView, group_view
from ops.commands.executor import AggregateType, Executor
from projections.agents import AgentsProjection
from projections.engine import Projector
from projections.groups import GroupsProjection
from projections.streams import StreamsProjection

__all__ = ["GroupCommands", "group_aggregate", "group_routes"]

MemberRole = Literal["active", "standby", "member"]
MemberStatus = Literal["ready", "not_ready", "absent"]


def group_aggregate(
    groups: GroupsProjection,
) -> AggregateType[GroupState, G.GroupCommand, GroupEvent]:
    return AggregateType(
        kind="group", event_type=GroupEvent, decide=G.decide, evolve=G.evolve,
        cached=lambda name: (groups.groups.get(name), groups.seq_of(name)),
    )  # fmt: skip


def _members(members: list[R.MemberIn]) -> tuple[GroupMember, ...]:
    return tuple(GroupMember(agent=m.agent, priority=m.priority) for m in members)


def _const(cmd: G.GroupCommand) -> Callable[[GroupState | None], G.GroupCommand]:
    def make(_state: GroupState | None) -> G.GroupCommand:
        return cmd

    return make


class GroupCommands:
    def __init__(
        self,
        executor: Executor,
        projector: Projector,
        groups: GroupsProjection,
        agents: AgentsProjection,
        streams: StreamsProjection,
        *,
        manager_id: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.executor = executor
        self.projector = projector
        self.groups = groups
        self.agents = agents
        self.streams = streams
        self.agg = group_aggregate(groups)
        self.manager_id = manager_id
        self.clock = clock

    def _cause(self, name: str, request_id: str | None) -> Cause:
        return Cause(kind="command", name=name, request_id=request_id, manager_id=self.manager_id)

    # ---- views ---------------------------------------------------------------------------------

    def view(self, g: GroupState) -> GroupView:
        members = []
        for m in g.members_by_priority():
            agents = self.agents.named(m.agent)
            status: MemberStatus = "absent"
            if agents:
                status = "ready" if any(a.status == "ready" for a in agents) else "not_ready"
            role: MemberRole = "member"
            if g.is_redundant:
                role = "active" if m.agent == g.active else "standby"
            members.append(MemberView(agent=m.agent, priority=m.priority, role=role,
                                      status=status, agent_ids=[a.agent_id for a in agents]))  # fmt: skip
        return group_view(g, members=members, streams=len(self.streams.by_group.get(g.name, ())))

    # ---- handlers ------------------------------------------------------------------------------

    async def create(self, req: R.CreateGroupReq) -> tuple[GroupView, int]:
        config = GroupConfig(
            mode=req.mode, members=_members(req.members), keepalive_s=req.keepalive_s,
            failover_s=req.failover_s, failback=req.failback, failback_hold_s=req.failback_hold_s,
        )  # fmt: skip
        cmd = G.CreateGroup(group=req.name, at=self.clock(),
                            cause=self._cause("group.create", req.request_id), config=config)  # fmt: skip
        msg_id = f"group.create:{req.request_id}" if req.request_id else None
        try:
            done = await self.executor.execute(self.agg, req.name, _const(cmd), msg_id=msg_id)
        except IllegalTransition:
            if req.request_id is None:
                raise
            again = await self.executor.load(self.agg, req.name)  # the same request again
            done = again
        state, seq = done
        assert state is not None
        return self.view(state), seq

    async def update(self, req: R.UpdateGroupReq) -> tuple[GroupView, int]:
        now = self.clock()
        cause = self._cause("group.update", req.request_id)

        def make(state: GroupState | None) -> G.GroupCommand:
            if state is None or state.deleted:
                raise NotFound(f"group {req.name} not found")
            c = state.config
            config = GroupConfig(
                mode=req.mode if req.mode is not None else c.mode,
                members=_members(req.members) if req.members is not None else c.members,
                keepalive_s=req.keepalive_s if req.keepalive_s is not None else c.keepalive_s,
                failover_s=req.failover_s if req.failover_s is not None else c.failover_s,
                failback=req.failback if req.failback is not None else c.failback,
                failback_hold_s=req.failback_hold_s if req.failback_hold_s is not None
                else c.failback_hold_s,
            )  # fmt: skip
            return G.UpdateGroup(group=req.name, at=now, cause=cause, config=config,
                                 expected_version=req.expected_version)  # fmt: skip

        msg_id = f"group.update:{req.request_id}" if req.request_id else None
        done = await self.executor.execute(self.agg, req.name, make, msg_id=msg_id)
        state, seq = done
        assert state is not None
        return self.view(state), seq

    async def get(self, req: R.GroupNameReq) -> tuple[GroupView, int]:
        state = self.groups.get(req.name)
        if state is None:
            raise NotFound(f"group {req.name} not found")
        return self.view(state), self.groups.seq_of(req.name)

    async def list_groups(self, _req: R.ListGroupsReq) -> tuple[GroupList, int]:
        return GroupList(groups=[self.view(g) for g in self.groups.live()]), self.projector.last_seq

    async def delete(self, req: R.DeleteGroupReq) -> tuple[GroupDeletedView, int]:
        now = self.clock()
        cause = self._cause("group.delete", req.request_id)

        def make(_state: GroupState | None) -> G.GroupCommand:
            return G.DeleteGroup(group=req.name, at=now, cause=cause,
                                 streams=len(self.streams.by_group.get(req.name, ())),
                                 expected_version=req.expected_version)  # fmt: skip

        msg_id = f"group.delete:{req.request_id}" if req.request_id else None
        done = await self.executor.execute(self.agg, req.name, make, msg_id=msg_id)
        seq = done[1]
        return GroupDeletedView(name=req.name), seq


def group_routes(cmds: GroupCommands) -> list[AnyRoute]:
    return [
        Route("group.create", R.CreateGroupReq, cmds.create, result=GroupView),
        Route("group.update", R.UpdateGroupReq, cmds.update, result=GroupView),
        Route("group.get", R.GroupNameReq, cmds.get, writes=False, result=GroupView),
        Route("group.list", R.ListGroupsReq, cmds.list_groups, writes=False, result=GroupList),
        Route("group.delete", R.DeleteGroupReq, cmds.delete, result=GroupDeletedView),
    ]
