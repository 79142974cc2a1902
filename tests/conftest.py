"""Shared fixtures: a real nats-server per test on a free loopback port with a temporary store."""

from __future__ import annotations

import faulthandler
import os
import sys
import threading
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client

from ops.runtime.natsd import EmbeddedNats

HANG_S = 420.0
"""A test whose setup, call and teardown together run longer than this hangs somewhere
pytest-timeout cannot reach (a timeout raised into the wrong frame, a teardown stuck behind a
busy loop): every thread's stack is printed and the run ends, so CI fails in minutes with the
place of the hang instead of running into its own limit."""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, None, None]:
    def hung() -> None:
        sys.stderr.write(f"\n{item.nodeid} still runs after {HANG_S:.0f} s: stacks, then exit\n")
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        sys.stderr.flush()
        os._exit(70)

    watchdog = threading.Timer(HANG_S, hung)
    watchdog.daemon = True
    watchdog.start()
    try:
        yield
    finally:
        watchdog.cancel()


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EmbeddedNats]:
    """A running nats-server with JetStream, stopped after the test."""
    server = EmbeddedNats(tmp_path / "nats")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def nc(nats_server: EmbeddedNats) -> AsyncIterator[Client]:
    """A client connected to `nats_server`."""
    client = await nats.connect(nats_server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    try:
        yield client
    finally:
        await client.close()
