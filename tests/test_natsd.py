from __future__ import annotations

import socket
from pathlib import Path

import pytest

from ops.runtime.natsd import EmbeddedNats, NatsServerError


async def test_embedded_server_accepts_jetstream_and_stops(tmp_path: Path) -> None:
    import nats

    async with EmbeddedNats(tmp_path / "n") as server:
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await js.add_stream(name="T", subjects=["t.>"])
        ack = await js.publish("t.x", b"1")
        assert ack.seq == 1
        await nc.close()
        port = server.port
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()


def test_start_failure_is_reported(tmp_path: Path) -> None:
    with EmbeddedNats(tmp_path / "a") as first:
        clash = EmbeddedNats(tmp_path / "b", port=first.port, startup_timeout=5)
        with pytest.raises(NatsServerError):
            clash.start()
