"""Launch configs, scale policies and the master's scaling state per group, folded from
``vigil.evt.launch.*``, ``vigil.evt.policy.*`` and ``vigil.evt.scaling.*``.

Indexes: ``policy_of`` (group → the name of its live policy; one per group) and ``samples``
(launch config → the last `SAMPLES` measured launch → registered durations, what startup times
are learned from). Listeners hear ``(kind, key)`` for every change (``launch``, ``policy`` or
``scaling``, and the name or group).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from core import scaleconfig as SC
from core import scaling as core_scaling
from core.scaleconfig import LaunchConfigState, PolicyState
from core.scaling import ScalingState
from events.model import (
    Event,
    LaunchConfigEvent,
    PolicyEvent,
    ScaleLaunchRegistered,
    ScalingEvent,
)
from projections.blob import decode_blob, encode_blob, entity_dump

__all__ = ["SAMPLES", "ScalingListener", "ScalingProjection"]

SAMPLES = 15
"""Measured startups kept per launch config (their median is the startup time)."""

ScalingListener = Callable[[str, str], None]

_SNAPSHOT_V = 1


class _Snapshot(msgspec.Struct, frozen=True):
    v: int
    launches: dict[str, LaunchConfigState]
    policies: dict[str, PolicyState]
    scaling: dict[str, ScalingState]
    samples: dict[str, list[float]]
    last_seq: dict[str, int]


class ScalingProjection:
    name = "scaling"
    kinds: tuple[str, ...] = ("launch", "policy", "scaling")

    def __init__(self) -> None:
        self.listeners: list[ScalingListener] = []
        self._clear()

    def _clear(self) -> None:
        self.launches: dict[str, LaunchConfigState] = {}
        self.policies: dict[str, PolicyState] = {}
        self.scaling: dict[str, ScalingState] = {}
        self.samples: dict[str, list[float]] = {}
        self.last_seq: dict[str, int] = {}
        """Keyed by aggregate: ``launch.<name>``, ``policy.<name>``, ``scaling.<group>``."""
        self.policy_of: dict[str, str] = {}
        self.ignored = 0

    def apply(self, seq: int, aggregate: str, event: Event) -> None:
        if isinstance(event, LaunchConfigEvent):
            self.last_seq[f"launch.{event.launch}"] = seq
            before_l = self.launches.get(event.launch)
            after_l = SC.evolve_launch(before_l, event)
            if after_l is None or after_l is before_l:
                return
            self.launches[event.launch] = after_l
            self._tell("launch", event.launch)
        elif isinstance(event, PolicyEvent):
            self.last_seq[f"policy.{event.policy}"] = seq
            before_p = self.policies.get(event.policy)
            after_p = SC.evolve_policy(before_p, event)
            if after_p is None or after_p is before_p:
                return
            self.policies[event.policy] = after_p
            self._index_policy(before_p, after_p)
            self._tell("policy", event.policy)
            if before_p is not None and before_p.config.group != after_p.config.group:
                self._tell("group", before_p.config.group)
            self._tell("group", after_p.config.group)
        elif isinstance(event, ScalingEvent):
            self.last_seq[f"scaling.{event.group}"] = seq
            before_s = self.scaling.get(event.group)
            self.scaling[event.group] = core_scaling.evolve(before_s, event)
            if isinstance(event, ScaleLaunchRegistered) and before_s is not None:
                entry = before_s.live.get(event.launch_id)
                if entry is not None and entry.status == "launching":
                    kept = self.samples.setdefault(entry.launch, [])
                    kept.append(event.took_s)
                    del kept[:-SAMPLES]
            self._tell("group", event.group)
        else:
            self.ignored += 1

    def _index_policy(self, before: PolicyState | None, after: PolicyState) -> None:
        if before is not None and self.policy_of.get(before.config.group) == before.name:
            del self.policy_of[before.config.group]
        if not after.deleted:
            self.policy_of[after.config.group] = after.name

    def _tell(self, kind: str, key: str) -> None:
        for listener in self.listeners:
            listener(kind, key)

    # ---- reads ---------------------------------------------------------------------------------

    def launch(self, name: str | None) -> LaunchConfigState | None:
        state = self.launches.get(name) if name is not None else None
        return None if state is None or state.deleted else state

    def policy(self, name: str) -> PolicyState | None:
        state = self.policies.get(name)
        return None if state is None or state.deleted else state

    def policy_for(self, group: str) -> PolicyState | None:
        name = self.policy_of.get(group)
        return self.policies.get(name) if name is not None else None

    def scaled_groups(self) -> set[str]:
        """Groups with a policy or a scaling history."""
        return set(self.policy_of) | set(self.scaling)

    def seq_of(self, aggregate: str) -> int:
        return self.last_seq.get(aggregate, 0)

    # ---- snapshots and verify ------------------------------------------------------------------

    def snapshot(self) -> bytes:
        return encode_blob(_Snapshot(_SNAPSHOT_V, self.launches, self.policies, self.scaling,
                                     self.samples, self.last_seq))  # fmt: skip

    def restore(self, data: bytes) -> None:
        """Replace the state by a snapshot blob; ``SnapshotError`` leaves it unchanged."""
        snap = decode_blob(data, _Snapshot, _SNAPSHOT_V)
        listeners = self.listeners
        self._clear()
        self.listeners = listeners
        self.launches, self.policies = dict(snap.launches), dict(snap.policies)
        self.scaling, self.last_seq = dict(snap.scaling), dict(snap.last_seq)
        self.samples = {k: list(v) for k, v in snap.samples.items()}
        for state in self.policies.values():
            self._index_policy(None, state)

    def reset(self) -> None:
        listeners = self.listeners
        self._clear()
        self.listeners = listeners

    def dump(self) -> dict[str, Any]:
        states: dict[str, Any] = {}
        for name, launch in self.launches.items():
            states[f"launch.{name}"] = launch
        for name, policy in self.policies.items():
            states[f"policy.{name}"] = policy
        for group, scaling in self.scaling.items():
            states[f"scaling.{group}"] = scaling
        return entity_dump(states, self.last_seq)
