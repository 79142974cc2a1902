"""Settings: one Struct per concern, and the one place that reads the environment.

Every ``vigil`` command reads ``VIGIL_*`` variables from the environment, else from
``./.vigil/vigil.env`` (written by ``vigil up``, mode 0600), so a second terminal just works.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated, Literal, get_args

import msgspec

from core.sources import DEFAULT_DENY, DEFAULT_SCHEMES, SourcePolicy
from events.connection import ConnectionSettings

__all__ = [
    "ROLES",
    "ClientSettings",
    "ManagerSettings",
    "Role",
    "autoscale_root",
    "load_client_settings",
    "load_manager_settings",
    "read_env_file",
    "write_env_file",
]

ENV_FILE = "vigil.env"
DEFAULT_DATA_DIR = ".vigil"

Seconds = Annotated[float, msgspec.Meta(gt=0, le=86400 * 30)]
Role = Literal["all", "commands", "master"]
"""What a manager does: ``ManagerSettings.role`` (docs/deploy.md, roles)."""
ROLES: tuple[str, ...] = get_args(Role)


class ClientSettings(ConnectionSettings, frozen=True, kw_only=True):
    """How a client (CLI, manager) reaches NATS (`ConnectionSettings`) and the HTTP API."""

    api_token: str | None = None
    http: str = "127.0.0.1:8080"


class ManagerSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Manager timings and policies. Agents are told their intervals at registration."""

    def source_policy(self) -> SourcePolicy:
        return SourcePolicy(schemes=self.source_schemes, media_roots=self.media_roots,
                            spool_roots=self.spool_roots, deny_hosts=self.source_deny_hosts,
                            allow_hosts=self.source_allow_hosts)  # fmt: skip

    heartbeat_interval_s: Annotated[Seconds, msgspec.Meta(description="agent heartbeat period")] = (
        2.0
    )
    feedback_interval_s: Annotated[Seconds, msgspec.Meta(description="agent stats period")] = 2.0
    agent_downgrade_s: Annotated[
        Seconds, msgspec.Meta(description="no heartbeat for this long: agent becomes not_ready")
    ] = 10.0
    agent_retention_s: Annotated[
        Seconds, msgspec.Meta(description="not_ready for this long: agent is removed")
    ] = 24 * 3600.0
    stream_staleness_s: Annotated[
        Seconds, msgspec.Meta(description="default: no feedback for this long requeues a stream")
    ] = 30.0
    stream_start_deadline_s: Annotated[
        Seconds,
        msgspec.Meta(
            description="an assigned stream not reported running (or failed) by its"
            " agent within this long is requeued"
        ),
    ] = 60.0
    resolve_timeout_s: Annotated[
        Seconds,
        msgspec.Meta(
            description="how long stream.create waits for DNS to check a source's host against"
            " the deny list (a name not resolved in time is left to the agent's own check)"
        ),
    ] = 1.0
    role: Annotated[
        Role,
        msgspec.Meta(
            description="what this manager does: all (the default: answers commands and may be"
            " elected master), commands (answers commands, never master), master (stands for"
            " master, answers no command over NATS): a large fleet runs its master apart from"
            " the command path (docs/deploy.md)"
        ),
    ] = "all"
    master_lease_s: Annotated[Seconds, msgspec.Meta(description="master lease TTL")] = 5.0
    master_tick_s: Annotated[
        Seconds,
        msgspec.Meta(
            description="master loop period: short ticks place new streams sooner and in"
            " small bursts (a tick over what changed costs ~0.06 ms when idle at 100k streams)"
        ),
    ] = 0.1
    request_ttl_s: Annotated[
        Seconds, msgspec.Meta(description="how long a request_id's reply is remembered")
    ] = 24 * 3600.0
    duplicate_window_s: Annotated[Seconds, msgspec.Meta(description="JetStream dedup window")] = (
        120.0
    )
    replicas: Annotated[int, msgspec.Meta(ge=1, le=5, description="JetStream replicas")] = 1
    snapshot_interval_s: Annotated[
        Seconds, msgspec.Meta(description="the master snapshots projections at most this often")
    ] = 60.0
    expected_log_id: Annotated[
        str | None,
        msgspec.Meta(description="refuse to start on any other event log (vigil up pins its own)"),
    ] = None
    http_open_reads: Annotated[
        bool, msgspec.Meta(description="HTTP reads need no token (writes always do)")
    ] = False
    api_tokens_file: Annotated[
        str | None,
        msgspec.Meta(description="HTTP tokens with roles (vigil tokens add); digests only"),
    ] = None
    media_roots: Annotated[
        tuple[str, ...],
        msgspec.Meta(description="directories file:// sources may be under (none: no files)"),
    ] = ()
    spool_roots: Annotated[
        tuple[str, ...],
        msgspec.Meta(description="directories a directory spool may be under (none: none)"),
    ] = ()
    source_schemes: Annotated[
        tuple[str, ...], msgspec.Meta(description="URL schemes a stream source may use")
    ] = DEFAULT_SCHEMES
    source_deny_hosts: Annotated[
        tuple[str, ...],
        msgspec.Meta(
            description="addresses, networks (CIDR) and names sources and webhooks may"
            " not point at (loopback, link-local, metadata by default)"
        ),
    ] = DEFAULT_DENY
    source_allow_hosts: Annotated[
        tuple[str, ...], msgspec.Meta(description="exceptions to source_deny_hosts")
    ] = ()
    gc_freeze_interval_s: Annotated[
        Seconds,
        msgspec.Meta(
            description="long-lived state is moved out of the cyclic GC this often"
            " (a full collection over 100k streams stalls the loop ~30 ms)"
        ),
    ] = 60.0
    snapshot_min_events: Annotated[
        int, msgspec.Meta(ge=1, description="... and only after this many new events")
    ] = 1000
    alarm_retention_s: Annotated[
        Seconds,
        msgspec.Meta(
            description="alarms are kept this long (max age of VIGIL_ALARMS); older"
            " ones are forgotten"
        ),
    ] = 10 * 86400.0
    alarm_unplaceable_s: Annotated[
        Seconds,
        msgspec.Meta(
            description="streams waiting for an agent longer than this raise a"
            " stream_unplaceable alarm"
        ),
    ] = 60.0
    feedback_retention_s: Annotated[
        float,
        msgspec.Meta(ge=1, le=10 * 366 * 86400,
                     description="VIGIL_FEEDBACK keeps agents' feedback this long; a manager"
                     " rebuilds the open days from it at start, so keep it well above"
                     " stats_lateness_s"),
    ] = 40 * 86400.0  # fmt: skip
    stats_lateness_s: Annotated[
        float,
        msgspec.Meta(ge=0, le=366 * 86400,
                     description="a UTC day closes this long after it ended: its totals are"
                     " written once as rollups, later deltas are counted as corrections;"
                     " make it longer than any agent outage you promise to absorb"),
    ] = 7 * 86400.0  # fmt: skip
    stats_retention_years: Annotated[
        int,
        msgspec.Meta(ge=0, le=100,
                     description="closed days (VIGIL_STATS) are kept this many years; 0 keeps"
                     " them forever"),
    ] = 0  # fmt: skip
    stats_writer_interval_s: Annotated[
        Seconds,
        msgspec.Meta(description="the rollup writer (the master) looks for days to close and"
                     " records to write this often (and at once when a day closes)"),
    ] = 5.0  # fmt: skip

    schedule_buffer_s: Annotated[
        float,
        msgspec.Meta(ge=0, le=86400,
                     description="setup buffer added to a schedule's lead time when the schedule"
                     " gives none (s)"),
    ] = 60.0  # fmt: skip
    autoscale_dir: Annotated[
        str | None,
        msgspec.Meta(description="where the local provider keeps the agents it launches (outbox,"
                     " identity, pid, log); default <VIGIL_DATA_DIR>/autoscale"),
    ] = None  # fmt: skip
    scale_commands_file: Annotated[
        str | None,
        msgspec.Meta(description="TOML file of command providers ([commands.<name>] add, remove,"
                     " cancel, timeout_s): shell commands the autoscaler may run"),
    ] = None  # fmt: skip

    def __post_init__(self) -> None:
        if self.duplicate_window_s > self.feedback_retention_s:
            raise ValueError(
                "duplicate_window_s must not exceed feedback_retention_s (JetStream refuses a"
                " duplicate window longer than the stream's max age)"
            )


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines; blank lines and ``#`` comments ignored."""
    values: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip('"')
    return values


def write_env_file(path: Path, values: dict[str, str]) -> None:
    """Write atomically with mode 0600 (it holds credentials)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("# written by `vigil up`; read by every vigil command\n")
        for k, v in values.items():
            f.write(f"{k}={v}\n")
    os.replace(tmp, path)


def _env(data_dir: str | None = None) -> dict[str, str]:
    merged: dict[str, str] = {}
    base = Path(data_dir or os.environ.get("VIGIL_DATA_DIR", DEFAULT_DATA_DIR))
    env_file = base / ENV_FILE
    if env_file.is_file():
        merged.update(read_env_file(env_file))
    merged.update({k: v for k, v in os.environ.items() if k.startswith("VIGIL_")})
    return merged


def load_client_settings(
    *, data_dir: str | None = None, nats_url: str | None = None, admin: bool = False
) -> ClientSettings:
    """The CLI's settings; ``admin`` uses the admin identity (``VIGIL_ADMIN_CREDS``) for the
    tools that write the event log."""
    env = _env(data_dir)
    if admin and env.get("VIGIL_ADMIN_CREDS"):
        env["VIGIL_NATS_CREDS"] = env["VIGIL_ADMIN_CREDS"]
    defaults = ClientSettings()
    return ClientSettings(
        nats_url=nats_url or env.get("VIGIL_NATS_URL", defaults.nats_url),
        nats_user=env.get("VIGIL_NATS_USER") or None,
        nats_password=env.get("VIGIL_NATS_PASSWORD") or None,
        nats_creds=env.get("VIGIL_NATS_CREDS") or None,
        tls_ca=env.get("VIGIL_NATS_TLS_CA") or None,
        tls_cert=env.get("VIGIL_NATS_TLS_CERT") or None,
        tls_key=env.get("VIGIL_NATS_TLS_KEY") or None,
        api_token=env.get("VIGIL_API_TOKEN") or None,
        http=env.get("VIGIL_HTTP", defaults.http),
    )


def load_manager_settings(*, data_dir: str | None = None) -> ManagerSettings:
    """``ManagerSettings`` with each field overridable as ``VIGIL_<FIELD>`` (e.g.
    ``VIGIL_AGENT_DOWNGRADE_S=20``; lists comma-separated: ``VIGIL_MEDIA_ROOTS=/srv/a,/srv/b``);
    bad values fail with the field's name."""
    env = _env(data_dir)
    values: dict[str, object] = {}
    lists = {name for name, default in zip(ManagerSettings.__struct_fields__,
                                           ManagerSettings.__struct_defaults__, strict=False)
             if isinstance(default, tuple)}  # fmt: skip
    for name in ManagerSettings.__struct_fields__:
        key = f"VIGIL_{name.upper()}"
        if key in env:
            raw = env[key]
            values[name] = (
                [x.strip() for x in raw.split(",") if x.strip()] if name in lists else raw
            )
    try:
        return msgspec.convert(values, ManagerSettings, strict=False)
    except msgspec.ValidationError as exc:
        raise SystemExit(f"invalid manager setting: {exc} (from VIGIL_* variables)") from None


def autoscale_root(settings: ManagerSettings) -> Path:
    """Where the local provider keeps launched agents: ``autoscale_dir``, else
    ``<VIGIL_DATA_DIR or .vigil>/autoscale`` (absolute)."""
    if settings.autoscale_dir:
        return Path(settings.autoscale_dir).resolve()
    return (Path(os.environ.get("VIGIL_DATA_DIR", DEFAULT_DATA_DIR)) / "autoscale").resolve()


def new_secret() -> str:
    return secrets.token_urlsafe(24)
