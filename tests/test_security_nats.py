"""Roles enforced by the NATS server: an agent's own credentials cannot speak for another agent,
forge events, send commands, delete the log or touch the master lease; a viewer can only read.

A real nats-server runs with the installation's auth (``ops.security``), a real manager with
manager credentials, the reference agent with its own; the hostile client below holds agent
``a-evil``'s credentials."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from agent.runtime import Agent, AgentConfig
from events.connection import connect
from ops.runtime.manager import Manager
from ops.runtime.natsd import EmbeddedNats
from ops.security.authority import Authority
from ops.settings import ClientSettings, ManagerSettings
from tests.helpers import eventually, ok

FAST = ManagerSettings(master_tick_s=0.1, heartbeat_interval_s=0.3, agent_downgrade_s=3)


class Installation:
    def __init__(self, root: Path, server: EmbeddedNats, authority: Authority) -> None:
        self.root, self.server, self.authority = root, server, authority

    def settings(self, role: str, name: str, agent_id: str | None = None) -> ClientSettings:
        creds = self.root / "creds" / f"{name}.creds"
        self.authority.ensure_creds(creds, role, name, agent_id=agent_id)  # type: ignore[arg-type]
        return ClientSettings(nats_url=self.server.url, nats_creds=str(creds))


@pytest.fixture
async def secure(tmp_path: Path) -> AsyncIterator[Installation]:
    authority = Authority(tmp_path / "auth")
    include = authority.write_server_auth()
    async with EmbeddedNats(tmp_path / "nats", auth_include=include) as server:
        yield Installation(tmp_path, server, authority)


async def test_an_agent_identity_cannot_speak_for_another_or_touch_the_system(
    secure: Installation, tmp_path: Path
) -> None:
    async with Manager(secure.settings("manager", "manager"), FAST) as manager:
        admin = await connect(secure.settings("admin", "admin"), name="admin")
        good = secure.settings("agent", "agent-good", agent_id="a-good")
        async with Agent(good, AgentConfig(name="good", outbox=tmp_path / "good" / "o.db",
                                           poll_interval_s=0.5)) as agent:  # fmt: skip
            assert agent.agent_id == "a-good"  # bound to its credentials
            await eventually(lambda: agent.registered.is_set(), what="good agent registered")
            js_admin = admin.jetstream()
            events_before = (await js_admin.stream_info("VIGIL_EVENTS")).state.last_seq
            lease_before = await (await js_admin.key_value("VIGIL_MASTER")).get("lease")

            errors: list[str] = []

            async def on_error(exc: Exception) -> None:
                errors.append(str(exc))

            evil = await connect(secure.settings("agent", "agent-evil", agent_id="a-evil"),
                                 name="evil", error_cb=on_error)  # fmt: skip
            js = evil.jetstream(timeout=1.0)
            forged_fb = json.dumps({"seq": 1, "stream_id": "s-1", "version": 2,
                                    "status": "in_progress", "ts": time.time(),
                                    "stats": {"frames_decoded": 5_000_000}}).encode()  # fmt: skip
            attempts = [
                ("feedback as another agent", js.publish("vigil.feedback.a-good", forged_fb)),
                ("an event", js.publish("vigil.evt.stream.s-1", b'{"type":"StreamDeleted"}')),
                ("delete VIGIL_EVENTS", js.delete_stream("VIGIL_EVENTS")),
                ("purge VIGIL_EVENTS", js.purge_stream("VIGIL_EVENTS")),
                ("touch the master lease", js.key_value("VIGIL_MASTER")),
                ("a command", evil.request("vigil.cmd.stream.list", b"{}", timeout=1.0)),
                ("register as another", evil.request("vigil.agent.a-good.register",
                                                     b'{"name":"x","capacity":1}', timeout=1.0)),
            ]  # fmt: skip
            for what, attempt in attempts:
                with pytest.raises((NatsTimeout, TimeoutError, NoRespondersError)):
                    await attempt
                    pytest.fail(f"the server allowed an agent's identity to send {what}")
            await evil.publish("vigil.agent.a-good.heartbeat", b'{"ts": 1}')
            await evil.flush()
            await eventually(lambda: len(errors) >= 7, what="permission violations reported")
            assert all("permissions violation" in e for e in errors), errors

            # Nothing changed: the log, the lease, the stats, the good agent's heartbeat.
            assert (await js_admin.stream_info("VIGIL_EVENTS")).state.last_seq == events_before
            lease_after = await (await js_admin.key_value("VIGIL_MASTER")).get("lease")
            assert lease_after.value == lease_before.value
            assert not any(day.cells for day in manager.daily_stats.state.days.values())
            assert manager.heartbeats.last["a-good"][1].ts > 1

            # Its own subjects work: it registers as itself (its id comes from the subject).
            reply = await evil.request("vigil.agent.a-evil.register",
                                       b'{"name":"evil","capacity":1}', timeout=5)  # fmt: skip
            assert json.loads(reply.data)["result"]["agent_id"] == "a-evil"
            await evil.close()
        await admin.close()


async def test_a_viewer_reads_but_cannot_change_and_a_client_commands(
    secure: Installation,
) -> None:
    async with Manager(secure.settings("manager", "manager"), FAST):
        viewer = await connect(secure.settings("viewer", "viewer"), name="viewer",
                               error_cb=_ignore)  # fmt: skip
        client = await connect(secure.settings("client", "client"), name="client")
        created = json.loads((await client.request(
            "vigil.cmd.stream.create", b'{"source": {"url": "rtsp://cam.example/1"}}', timeout=5
        )).data)  # fmt: skip
        assert created["ok"], created
        listed = json.loads((await viewer.request("vigil.cmd.stream.list", b"{}", timeout=5)).data)
        assert [s["stream_id"] for s in listed["result"]["streams"]] == [
            created["result"]["stream_id"]
        ]
        with pytest.raises((NatsTimeout, NoRespondersError)):
            await viewer.request("vigil.cmd.stream.delete",
                                 json.dumps({"stream_id": created["result"]["stream_id"]}).encode(),
                                 timeout=1.0)  # fmt: skip
        still = await ok(client, "stream.get", {"stream_id": created["result"]["stream_id"]})
        assert still["status"] == "pending"
        await viewer.close()
        await client.close()


async def _ignore(_exc: Exception) -> None:
    return None


async def test_a_revoked_identity_is_refused_after_a_reload(secure: Installation) -> None:
    settings = secure.settings("client", "laptop")
    nc = await connect(settings, name="laptop", reconnect_forever=False)
    await nc.close()
    secure.authority.revoke("laptop")
    secure.authority.write_server_auth()
    secure.server.reload()

    async def refused() -> bool:
        try:
            again = await connect(settings, name="laptop", reconnect_forever=False,
                                  error_cb=_ignore)  # fmt: skip
        except Exception:  # the server refuses the connection: authorization violation
            return True
        await again.close()
        return False

    await eventually(refused, timeout=60, what="revoked identity refused")


def test_the_server_side_keeps_one_operator_jwt_however_late_it_is_rewritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given an installation's auth.conf, written once
    When an identity is revoked and auth.conf rewritten seconds later (another authority object)
    Then the operator JWT in it is the same one (a server refuses to reload a changed operator
    JWT, and with it the revocation), while the account JWT is newer and carries the revocation"""
    from ops.security.jwt import decode_claims

    def operator_line(path: Path) -> str:
        return next(line for line in path.read_text().splitlines() if line.startswith("operator"))

    first = Authority(tmp_path / "auth")
    first.mint("client", "laptop")
    conf = first.write_server_auth()
    before, account_iat = operator_line(conf), first._written_iat(conf)
    # An installation from before operator.jwt (or one whose copy was altered) takes the
    # operator JWT of its auth.conf: only a token this operator key would mint is used.
    kept = tmp_path / "auth" / "operator.jwt"
    token = kept.read_text().strip()
    kept.write_text(token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB") + "\n")
    later = time.time() + 5.0
    monkeypatch.setattr(time, "time", lambda: later)
    again = Authority(tmp_path / "auth")
    again.revoke("laptop")
    again.write_server_auth()
    assert operator_line(conf) == before
    assert kept.read_text().strip() == token  # ... and mended from it
    assert again._written_iat(conf) > account_iat
    account = next(line.split(":", 1)[1].strip().strip('"') for line in conf.read_text()
                   .splitlines() if line.strip().startswith(again.account.public))  # fmt: skip
    revoked = decode_claims(account)["nats"]["revocations"]
    assert again.issued["laptop"].public_key in revoked
