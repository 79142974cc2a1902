"""``vigil events …``: tail, audit, replay, verify, export and import the event log.

Exit codes: 0 ok, 1 verify found a mismatch / the request was refused, 2 usage error,
3 NATS (or, for verify, a manager) unreachable. Human-readable output by default, ``--json`` for
machines; progress bars go to stderr and only on a terminal.
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager, contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import click
import msgspec
import orjson
from nats.aio.client import Client
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from events import subjects
from ops.cli import output
from ops.cli.client import connected
from ops.logtools.replay import Rebuilt, ReplayError, parse_time, read_log, rebuild, seq_at_time
from ops.settings import load_client_settings

__all__ = ["events"]

json_option = click.option("--json", "as_json", is_flag=True, help="print JSON")
err = Console(stderr=True)


def _out(data: Any) -> None:
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


def _connect(*, admin: bool = False) -> AbstractAsyncContextManager[Client]:
    """The CLI's connection; ``admin`` for the tools that write the log (import)."""
    return connected(load_client_settings(admin=admin))


def _run(coro: Coroutine[Any, Any, int | None]) -> None:
    try:
        code = asyncio.run(coro)
    except ReplayError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        code = 0
    sys.exit(code or 0)


@contextmanager
def _progress(what: str) -> Any:
    """A rich progress bar on stderr (only on a terminal); yields ``update(done, total)``."""
    bar = Progress(TextColumn(what), BarColumn(), TextColumn("{task.completed:,}/{task.total:,}"),
                   TimeRemainingColumn(), console=err, transient=True,
                   disable=not sys.stderr.isatty())  # fmt: skip
    with bar:
        task = bar.add_task(what, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total or None)

        yield update


@click.group()
def events() -> None:
    """Read the event log: tail, audit, replay, verify, export, import.

    \b
    Examples:
      vigil events tail --follow
      vigil events audit s-3f2c9a1b7e12d4c0
      vigil events replay --at 2026-11-03T10:00:00Z --serve 127.0.0.1:8090
    """


# ---- tail ------------------------------------------------------------------------------------


def _line(rec: Any) -> str:
    from events.codec import UndecodableEvent, decode_event
    from ops.api.views import iso
    from ops.logtools.audit import describe_cause

    try:
        event = decode_event(rec.data)
    except UndecodableEvent as exc:
        return f"{rec.seq:>8}  {iso(rec.ts)}  {rec.aggregate:<28}  (undecodable: {exc})"
    return (f"{rec.seq:>8}  {iso(rec.ts)}  {rec.aggregate:<28}  {type(event).__name__:<22}"
            f"  {describe_cause(event.cause)}")  # fmt: skip


@events.command()
@click.option(
    "--subject",
    default=subjects.EVT_ALL,
    show_default=True,
    help=f"e.g. {subjects.event('stream.>')}",
)
@click.option("--follow", "-f", is_flag=True, help="keep printing new events until Ctrl-C")
@click.option("--last", "last", default=20, show_default=True, help="start this many events back")
@json_option
def tail(subject: str, follow: bool, last: int, as_json: bool) -> None:
    """Print the newest events (and, with --follow, new ones as they are stored).

    \b
    Examples:
      vigil events tail --last 50
      vigil events tail --subject 'vigil.evt.stream.>' --follow --json
    """
    from ops.logtools.transfer import record_line

    def show(rec: Any) -> None:
        if as_json:
            sys.stdout.buffer.write(record_line(rec))
            sys.stdout.flush()
        else:
            click.echo(_line(rec))

    async def run() -> None:
        async with _connect() as nc:
            end = int((await nc.jetstream().stream_info(subjects.EVENTS_STREAM)).state.last_seq)
            start = max(end - last + 1, 1) if subject == subjects.EVT_ALL else 1
            backlog: deque[Any] = deque(maxlen=max(last, 0) or None)
            async for rec in read_log(nc, subject=subject, from_seq=start, until_seq=end):
                backlog.append(rec)
            for rec in backlog:
                show(rec)
            if follow:
                async for rec in read_log(nc, subject=subject, from_seq=end + 1, follow=True):
                    show(rec)

    _run(run())


# ---- audit -----------------------------------------------------------------------------------


@events.command("audit")
@click.argument("ident", metavar="STREAM_ID|AGENT_ID")
@json_option
def audit_cmd(ident: str, as_json: bool) -> None:
    """The full history of one stream or agent: time, event, cause, status before → after.

    \b
    Examples:
      vigil events audit s-3f2c9a1b7e12d4c0
      vigil events audit a-3f2c9a1b7e12 --json
    """
    from ops.logtools.audit import audit

    async def run() -> None:
        async with _connect() as nc:
            aggregate, entries = await audit(nc, ident)
        if as_json:
            _out({"aggregate": aggregate, "entries": msgspec.to_builtins(entries)})
            return
        table = output.table("seq", "time", "event", "cause", "status", "note",
                             wide=("cause", "note"), right=("seq",),
                             title=f"{aggregate}: {len(entries)} events")  # fmt: skip
        for e in entries:
            status = f"{e.before or '∅'} → {e.after or '∅'}"
            note = "" if e.applied else "superseded (no-op)"
            for key in ("agent_id", "reason", "error", "attempt", "name"):
                if key in e.details:
                    value = e.details[key]
                    value = value.get("code") if isinstance(value, dict) else value
                    note = f"{note} {key}={value}".strip()
            table.add_row(str(e.seq), e.time or "-", e.event, e.cause, status, note or "-")
        output.console().print(table)

    _run(run())


# ---- replay ----------------------------------------------------------------------------------


def _views(rebuilt: Rebuilt) -> dict[str, Any]:
    from ops.api.views import agent_view, stream_view

    fleet = rebuilt.fleet
    agents = sorted(fleet.agents.active().values(), key=lambda a: a.agent_id)
    return {"seq": rebuilt.seq,
            "streams": msgspec.to_builtins([stream_view(s) for s in fleet.streams.ordered()]),
            "agents": msgspec.to_builtins([agent_view(a, load=fleet.streams.load_of(a.agent_id))
                                           for a in agents])}  # fmt: skip


@events.command()
@click.option("--at", "at", default=None, help="a time: ISO-8601 (…Z) or unix seconds")
@click.option("--seq", "seq", default=None, type=click.IntRange(0), help="an event sequence")
@click.option("--serve", default=None, metavar="HOST:PORT",
              help="serve the read-only status API on that state until Ctrl-C")  # fmt: skip
@json_option
def replay(at: str | None, seq: int | None, serve: str | None, as_json: bool) -> None:
    """Rebuild every projection as of a moment and print (or serve) it.

    \b
    Examples:
      vigil events replay --at 2026-11-03T10:00:00Z
      vigil events replay --seq 120345 --serve 127.0.0.1:8090    # the dashboard API of that moment
    """
    if (at is None) == (seq is None):
        raise click.UsageError("give exactly one of --at TIME or --seq N")

    async def run() -> None:
        async with _connect() as nc:
            target = seq if seq is not None else await seq_at_time(nc, parse_time(at or ""))
            with _progress("rebuilding") as update:
                rebuilt = await rebuild(nc, target, progress=update)
            if serve:
                await _serve(nc, rebuilt, serve)
                return
        views = _views(rebuilt)
        if as_json:
            _out(views)
            return
        click.echo(f"state as of event seq {views['seq']}"
                   f" ({rebuilt.applied:,} events folded in {rebuilt.seconds:.2f}s)")  # fmt: skip
        table = output.table("stream_id", "name", "status", "agent", "ver", "restarts",
                             wide=("name",), right=("ver", "restarts"))  # fmt: skip
        for s in views["streams"]:
            table.add_row(s["stream_id"], s["name"], s["status"], s["agent_id"] or "-",
                          str(s["version"]), str(s["restarts"]))  # fmt: skip
        output.console().print(table)
        agents = output.table("agent_id", "name", "status", "capacity", "load", wide=("name",),
                              right=("capacity", "load"))  # fmt: skip
        for a in views["agents"]:
            agents.add_row(a["agent_id"], a["name"], a["status"], str(a["capacity"]),
                           str(a["load"]))  # fmt: skip
        output.console().print(agents)

    _run(run())


async def _serve(nc: Client, rebuilt: Rebuilt, hostport: str) -> None:
    from aiohttp import web

    from ops.http.app import build_app
    from ops.logtools.readonly import ReadOnlyManager

    host, _, port = hostport.rpartition(":")
    # reads open on loopback only; elsewhere a token (VIGIL_API_TOKEN) is needed; writes never
    settings = load_client_settings()
    app = build_app(ReadOnlyManager(nc, rebuilt), token=settings.api_token,
                    open_reads=host in ("", "127.0.0.1", "localhost", "::1"))  # fmt: skip
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, host or "127.0.0.1", int(port)).start()
    click.echo(f"read-only status API as of seq {rebuilt.seq} on http://{hostport} (Ctrl-C stops)")
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


# ---- verify ----------------------------------------------------------------------------------


@events.command("verify")
@click.option("--no-live", is_flag=True, help="do not compare with a running manager")
@click.option("--no-snapshot", is_flag=True, help="do not compare with the latest snapshot")
@json_option
def verify_cmd(no_live: bool, no_snapshot: bool, as_json: bool) -> None:
    """Rebuild from zero; compare with a live manager and the latest snapshot (exit 1 if not equal).

    \b
    Examples:
      vigil events verify
      vigil events verify --no-live --json
    """
    from ops.logtools.verify import render_diff, verify

    async def run() -> int:
        async with _connect() as nc:
            with _progress("rebuilding") as update:
                checks = await verify(nc, live=not no_live, snapshot=not no_snapshot,
                                      progress=update)  # fmt: skip
        failed = [c for c in checks if c.skipped is None and c.diffs]
        if as_json:
            _out([msgspec.to_builtins(c) | {"ok": c.ok} for c in checks])
        else:
            for c in checks:
                if c.skipped is not None:
                    click.echo(f"{c.label}: not checked: {c.skipped}")
                elif c.ok:
                    click.echo(f"{c.label}: OK at seq {c.seq} ({c.entities} entities equal)")
                else:
                    click.echo("\n".join(render_diff(f"{c.label} (seq {c.seq})", c.diffs)))
        if failed:
            return 1
        if not no_live and any(c.label == "live" and c.skipped for c in checks):
            return 3
        return 0

    _run(run())


# ---- export / import -------------------------------------------------------------------------


async def _bounds(nc: Client, since: str | None, until: str | None, from_seq: int,
                  to_seq: int | None) -> tuple[int, int | None]:  # fmt: skip
    if since is not None:
        from_seq = max(from_seq, await seq_at_time(nc, parse_time(since) - 1e-6) + 1)
    if until is not None:
        last = await seq_at_time(nc, parse_time(until))
        to_seq = last if to_seq is None else min(to_seq, last)
    return from_seq, to_seq


@events.command("export")
@click.option("--since", default=None, help="from this time (ISO-8601 or unix seconds)")
@click.option("--until", default=None, help="up to this time, inclusive")
@click.option("--from-seq", default=1, show_default=True, type=click.IntRange(1))
@click.option("--to-seq", default=None, type=click.IntRange(1))
@click.option("--subject", default=subjects.EVT_ALL, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["jsonl"]), default="jsonl", show_default=True)
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), default=None, help="default: stdout"
)
def export_cmd(since: str | None, until: str | None, from_seq: int, to_seq: int | None,
               subject: str, fmt: str, output: Path | None) -> None:  # fmt: skip
    """Write events as JSON lines (seq, subject, stored time, headers, event body).

    \b
    Examples:
      vigil events export -o log.jsonl
      vigil events export --since 2026-11-01T00:00:00Z --until 2026-11-02T00:00:00Z > day.jsonl
    """
    from ops.logtools.transfer import record_line

    async def run() -> None:
        async with _connect() as nc:
            first, last = await _bounds(nc, since, until, from_seq, to_seq)
            if last is not None and last < first:
                return
            end = last or int(
                (await nc.jetstream().stream_info(subjects.EVENTS_STREAM)).state.last_seq
            )
            out: BinaryIO = output.open("wb") if output else sys.stdout.buffer
            n = 0
            try:
                with _progress("exporting") as update:
                    async for rec in read_log(nc, subject=subject, from_seq=first, until_seq=last):
                        out.write(record_line(rec))
                        n += 1
                        if n % 10_000 == 0:
                            update(rec.seq, end)
            finally:
                if output:
                    out.close()
                    click.echo(f"exported {n} events to {output}", err=True)

    _run(run())


@events.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="append even though the store is not empty")
@json_option
def import_cmd(file: Path, force: bool, as_json: bool) -> None:
    """Append an exported JSON-lines file to a fresh event store (for forensics).

    \b
    Example:
      vigil events import log.jsonl        # uses the admin identity (VIGIL_ADMIN_CREDS)
    """
    from ops.logtools.transfer import import_lines

    async def run() -> None:
        async with _connect(admin=True) as nc:
            with file.open("rb") as f, _progress("importing") as update:
                report: Callable[[int], None] = lambda n: update(n, 0)  # noqa: E731
                n = await import_lines(nc, f, force=force, progress=report)
        if as_json:
            _out({"imported": n, "file": str(file)})
        else:
            click.echo(f"imported {n} events from {file}")

    _run(run())
