"""Master duty: tell agents whose assignments changed to poll now (``vigil.agent.<id>.notify``).

A push is a hint: agents also poll every few seconds, so a lost notify costs latency only.
"""

from __future__ import annotations

import asyncio
import logging

from nats.aio.client import Client

from events import subjects
from ops.master.index import MasterIndex

__all__ = ["Notify"]

log = logging.getLogger(__name__)


class Notify:
    def __init__(self, index: MasterIndex, nc: Client) -> None:
        self.index = index
        self.nc = nc

    async def send(self) -> int:
        agents, self.index.notify = self.index.notify, set()
        for i, agent_id in enumerate(sorted(agents)):
            try:
                await self.nc.publish(subjects.agent_notify(agent_id), b"{}")
            except Exception as exc:  # disconnected: agents poll anyway
                log.debug("notify %s: %r", agent_id, exc)
            if i % 100 == 99:
                await asyncio.sleep(0)  # a publish does not yield: thousands would stall the loop
        return len(agents)
