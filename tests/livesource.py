"""Live video sources for tests: Debian's ffmpeg serving MPEG-TS over HTTP or TCP, and an RTSP
server run by Debian's own python3 with GStreamer, plus helpers to wait on conditions.

A missing system tool fails the test with the command that installs it (never a skip).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

import pytest

from analytics.counters import StreamCounters
from analytics.records import AnalysisRecord
from analytics.types import Report
from analytics.worker import Outcome, StreamJob, run_stream

__all__ = [
    "FfmpegSource",
    "ReportLog",
    "RtspServer",
    "RunningStream",
    "free_port",
    "require_tool",
    "wait_for",
]

_RTSP_SERVER = r"""
import sys
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer

port, path = sys.argv[1], sys.argv[2]
Gst.init(None)
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(
    f"( filesrc location={path} ! tsdemux ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )"
)
factory.set_shared(True)
server.get_mount_points().add_factory("/x", factory)
server.attach(None)
print("ready", flush=True)
GLib.MainLoop().run()
"""


def require_tool(name: str, install: str) -> str:
    """The path of ``name``, or fail the test saying how to install it."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is required by this test and missing: run `{install}`")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``condition`` until true; fail with ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.02)


class ReportLog:
    """A thread-safe ``on_report`` callback that keeps every report with its arrival time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: list[tuple[float, Report]] = []

    def __call__(self, report: Report) -> None:
        with self._lock:
            self.items.append((time.monotonic(), report))

    def of(self, *kinds: str) -> list[Report]:
        with self._lock:
            return [r for _, r in self.items if r.kind in kinds]

    def count(self, *kinds: str) -> int:
        return len(self.of(*kinds))


class FfmpegSource:
    """``ffmpeg -re -stream_loop -1 -i clip -c copy -f mpegts`` listening for one client (HTTP,
    TCP) or sending to ``udp://127.0.0.1:<port>``."""

    def __init__(
        self, clip: Path, protocol: Literal["http", "tcp", "udp"] = "http", port: int = 0
    ) -> None:
        self.binary = require_tool("ffmpeg", "apt-get install -y ffmpeg")
        self.clip = clip
        self.protocol = protocol
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.protocol == "http":
            return f"http://127.0.0.1:{self.port}/x.ts"
        return f"{self.protocol}://127.0.0.1:{self.port}"

    def start(self) -> None:
        target = {
            "http": self.url,
            "tcp": f"{self.url}?listen=1",
            "udp": f"{self.url}?pkt_size=1316",
        }[self.protocol]
        args = [self.binary, "-hide_banner", "-loglevel", "error", "-nostdin", "-re"]
        args += ["-stream_loop", "-1", "-i", str(self.clip), "-c", "copy", "-f", "mpegts"]
        args += ["-listen", "1", target] if self.protocol == "http" else [target]
        # UDP: ffmpeg sends whether or not anyone listens; the reader binds the port.
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(5)
            self.process = None

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): the connection stays open but no data flows."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGCONT)
        self.kill()


class RtspServer:
    """GStreamer's RTSP server (Debian python3 + gir1.2-gst-rtsp-server-1.0) playing ``clip``
    (an MPEG-TS file) at ``rtsp://127.0.0.1:<port>/x``, shared by its clients."""

    def __init__(self, clip: Path, port: int = 0) -> None:
        self.clip = clip
        self.port = port or free_port()
        self.process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/x"

    def start(self) -> None:
        python = "/usr/bin/python3"
        install = (
            "apt-get install -y python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-bad"
        )
        if not os.path.exists(python):
            pytest.fail(f"Debian's python3 is required: run `{install}`")
        self.process = subprocess.Popen(
            [python, "-c", _RTSP_SERVER, str(self.port), str(self.clip)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if line.strip() != "ready":
            _, err = self.process.communicate(timeout=5)
            pytest.fail(f"RTSP server did not start ({err.strip()[-400:]}); run `{install}`")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(5)
            self.process = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.kill()


class RunningStream:
    """``run_stream`` in a thread with its reports, records and counters at hand."""

    def __init__(self, job: StreamJob) -> None:
        self.job = job
        self.stop_event = threading.Event()
        self.counters = StreamCounters()
        self.reports = ReportLog()
        self.records: list[AnalysisRecord] = []
        self.outcome: Outcome | None = None
        self._thread = threading.Thread(target=self._run, name=f"test:{job.stream_id}", daemon=True)

    def _run(self) -> None:
        self.outcome = run_stream(
            self.job, self.stop_event, self.counters, self.reports, self.records.append
        )

    def analysed(self) -> int:
        return self.counters.totals().frames_analysed

    def stop(self, timeout_s: float = 15.0) -> Outcome:
        self.stop_event.set()
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "run_stream did not return after stop"
        assert self.outcome is not None
        return self.outcome

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._thread.is_alive():
            self.stop()
