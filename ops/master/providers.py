"""Providers: what actually starts and stops agents for the autoscaler, behind one interface.

::

    Provider.launch(LaunchSpec) -> detail       start one agent (idempotent per launch id)
    Provider.remove(RemoveSpec) -> detail       stop one drained agent (idempotent)
    Provider.cancel(LaunchSpec)                 a launch that missed its deadline: stop it

- ``local`` (`LocalProvider`): spawns ``vigil agent`` processes on this host, each in its own
  directory under the autoscale directory (outbox, identity file, ``agent.pid``, ``agent.log``),
  in its own session (they outlive the manager: they are the fleet). With an installation
  authority each gets its own NATS identity. The launched process writes ``agent.pid`` itself
  before it becomes the agent, and a launch whose ``agent.pid`` names a live ``vigil agent --name
  <its name>`` is not started again — and the agent's outbox is locked, so a second process on
  it could not run anyway: a master that dies after spawning never launches twice.
- ``command`` (`CommandProvider`): runs shell commands configured on the managers (never sent
  over the API), e.g. ``kubectl scale``; placeholders ``{group}``, ``{agent_name}``,
  ``{launch_id}``, ``{target}``, ``{count}``, ``{region}``, ``{capacity}``, ``{agent_id}`` are
  shell-quoted, and the same values are in the environment as ``VIGIL_SCALE_*``. A command
  should be idempotent per launch id (``--replicas={target}`` is): after a master failover a
  launch the old master did not record as started is run again.

Errors: ``ProviderError`` (its message is recorded as the launch's failure).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Protocol

import msgspec
import psutil

from core.scaleconfig import LaunchConfig
from core.sources import SourcePolicy
from ops.settings import ClientSettings

__all__ = [
    "CommandProvider",
    "CommandSet",
    "LaunchSpec",
    "LocalProvider",
    "Provider",
    "ProviderError",
    "Providers",
    "RemoveSpec",
    "load_commands",
]

log = logging.getLogger(__name__)

Identity = Callable[[str, Path], ClientSettings]
"""Connection settings (its own credentials) for a local agent of that name and outbox."""


class ProviderError(Exception):
    """A provider could not do it; the message says why (it becomes the launch's failure)."""


class LaunchSpec(msgspec.Struct, frozen=True, kw_only=True):
    launch_id: str
    group: str
    agent_name: str
    config: LaunchConfig
    region: str | None = None
    target: int = 1


class RemoveSpec(msgspec.Struct, frozen=True, kw_only=True):
    group: str
    agent_id: str
    agent_name: str
    launch_id: str | None
    config: LaunchConfig | None
    target: int = 0


class Provider(Protocol):
    async def launch(self, spec: LaunchSpec) -> str: ...
    async def remove(self, spec: RemoveSpec) -> str: ...
    async def cancel(self, spec: LaunchSpec) -> None: ...


# ---- local -----------------------------------------------------------------------------------


def vigil_command() -> list[str]:
    """How to run ``vigil`` from this interpreter: its console script, else ``-m``."""
    script = Path(sys.executable).parent / "vigil"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "ops.cli.main"]


def _pid_of(path: Path, name: str) -> int | None:
    """The pid in ``path`` if it is a live ``vigil agent --name <name>``."""
    try:
        pid = int(path.read_text().strip())
        proc = psutil.Process(pid)
        cmdline = proc.cmdline()
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
    except (OSError, ValueError, psutil.Error):
        return None
    if "agent" in cmdline and name in cmdline:
        return pid
    return None


_PIDFILE_THEN_EXEC = 'echo $$ > "$1.tmp" && mv -f "$1.tmp" "$1" && shift && exec "$@"'
"""``sh -c`` script: ``$1`` is the pid file, the rest the agent's argv."""


class LocalProvider:
    """``vigil agent`` processes on this host, one directory each under ``root``."""

    def __init__(self, root: Path, client: ClientSettings, *, identity: Identity | None = None,
                 sources: SourcePolicy | None = None, command: list[str] | None = None,
                 stop_on_close: bool = False) -> None:  # fmt: skip
        self.root = root
        self.client = client
        self.identity = identity
        self.sources = sources or SourcePolicy()
        self.command = command or vigil_command()
        self.stop_on_close = stop_on_close
        self.children: dict[str, subprocess.Popen[bytes]] = {}

    def dir_of(self, name: str) -> Path:
        return self.root / name

    def pid_of(self, name: str) -> int | None:
        return _pid_of(self.dir_of(name) / "agent.pid", name)

    def _argv(self, spec: LaunchSpec, outbox: Path) -> list[str]:
        c = spec.config
        argv = [*self.command, "agent", "--name", spec.agent_name, "--capacity", str(c.capacity),
                "--group", spec.group, "--outbox", str(outbox)]  # fmt: skip
        labels = dict(c.labels)
        if spec.region is not None:
            labels.setdefault("region", spec.region)
        for k, v in sorted(labels.items()):
            argv += ["--label", f"{k}={v}"]
        for a in c.analytics:
            argv += ["--analytic", a]
        for root in self.sources.media_roots:
            argv += ["--media-root", root]
        for root in self.sources.spool_roots:
            argv += ["--spool-root", root]
        for host in self.sources.allow_hosts:
            argv += ["--allow-host", host]
        return argv

    def _env(self, settings: ClientSettings, home: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
        env["VIGIL_NATS_URL"] = settings.nats_url
        env["VIGIL_DATA_DIR"] = str(home)
        for key, value in (("VIGIL_NATS_CREDS", settings.nats_creds),
                           ("VIGIL_NATS_USER", settings.nats_user),
                           ("VIGIL_NATS_PASSWORD", settings.nats_password),
                           ("VIGIL_NATS_TLS_CA", settings.tls_ca)):  # fmt: skip
            if value:
                env[key] = value
        return env

    def _spawn(self, spec: LaunchSpec) -> str:
        home = self.dir_of(spec.agent_name)
        home.mkdir(parents=True, exist_ok=True)
        pid_file = home / "agent.pid"
        running = _pid_of(pid_file, spec.agent_name)
        if running is not None:
            return f"already running (pid {running})"
        outbox = home / "outbox.db"
        settings = self.client
        if self.identity is not None:
            settings = self.identity(spec.agent_name, outbox)
        else:
            settings = msgspec.structs.replace(settings, nats_creds=None, api_token=None)
        # The child writes its own pid file, then becomes the agent (same pid): a master killed
        # right after the fork still leaves the pid file that keeps the next master from
        # starting the launch a second time.
        argv = ["/bin/sh", "-c", _PIDFILE_THEN_EXEC, "vigil-launch", str(pid_file),
                *self._argv(spec, outbox)]  # fmt: skip
        with open(home / "agent.log", "ab") as out:
            proc = subprocess.Popen(
                argv, cwd=home, env=self._env(settings, home), stdout=out,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        self.children[spec.agent_name] = proc
        return f"pid {proc.pid} (log {home / 'agent.log'})"

    async def launch(self, spec: LaunchSpec) -> str:
        self.reap()
        try:
            return await asyncio.to_thread(self._spawn, spec)
        except OSError as exc:
            raise ProviderError(f"cannot start vigil agent: {exc}") from None

    async def _stop(self, name: str, grace_s: float) -> str:
        pid = self.pid_of(name)
        if pid is None:
            return "not running"
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            self.reap()
            if self.pid_of(name) is None:
                return f"stopped (pid {pid})"
            await asyncio.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        self.reap()
        return f"killed (pid {pid}) after {grace_s:g}s"

    async def remove(self, spec: RemoveSpec) -> str:
        return await self._stop(spec.agent_name, 15.0)

    async def cancel(self, spec: LaunchSpec) -> None:
        await self._stop(spec.agent_name, 2.0)

    def reap(self) -> None:
        """Collect the exit status of children that ended (no zombies)."""
        for name, proc in list(self.children.items()):
            if proc.poll() is not None:
                del self.children[name]

    def close(self) -> None:
        """With ``stop_on_close``: stop the agents this process started (``vigil up``, tests)."""
        if not self.stop_on_close:
            return
        for proc in self.children.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.children.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.children.clear()


# ---- command ---------------------------------------------------------------------------------


class CommandSet(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One command provider, as configured on the managers."""

    add: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]
    """Start one agent; ``{target}`` is the group's agent count with it."""
    remove: Annotated[str, msgspec.Meta(max_length=4096)] = ""
    """Stop one drained agent (``{agent_name}``, ``{agent_id}``; ``{target}`` without it)."""
    cancel: Annotated[str, msgspec.Meta(max_length=4096)] = ""
    """A launch that never registered (default: nothing)."""
    timeout_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 120.0


class _CommandsFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    commands: dict[str, CommandSet] = {}


def load_commands(path: str | None) -> dict[str, CommandSet]:
    """The command providers of a TOML file (``[commands.<name>]`` tables); {} without one."""
    if not path:
        return {}
    try:
        raw = tomllib.loads(Path(path).read_text())
        return dict(msgspec.convert(raw, _CommandsFile).commands)
    except (OSError, tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
        raise SystemExit(f"invalid scale commands file {path}: {exc}") from None


def _tail(data: bytes, n: int = 400) -> str:
    text = data.decode(errors="replace").strip()
    return text[-n:]


class CommandProvider:
    def __init__(self, commands: Mapping[str, CommandSet], client: ClientSettings) -> None:
        self.commands = dict(commands)
        self.client = client

    def _set(self, config: LaunchConfig | None) -> CommandSet:
        name = config.command if config is not None else None
        found = self.commands.get(name or "")
        if found is None:
            raise ProviderError(f"no command {name!r} is configured on this manager")
        return found

    async def _run(self, template: str, values: dict[str, str], timeout_s: float) -> str:
        quoted = {k: shlex.quote(v) for k, v in values.items()}
        try:
            line = template.format_map(quoted)
        except (KeyError, ValueError, IndexError) as exc:
            raise ProviderError(f"bad command template {template!r}: {exc!r}") from None
        env = dict(os.environ)
        env.update({f"VIGIL_SCALE_{k.upper()}": v for k, v in values.items()})
        env["VIGIL_NATS_URL"] = self.client.nats_url
        proc = await asyncio.create_subprocess_shell(
            line, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            raise ProviderError(f"command timed out after {timeout_s:g}s: {line}") from None
        if proc.returncode != 0:
            raise ProviderError(f"command exited {proc.returncode}: {line}: {_tail(out)}")
        return f"{line}: {_tail(out, 200) or 'ok'}"

    @staticmethod
    def _values(group: str, agent_name: str, launch_id: str | None, target: int,
                region: str | None, capacity: int, agent_id: str = "") -> dict[str, str]:  # fmt: skip
        return {"group": group, "agent_name": agent_name, "launch_id": launch_id or "",
                "target": str(target), "count": "1", "region": region or "",
                "capacity": str(capacity), "agent_id": agent_id}  # fmt: skip

    async def launch(self, spec: LaunchSpec) -> str:
        cs = self._set(spec.config)
        values = self._values(spec.group, spec.agent_name, spec.launch_id, spec.target,
                              spec.region, spec.config.capacity)  # fmt: skip
        return await self._run(cs.add, values, cs.timeout_s)

    async def remove(self, spec: RemoveSpec) -> str:
        cs = self._set(spec.config)
        if not cs.remove:
            raise ProviderError(f"command {spec.config and spec.config.command} has no remove")
        values = self._values(spec.group, spec.agent_name, spec.launch_id, spec.target, None,
                              spec.config.capacity if spec.config else 0, spec.agent_id)  # fmt: skip
        return await self._run(cs.remove, values, cs.timeout_s)

    async def cancel(self, spec: LaunchSpec) -> None:
        cs = self._set(spec.config)
        if cs.cancel:
            values = self._values(spec.group, spec.agent_name, spec.launch_id, spec.target,
                                  spec.region, spec.config.capacity)  # fmt: skip
            await self._run(cs.cancel, values, cs.timeout_s)


class Providers:
    """The providers of one manager, by kind."""

    def __init__(self, local: LocalProvider, command: CommandProvider) -> None:
        self.local = local
        self.command = command

    def of(self, config: LaunchConfig | None) -> Provider:
        if config is not None and config.provider == "command":
            return self.command
        return self.local

    def close(self) -> None:
        self.local.close()
