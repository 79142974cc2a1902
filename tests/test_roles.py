"""Manager roles: a fleet may run its master apart from the managers that answer commands
(``VIGIL_ROLE`` / ``vigil manager --role``). The split changes who does what, never what
happens: the example third-party agent runs a stream to ``done`` through a ``commands``
manager while a ``master`` manager places it."""

from __future__ import annotations

from pathlib import Path

from nats.aio.client import Client

from ops.api import requests as R
from ops.runtime.manager import Manager
from ops.runtime.natsd import EmbeddedNats
from ops.settings import ClientSettings, ManagerSettings
from tests.helpers import LOOPBACK_OK, eventually, example_agent, ok, stream_done


async def test_a_master_apart_from_the_command_path(
    nats_server: EmbeddedNats, nc: Client, tmp_path: Path
) -> None:
    client = ClientSettings(nats_url=nats_server.url)
    commands = ManagerSettings(**LOOPBACK_OK, master_tick_s=0.1, role="commands")
    master = ManagerSettings(**LOOPBACK_OK, master_tick_s=0.1, role="master")
    async with Manager(client, commands) as c, Manager(client, master) as m:
        await eventually(
            lambda: m.master.is_master, timeout=30, what="the master-role manager leads"
        )
        assert "master" not in c.supervisor.report() and "feedback" not in m.supervisor.report()
        view = await ok(nc, "master.get", {})  # answered by the commands manager
        assert view["manager_id"] == m.manager_id and view["this_manager"]["role"] == "commands"
        assert m.master.this_manager().role == "master"
        async with example_agent(nats_server.url, tmp_path / "state.json"):
            await eventually(lambda: len(c.agents.active()) == 1 and len(m.agents.active()) == 1,
                             timeout=30, what="the agent registered (both managers see it)")  # fmt: skip
            await eventually(lambda: len(m.heartbeats.last) == 1, timeout=30,
                             what="the master-role manager hears the agent's heartbeats")  # fmt: skip
            view = await ok(nc, "stream.create", {
                "source": {"url": "rtsp://camera-1/live"}, "analytics": [{"name": "frame_counter"}]})  # fmt: skip
            await stream_done(nc, view["stream_id"])
        # who did what: the commands manager answered and counted, the master placed
        assert c.router.counts.get("stream.create.ok") == 1
        assert not any(k.startswith("stream.create") for k in m.router.counts)
        assert c.feedback.counts["applied"] == 2 and not m.feedback.counts
        assert m.master.decisions >= 1 and c.master.decisions == 0 and not c.master.is_master
        # the master heard the agent's heartbeats (it downgrades on them), and both managers
        # forgot them once it deregistered (through the other one)
        await eventually(lambda: not m.heartbeats.last and not c.heartbeats.last, timeout=30,
                         what="both managers forgot the deregistered agent's heartbeats")  # fmt: skip
        assert (await m.router.call("stream.get", R.GetStreamReq(view["stream_id"]))).code is None
