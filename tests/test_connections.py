"""The server's connect/disconnect advisories, as the managers read them."""

from __future__ import annotations

from ops.commands.connections import Advisory, Connections, _Client


def adv(kind: str, name: str, start: str, reason: str = "") -> Advisory:
    return Advisory(type=f"io.nats.server.advisory.v1.client_{kind}",
                    client=_Client(name=name, start=start), reason=reason)  # fmt: skip


def test_a_closed_agent_connection_is_down_until_it_connects_again() -> None:
    now = [100.0]
    seen: list[tuple[str, bool]] = []
    c = Connections(clock=lambda: now[0])
    c.listeners.append(lambda name, up: seen.append((name, up)))
    c.record(adv("connect", "vigil-agent-prim", "2026-01-01T00:00:00.5Z"))
    c.record(adv("disconnect", "vigil-manager-m1", "2026-01-01T00:00:00Z", "Client Closed"))
    assert c.is_down("m1") is None and seen == []  # not an agent
    c.record(adv("disconnect", "vigil-agent-prim", "2026-01-01T00:00:00.5Z", "Client Closed"))
    down = c.is_down("prim")
    assert down is not None and down.reason == "Client Closed" and seen == [("prim", False)]
    c.alive("prim")  # a heartbeat handled right after the advisory: still down
    assert c.is_down("prim") is not None
    c.record(adv("connect", "vigil-agent-prim", "2026-01-01T00:00:07.25Z"))
    assert c.is_down("prim") is None and seen[-1] == ("prim", True)


def test_an_older_connection_or_a_server_shutdown_does_not_count() -> None:
    c = Connections(clock=lambda: 0.0)
    c.record(adv("connect", "vigil-agent-prim", "2026-01-01T00:00:09.1Z"))
    # The previous process's connection is reaped after the agent restarted (ns vs trimmed).
    c.record(adv("disconnect", "vigil-agent-prim", "2026-01-01T00:00:09.000000001Z", "Stale"))
    assert c.is_down("prim") is None
    c.record(adv("disconnect", "vigil-agent-prim", "2026-01-01T00:00:09.1Z", "Server Shutdown"))
    assert c.is_down("prim") is None


def test_a_heartbeat_well_after_the_disconnect_revives_it() -> None:
    now = [10.0]
    c = Connections(clock=lambda: now[0])
    c.record(adv("disconnect", "vigil-agent-sec", "2026-01-01T00:00:00Z", "Read Error"))
    now[0] = 11.0
    c.alive("sec")
    assert c.is_down("sec") is None
