"""The optional parts of ``vigil up``: local agents and demo streams."""

from __future__ import annotations

import asyncio
import logging

import orjson

from agent.runtime import Agent, AgentConfig
from ops.runtime.up import ExtraPart, UpContext, UpOptions

__all__ = ["up_parts"]

log = logging.getLogger("vigil.up")


async def _local_agents(ctx: UpContext) -> None:
    for i in range(ctx.options.agents):
        name = f"local-{i + 1}"
        outbox = ctx.options.data_dir / "agents" / name / "outbox.db"
        config = AgentConfig(name=name, outbox=outbox, capacity=ctx.options.agent_capacity)
        settings = ctx.install.agent_settings(name, outbox)
        agent = await ctx.stack.enter_async_context(Agent(settings, config))
        print(f"agent {name} ({agent.agent_id}) started", flush=True)


async def _demo(ctx: UpContext) -> None:
    from analytics.clips import ClipSpec, write_clip

    demo_dir = ctx.options.data_dir / "demo"
    demo_dir.mkdir(parents=True, exist_ok=True)
    file_clip = demo_dir / "lobby.mp4"
    live_clip = demo_dir / "gate.ts"
    if not file_clip.exists():
        await asyncio.to_thread(write_clip, file_clip, ClipSpec(duration_s=15))
    if not live_clip.exists():
        await asyncio.to_thread(write_clip, live_clip, ClipSpec(duration_s=30))
    existing = await ctx.manager.router.dispatch("stream.list", b"{}")
    if orjson.loads(existing)["result"]["streams"]:
        return  # the demo streams were created by an earlier run
    bodies = [
        {"name": "lobby (file)", "source": {"url": f"file://{file_clip.resolve()}"}, "kind": "file",
         "analytics": [{"name": "motion"}, {"name": "scene_change"}],
         "request_id": "demo-file", "allow_unregistered": True},
        {"name": "gate (looping live)", "source": {"url": f"file://{live_clip.resolve()}"},
         "kind": "stream", "analytics": [{"name": "motion"}, {"name": "black_frame"}],
         "request_id": "demo-live", "allow_unregistered": True},
    ]  # fmt: skip
    for body in bodies:
        reply = orjson.loads(await ctx.manager.router.dispatch("stream.create", orjson.dumps(body)))
        if reply["ok"]:
            print(
                f"demo stream {reply['result']['name']}: {reply['result']['stream_id']}", flush=True
            )
        else:
            log.warning("demo stream not created: %s", reply["error"])


def up_parts(options: UpOptions) -> list[ExtraPart]:
    parts: list[ExtraPart] = [_local_agents]
    if options.demo:
        parts.append(_demo)
    return parts
