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
import os
import signal
import socket
import ssl
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import msgspec
from aiohttp import web

from ops.http.app import build_app
from ops.http.auth import HttpAuth
from ops.runtime.lock import DataDirLock
from ops.runtime.manager import Manager
from ops.runtime.natsd import EmbeddedCluster, EmbeddedNats, TlsFiles, free_port
from ops.security.authority import Authority
from ops.settings import (
    ENV_FILE,
    ClientSettings,
    ManagerSettings,
    Role,
    load_client_settings,
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
        tls: TlsFiles | None = None,
        cluster: int = 1,
        managers: int | None = None,
    ) -> None:
        self.cluster = cluster
        """nats-servers to run, clustered on loopback (every stream and bucket replicated)."""
        self.managers = managers or (2 if cluster > 1 else 1)
        self.tls = tls
        """Serve NATS and HTTP over TLS with this certificate (clients trust ``tls.ca``, or the
        certificate itself when it is self-signed)."""
        self.data_dir = data_dir
        self.agent_capacity = agent_capacity
        self.agents = agents
        self.http = http
        self.nats_url = nats_url
        self.demo = demo
        self.nats_port = nats_port


class UpContext:
    """What the running ``up`` offers to its parts."""

    def __init__(self, options: UpOptions, install: Installation, manager: Manager,
                 stack: AsyncExitStack, settings: ManagerSettings) -> None:  # fmt: skip
        self.settings = settings
        self.options = options
        self.install = install
        self.client = install.cli
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


def http_auth(settings: ManagerSettings, token: str | None, hostport: str,
              data_dir: Path | None = None) -> HttpAuth:  # fmt: skip
    """Who may use the HTTP API: the admin token, the tokens file, and whether reads are open
    (configured, or ``vigil up`` serving on loopback only)."""
    host, _ = _split_hostport(hostport)
    tokens = settings.api_tokens_file or (str(data_dir / "auth" / "tokens") if data_dir else None)
    loopback = data_dir is not None and host in ("127.0.0.1", "localhost", "::1")
    return HttpAuth.from_settings(admin_token=token, tokens_file=tokens,
                                  open_reads=settings.http_open_reads or loopback)  # fmt: skip


@asynccontextmanager
async def serve_http(
    manager: Manager, hostport: str, auth: HttpAuth | str | None, tls: TlsFiles | None = None
) -> AsyncIterator[str]:
    host, port = _split_hostport(hostport)
    if not isinstance(auth, HttpAuth):
        auth = HttpAuth.from_settings(admin_token=auth)
    runner = web.AppRunner(build_app(manager, auth=auth), access_log=None)
    await runner.setup()
    ssl_context = None
    if tls is not None:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(tls.cert, tls.key)
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise SystemExit(
            f"cannot listen on {hostport}: {exc.strerror}; pass --http HOST:PORT"
        ) from None
    try:
        yield f"{'https' if tls else 'http'}://{host}:{port}"
    finally:
        await runner.cleanup()


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    return stop


class Installation:
    """What ``vigil up`` set up: how its manager and its CLI reach NATS, and the authority that
    issues identities (None when it uses an external NATS: ``--nats-url``)."""

    def __init__(self, manager: ClientSettings, cli: ClientSettings,
                 authority: Authority | None, env: dict[str, str]) -> None:  # fmt: skip
        self.manager = manager
        self.cli = cli
        self.authority = authority
        self.env = env

    def agent_settings(self, name: str, outbox: Path) -> ClientSettings:
        """Connection settings for a local agent: its own identity, bound to the agent id kept
        beside its outbox (minted on first use)."""
        if self.authority is None:
            return self.cli
        id_file = Path(f"{outbox}.agent-id")
        agent_id = id_file.read_text().strip() if id_file.is_file() else ""
        if not agent_id:
            agent_id = f"a-{uuid.uuid4().hex[:12]}"
            id_file.parent.mkdir(parents=True, exist_ok=True)
            id_file.write_text(agent_id + "\n")
        creds = self.authority.ensure_creds(
            self.cli_dir / f"agent-{name}.creds", "agent", f"agent-{name}", agent_id=agent_id
        )
        return msgspec.structs.replace(self.cli, nats_creds=str(creds), api_token=None)

    @property
    def cli_dir(self) -> Path:
        return Path(self.cli.nats_creds or ".").parent


async def _embedded(options: UpOptions, stack: AsyncExitStack) -> Installation:
    """Start the embedded nats-server with this installation's auth; mint what it needs."""
    env_path = options.data_dir / ENV_FILE
    previous = read_env_file(env_path) if env_path.is_file() else {}
    token = previous.get("VIGIL_API_TOKEN") or new_secret()
    authority = Authority(options.data_dir / "auth")
    creds = options.data_dir / "creds"
    manager_creds = authority.ensure_creds(creds / "manager.creds", "manager", "manager")
    cli_creds = authority.ensure_creds(creds / "client.creds", "client", "client")
    admin_creds = authority.ensure_creds(creds / "admin.creds", "admin", "admin")
    authority.ensure_creds(creds / "viewer.creds", "viewer", "viewer")
    include = authority.write_server_auth()
    port = options.nats_port
    if port is None:
        old = previous.get("VIGIL_NATS_URL", "").split(",")[0].rpartition(":")[2]
        for candidate in (int(old) if old.isdigit() else 0, 4222):
            if candidate and _port_free("127.0.0.1", candidate):
                port = candidate
                break
    sync = os.environ.get("VIGIL_NATS_SYNC_INTERVAL", "always")
    if options.cluster > 1:
        ports = [port or free_port(), *(free_port() for _ in range(options.cluster - 1))]
        cluster = EmbeddedCluster(options.data_dir / "nats", options.cluster, ports=ports,
                                  auth_include=include, sync_interval=sync, tls=options.tls)  # fmt: skip
        await stack.enter_async_context(cluster)
        for server in cluster.servers:
            log.info("nats-server %s (cluster member) listening on 127.0.0.1:%d (store %s)",
                     server.pid, server.port, server.store_dir)  # fmt: skip
        url = cluster.url
    else:
        server = EmbeddedNats(options.data_dir / "nats", port=port, auth_include=include,
                              sync_interval=sync, tls=options.tls)  # fmt: skip
        await stack.enter_async_context(server)
        log.info("nats-server %s listening on 127.0.0.1:%d (store %s)", server.pid, server.port,
                 server.store_dir)  # fmt: skip
        url = server.url
    ca = str((options.tls.ca or options.tls.cert).resolve()) if options.tls else None
    cli = ClientSettings(nats_url=url, nats_creds=str(cli_creds), api_token=token,
                         http=options.http, tls_ca=ca)  # fmt: skip
    manager = msgspec.structs.replace(cli, nats_creds=str(manager_creds))
    env = {
        "VIGIL_NATS_URL": url,
        "VIGIL_NATS_CREDS": str(cli_creds.resolve()),
        "VIGIL_ADMIN_CREDS": str(admin_creds.resolve()),
        "VIGIL_API_TOKEN": token,
        "VIGIL_HTTP": options.http,
    }
    if ca:
        env["VIGIL_NATS_TLS_CA"] = ca
    return Installation(manager, cli, authority, env)


def _external(options: UpOptions) -> Installation:
    """``--nats-url``: an existing NATS; identities come from the environment (VIGIL_NATS_*)."""
    given = load_client_settings(nats_url=options.nats_url)
    cli = msgspec.structs.replace(given, api_token=given.api_token or new_secret(),
                                  http=options.http)  # fmt: skip
    env = {"VIGIL_NATS_URL": cli.nats_url, "VIGIL_API_TOKEN": cli.api_token or "",
           "VIGIL_HTTP": options.http}  # fmt: skip
    if cli.nats_creds:
        env["VIGIL_NATS_CREDS"] = cli.nats_creds
    return Installation(cli, cli, None, env)


async def run_up(options: UpOptions, extras: list[ExtraPart] | None = None) -> None:
    stop = _stop_event()
    async with AsyncExitStack() as stack:
        stack.enter_context(DataDirLock(options.data_dir))
        if options.nats_url:
            install = _external(options)
        else:
            install = await _embedded(options, stack)
        settings = load_manager_settings()
        pin = options.data_dir / "log-id"  # this installation's event log (ops.runtime.logid)
        if pin.is_file() and settings.expected_log_id is None:
            settings = msgspec.structs.replace(settings, expected_log_id=pin.read_text().strip())
        if options.demo:  # the demo's generated clips are files: their directory is a media root
            demo = str((options.data_dir / "demo").resolve())
            settings = msgspec.structs.replace(settings, media_roots=(*settings.media_roots, demo))
        if settings.autoscale_dir is None:  # agents the autoscaler launches live in the data dir
            autoscale = str((options.data_dir / "autoscale").resolve())
            settings = msgspec.structs.replace(settings, autoscale_dir=autoscale)
        identity = install.agent_settings if install.authority is not None else None
        if options.cluster > 1:
            settings = msgspec.structs.replace(settings, replicas=min(options.cluster, 5))
        manager = await stack.enter_async_context(Manager(install.manager, settings,
                                                          agent_identity=identity,
                                                          stop_launched=True))  # fmt: skip
        for _ in range(options.managers - 1):  # more managers: standbys for the master role
            await stack.enter_async_context(Manager(install.manager, settings,
                                                    agent_identity=identity, stop_launched=True))  # fmt: skip
        if not pin.is_file() and manager.log_identity.log_id:
            pin.write_text(manager.log_identity.log_id + "\n")
        auth = http_auth(settings, install.cli.api_token, options.http, options.data_dir)
        url = await stack.enter_async_context(serve_http(manager, options.http, auth, options.tls))
        ctx = UpContext(options, install, manager, stack, settings)
        for part in extras or []:
            await part(ctx)
        write_env_file(options.data_dir / ENV_FILE, install.env)
        print(f"vigil is up: dashboard and API at {url}/  (settings in {options.data_dir / ENV_FILE})",
              flush=True)  # fmt: skip
        print("Ctrl-C stops everything.", flush=True)
        await stop.wait()
        print("stopping...", flush=True)
    print("stopped.", flush=True)


async def run_manager(client: ClientSettings, http: str | None, role: Role | None = None) -> None:
    stop = _stop_event()
    async with AsyncExitStack() as stack:
        settings = load_manager_settings()
        if role is not None:
            settings = msgspec.structs.replace(settings, role=role)
        manager = await stack.enter_async_context(Manager(client, settings))
        if http:
            auth = http_auth(settings, client.api_token, http)
            url = await stack.enter_async_context(serve_http(manager, http, auth))
            print(f"manager {manager.manager_id} serving {url}/", flush=True)
        else:
            print(f"manager {manager.manager_id} running", flush=True)
        await stop.wait()
