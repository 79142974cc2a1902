"""What each role may publish and subscribe to, generated from ``events.subjects``.

::

    manager   everything in the vigil account (commands, events, JetStream, KV, inboxes)
    admin     the same: operators' tools that write the log (``vigil events import``)
    client    send commands; read the event log, snapshots (replay, audit, verify, export)
    viewer    send read commands only (get, list, daily statistics, master); follow alarms
              (``vigil.alarm.>``, as clients may)
    agent X   its own register/heartbeat/streams/deregister, feedback and records subjects;
              receive only its own notify/refused pushes and replies to its own inbox

Nobody but managers (and admins) may publish to ``vigil.evt.>``, use JetStream's API to change
a stream or consumer, or touch the KV buckets (the master lease, the request cache). Each
identity gets its own inbox prefix (``_INBOX_<tag>``), so no one can read replies meant for
another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from events import subjects as S

__all__ = ["READ_COMMANDS", "Permissions", "Role", "inbox_prefix", "permissions"]

Role = Literal["manager", "admin", "client", "viewer", "agent"]

READ_COMMANDS = (
    "stream.get", "stream.list", "agent.get", "agent.list", "master.get", "stats.daily",
    "stats.range", "group.get", "group.list", "alarm.list", "schedule.get", "schedule.list",
    "launch.get", "launch.list", "policy.get", "policy.list", "scaling.get", "scaling.list",
)  # fmt: skip
"""Commands a viewer may send (any ``*.get`` / ``*.list`` and statistics)."""


@dataclass(frozen=True)
class Permissions:
    pub_allow: list[str] = field(default_factory=list)
    sub_allow: list[str] = field(default_factory=list)
    pub_deny: list[str] = field(default_factory=list)

    def claims(self) -> dict[str, dict[str, list[str]]]:
        out: dict[str, dict[str, list[str]]] = {}
        if self.pub_allow or self.pub_deny:
            out["pub"] = {}
            if self.pub_allow:
                out["pub"]["allow"] = self.pub_allow
            if self.pub_deny:
                out["pub"]["deny"] = self.pub_deny
        if self.sub_allow:
            out["sub"] = {"allow": self.sub_allow}
        return out


def inbox_prefix(tag: str) -> str:
    """The inbox prefix of an identity (its replies arrive under ``<prefix>.>``)."""
    return f"_INBOX_{tag}"


def _log_reader(inbox: str) -> Permissions:
    """Read VIGIL_EVENTS and the snapshots through JetStream (ordered consumers, direct get)."""
    ev, snap = S.EVENTS_STREAM, f"OBJ_{S.SNAPSHOTS_BUCKET}"
    pub = [
        "$JS.API.INFO",
        f"$JS.API.STREAM.INFO.{ev}", f"$JS.API.STREAM.INFO.{snap}",
        f"$JS.API.STREAM.MSG.GET.{ev}", f"$JS.API.STREAM.MSG.GET.{snap}",
        f"$JS.API.DIRECT.GET.{ev}", f"$JS.API.DIRECT.GET.{ev}.>",
        f"$JS.API.CONSUMER.CREATE.{ev}", f"$JS.API.CONSUMER.CREATE.{ev}.>",
        f"$JS.API.CONSUMER.CREATE.{snap}", f"$JS.API.CONSUMER.CREATE.{snap}.>",
        f"$JS.API.CONSUMER.DELETE.{ev}.>", f"$JS.API.CONSUMER.DELETE.{snap}.>",
        f"$JS.API.CONSUMER.INFO.{ev}.>", f"$JS.API.CONSUMER.INFO.{snap}.>",
        "$JS.API.STREAM.NAMES", "$JS.API.STREAM.LIST",
        "$JS.FC.>",
    ]  # fmt: skip
    return Permissions(pub_allow=pub, sub_allow=[f"{inbox}.>"])


def permissions(role: Role, *, tag: str, agent_id: str | None = None) -> Permissions:
    """The permissions of an identity of ``role``; ``tag`` names its inbox prefix."""
    inbox = inbox_prefix(tag)
    if role in ("manager", "admin"):
        return Permissions()  # unrestricted within the vigil account
    if role == "agent":
        if not agent_id:
            raise ValueError("an agent identity needs its agent id")
        return Permissions(
            pub_allow=[f"{S.AGENT_PREFIX}.{agent_id}.>", S.feedback(agent_id),
                       f"{S.records(agent_id)}.>"],  # its JetStream publishes and requests
            sub_allow=[S.agent_notify(agent_id), S.agent_refused(agent_id), f"{inbox}.>"],
            pub_deny=[S.agent_notify(agent_id), S.agent_refused(agent_id)],
        )  # fmt: skip
    if role == "viewer":
        return Permissions(pub_allow=[S.command(c) for c in READ_COMMANDS],
                           sub_allow=[f"{inbox}.>", S.ALARMS_ALL])  # fmt: skip
    reader = _log_reader(inbox)
    return Permissions(pub_allow=[S.CMD_ALL, *reader.pub_allow],
                       sub_allow=[*reader.sub_allow, S.ALARMS_ALL])  # fmt: skip
