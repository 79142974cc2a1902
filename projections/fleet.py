"""Every read model a manager folds from ``VIGIL_EVENTS``, in one place.

The manager, the replay tools (``ops.logtools``) and ``verify`` all build their projections
here, so a new aggregate's projection added to `Fleet` is snapshotted, replayed and verified
everywhere at once.
"""

from __future__ import annotations

from projections.agents import AgentsProjection
from projections.engine import Snapshottable
from projections.groups import GroupsProjection
from projections.scaling import ScalingProjection
from projections.schedules import SchedulesProjection
from projections.streams import StreamsProjection

__all__ = ["Fleet"]


class Fleet:
    def __init__(self) -> None:
        self.streams = StreamsProjection()
        self.agents = AgentsProjection()
        self.groups = GroupsProjection()
        self.schedules = SchedulesProjection()
        self.scaling = ScalingProjection()

    def all(self) -> list[Snapshottable]:
        return [self.streams, self.agents, self.groups, self.schedules, self.scaling]

    def reset(self) -> None:
        for p in self.all():
            p.reset()
