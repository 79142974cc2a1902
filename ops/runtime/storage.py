"""Every JetStream stream and bucket vigil uses, created or brought to our config at start.

Safe when many managers start at once (create, else update to the same config). Names come from
``events.subjects``; ``replicas`` and retention from ``ManagerSettings``.
"""

from __future__ import annotations

import asyncio
import logging

from nats.aio.client import Client
from nats.js import api
from nats.js.errors import BucketNotFoundError
from nats.js.kv import KeyValue

from events import subjects
from events.jetstream import ensure_stream
from ops.settings import ManagerSettings

log = logging.getLogger(__name__)

__all__ = [
    "ensure_alarms_stream",
    "ensure_feedback_stream",
    "ensure_records_stream",
    "ensure_stats_stream",
    "key_value",
    "until_jetstream_ready",
]

YEAR_S = 365.25 * 86400


async def ensure_feedback_stream(
    nc: Client, *, duplicate_window: float = 120.0, replicas: int = 1, max_age: float = 40 * 86400
) -> None:
    """``VIGIL_FEEDBACK``: agents' feedback, and the managers' close markers in the same order."""
    config = api.StreamConfig(
        name=subjects.FEEDBACK_STREAM,
        subjects=[subjects.FEEDBACK_ALL, subjects.STATS_CLOSE],
        storage=api.StorageType.FILE,
        duplicate_window=duplicate_window,
        num_replicas=replicas,
        max_age=max_age,
    )
    await ensure_stream(nc, config)


async def ensure_records_stream(
    nc: Client, *, replicas: int = 1, max_age: float = 30 * 86400
) -> None:
    """``VIGIL_RECORDS`` (``vigil.records.<stream_id>``) for the agents' analysis records."""
    config = api.StreamConfig(
        name=subjects.RECORDS_STREAM, subjects=[subjects.RECORDS_ALL],
        storage=api.StorageType.FILE, num_replicas=replicas, max_age=max_age,
        duplicate_window=120.0,
    )  # fmt: skip
    await ensure_stream(nc, config)


async def ensure_alarms_stream(nc: Client, *, retention_s: float, replicas: int = 1) -> None:
    """``VIGIL_ALARMS`` (``vigil.alarm.<kind>.<source>``): alarms are kept ``retention_s``."""
    config = api.StreamConfig(
        name=subjects.ALARMS_STREAM, subjects=[subjects.ALARMS_ALL],
        storage=api.StorageType.FILE, num_replicas=replicas, max_age=retention_s,
        duplicate_window=min(120.0, retention_s), allow_direct=True,
    )  # fmt: skip
    await ensure_stream(nc, config)


async def ensure_stats_stream(nc: Client, *, replicas: int = 1, years: int = 0) -> None:
    """``VIGIL_STATS``: closed days (rollups), written once each, never deleted one by one;
    kept `years` years (0: forever)."""
    config = api.StreamConfig(
        name=subjects.STATS_STREAM, subjects=[subjects.ROLLUP_ALL],
        storage=api.StorageType.FILE, num_replicas=replicas, max_age=years * YEAR_S,
        duplicate_window=120.0, deny_delete=True,
    )  # fmt: skip
    await ensure_stream(nc, config)


async def until_jetstream_ready(nc: Client, timeout: float = 120.0) -> None:
    """Wait until JetStream answers (a cluster needs a meta leader first; a server just
    restarted needs a moment): every manager start goes through here."""
    deadline = asyncio.get_running_loop().time() + timeout
    js = nc.jetstream(timeout=2.0)
    while True:
        try:
            await js.account_info()
            return
        except Exception as exc:  # not ready yet: JetStream unavailable, no responders, timeout
            if asyncio.get_running_loop().time() >= deadline:
                raise RuntimeError(
                    f"JetStream did not become available in {timeout:.0f}s: {exc!r}"
                    " (is JetStream enabled, and does the cluster have a quorum?)"
                ) from exc
            log.info("waiting for JetStream: %r", exc)
            await asyncio.sleep(0.5)


async def key_value(
    nc: Client, bucket: str, *, ttl: float, replicas: int, history: int = 1
) -> KeyValue:
    js = nc.jetstream()
    try:
        return await js.key_value(bucket)
    except BucketNotFoundError:
        pass
    config = api.KeyValueConfig(
        bucket=bucket, history=history, ttl=ttl, storage=api.StorageType.FILE, replicas=replicas
    )
    return await js.create_key_value(config)


async def ensure_all(nc: Client, settings: ManagerSettings) -> tuple[KeyValue, KeyValue, KeyValue]:
    """Feedback, statistics and records streams; the request-cache, master-lease and secrets
    buckets (returned)."""
    s = settings
    await ensure_feedback_stream(nc, duplicate_window=s.duplicate_window_s, replicas=s.replicas,
                                 max_age=s.feedback_retention_s)  # fmt: skip
    await ensure_stats_stream(nc, replicas=s.replicas, years=s.stats_retention_years)
    await ensure_records_stream(nc, replicas=s.replicas)
    await ensure_alarms_stream(nc, retention_s=s.alarm_retention_s, replicas=s.replicas)
    requests = await key_value(nc, subjects.REQUESTS_BUCKET, ttl=s.request_ttl_s,
                               replicas=s.replicas)  # fmt: skip
    lease = await key_value(nc, subjects.MASTER_BUCKET, ttl=s.master_lease_s, replicas=s.replicas)
    secrets = await key_value(nc, subjects.SECRETS_BUCKET, ttl=0, replicas=s.replicas)
    return requests, lease, secrets
