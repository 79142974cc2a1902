"""The catalogue of every NATS name vigil uses: subjects, JetStream streams, KV/object buckets.

Nothing else in the code spells a ``vigil.…`` subject or a ``VIGIL_…`` stream name: build them
here, parse them here. The per-role NATS permissions (``ops.security``) are generated from this
module, so a new subject added here is a subject every role's permissions must account for.

::

    vigil.cmd.<noun>.<verb>                 request/reply, any manager (queue group)
    vigil.evt.<aggregate>[.<id>]            JetStream VIGIL_EVENTS, written by managers only
                                            (stream, agent, group, schedule, scaling, launch,
                                            policy, master)
    vigil.agent.register                    request, agents → managers (open installations)
    vigil.agent.<agent_id>.register         request, agent → managers (the id is its identity)
    vigil.agent.<agent_id>.heartbeat        publish, agent → every manager
    vigil.agent.<agent_id>.streams          request, agent → managers (its assignments)
    vigil.agent.<agent_id>.deregister       request, agent → managers
    vigil.agent.<agent_id>.notify           publish, master → agent ("poll now")
    vigil.agent.<agent_id>.refused          publish, manager → agent (feedback it refused)
    vigil.feedback.<agent_id>               JetStream VIGIL_FEEDBACK, agent's outbox
    vigil.alarm.<kind>.<source>             JetStream VIGIL_ALARMS (retention), operators subscribe
    $SYS.ACCOUNT.<account>.CONNECT|DISCONNECT  nats-server advisories (system account import)
    vigil.stats.close                       JetStream VIGIL_FEEDBACK, managers: close days
    vigil.stats.rollup.<kind>.<day>[...]    JetStream VIGIL_STATS, closed days (rollup writer)
    vigil.records.<agent_id>.<stream_id>    JetStream VIGIL_RECORDS, analysis records
"""

from __future__ import annotations

__all__ = [
    "ADVISORY_CONNECT_ALL",
    "ADVISORY_DISCONNECT_ALL",
    "AGENT_CONNECTION_PREFIX",
    "AGENT_DEREGISTER_ALL",
    "AGENT_HEARTBEAT_ALL",
    "AGENT_PREFIX",
    "AGENT_REGISTER",
    "AGENT_REGISTER_ALL",
    "AGENT_STREAMS_ALL",
    "ALARMS_ALL",
    "ALARMS_PREFIX",
    "ALARMS_STREAM",
    "CMD_ALL",
    "CMD_PREFIX",
    "EVENTS_STREAM",
    "EVT_ALL",
    "EVT_PREFIX",
    "FEEDBACK_ALL",
    "FEEDBACK_DURABLE",
    "FEEDBACK_STREAM",
    "MANAGERS_QUEUE",
    "MASTER_BUCKET",
    "RECORDS_ALL",
    "RECORDS_PREFIX",
    "RECORDS_STREAM",
    "REQUESTS_BUCKET",
    "ROLLUP_ALL",
    "ROLLUP_PREFIX",
    "SECRETS_BUCKET",
    "SNAPSHOTS_BUCKET",
    "STATS_CLOSE",
    "STATS_STREAM",
    "SubjectError",
    "agent_deregister",
    "agent_heartbeat",
    "agent_id_of",
    "agent_name_of_connection",
    "agent_notify",
    "agent_refused",
    "agent_register",
    "agent_streams",
    "aggregate_of_subject",
    "alarm",
    "command",
    "command_of",
    "event",
    "feedback",
    "feedback_agent_of",
    "group",
    "records",
    "records_of_stream",
    "rollup_chunk",
    "rollup_fix",
    "rollup_of",
    "rollup_seal",
    "scaling",
    "schedule",
]

# ---- JetStream streams and buckets -----------------------------------------------------------

EVENTS_STREAM = "VIGIL_EVENTS"
"""The system of record: every change of a stream, agent, group, schedule, alarm, master."""
FEEDBACK_STREAM = "VIGIL_FEEDBACK"
"""Agents' feedback (status + statistics deltas), written through their outboxes."""
RECORDS_STREAM = "VIGIL_RECORDS"
"""Analysis records of the default (JetStream) spooler."""
REQUESTS_BUCKET = "VIGIL_REQUESTS"
"""KV: replies remembered per request_id."""
MASTER_BUCKET = "VIGIL_MASTER"
"""KV: the master lease."""
SNAPSHOTS_BUCKET = "VIGIL_SNAPSHOTS"
"""Object store: projection snapshots."""
SECRETS_BUCKET = "VIGIL_SECRETS"
"""KV: credentials of stream sources (kept out of the event log; managers only)."""
ALARMS_STREAM = "VIGIL_ALARMS"
"""Alarms (raised, cleared, acknowledged), kept for the alarm retention (max age)."""
STATS_STREAM = "VIGIL_STATS"
"""Closed days of the daily statistics (rollups), written once, kept for years."""

FEEDBACK_DURABLE = "vigil-managers"
"""The durable pull consumer on VIGIL_FEEDBACK shared by all managers (status changes)."""
MANAGERS_QUEUE = "vigil-managers"
"""The queue group every manager serves requests in."""

# ---- subjects --------------------------------------------------------------------------------

CMD_PREFIX = "vigil.cmd"
CMD_ALL = "vigil.cmd.>"
EVT_PREFIX = "vigil.evt"
EVT_ALL = "vigil.evt.>"
AGENT_PREFIX = "vigil.agent"
AGENT_REGISTER = "vigil.agent.register"
AGENT_REGISTER_ALL = "vigil.agent.*.register"
AGENT_HEARTBEAT_ALL = "vigil.agent.*.heartbeat"
AGENT_STREAMS_ALL = "vigil.agent.*.streams"
AGENT_DEREGISTER_ALL = "vigil.agent.*.deregister"
FEEDBACK_ALL = "vigil.feedback.>"
RECORDS_ALL = "vigil.records.>"
ALARMS_PREFIX = "vigil.alarm"
ALARMS_ALL = "vigil.alarm.>"
"""Every alarm event: ``vigil.alarm.<kind>.<source>`` (what operators subscribe to)."""
ADVISORY_CONNECT_ALL = "$SYS.ACCOUNT.*.CONNECT"
ADVISORY_DISCONNECT_ALL = "$SYS.ACCOUNT.*.DISCONNECT"
"""nats-server's client advisories, imported from the system account (ops.runtime.natsd)."""
AGENT_CONNECTION_PREFIX = "vigil-agent-"
"""Agents name their NATS connection ``vigil-agent-<agent name>``: the advisories say which
agent's connection opened or closed."""
STATS_CLOSE = "vigil.stats.close"
"""In VIGIL_FEEDBACK (so it is ordered with the deltas): "every day up to X is closed".
Published by managers only; agents must not be allowed to."""
ROLLUP_PREFIX = "vigil.stats.rollup"
ROLLUP_ALL = "vigil.stats.rollup.>"


class SubjectError(ValueError):
    """A subject that is not the expected shape (a hostile or misrouted message)."""


def command(name: str) -> str:
    """``vigil.cmd.<noun>.<verb>`` for a command name like ``stream.create``."""
    return f"{CMD_PREFIX}.{name}"


def command_of(subject: str) -> str:
    """``stream.create`` from ``vigil.cmd.stream.create``."""
    if not subject.startswith(CMD_PREFIX + "."):
        raise SubjectError(f"not a command subject: {subject!r}")
    return subject[len(CMD_PREFIX) + 1 :]


def event(aggregate: str) -> str:
    """``vigil.evt.<aggregate>`` for an aggregate like ``stream.s-1`` or ``master``."""
    return f"{EVT_PREFIX}.{aggregate}"


def aggregate_of_subject(subject: str) -> str:
    """``stream.s-1`` from ``vigil.evt.stream.s-1``."""
    if not subject.startswith(EVT_PREFIX + "."):
        raise SubjectError(f"not an event subject: {subject!r}")
    return subject[len(EVT_PREFIX) + 1 :]


def group(name: str) -> str:
    """``vigil.evt.group.<name>``."""
    return event(f"group.{name}")


def schedule(name: str) -> str:
    """``vigil.evt.schedule.<eventName>``."""
    return event(f"schedule.{name}")


def scaling(group: str) -> str:
    """``vigil.evt.scaling.<group>``: the master's launches and removals for one group."""
    return event(f"scaling.{group}")


def alarm(kind: str, source: str) -> str:
    """``vigil.alarm.<kind>.<source>``: every instance of one alarm."""
    return f"{ALARMS_PREFIX}.{kind}.{source}"


def agent_name_of_connection(connection_name: str) -> str | None:
    """The agent name of a connection named ``vigil-agent-<name>`` (None for anything else)."""
    if connection_name.startswith(AGENT_CONNECTION_PREFIX):
        return connection_name[len(AGENT_CONNECTION_PREFIX) :] or None
    return None


def agent_register(agent_id: str) -> str:
    return f"{AGENT_PREFIX}.{agent_id}.register"


def agent_heartbeat(agent_id: str) -> str:
    return f"{AGENT_PREFIX}.{agent_id}.heartbeat"


def agent_streams(agent_id: str) -> str:
    return f"{AGENT_PREFIX}.{agent_id}.streams"


def agent_deregister(agent_id: str) -> str:
    return f"{AGENT_PREFIX}.{agent_id}.deregister"


def agent_notify(agent_id: str) -> str:
    return f"{AGENT_PREFIX}.{agent_id}.notify"


def agent_refused(agent_id: str) -> str:
    return f"{AGENT_PREFIX}.{agent_id}.refused"


def agent_id_of(subject: str) -> str:
    """The agent id of ``vigil.agent.<agent_id>.<verb>``; ``SubjectError`` otherwise."""
    parts = subject.split(".")
    if len(parts) != 4 or parts[0] != "vigil" or parts[1] != "agent" or not parts[2]:
        raise SubjectError(f"not an agent subject: {subject!r}")
    return parts[2]


def feedback(agent_id: str) -> str:
    return f"vigil.feedback.{agent_id}"


def feedback_agent_of(subject: str) -> str:
    """The agent id of ``vigil.feedback.<agent_id>``: the authority on who sent it."""
    parts = subject.split(".")
    if len(parts) != 3 or parts[0] != "vigil" or parts[1] != "feedback" or not parts[2]:
        raise SubjectError(f"not a feedback subject: {subject!r}")
    return parts[2]


RECORDS_PREFIX = "vigil.records"


def records(agent_id: str) -> str:
    """The records subject prefix of one agent: it publishes ``<prefix>.<stream_id>``."""
    return f"{RECORDS_PREFIX}.{agent_id}"


def records_of_stream(stream_id: str) -> str:
    """Every record of one stream, whichever agent analysed it (a filter subject)."""
    return f"{RECORDS_PREFIX}.*.{stream_id}"


def rollup_chunk(day: str, index: int) -> str:
    """Part `index` of the base of closed `day`."""
    return f"{ROLLUP_PREFIX}.day.{day}.{index}"


def rollup_seal(day: str) -> str:
    """The seal of closed `day` (written after its chunks)."""
    return f"{ROLLUP_PREFIX}.seal.{day}"


def rollup_fix(day: str, agent_id: str, seq: int) -> str:
    """The correction of `day` by the late delta ``<agent_id>:<seq>``."""
    return f"{ROLLUP_PREFIX}.fix.{day}.{agent_id}.{seq}"


def rollup_of(subject: str) -> tuple[str, str]:
    """``(kind, day)`` of a rollup subject: kind is ``day``, ``seal`` or ``fix``."""
    parts = subject.split(".")
    if len(parts) < 5 or ".".join(parts[:3]) != ROLLUP_PREFIX or parts[3] not in (
        "day", "seal", "fix"
    ):  # fmt: skip
        raise SubjectError(f"not a rollup subject: {subject!r}")
    return parts[3], parts[4]
