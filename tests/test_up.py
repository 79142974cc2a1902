"""`vigil up` as a user runs it: a real process, the CLI from another 'terminal', Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil

from ops.runtime.natsd import free_port

VIGIL = str(Path(sys.executable).parent / "vigil")


def _get(url: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else b""
        try:
            if _get(url)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready within {timeout}s")


def _up(tmp_path: Path, http: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [VIGIL, "up", "--data-dir", str(tmp_path / ".vigil"), "--http", http, "--agents", "0",
         "--nats-port", str(free_port())],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip


def _cli(tmp_path: Path, *args: str) -> dict:  # type: ignore[type-arg]
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    out = subprocess.run([VIGIL, *args, "--json"], cwd=tmp_path, env=env, capture_output=True,
                         check=True, timeout=30)  # fmt: skip
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def _stop(proc: subprocess.Popen[bytes]) -> list[int]:
    children = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)
    return children


def test_up_serves_cli_and_http_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    http = f"127.0.0.1:{free_port()}"
    proc = _up(tmp_path, http)
    try:
        _wait_ready(f"http://{http}/readyz", proc)
        env_file = tmp_path / ".vigil" / "vigil.env"
        assert oct(env_file.stat().st_mode & 0o777) == "0o600"
        assert "VIGIL_API_TOKEN=" in env_file.read_text()
        view = _cli(tmp_path, "stream", "create", "--source", "file:///tmp/x.mp4", "--kind", "file",
                    "--spool", f"directory:{tmp_path}/records", "--max-attempts", "9",
                    "--restart-delay", "1.5", "--staleness", "42", "--no-autorestart")  # fmt: skip
        assert view["status"] == "pending"
        assert view["spool"] == {"type": "directory", "url": None, "path": f"{tmp_path}/records"}
        assert view["autorestart"]["max_attempts"] == 9 and view["autorestart"]["delay_s"] == 1.5
        assert view["autorestart"]["enabled"] is False and view["staleness_s"] == 42
        status, body = _get(f"http://{http}/api/v1/streams/{view['stream_id']}")
        assert status == 200 and body["result"] == view

        # A second `vigil up` on the same data dir is refused at once, and changes nothing.
        before = env_file.read_bytes()
        second = subprocess.run(
            [VIGIL, "up", "--data-dir", str(tmp_path / ".vigil"), "--http",
             f"127.0.0.1:{free_port()}", "--agents", "0"],
            cwd=tmp_path, capture_output=True, timeout=60,
        )  # fmt: skip
        assert second.returncode != 0
        assert b"in use by another `vigil up`" in second.stderr, second.stderr
        assert env_file.read_bytes() == before
        assert proc.poll() is None
        listed = _cli(tmp_path, "stream", "list")
        assert [s["stream_id"] for s in listed["streams"]] == [view["stream_id"]]
    finally:
        children = _stop(proc)
    assert proc.returncode == 0
    assert children, "vigil up should have started nats-server"
    assert not any(
        psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie" for pid in children
    )

    # Restart on the same data dir: the same streams, rebuilt from events alone.
    proc = _up(tmp_path, http)
    try:
        _wait_ready(f"http://{http}/readyz", proc)
        listed = _cli(tmp_path, "stream", "list")
        assert [s["stream_id"] for s in listed["streams"]] == [view["stream_id"]]
    finally:
        _stop(proc)


def test_a_killed_vigil_up_leaves_no_nats_server_behind(tmp_path: Path) -> None:
    http = f"127.0.0.1:{free_port()}"
    proc = _up(tmp_path, http)
    _wait_ready(f"http://{http}/readyz", proc)
    children = psutil.Process(proc.pid).children(recursive=True)
    assert any("nats-server" in c.name() for c in children)
    proc.kill()  # a crash: no cleanup code runs in the parent
    proc.wait(timeout=10)
    _gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"orphans left: {[(p.pid, p.name()) for p in alive]}"
