"""The ``vigil`` command line (CONTRACT §1).

Every subcommand reads ``VIGIL_*`` from the environment, else ``./.vigil/vigil.env``. Output is
for humans by default and JSON with ``--json``. Exit codes: 0 ok, 1 the command was refused
(the error is printed), 2 usage error, 3 NATS unreachable.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click
import orjson

from ops.cli.client import fail, request
from ops.cli.stats import stats
from ops.settings import load_client_settings

__all__ = ["main"]


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("nats").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="debug logging")
def main(verbose: bool) -> None:
    """vigil: event-sourced manager for fleets of video streams."""
    _setup_logging(verbose)


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
def up(data_dir: Path, agents: int, agent_capacity: int, http: str, nats_url: str | None,
       nats_port: int | None, demo: bool) -> None:  # fmt: skip
    """Embedded NATS + a manager + the HTTP API + local agents, until Ctrl-C."""
    from ops.runtime.parts import up_parts
    from ops.runtime.up import UpOptions, run_up

    options = UpOptions(data_dir=data_dir, agents=agents, http=http, nats_url=nats_url, demo=demo,
                        nats_port=nats_port, agent_capacity=agent_capacity)  # fmt: skip
    asyncio.run(run_up(options, up_parts(options)))


@main.command()
@click.option("--nats-url", default=None)
@click.option("--http", "http", default=None, help="serve the HTTP API on HOST:PORT")
def manager(nats_url: str | None, http: str | None) -> None:
    """One manager instance (run any number against one NATS)."""
    from ops.runtime.up import run_manager

    asyncio.run(run_manager(load_client_settings(nats_url=nats_url), http))


@main.command()
@click.option("--nats-url", default=None)
@click.option("--name", default=None, help="agent name (default: hostname)")
@click.option("--capacity", default=8, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--group", "groups", multiple=True, help="group this agent serves; repeatable")
@click.option("--label", "labels", multiple=True, help="KEY=VALUE; repeatable")
@click.option("--outbox", default=None, type=click.Path(path_type=Path),
              help="feedback outbox file (default: .vigil/agents/NAME/outbox.db)")  # fmt: skip
@click.option("--analytic", "analytics", multiple=True, help="offer only these analytics")
def agent(nats_url: str | None, name: str | None, capacity: int, groups: tuple[str, ...],
          labels: tuple[str, ...], outbox: Path | None, analytics: tuple[str, ...]) -> None:  # fmt: skip
    """Run the reference agent until Ctrl-C (then it stops its streams and deregisters)."""
    from agent.main import run_agent
    from agent.runtime import AgentConfig

    agent_name = name or os.uname().nodename
    config = AgentConfig(
        name=agent_name, capacity=capacity, groups=groups, labels=dict(_label(x) for x in labels),
        outbox=outbox or Path(".vigil") / "agents" / agent_name / "outbox.db",
        analytics=analytics or None,
    )  # fmt: skip
    asyncio.run(run_agent(load_client_settings(nats_url=nats_url), config))


@main.command()
def nats() -> None:
    """Print the connection settings in use."""
    s = load_client_settings()
    click.echo(f"VIGIL_NATS_URL={s.nats_url}")
    if s.nats_user:
        click.echo(f"VIGIL_NATS_USER={s.nats_user}")
        click.echo(f"VIGIL_NATS_PASSWORD={s.nats_password}")
    if s.api_token:
        click.echo(f"VIGIL_API_TOKEN={s.api_token}")
    click.echo(f"VIGIL_HTTP={s.http}")


# ---- a client of the NATS commands -----------------------------------------------------------


def _run(name: str, body: dict[str, Any], as_json: bool, show: Any = None) -> None:
    reply = asyncio.run(request(load_client_settings(), name, body))
    if not reply.get("ok"):
        fail(reply, as_json)
    result = reply["result"]
    if as_json:
        click.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    elif show is not None:
        show(result)
    else:
        _show_stream(result)


def _show_stream(v: dict[str, Any]) -> None:
    width = max(len(k) for k in v)
    for key, value in v.items():
        if isinstance(value, dict | list):
            value = orjson.dumps(value).decode()
        click.echo(f"{key:<{width}}  {value}")


def _show_streams(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None)
    table.add_column("stream_id", no_wrap=True)
    table.add_column("name", overflow="ellipsis", max_width=30)
    table.add_column("kind")
    table.add_column("status", no_wrap=True)
    table.add_column("agent", no_wrap=True)
    for name in ("ver", "restarts"):
        table.add_column(name, justify="right")
    table.add_column("updated", no_wrap=True)
    for s in result["streams"]:
        table.add_row(s["stream_id"], s["name"], s["kind"], s["status"], s["agent_id"] or "-",
                      str(s["version"]), str(s["restarts"]), s["updated_at"])  # fmt: skip
    Console().print(table)
    if result.get("next_cursor"):
        click.echo(f"more: --cursor {result['next_cursor']}")


json_option = click.option("--json", "as_json", is_flag=True, help="print JSON")


@main.group()
def stream() -> None:
    """Create and control streams."""


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
    """Show one stream."""
    _run("stream.get", {"stream_id": stream_id}, as_json)


@stream.command("list")
@click.option("--status", default=None)
@click.option("--agent", "agent_id", default=None)
@click.option("--group", default=None)
@click.option("--limit", default=100, show_default=True, type=int)
@click.option("--cursor", default=None)
@json_option
def stream_list(status: str | None, agent_id: str | None, group: str | None, limit: int,
                cursor: str | None, as_json: bool) -> None:  # fmt: skip
    """List streams, oldest first."""
    body = {k: v for k, v in {"status": status, "agent_id": agent_id, "group": group,
                              "limit": limit, "cursor": cursor}.items() if v is not None}  # fmt: skip
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

    command.__doc__ = f"{action.capitalize()} a stream."
    return command


stream.command("start")(_patch("start"))
stream.command("stop")(_patch("stop"))


@stream.command("delete")
@click.argument("stream_id")
@json_option
def stream_delete(stream_id: str, as_json: bool) -> None:
    """Delete a stream (final)."""
    _run("stream.delete", {"stream_id": stream_id}, as_json,
         show=lambda r: click.echo(f"deleted {r['stream_id']}"))  # fmt: skip


main.add_command(stats)


from ops.cli.events import events  # noqa: E402  (vigil events …, issue 7)

main.add_command(events)


if __name__ == "__main__":  # pragma: no cover
    main(prog_name=os.path.basename(sys.argv[0]))
