"""``vigil agent``: run one agent until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal

from agent.runtime import Agent, AgentConfig
from events.connection import ConnectionSettings

__all__ = ["run_agent"]


async def run_agent(client: ConnectionSettings, config: AgentConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with Agent(client, config) as agent:
        print(f"agent {config.name} ({agent.agent_id}) running; outbox {config.outbox}", flush=True)
        await stop.wait()
        print("stopping streams and deregistering...", flush=True)
