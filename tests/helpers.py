"""Small test helpers: requests with the envelope, and waiting on conditions with deadlines."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from nats.aio.client import Client

from core.sources import SourcePolicy

LOOPBACK = ("127.0.0.0/8", "::1/128", "localhost")
LOOPBACK_OK: dict[str, Any] = {"media_roots": ("/",), "spool_roots": ("/",),
                               "source_allow_hosts": LOOPBACK}  # fmt: skip
"""ManagerSettings for tests: their sources are files in temporary directories and servers on
loopback, which the default policy refuses (tests of the policy itself use the defaults)."""
AGENT_SOURCES = SourcePolicy(media_roots=("/",), spool_roots=("/",), allow_hosts=LOOPBACK)
"""The same for a test agent's ``AgentConfig.sources``."""


async def command(
    nc: Client, name: str, body: dict[str, Any] | bytes, timeout: float = 5.0
) -> dict[str, Any]:
    """Send ``vigil.cmd.<name>`` and return the decoded envelope."""
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    msg = await nc.request(f"vigil.cmd.{name}", data, timeout=timeout)
    reply: dict[str, Any] = orjson.loads(msg.data)
    return reply


async def ok(nc: Client, name: str, body: dict[str, Any]) -> dict[str, Any]:
    reply = await command(nc, name, body)
    assert reply["ok"], reply
    result: dict[str, Any] = reply["result"]
    return result


async def eventually(
    check: Callable[[], Awaitable[Any]] | Callable[[], Any],
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    what: str = "condition",
) -> Any:
    """Poll ``check`` until it returns a truthy value; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        await asyncio.sleep(interval)


async def count_messages(
    nc: Client, subjects: str = "vigil.evt.stream.>", stream: str = "VIGIL_EVENTS"
) -> int:
    """Messages stored on `subjects` (default: stream events only)."""
    info = await nc.jetstream().stream_info(stream, subjects_filter=subjects)
    return sum((info.state.subjects or {}).values())


EXAMPLE_AGENT = Path(__file__).parent.parent / "docs" / "examples" / "minimal_agent.py"


@contextlib.asynccontextmanager
async def example_agent(url: str, state: Path) -> AsyncIterator[list[bytes]]:
    """The docs' third-party agent (nats-py only) as a process; on exit it is stopped with
    SIGINT and must end cleanly. Yields a list that receives its output once it ended."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLE_AGENT), url, "--seconds", "0.5", "--state", str(state),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output: list[bytes] = []
    try:
        yield output
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        output.append(out)
    assert proc.returncode == 0, out.decode()


async def stream_done(nc: Client, stream_id: str, *, timeout: float = 30.0) -> None:
    """Until ``stream_id`` reads ``done``."""

    async def done() -> bool:
        got = await ok(nc, "stream.get", {"stream_id": stream_id})
        return bool(got["status"] == "done")

    await eventually(done, timeout=timeout, what=f"stream {stream_id} done")
