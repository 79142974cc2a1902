"""The embedded nats-server's advisory configuration: managers hear agents' connections close,
and a store written before accounts existed keeps its data."""

from __future__ import annotations

from pathlib import Path

import nats

from events.connection import connect
from ops.runtime.natsd import EmbeddedNats
from ops.security.authority import Authority
from ops.settings import ClientSettings
from tests.helpers import eventually


async def test_a_closed_connection_is_reported_to_clients_of_the_account(tmp_path: Path) -> None:
    async with EmbeddedNats(tmp_path / "n") as server:
        nc = await nats.connect(server.url)
        seen: list[bytes] = []

        async def on(msg: nats.aio.msg.Msg) -> None:
            seen.append(msg.data)

        await nc.subscribe("$SYS.ACCOUNT.*.DISCONNECT", cb=on)
        await nc.flush()
        agent = await nats.connect(server.url, name="vigil-agent-prim")
        await agent.close()
        await eventually(lambda: any(b'"vigil-agent-prim"' in d for d in seen), what="advisory")
        await nc.jetstream().add_stream(name="T", subjects=["t"])  # JetStream in the account
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


async def test_with_the_installations_auth_managers_hear_an_agent_connection_close(
    tmp_path: Path,
) -> None:
    """Decentralised auth (``ops.security``): the system account exports the vigil account's
    advisories in its JWT and the vigil account imports them; a manager identity sees them."""
    authority = Authority(tmp_path / "auth")
    include = authority.write_server_auth()
    async with EmbeddedNats(tmp_path / "nats", auth_include=include) as server:
        creds = tmp_path / "creds"
        manager = authority.ensure_creds(creds / "manager.creds", "manager", "manager")
        agent = authority.ensure_creds(creds / "a.creds", "agent", "agent-a", agent_id="a-1")
        nc = await connect(ClientSettings(nats_url=server.url, nats_creds=str(manager)),
                           name="vigil-manager-x")  # fmt: skip
        seen: list[bytes] = []

        async def on(msg: nats.aio.msg.Msg) -> None:
            seen.append(msg.data)

        await nc.subscribe("$SYS.ACCOUNT.*.DISCONNECT", cb=on)
        await nc.flush()
        a = await connect(ClientSettings(nats_url=server.url, nats_creds=str(agent)),
                          name="vigil-agent-edge-7")  # fmt: skip
        await a.close()
        await eventually(lambda: any(b'"vigil-agent-edge-7"' in d for d in seen), what="advisory")
        await nc.close()
