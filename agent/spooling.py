"""The agent's default records spooler: JetStream, with the agent's own identity."""

from __future__ import annotations

from analytics.spool import JetStreamConfig
from events import subjects
from events.connection import ConnectionSettings

__all__ = ["records_spool"]


def records_spool(client: ConnectionSettings, agent_id: str) -> JetStreamConfig:
    """JetStream ``VIGIL_RECORDS`` on the agent's own NATS connection settings (credentials,
    TLS), on its own subjects ``vigil.records.<agent_id>.<stream_id>`` (its permissions allow
    no other). The managers create the stream."""
    return JetStreamConfig(connection=client, subject_prefix=subjects.records(agent_id),
                           ensure=False)  # fmt: skip
