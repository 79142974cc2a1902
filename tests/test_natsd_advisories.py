"""The embedded nats-server's advisory configuration: managers hear agents' connections close,
and a store written before accounts existed keeps its data."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats

from ops.runtime.natsd import EmbeddedNats
from tests.helpers import eventually


async def test_a_closed_connection_is_reported_to_clients_of_the_account(tmp_path: Path) -> None:
    async with EmbeddedNats(tmp_path / "n", user="vigil", password="s3cret") as server:
        nc = await nats.connect(server.url)
        seen: list[bytes] = []

        async def on(msg: nats.aio.msg.Msg) -> None:
            seen.append(msg.data)

        await nc.subscribe("$SYS.ACCOUNT.*.DISCONNECT", cb=on)
        await nc.flush()
        agent = await nats.connect(server.url, name="vigil-agent-prim")
        await agent.close()
        await eventually(lambda: any(b'"vigil-agent-prim"' in d for d in seen), what="advisory")
        # JetStream works in the account, and the credentials are required.
        await nc.jetstream().add_stream(name="T", subjects=["t"])
        try:
            await nats.connect(server.url.replace("s3cret", "wrong"), max_reconnect_attempts=0,
                               allow_reconnect=False, connect_timeout=2)  # fmt: skip
        except Exception as exc:  # nats-py raises its auth error (or closes) here
            assert "authorization" in str(exc).lower() or isinstance(exc, asyncio.TimeoutError)
        else:  # pragma: no cover
            raise AssertionError("a wrong password was accepted")
        await nc.close()


async def test_a_store_from_before_the_accounts_keeps_its_streams(tmp_path: Path) -> None:
    store = tmp_path / "n"
    async with EmbeddedNats(store, advisories=False) as old:
        nc = await nats.connect(old.url)
        await nc.jetstream().add_stream(name="VIGIL_EVENTS", subjects=["vigil.evt.>"])
        for _ in range(3):
            await nc.jetstream().publish("vigil.evt.x", b"{}")
        await nc.close()
    async with EmbeddedNats(store) as new:
        nc = await nats.connect(new.url)
        info = await nc.jetstream().stream_info("VIGIL_EVENTS")
        assert info.state.messages == 3
        await nc.close()
