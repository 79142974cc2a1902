"""The CLI reads well: every command has examples in --help, --data-dir and (where it prints a
result) --json; --version; tables fit the terminal; `stream get` reads as text; `agent list|get`
and `master`; a wrong password says so (not "is vigil up running?"); agents log JSON lines with
their agent and stream ids, and a camera that refuses the connection is a WARNING saying so."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import click
import orjson
import pytest
from click.testing import CliRunner
from nats.aio.client import Client

from ops.cli.main import main
from ops.runtime.manager import Manager
from ops.runtime.natsd import EmbeddedNats, find_nats_server, free_port
from ops.settings import ClientSettings, ManagerSettings
from tests.helpers import LOOPBACK_OK, eventually, ok

VIGIL = str(Path(sys.executable).parent / "vigil")
RUNNERS = {"up", "manager", "agent"}  # processes: they run until Ctrl-C
NO_JSON = RUNNERS | {"events export", "creds server-auth"}  # they write files / config text


def leaves(command: click.Command, path: str = "") -> Iterator[tuple[str, click.Command]]:
    if isinstance(command, click.Group):
        if path:  # a group that runs by itself (vigil agent, vigil alarms) is a command too
            if command.invoke_without_command:
                yield path, command
        for name, sub in command.commands.items():
            yield from leaves(sub, f"{path} {name}".strip())
    else:
        yield path, command


def test_every_command_has_examples_data_dir_and_json() -> None:
    runner = CliRunner()
    commands = dict(leaves(main))
    assert {"agent list", "agent get", "master", "alarms", "group list", "stream get"} <= set(
        commands
    )
    for path, command in commands.items():
        options = {o for p in command.params for o in getattr(p, "opts", ())}
        assert "--data-dir" in options, path
        assert path in NO_JSON or "--json" in options, f"{path} has no --json"
        result = runner.invoke(main, [*path.split(), "--help"], terminal_width=100)
        assert result.exit_code == 0, (path, result.output)
        assert "Example" in result.output, f"no example in `vigil {path} --help`"
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("vigil, version "), result.output


def run(
    args: list[str], env: dict[str, str], cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([VIGIL, *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, check=False)  # fmt: skip


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update(extra)
    return env


def test_wrong_credentials_and_nothing_listening_say_different_things(tmp_path: Path) -> None:
    port = free_port()
    server = subprocess.Popen([str(find_nats_server()), "-a", "127.0.0.1", "-p", str(port),
                               "--user", "vigil", "--pass", "right"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        url = f"nats://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            wrong = run(["stream", "list"], clean_env(VIGIL_NATS_URL=url, VIGIL_NATS_USER="vigil",
                                                       VIGIL_NATS_PASSWORD="wrong",
                                                       VIGIL_DATA_DIR=str(tmp_path)), tmp_path)  # fmt: skip
            if "refused" not in wrong.stderr.split("(")[0] or time.monotonic() > deadline:
                break
        assert wrong.returncode == 3, wrong.stderr
        assert "wrong credentials" in wrong.stderr and "vigil up" not in wrong.stderr, wrong.stderr
    finally:
        server.terminate()
        server.wait(10)
    began = time.monotonic()
    away = run(["stream", "list"], clean_env(VIGIL_NATS_URL=f"nats://127.0.0.1:{free_port()}",
                                             VIGIL_DATA_DIR=str(tmp_path)), tmp_path)  # fmt: skip
    assert away.returncode == 3 and "vigil up" in away.stderr, away.stderr
    assert "wrong credentials" not in away.stderr
    assert time.monotonic() - began < 15, "an unreachable NATS must fail fast"


@pytest.fixture
async def manager(nats_server: EmbeddedNats) -> AsyncIterator[Manager]:
    settings = ManagerSettings(**LOOPBACK_OK, master_tick_s=0.1, heartbeat_interval_s=0.5)
    async with Manager(ClientSettings(nats_url=nats_server.url), settings) as m:
        await eventually(lambda: m.master.is_master, what="master")
        yield m


async def vigil(tmp: Path, *args: str, **env: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(VIGIL, *args, env=clean_env(**env), cwd=tmp,
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_commands_read_well_and_fit_the_terminal(
    manager: Manager, nats_server: EmbeddedNats, nc: Client, tmp_path: Path
) -> None:
    # --data-dir: the settings come from DIR/vigil.env, as a second terminal next to vigil up
    data = tmp_path / "site"
    data.mkdir()
    (data / "vigil.env").write_text(f"VIGIL_NATS_URL={nats_server.url}\n")
    env = {"COLUMNS": "80", "VIGIL_DATA_DIR": str(tmp_path / "elsewhere")}
    long_name = "camera on the north-east corner of the loading dock, second floor, facing the gate"
    sid = (await ok(nc, "stream.create", {"source": {"url": "rtsp://cam-9.example/live"},
                                          "name": long_name, "group": "dock",
                                          "labels": {"floor": "2"}}))["stream_id"]  # fmt: skip
    await ok(nc, "agent.register", {"name": "edge-1", "capacity": 4, "groups": ["yard"]})

    code, out, err = await vigil(tmp_path, "stream", "get", sid, "--data-dir", str(data), **env)
    assert code == 0, err
    assert "None" not in out and "{" not in out and "no agent serves group dock" in out, out
    assert "floor=2" in out and "rtsp://cam-9.example/live (stream)" in out

    code, out, err = await vigil(tmp_path, "stream", "list", "--data-dir", str(data), **env)
    assert code == 0, err
    assert sid in out and max(len(line) for line in out.splitlines()) <= 80, out

    code, out, err = await vigil(tmp_path, "--data-dir", str(data), "agent", "list", **env)
    assert code == 0 and "edge-1" in out, err
    assert max(len(line) for line in out.splitlines()) <= 80, out
    agent_id = (await ok(nc, "agent.list", {}))["agents"][0]["agent_id"]
    code, out, err = await vigil(tmp_path, "agent", "get", agent_id, "--data-dir", str(data), **env)
    assert code == 0 and "edge-1" in out and "streams" in out and "None" not in out, (out, err)

    code, out, err = await vigil(tmp_path, "master", "--data-dir", str(data), **env)
    assert code == 0 and manager.manager_id in out and "epoch" in out, (out, err)
    code, out, err = await vigil(tmp_path, "master", "--json", "--data-dir", str(data), **env)
    assert orjson.loads(out)["manager_id"] == manager.manager_id

    for args in (["stream", "list"], ["agent", "list"], ["group", "list"], ["alarms"], ["nats"]):
        code, out, err = await vigil(tmp_path, *args, "--json", "--data-dir", str(data), **env)
        assert code == 0, (args, err)
        orjson.loads(out)  # JSON, nothing else on stdout


async def test_agents_log_json_lines_with_their_ids_and_say_why_a_camera_failed(
    manager: Manager, nats_server: EmbeddedNats, nc: Client, tmp_path: Path
) -> None:
    closed = free_port()  # nothing listens there: the camera "refuses"
    proc = await asyncio.create_subprocess_exec(
        VIGIL, "--log-format", "json", "agent", "--name", "edge-json", "--capacity", "2",
        "--outbox", str(tmp_path / "edge" / "outbox.db"), "--allow-host", "127.0.0.1",
        env=clean_env(VIGIL_NATS_URL=nats_server.url, VIGIL_DATA_DIR=str(tmp_path / "none")),
        cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)  # fmt: skip
    lines: list[dict[str, Any]] = []

    async def read() -> None:
        assert proc.stderr is not None
        async for raw in proc.stderr:
            lines.append(orjson.loads(raw))  # every line is one JSON object

    reader = asyncio.create_task(read())
    try:
        await eventually(lambda: any("registered" in x["message"] for x in lines), timeout=60,
                         what="the agent registered")  # fmt: skip
        sid = (await ok(nc, "stream.create", {"source": {"url": f"tcp://127.0.0.1:{closed}"},
                                              "kind": "stream"}))["stream_id"]  # fmt: skip

        def warned() -> dict[str, Any] | None:
            return next((x for x in lines if x["level"] == "WARNING" and x.get("stream_id") == sid),
                        None)  # fmt: skip

        warning = await eventually(warned, timeout=60, what="a WARNING about the camera")
        assert warning["cause"] == "refused" and "nothing listens" in warning["message"], warning
        agent_id = warning["agent_id"]
        assert agent_id and agent_id.startswith("a-")
        mine = [x for x in lines if x["logger"].startswith("agent")]
        assert mine and all(x["agent_id"] == agent_id for x in mine), mine
        about_streams = [x for x in mine if sid in x["message"]]
        assert about_streams and all(x["stream_id"] == sid for x in about_streams), about_streams
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)
        reader.cancel()
