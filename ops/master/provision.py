"""The provisioner: runs the providers for the master's launch and removal decisions (its own
task, a supervised part, so a slow ``kubectl`` never delays a failover).

While this manager is master it looks at the scaling state the log holds (not at what it decided
itself), so a new master continues an old master's work:

- a launch decided but not recorded as started → run the provider, then append
  ``ScaleLaunchStarted`` (its detail: a pid, the command's output), or ``ScaleLaunchFailed`` with
  the provider's error;
- a launch that failed (deadline) recently → ``cancel`` it once (the local provider stops the
  process, so it cannot register late);
- an agent removed (drained) that is still registered → ``remove`` it, again every
  ``REMOVE_RETRY_S`` while it stays.

Its appends are fenced on the master's election like every decision.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from core import scaling as SG
from core.errors import DomainError
from core.scaling import LaunchEntry
from events.jetstream import JetStreamStore
from events.model import Cause
from events.store import Append, Fenced, Unavailable
from ops.master.election import Election
from ops.master.providers import LaunchSpec, ProviderError, Providers, RemoveSpec
from projections.agents import AgentsProjection
from projections.engine import Projector
from projections.scaling import ScalingProjection

__all__ = ["Provisioner"]

log = logging.getLogger(__name__)

REMOVE_RETRY_S = 30.0
CANCEL_WINDOW_S = 600.0


class Provisioner:
    def __init__(self, election: Election, store: JetStreamStore, projector: Projector,
                 scaling: ScalingProjection, agents: AgentsProjection, providers: Providers, *,
                 manager_id: str, clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.election = election
        self.store = store
        self.projector = projector
        self.scaling = scaling
        self.agents = agents
        self.providers = providers
        self.manager_id = manager_id
        self.clock = clock
        self._wake = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._cancelled: set[str] = set()
        self._removed_at: dict[str, float] = {}
        self.launches = 0
        self.removals = 0
        self.errors = 0
        scaling.listeners.append(self._on_change)

    def _on_change(self, kind: str, _key: str) -> None:
        if kind == "group":
            self._wake.set()

    async def run(self) -> None:
        """The supervised part."""
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 0.5)
                self._wake.clear()
                if self.election.is_master:
                    self.pass_()
                elif self._removed_at or self._cancelled:
                    self._removed_at.clear()
                    self._cancelled.clear()
        finally:
            for task in self._tasks.values():
                task.cancel()
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
            self.providers.close()

    def _spawn(self, key: str, work: Callable[[str, LaunchEntry], Coroutine[Any, Any, None]],
               group: str, entry: LaunchEntry) -> None:  # fmt: skip
        if key in self._tasks:
            return
        task = asyncio.create_task(work(group, entry), name=f"provision {key}")
        self._tasks[key] = task
        task.add_done_callback(lambda _t: self._done(key))

    def _done(self, key: str) -> None:
        task = self._tasks.pop(key, None)
        if task is not None and not task.cancelled() and task.exception() is not None:
            self.errors += 1
            log.error("provisioning %s failed: %r", key, task.exception())
        self._wake.set()

    def pass_(self) -> None:
        now = self.clock()
        agents = self.agents.agents
        for group, state in list(self.scaling.scaling.items()):
            for e in state.launching():
                if not e.started:
                    self._spawn(f"launch:{e.launch_id}", self._launch, group, e)
            for e in state.history:
                recent = e.ended_at is not None and now - e.ended_at < CANCEL_WINDOW_S
                if e.status == "failed" and recent and e.launch_id not in self._cancelled:
                    self._cancelled.add(e.launch_id)
                    self._spawn(f"cancel:{e.launch_id}", self._cancel, group, e)
                agent = agents.get(e.agent_id or "")
                if e.status != "removed" or agent is None or agent.status != "ready":
                    continue
                if now - self._removed_at.get(agent.agent_id, -REMOVE_RETRY_S) >= REMOVE_RETRY_S:
                    self._removed_at[agent.agent_id] = now
                    self._spawn(f"remove:{agent.agent_id}",
                                self._remove, group, e)  # fmt: skip

    def _spec(self, group: str, e: LaunchEntry) -> LaunchSpec | None:
        config = self.scaling.launch(e.launch)
        if config is None:
            return None
        return LaunchSpec(launch_id=e.launch_id, group=group, agent_name=e.agent_name,
                          config=config.config, region=e.region, target=e.target)  # fmt: skip

    async def _launch(self, group: str, e: LaunchEntry) -> None:
        spec = self._spec(group, e)
        now = self.clock
        cmd: SG.ScalingCommand
        if spec is None:
            cmd = SG.FailLaunch(group=group, at=now(), cause=self._cause("scaling.fail"),
                                launch_id=e.launch_id,
                                reason=f"launch config {e.launch} no longer exists")  # fmt: skip
        else:
            try:
                detail = await self.providers.of(spec.config).launch(spec)
                self.launches += 1
                log.info("launch %s of group %s started: %s", e.launch_id, group, detail)
                cmd = SG.MarkStarted(group=group, at=now(), cause=self._cause("scaling.started"),
                                     launch_id=e.launch_id, detail=detail[:1000])  # fmt: skip
            except ProviderError as exc:
                log.warning("launch %s of group %s failed: %s", e.launch_id, group, exc)
                cmd = SG.FailLaunch(group=group, at=now(), cause=self._cause("scaling.fail"),
                                    launch_id=e.launch_id, reason=f"provider: {exc}"[:1000])  # fmt: skip
        await self._append(group, cmd)

    async def _cancel(self, group: str, e: LaunchEntry) -> None:
        spec = self._spec(group, e)
        if spec is not None:
            try:
                await self.providers.of(spec.config).cancel(spec)
            except ProviderError as exc:
                log.warning("cancel of launch %s failed: %s", e.launch_id, exc)

    async def _remove(self, group: str, e: LaunchEntry) -> None:
        config = self.scaling.launch(e.launch)
        state = self.scaling.scaling.get(group)
        left = len(state.live) if state is not None else 0
        spec = RemoveSpec(group=group, agent_id=e.agent_id or "", agent_name=e.agent_name,
                          launch_id=e.launch_id, config=config.config if config else None,
                          target=left)  # fmt: skip
        try:
            detail = await self.providers.of(spec.config).remove(spec)
            self.removals += 1
            log.info("agent %s (%s) of group %s removed: %s", e.agent_name, e.agent_id, group,
                     detail)  # fmt: skip
        except ProviderError as exc:
            log.warning("removal of agent %s failed: %s (retried in %gs)", e.agent_name, exc,
                        REMOVE_RETRY_S)  # fmt: skip

    def _cause(self, name: str) -> Cause:
        return Cause(kind="master", name=name, manager_id=self.manager_id,
                        epoch=self.election.epoch)  # fmt: skip

    async def _append(self, group: str, cmd: SG.ScalingCommand) -> None:
        reign = self.election.reign
        if reign is None or not self.election.is_master:
            return
        state = self.scaling.scaling.get(group)
        try:
            events = SG.decide(state, cmd)
        except DomainError:
            return
        items = [Append(f"scaling.{group}", ev, msg_id=f"{type(ev).__name__}:{group}:"
                        f"{SG.launch_of(ev)}") for ev in events]  # fmt: skip
        if not items:
            return
        try:
            seqs = await self.store.append_batch(items, fence=reign.fence)
        except Fenced as exc:
            log.warning("provisioner: no longer master (%s)", exc)
            return
        except Unavailable as exc:
            log.warning("provisioner: %s not stored yet (%s); the next pass retries",
                        type(cmd).__name__, exc)  # fmt: skip
            return
        await self.projector.wait_for(max(seqs), timeout=10)
