"""``vigil agent``: run one agent until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal

from agent.runtime import Agent, AgentConfig
from analytics.spool import JetStreamConfig
from events.connection import ConnectionSettings

__all__ = ["records_spool", "run_agent"]


def records_spool(client: ConnectionSettings) -> JetStreamConfig:
    """The default spooler: JetStream ``VIGIL_RECORDS`` on the agent's own NATS."""
    url = client.nats_url
    if client.nats_user and "@" not in url:
        scheme, _, rest = url.partition("://")
        url = f"{scheme}://{client.nats_user}:{client.nats_password or ''}@{rest}"
    return JetStreamConfig(servers=(url,))


async def run_agent(client: ConnectionSettings, config: AgentConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    if config.spool is None:
        from dataclasses import replace

        config = replace(config, spool=records_spool(client))
    async with Agent(client, config) as agent:
        print(f"agent {config.name} ({agent.agent_id}) running; outbox {config.outbox}", flush=True)
        await stop.wait()
        print("stopping streams and deregistering...", flush=True)
