"""The ``vigil`` command line (CONTRACT §1).

Every subcommand reads ``VIGIL_*`` from the environment, else ``./.vigil/vigil.env``. Output is
for humans by default and JSON with ``--json``. Exit codes: 0 ok, 1 the command was refused
(the error is printed), 2 usage error, 3 NATS unreachable.
"""

from __future__ import annotations

import asyncio
import os
import sys
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any, cast

import click
import msgspec
import orjson

from core.sources import SourcePolicy
from events import logctx
from ops.cli.agents import agent_get, agent_list
from ops.cli.alarms import alarms
from ops.cli.client import call
from ops.cli.creds import creds
from ops.cli.groups import group
from ops.cli.master import master
from ops.cli.output import ago, console, dash, labels, print_fields, print_json, table, when
from ops.cli.schedules import scale, schedule
from ops.cli.stats import stats
from ops.cli.tokens import tokens
from ops.settings import ROLES, Role, load_client_settings

__all__ = ["main"]


def _version() -> str:
    try:
        return package_version("vigil")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(_version(), "-V", "--version", prog_name="vigil")
@click.option("-v", "--verbose", is_flag=True, help="debug logging")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              envvar="VIGIL_LOG_FORMAT", show_default=True,
              help="json: one object per line with the agent and stream ids")  # fmt: skip
def main(verbose: bool, log_format: str) -> None:
    """vigil: event-sourced manager for fleets of video streams.

    Every command reads VIGIL_* from the environment, else <data-dir>/vigil.env (--data-dir, or
    VIGIL_DATA_DIR; default .vigil), so a second terminal next to `vigil up` just works. Output is
    for people; --json prints JSON. Exit codes: 0 ok, 1 refused (the error says why), 2 usage,
    3 NATS unreachable, credentials refused, or no manager.

    \b
    Examples:
      vigil up --demo                       # everything on this machine; prints the dashboard URL
      vigil stream list --status failure
      vigil agent list
      vigil --log-format json agent --name edge-7 --capacity 16
    """
    logctx.setup(level=10 if verbose else 20, fmt="json" if log_format == "json" else "text")


# ---- processes -------------------------------------------------------------------------------


@main.command()
@click.option("--data-dir", default=".vigil", show_default=True, type=click.Path(path_type=Path))
@click.option("--agents", default=2, show_default=True, type=click.IntRange(0, 64))
@click.option("--agent-capacity", default=4, show_default=True, type=click.IntRange(1, 10_000),
              help="streams each local agent runs at once")  # fmt: skip
@click.option("--http", "http", default="127.0.0.1:8080", show_default=True)
@click.option("--nats-url", default=None, help="use this NATS instead of starting one")
@click.option("--nats-port", default=None, type=int, help="port of the embedded nats-server")
@click.option("--demo", is_flag=True, help="generate clips and create demo streams")
@click.option("--cluster", default=1, show_default=True, type=click.IntRange(1, 5),
              help="run this many nats-servers clustered on loopback (streams replicated)")  # fmt: skip
@click.option("--managers", default=None, type=click.IntRange(1, 16),
              help="managers to run (default: 1, or 2 with --cluster)")  # fmt: skip
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="serve NATS and HTTP over TLS with this certificate (PEM)")  # fmt: skip
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="its private key (PEM)")  # fmt: skip
@click.option("--tls-ca", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="the CA clients trust (default: the certificate itself)")  # fmt: skip
def up(data_dir: Path, agents: int, agent_capacity: int, http: str, nats_url: str | None,
       nats_port: int | None, demo: bool, cluster: int, managers: int | None,
       tls_cert: Path | None, tls_key: Path | None, tls_ca: Path | None) -> None:  # fmt: skip
    """Embedded NATS + a manager + the HTTP API + local agents, until Ctrl-C.

    \b
    Examples:
      vigil up --demo                               # what `make run` does
      vigil up --cluster 3                          # 3 nats-servers, R3 streams, 2 managers
      vigil up --data-dir /var/lib/vigil --http 0.0.0.0:8080 --tls-cert c.pem --tls-key k.pem
    """
    from ops.runtime.natsd import TlsFiles
    from ops.runtime.parts import up_parts
    from ops.runtime.up import UpOptions, run_up

    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("give both --tls-cert and --tls-key (or neither)")
    tls = TlsFiles(cert=tls_cert, key=tls_key, ca=tls_ca) if tls_cert and tls_key else None
    options = UpOptions(data_dir=data_dir, agents=agents, http=http, nats_url=nats_url, demo=demo,
                        nats_port=nats_port, agent_capacity=agent_capacity, tls=tls,
                        cluster=cluster, managers=managers)  # fmt: skip
    asyncio.run(run_up(options, up_parts(options)))


@main.command()
@click.option("--nats-url", default=None)
@click.option("--http", "http", default=None, help="serve the HTTP API on HOST:PORT")
@click.option("--role", type=click.Choice(ROLES), default=None,
              help="all: commands and master duty (default, or VIGIL_ROLE); commands: never"
                   " master; master: stands for master, answers no NATS command")  # fmt: skip
def manager(nats_url: str | None, http: str | None, role: str | None) -> None:
    """One manager instance (run any number against one NATS; one of them is master).

    \b
    Examples:
      vigil manager --nats-url nats://n1:4222 --http 0.0.0.0:8080
      VIGIL_NATS_CREDS=manager.creds vigil --log-format json manager --nats-url tls://n1:4222
      vigil manager --role master     # a large fleet: the master apart from the command path
    """
    from ops.runtime.up import run_manager

    asyncio.run(run_manager(load_client_settings(nats_url=nats_url), http,
                            cast("Role | None", role)))  # fmt: skip


@main.group(invoke_without_command=True)
@click.option("--nats-url", default=None)
@click.option("--name", default=None, help="agent name (default: hostname)")
@click.option("--capacity", default=8, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--group", "groups", multiple=True, help="group this agent serves; repeatable")
@click.option("--label", "labels", multiple=True, help="KEY=VALUE; repeatable")
@click.option("--outbox", default=None, type=click.Path(path_type=Path),
              help="feedback outbox file (default: .vigil/agents/NAME/outbox.db)")  # fmt: skip
@click.option("--analytic", "analytics", multiple=True, help="offer only these analytics")
@click.option("--creds", "creds_file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="this agent's identity (vigil creds agent ...); default VIGIL_NATS_CREDS")  # fmt: skip
@click.option("--media-root", "media_roots", multiple=True, type=click.Path(),
              help="a directory file:// sources may be under; repeatable (none: no files)")  # fmt: skip
@click.option("--spool-root", "spool_roots", multiple=True, type=click.Path(),
              help="a directory record spools may be under; repeatable")  # fmt: skip
@click.option("--allow-host", "allow_hosts", multiple=True,
              help="an address, CIDR or name sources may use even if denied (loopback...)")  # fmt: skip
@click.pass_context
def agent(ctx: click.Context, nats_url: str | None, name: str | None, capacity: int,
          groups: tuple[str, ...], labels: tuple[str, ...], outbox: Path | None,
          analytics: tuple[str, ...], creds_file: str | None, media_roots: tuple[str, ...],
          spool_roots: tuple[str, ...], allow_hosts: tuple[str, ...]) -> None:  # fmt: skip
    """Run the reference agent until Ctrl-C (then it stops its streams and deregisters).

    `vigil agent list` shows every agent with its groups and host figures, `vigil agent get ID`
    one of them. Camera failures are logged at WARNING with their cause (dns, refused,
    timeout, auth, ...); --log-format json puts the agent and stream ids on every line.

    \b
    Examples:
      vigil agent --name edge-7 --capacity 16 --group lobby --outbox /var/lib/vigil/edge-7/outbox.db
      vigil --log-format json agent --nats-url tls://n1:4222 --creds edge-7.creds --media-root /srv/media
      vigil agent list
    """
    if ctx.invoked_subcommand is not None:
        return
    from agent.main import run_agent
    from agent.runtime import AgentConfig

    agent_name = name or os.uname().nodename
    config = AgentConfig(
        name=agent_name, capacity=capacity, groups=groups, labels=dict(_label(x) for x in labels),
        outbox=outbox or Path(".vigil") / "agents" / agent_name / "outbox.db",
        analytics=analytics or None,
        sources=SourcePolicy(media_roots=tuple(os.path.abspath(r) for r in media_roots),
                             spool_roots=tuple(os.path.abspath(r) for r in spool_roots),
                             allow_hosts=allow_hosts),
    )  # fmt: skip
    settings = load_client_settings(nats_url=nats_url)
    if creds_file:
        settings = msgspec.structs.replace(settings, nats_creds=creds_file)
    asyncio.run(run_agent(settings, config))


@main.command()
@click.option("--show-secrets", is_flag=True, help="print passwords and tokens in clear")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def nats(show_secrets: bool, as_json: bool) -> None:
    """Print the connection settings in use (secrets masked).

    \b
    Examples:
      vigil nats
      vigil nats --data-dir /var/lib/vigil --show-secrets
    """
    s = load_client_settings()

    def secret(value: str) -> str:
        return value if show_secrets else "****"

    if as_json:
        print_json({"VIGIL_NATS_URL": s.nats_url if show_secrets else s.redacted_url(),
                    "VIGIL_NATS_CREDS": s.nats_creds, "VIGIL_NATS_USER": s.nats_user,
                    "VIGIL_NATS_PASSWORD": secret(s.nats_password) if s.nats_password else None,
                    "VIGIL_API_TOKEN": secret(s.api_token) if s.api_token else None,
                    "VIGIL_HTTP": s.http})  # fmt: skip
        return

    click.echo(f"VIGIL_NATS_URL={s.nats_url if show_secrets else s.redacted_url()}")
    if s.nats_creds:
        click.echo(f"VIGIL_NATS_CREDS={s.nats_creds}")
    if s.nats_user:
        click.echo(f"VIGIL_NATS_USER={s.nats_user}")
        click.echo(f"VIGIL_NATS_PASSWORD={secret(s.nats_password or '')}")
    if s.api_token:
        click.echo(f"VIGIL_API_TOKEN={secret(s.api_token)}")
    click.echo(f"VIGIL_HTTP={s.http}")


# ---- a client of the NATS commands -----------------------------------------------------------


def _run(name: str, body: dict[str, Any], as_json: bool, show: Any = None) -> None:
    call(name, body, as_json, show or _show_stream)


def _show_stream(v: dict[str, Any]) -> None:
    """One stream, as people read it (never Python's None, never a JSON blob)."""
    source = v["source"]["url"] + (
        " (credentials kept apart)" if v["source"].get("credentials") else ""
    )
    err = v.get("last_error")
    ar = v["autorestart"]
    restart = (f"on: up to {ar['max_attempts']} attempts, {ar['delay_s']:g} s x{ar['backoff']:g}"
               f" (max {ar['max_delay_s']:g} s)" if ar["enabled"] else "off")  # fmt: skip
    analytics = ", ".join(a["name"] + (f" {orjson.dumps(a['params']).decode()}" if a["params"] else "")
                          for a in v["analytics"])  # fmt: skip
    spool = v.get("spool")
    rows: list[tuple[str, Any]] = [
        ("stream", f"{v['name']} ({v['stream_id']})"),
        ("status", v["status"] + (f", version {v['version']}")),
        ("why it waits", f"{v['waiting']['message']} [{v['waiting']['code']}]" if v.get("waiting") else None),
        ("last error", f"{err['code']}: {err['message']}{' (fatal)' if err.get('fatal') else ''}" if err else None),
        ("source", f"{source} ({v['kind']})"),
        ("agent", v["agent_id"]),
        ("group", v["group"]),
        ("analytics", analytics),
        ("labels", labels(v["labels"])),
        ("autorestart", restart),
        ("restarts", f"{v['restarts']}" + (f", next not before {when(v['restart_not_before'])}"
                                            if v.get("restart_not_before") else "")),
        ("staleness", f"{v['staleness_s']:g} s" if v.get("staleness_s") else "the manager's default"),
        ("records to", f"{spool['type']} {spool.get('url') or spool.get('path') or ''}".strip() if spool else "jetstream"),
        ("created", when(v["created_at"])),
        ("updated", when(v["updated_at"])),
    ]  # fmt: skip
    print_fields(rows)


def _show_streams(result: dict[str, Any]) -> None:
    t = table("stream_id", "status", "agent", "kind", "restarts", "updated", "name",
              "why / last error", wide=("name", "why / last error"), right=("restarts",),
              drop=("kind", "restarts", "updated", "agent"))  # fmt: skip
    for s in result["streams"]:
        err = s.get("last_error")
        why = (s.get("waiting") or {}).get("message") or (
            f"{err['code']}: {err['message']}" if err else "-")  # fmt: skip
        t.add_row(s["stream_id"], s["status"], dash(s["agent_id"]), s["kind"], str(s["restarts"]),
                  ago(s["updated_at"]), s["name"], why)  # fmt: skip
    console().print(t)
    if result.get("next_cursor"):
        click.echo(f"more: --cursor {result['next_cursor']}", err=True)
    if not result["streams"]:
        click.echo("no streams", err=True)


json_option = click.option("--json", "as_json", is_flag=True, help="print JSON")


@main.group()
def stream() -> None:
    """Create and control streams.

    \b
    Examples:
      vigil stream create --source rtsp://cam-7.example/live --analytic motion --group lobby
      vigil stream list --status failure
      vigil stream get s-3f2c9a1b7e12d4c0
      vigil stream stop s-3f2c9a1b7e12d4c0
    """


@stream.command("create")
@click.option("--source", required=True, help="URL: file:///path, rtsp://, http://, tcp://, udp://")
@click.option("--kind", type=click.Choice(["stream", "file"]), default="stream", show_default=True)
@click.option("--name", default=None)
@click.option("--analytic", "analytics", multiple=True,
              help="analytic NAME or NAME:{json params}; repeatable")  # fmt: skip
@click.option("--group", default=None)
@click.option("--label", "labels", multiple=True, help="KEY=VALUE; repeatable")
@click.option("--allow-unregistered", is_flag=True, help="accept analytics no agent offers yet")
@click.option("--spool", default=None, metavar="TARGET",
              help="where records go: jetstream (default), webhook:URL or directory:PATH")  # fmt: skip
@click.option("--autorestart/--no-autorestart", default=None,
              help="restart after a non-fatal failure (default: on)")  # fmt: skip
@click.option("--max-attempts", type=click.IntRange(0, 1000), default=None,
              help="restarts before giving up (default 5)")  # fmt: skip
@click.option("--restart-delay", type=click.FloatRange(0, 86400), default=None,
              help="seconds before the first restart (default 5)")  # fmt: skip
@click.option("--backoff", type=click.FloatRange(1, 10), default=None,
              help="each next delay is this many times longer (default 2)")  # fmt: skip
@click.option("--max-delay", type=click.FloatRange(0, 86400), default=None,
              help="longest delay between restarts, seconds (default 600)")  # fmt: skip
@click.option("--staleness", type=click.FloatRange(0.001, 86400), default=None,
              help="seconds without feedback before the stream is given to another agent")  # fmt: skip
@click.option("--keyframes-only", is_flag=True,
              help="decode and analyse keyframes only (the cheap tier)")  # fmt: skip
@click.option("--analysis-fps", type=click.FloatRange(0.001, 120), default=None, metavar="N",
              help="analyse at most N frames a second (all are still decoded)")  # fmt: skip
@click.option("--request-id", default=None, help="idempotency key")
@json_option
def stream_create(source: str, kind: str, name: str | None, analytics: tuple[str, ...],
                  group: str | None, labels: tuple[str, ...], allow_unregistered: bool,
                  spool: str | None, autorestart: bool | None, max_attempts: int | None,
                  restart_delay: float | None, backoff: float | None, max_delay: float | None,
                  staleness: float | None, keyframes_only: bool, analysis_fps: float | None,
                  request_id: str | None, as_json: bool) -> None:  # fmt: skip
    """Create a stream (or a file to process once).

    \b
    Examples:
      vigil stream create --source rtsp://cam-7.example/live --analytic motion --group lobby
      vigil stream create --source file:///media/clip.mp4 --kind file \\
          --analytic 'scene_change:{"threshold": 0.5}' --spool directory:/var/lib/vigil/records
      vigil stream create --source rtsp://cam-9.example/live --max-attempts 10 --staleness 60
      vigil stream create --source rtsp://cam-3.example/live --analytic scene_change \\
          --analytic black_frame --keyframes-only
    """
    body: dict[str, Any] = {"source": {"url": source}, "kind": kind}
    if spool:
        body["spool"] = _spool(spool)
    restart = {k: v for k, v in (("enabled", autorestart), ("max_attempts", max_attempts),
                                 ("delay_s", restart_delay), ("backoff", backoff),
                                 ("max_delay_s", max_delay)) if v is not None}  # fmt: skip
    if restart:
        body["autorestart"] = restart
    if staleness is not None:
        body["staleness_s"] = staleness
    if name:
        body["name"] = name
    if group:
        body["group"] = group
    if analytics:
        body["analytics"] = [_analytic(a) for a in analytics]
    if labels:
        body["labels"] = dict(_label(x) for x in labels)
    if allow_unregistered:
        body["allow_unregistered"] = True
    if keyframes_only:
        body["keyframes_only"] = True
    if analysis_fps is not None:
        body["analysis_fps"] = analysis_fps
    if request_id:
        body["request_id"] = request_id
    _run("stream.create", body, as_json)


def _spool(text: str) -> dict[str, str]:
    kind, sep, where = text.partition(":")
    if kind == "jetstream" and not sep:
        return {"type": "jetstream"}
    if kind == "webhook" and where:
        return {"type": "webhook", "url": where}
    if kind == "directory" and where:
        return {"type": "directory", "path": where}
    raise click.BadParameter(
        f"{text!r}: use jetstream, webhook:URL or directory:PATH", param_hint="--spool"
    )


def _analytic(text: str) -> dict[str, Any]:
    name, sep, params = text.partition(":")
    if not sep:
        return {"name": name, "params": {}}
    try:
        return {"name": name, "params": orjson.loads(params)}
    except orjson.JSONDecodeError as exc:
        raise click.BadParameter(f"params of {name!r} are not JSON: {exc}") from None


def _label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep:
        raise click.BadParameter(f"label {text!r} must be KEY=VALUE")
    return key, value


@stream.command("get")
@click.argument("stream_id")
@json_option
def stream_get(stream_id: str, as_json: bool) -> None:
    """Show one stream: status, why it waits or its last error, agent, source, settings.

    \b
    Examples:
      vigil stream get s-3f2c9a1b7e12d4c0
      vigil stream get s-3f2c9a1b7e12d4c0 --json | jq .status
    """
    _run("stream.get", {"stream_id": stream_id}, as_json)


@stream.command("list")
@click.option("--status", default=None,
              type=click.Choice(["pending", "in_progress", "done", "failure", "restarting", "stopped"]))  # fmt: skip
@click.option("--agent", "agent_id", default=None, help="only streams of this agent id")
@click.option("--group", default=None, help="only streams of this group")
@click.option("--search", "q", default=None, help="text in the id, name, source, agent or labels")
@click.option("--newest", is_flag=True, help="newest first (default: oldest first)")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1000))
@click.option("--cursor", default=None, help="the next page (printed under the table)")
@json_option
def stream_list(status: str | None, agent_id: str | None, group: str | None, q: str | None,
                newest: bool, limit: int, cursor: str | None, as_json: bool) -> None:  # fmt: skip
    """List streams, oldest first (--newest: newest first), one page at a time.

    \b
    Examples:
      vigil stream list --status failure
      vigil stream list --group lobby --newest --limit 20
      vigil stream list --search cam-7 --json
    """
    body = {k: v for k, v in {"status": status, "agent_id": agent_id, "group": group, "q": q,
                              "limit": limit, "cursor": cursor,
                              "order": "newest" if newest else None}.items() if v is not None}  # fmt: skip
    _run("stream.list", body, as_json, show=_show_streams)


def _patch(action: str) -> Any:
    @click.argument("stream_id")
    @click.option("--expected-version", type=int, default=None)
    @json_option
    def command(stream_id: str, expected_version: int | None, as_json: bool) -> None:
        body: dict[str, Any] = {"stream_id": stream_id, "action": action}
        if expected_version is not None:
            body["expected_version"] = expected_version
        _run("stream.patch", body, as_json)

    command.__doc__ = (f"{action.capitalize()} a stream" + (
        " (it becomes pending and is placed again)." if action == "start" else
        " (its agent stops it; start it again later).") + "\n\n    \b\n    Examples:\n"
        f"      vigil stream {action} s-3f2c9a1b7e12d4c0\n"
        f"      vigil stream {action} s-3f2c9a1b7e12d4c0 --expected-version 4   # refused if it changed\n")  # fmt: skip
    return command


stream.command("start")(_patch("start"))
stream.command("stop")(_patch("stop"))


@stream.command("delete")
@click.argument("stream_id")
@json_option
def stream_delete(stream_id: str, as_json: bool) -> None:
    """Delete a stream (final: its id is never reused; its history stays in the log).

    \b
    Example:
      vigil stream delete s-3f2c9a1b7e12d4c0
    """
    _run("stream.delete", {"stream_id": stream_id}, as_json,
         show=lambda r: click.echo(f"deleted {r['stream_id']}"))  # fmt: skip


main.add_command(stats)
main.add_command(creds)
main.add_command(tokens)
main.add_command(group)
main.add_command(alarms)
main.add_command(master)
main.add_command(schedule)
main.add_command(scale)
agent.add_command(agent_list)
agent.add_command(agent_get)


from ops.cli.events import events  # noqa: E402  (vigil events …, issue 7)

main.add_command(events)


def _use_data_dir(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value:  # every setting is then read from <value>/vigil.env (unless set in VIGIL_*)
        os.environ["VIGIL_DATA_DIR"] = value


def _add_data_dir(command: click.Command) -> None:
    """``--data-dir`` on every command (those that own one, like ``up``, keep theirs)."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _add_data_dir(sub)
    if not any("--data-dir" in getattr(p, "opts", ()) for p in command.params):
        command.params.append(click.Option(
            ["--data-dir"], default=None, expose_value=False, is_eager=True, callback=_use_data_dir,
            metavar="DIR", help="read the settings of the vigil up in DIR (its vigil.env; default"
            " .vigil or VIGIL_DATA_DIR)"))  # fmt: skip


_add_data_dir(main)


if __name__ == "__main__":  # pragma: no cover
    main(prog_name=os.path.basename(sys.argv[0]))
