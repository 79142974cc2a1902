"""A minimal third-party vigil agent: nats-py only, no vigil imports.

It offers one analytic (``frame_counter``), "processes" each assigned stream by pretending to
read it for a few seconds, and reports through the agent protocol (docs/agent-protocol.md):

    register → heartbeat → poll streams (on notify or every few seconds) → feedback → deregister

Usage:  python minimal_agent.py nats://127.0.0.1:4222 [--seconds 2] [--user U --password P]

Feedback goes to JetStream with ``Nats-Msg-Id: <agent_id>:<seq>``. A real agent must keep
``seq`` (and its agent_id) across restarts, e.g. in a file, and retry unacknowledged feedback
with the same msg id. Here they live in a small JSON state file next to the script's cwd.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import time
from pathlib import Path

import nats
from nats.errors import TimeoutError as NatsTimeout


class State:
    """agent_id and the last feedback seq, kept across restarts."""

    def __init__(self, path: Path) -> None:
        self.path = path
        data = json.loads(path.read_text()) if path.exists() else {}
        self.agent_id: str | None = data.get("agent_id")
        self.seq: int = data.get("seq", 0)

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"agent_id": self.agent_id, "seq": self.seq}))
        os.replace(tmp, self.path)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--seconds", type=float, default=2.0, help="how long each stream runs")
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--state", default="minimal-agent.json")
    args = parser.parse_args()

    # Named "vigil-agent-<name>": the managers then know at once when this connection closes.
    nc = await nats.connect(
        args.url, user=args.user, password=args.password, max_reconnect_attempts=-1,
        name="vigil-agent-minimal-agent",
    )  # fmt: skip
    js = nc.jetstream()
    state = State(Path(args.state))

    # 1. register: say what we can run and how many streams at once.
    body = {
        "name": "minimal-agent",
        "capacity": 4,
        "analytics": [
            {
                "name": "frame_counter",
                "version": "1.0",
                "params_schema": {"type": "object", "properties": {}},
            }
        ],
    }
    if state.agent_id:
        body["agent_id"] = state.agent_id  # keep our identity (and seq) across restarts
    reply = json.loads(
        (await nc.request("vigil.agent.register", json.dumps(body).encode(), timeout=5)).data
    )
    if not reply["ok"]:
        raise SystemExit(f"register refused: {reply['error']}")
    agent_id = reply["result"]["agent_id"]
    heartbeat_s = reply["result"]["heartbeat_interval_s"]
    state.agent_id = agent_id
    state.save()
    print(f"registered as {agent_id}", flush=True)

    running: dict[str, asyncio.Task[None]] = {}
    poll_now = asyncio.Event()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async def feedback(stream_id: str, version: int, status: str, **extra: object) -> None:
        # 4. feedback: acked JetStream publish; seq strictly increasing; same msg id on retry.
        state.seq += 1
        state.save()
        now = time.time()
        # agent_id is the one in the subject and day is the UTC day of ts: no need to send them.
        msg = {
            "seq": state.seq,
            "stream_id": stream_id,
            "version": version,
            "status": status,
            "ts": now,
            **extra,
        }
        headers = {"Nats-Msg-Id": f"{agent_id}:{state.seq}"}
        while True:
            try:
                await js.publish(
                    f"vigil.feedback.{agent_id}", json.dumps(msg).encode(), headers=headers
                )
                return
            except Exception as exc:  # timeout/disconnect: retry with the same msg id
                print(f"feedback retry: {exc!r}", flush=True)
                await asyncio.sleep(1)

    async def process(stream: dict) -> None:
        stream_id, version = stream["stream_id"], stream["version"]
        await feedback(stream_id, version, "in_progress")
        frames = 0
        started = time.monotonic()
        try:
            while time.monotonic() - started < args.seconds:
                await asyncio.sleep(0.1)
                frames += 3
            await feedback(
                stream_id,
                version,
                "done",
                stats={"frames_decoded": frames, "frames_analysed": frames},
            )
        finally:
            running.pop(stream_id, None)

    async def heartbeats() -> None:
        # 2. heartbeat: what we run and how loaded we are.
        while True:
            hb = {"ts": time.time(), "running": sorted(running), "cpu_percent": 0.0}
            await nc.publish(f"vigil.agent.{agent_id}.heartbeat", json.dumps(hb).encode())
            await asyncio.sleep(heartbeat_s)

    async def on_notify(msg: object) -> None:
        poll_now.set()

    async def on_refused(msg: object) -> None:
        # A manager refused one of our feedback messages (it will not be retried): say so.
        print(f"feedback refused: {json.loads(msg.data)}", flush=True)  # type: ignore[attr-defined]

    # 3. get streams: on a notify push, or every few seconds anyway.
    await nc.subscribe(f"vigil.agent.{agent_id}.notify", cb=on_notify)
    await nc.subscribe(f"vigil.agent.{agent_id}.refused", cb=on_refused)
    beat = asyncio.create_task(heartbeats())
    poll_now.set()
    while not stop.is_set():
        try:
            await asyncio.wait_for(poll_now.wait(), 3)
        except TimeoutError:
            pass
        poll_now.clear()
        try:
            msg = await nc.request(
                f"vigil.agent.{agent_id}.streams",
                json.dumps({"running": sorted(running)}).encode(),
                timeout=5,
            )
        except NatsTimeout:
            continue
        reply = json.loads(msg.data)
        if not reply["ok"]:
            print(f"poll refused: {reply['error']}", flush=True)
            continue
        for stream_id in reply["result"]["stop"]:
            task = running.pop(stream_id, None)
            if task:
                task.cancel()
        for stream in reply["result"]["start"]:
            if stream["stream_id"] not in running:
                print(f"starting {stream['stream_id']} v{stream['version']}", flush=True)
                running[stream["stream_id"]] = asyncio.create_task(process(stream))

    # 5. leave cleanly.
    beat.cancel()
    for task in list(running.values()):
        task.cancel()
    await nc.request(f"vigil.agent.{agent_id}.deregister", b"{}", timeout=5)
    await nc.close()


if __name__ == "__main__":
    asyncio.run(main())
