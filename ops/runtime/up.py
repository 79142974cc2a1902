"""``vigil up`` and ``vigil manager``: run the processes until Ctrl-C, then stop them all.

``vigil up`` = embedded nats-server (unless ``--nats-url``) + one manager + the HTTP API + N local
agents (+ demo streams with ``--demo``). It owns its data directory (``ops.runtime.lock``: a
second ``vigil up`` there is refused at once) and writes ``<data-dir>/vigil.env`` (mode 0600)
only once everything listens, so that every other ``vigil`` command in another terminal finds
NATS, its credentials and the API token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from aiohttp import web

from ops.http.app import build_app
from ops.runtime.lock import DataDirLock
from ops.runtime.manager import Manager
from ops.runtime.natsd import EmbeddedNats
from ops.settings import (
    ENV_FILE,
    ClientSettings,
    load_manager_settings,
    new_secret,
    read_env_file,
    write_env_file,
)

__all__ = ["UpOptions", "run_manager", "run_up", "serve_http"]

log = logging.getLogger("vigil.up")

# Extension points filled by later parts (local agents, demo streams) without touching `up`.
ExtraPart = Callable[["UpContext"], Awaitable[None]]


class UpOptions:
    def __init__(
        self,
        *,
        data_dir: Path,
        agents: int = 2,
        http: str = "127.0.0.1:8080",
        nats_url: str | None = None,
        demo: bool = False,
        nats_port: int | None = None,
        agent_capacity: int = 4,
    ) -> None:
        self.data_dir = data_dir
        self.agent_capacity = agent_capacity
        self.agents = agents
        self.http = http
        self.nats_url = nats_url
        self.demo = demo
        self.nats_port = nats_port


class UpContext:
    """What the running ``up`` offers to its parts."""

    def __init__(self, options: UpOptions, client: ClientSettings, manager: Manager,
                 stack: AsyncExitStack) -> None:  # fmt: skip
        self.options = options
        self.client = client
        self.manager = manager
        self.stack = stack


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _split_hostport(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise SystemExit(f"--http must look like HOST:PORT, got {value!r}")
    return host, int(port)


@asynccontextmanager
async def serve_http(manager: Manager, hostport: str, token: str | None) -> AsyncIterator[str]:
    host, port = _split_hostport(hostport)
    runner = web.AppRunner(build_app(manager, token=token), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise SystemExit(
            f"cannot listen on {hostport}: {exc.strerror}; pass --http HOST:PORT"
        ) from None
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    return stop


async def _embedded(options: UpOptions, stack: AsyncExitStack) -> ClientSettings:
    env_path = options.data_dir / ENV_FILE
    previous = read_env_file(env_path) if env_path.is_file() else {}
    user = previous.get("VIGIL_NATS_USER") or "vigil"
    password = previous.get("VIGIL_NATS_PASSWORD") or new_secret()
    token = previous.get("VIGIL_API_TOKEN") or new_secret()
    port = options.nats_port
    if port is None:
        old = previous.get("VIGIL_NATS_URL", "").rpartition(":")[2]
        for candidate in (int(old) if old.isdigit() else 0, 4222):
            if candidate and _port_free("127.0.0.1", candidate):
                port = candidate
                break
    server = EmbeddedNats(options.data_dir / "nats", port=port, user=user, password=password)
    await stack.enter_async_context(server)
    log.info("nats-server %s listening on 127.0.0.1:%d (store %s)", server.pid, server.port,
             server.store_dir)  # fmt: skip
    client = ClientSettings(
        nats_url=f"nats://127.0.0.1:{server.port}", nats_user=user, nats_password=password,
        api_token=token, http=options.http,
    )  # fmt: skip
    return client


async def run_up(options: UpOptions, extras: list[ExtraPart] | None = None) -> None:
    stop = _stop_event()
    async with AsyncExitStack() as stack:
        stack.enter_context(DataDirLock(options.data_dir))
        if options.nats_url:
            client = ClientSettings(
                nats_url=options.nats_url, api_token=new_secret(), http=options.http
            )
        else:
            client = await _embedded(options, stack)
        manager = await stack.enter_async_context(Manager(client, load_manager_settings()))
        url = await stack.enter_async_context(serve_http(manager, options.http, client.api_token))
        ctx = UpContext(options, client, manager, stack)
        for part in extras or []:
            await part(ctx)
        write_env_file(
            options.data_dir / ENV_FILE,
            {
                "VIGIL_NATS_URL": client.nats_url,
                "VIGIL_NATS_USER": client.nats_user or "",
                "VIGIL_NATS_PASSWORD": client.nats_password or "",
                "VIGIL_API_TOKEN": client.api_token or "",
                "VIGIL_HTTP": options.http,
            },
        )
        print(f"vigil is up: dashboard and API at {url}/  (settings in {options.data_dir / ENV_FILE})",
              flush=True)  # fmt: skip
        print("Ctrl-C stops everything.", flush=True)
        await stop.wait()
        print("stopping...", flush=True)
    print("stopped.", flush=True)


async def run_manager(client: ClientSettings, http: str | None) -> None:
    stop = _stop_event()
    async with AsyncExitStack() as stack:
        manager = await stack.enter_async_context(Manager(client, load_manager_settings()))
        if http:
            url = await stack.enter_async_context(serve_http(manager, http, client.api_token))
            print(f"manager {manager.manager_id} serving {url}/", flush=True)
        else:
            print(f"manager {manager.manager_id} running", flush=True)
        await stop.wait()
