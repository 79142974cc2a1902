"""``vigil stats …``: the statistics as a table, JSON or a CSV file for billing; reconciliation.

::

    vigil stats daily   --date D | --from D --to D    one day, or a range per day
    vigil stats monthly --month YYYY-MM [--per-day]   a month per key (or per day and key)
    vigil stats corrections --from D --to D           late deltas counted after their day closed
    vigil stats verify  [--day D]                     recompute closed days, compare with rollups
    vigil stats close   --through D                   close past days now (before the horizon)

Registered in ``ops.cli`` with ``main.add_command(stats)``. All pages of a query are fetched.
Exit codes as in ``ops.cli``: 1 the manager refused the query (the error and its field path are
printed) or ``verify`` found differences (the keys are printed), 2 ``verify --day`` of a day it
cannot recompute, 3 NATS or the manager unreachable.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import msgspec
import orjson

from events import subjects
from ops.cli.client import connected, fail, request
from ops.cli.output import console
from ops.settings import load_client_settings

__all__ = ["stats"]

COLUMNS = (
    ("frames_decoded", "decoded"), ("frames_analysed", "analysed"), ("frames_dropped", "dropped"),
    ("bytes_in", "bytes in"), ("peak_bitrate_bps", "peak bps"), ("avg_bitrate_bps", "avg bps"),
    ("uptime_s", "uptime s"), ("media_s", "media s"), ("reconnects", "reconn"), ("stalls", "stalls"),
    ("events", "events"), ("records", "records"), ("triggers", "triggers"),
)  # fmt: skip
IDENTS = {"stream": ("stream_id", "group"), "agent": ("agent_id",), "group": ("group",),
          "row": ("stream_id", "agent_id", "group"), "total": ()}  # fmt: skip


def _filters(f: Any) -> Any:
    f = click.option("--stream", "stream_id", default=None, help="only this stream")(f)
    f = click.option("--agent", "agent_id", default=None, help="only this agent")(f)
    f = click.option("--group", default=None, help="only streams of this group")(f)
    f = click.option("--by", type=click.Choice(["stream", "agent", "group", "row", "total"]),
                     default="stream", show_default=True,
                     help="one line per stream, agent, group, stream×agent, or the total")(f)  # fmt: skip
    f = click.option("--json", "as_json", is_flag=True, help="print JSON")(f)
    f = click.option("--csv", "csv_file", default=None, type=click.Path(path_type=Path),
                     help="write the lines as CSV to FILE ('-' for stdout)")(f)  # fmt: skip
    return f


@click.group()
def stats() -> None:
    """Statistics the agents measured (exactly once, also across outages), kept for years.

    \b
    Examples:
      vigil stats daily --by group
      vigil stats monthly --month 2026-11 --csv invoice.csv
      vigil stats verify
    """


@stats.command("daily")
@click.option("--date", "day", default=None, help="UTC day YYYY-MM-DD (default: today, UTC)")
@click.option("--from", "from_", default=None, help="first UTC day of a range (with --to)")
@click.option("--to", default=None, help="last UTC day of a range, included")
@_filters
def daily(day: str | None, from_: str | None, to: str | None, stream_id: str | None,
          agent_id: str | None, group: str | None, by: str, as_json: bool,
          csv_file: Path | None) -> None:  # fmt: skip
    """Totals of one UTC day, or of each day from --from to --to: frames, bytes, bitrate, uptime,
    reconnects, stalls, events, records; each line says open, closed or corrected.

    The average bitrate is bytes over the media time decoded; uptime is wall-clock time.

    \b
    Examples:
      vigil stats daily                                     # today (UTC), per stream
      vigil stats daily --date 2026-11-03 --by group
      vigil stats daily --from 2026-11-01 --to 2026-11-30 --stream s-3f2c9a1b --csv nov.csv
    """
    if (from_ is None) != (to is None):
        raise click.UsageError("--from and --to go together")
    if from_ is not None and day is not None:
        raise click.UsageError("use --date for one day, or --from/--to for a range")
    body: dict[str, Any] = {"by": by}
    body |= {k: v for k, v in (("stream_id", stream_id), ("agent_id", agent_id),
                               ("group", group)) if v is not None}  # fmt: skip
    if from_ is not None:
        _output(asyncio.run(_fetch_all("stats.range", body | {"from": from_, "to": to},
                                       as_json)), as_json, csv_file)  # fmt: skip
        return
    body["date"] = day or datetime.now(UTC).strftime("%Y-%m-%d")
    _output(asyncio.run(_fetch_all("stats.daily", body, as_json)), as_json, csv_file)


@stats.command("monthly")
@click.option("--month", default=None, help="UTC month YYYY-MM (default: this month, UTC)")
@click.option("--per-day", is_flag=True, help="one line per day and key, not per key")
@_filters
def monthly(month: str | None, per_day: bool, stream_id: str | None, agent_id: str | None,
            group: str | None, by: str, as_json: bool, csv_file: Path | None) -> None:  # fmt: skip
    """Totals of one UTC month, the way a monthly invoice needs them.

    \b
    Examples:
      vigil stats monthly --month 2026-11 --by stream --csv invoice-2026-11.csv
      vigil stats monthly --per-day --group lobby
    """
    body: dict[str, Any] = {"month": month or datetime.now(UTC).strftime("%Y-%m"), "by": by,
                            "per": "day" if per_day else "range"}  # fmt: skip
    body |= {k: v for k, v in (("stream_id", stream_id), ("agent_id", agent_id),
                               ("group", group)) if v is not None}  # fmt: skip
    _output(asyncio.run(_fetch_all("stats.monthly", body, as_json)), as_json, csv_file)


@stats.command("corrections")
@click.option("--from", "from_", required=True, help="first UTC day")
@click.option("--to", required=True, help="last UTC day, included")
@click.option("--stream", "stream_id", default=None, help="only this stream")
@click.option("--agent", "agent_id", default=None, help="only this agent")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def corrections(from_: str, to: str, stream_id: str | None, agent_id: str | None,
                as_json: bool) -> None:  # fmt: skip
    """Late deltas counted after their day had closed, with their cause.

    \b
    Example:
      vigil stats corrections --from 2026-11-01 --to 2026-11-30
    """
    body: dict[str, Any] = {"from": from_, "to": to, "limit": 10_000}
    body |= {k: v for k, v in (("stream_id", stream_id), ("agent_id", agent_id)) if v}
    reply = asyncio.run(request(load_client_settings(), "stats.corrections", body))
    if not reply.get("ok"):
        fail(reply, as_json)
    result = reply["result"]
    if as_json:
        click.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
        return
    for c in result["items"]:
        stored = datetime.fromtimestamp(c["stored_at"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        click.echo(f"{c['day']} {c['stream_id']} {c['agent_id']}:{c['seq']} {c['cause']}: stored "
                   f"{stored} (feedback seq {c['feedback_seq']}), frames "
                   f"{c['stats']['frames_decoded']:,}, bytes {c['stats']['bytes_read']:,}")  # fmt: skip
    if not result["items"]:
        click.echo("no corrections", err=True)


@stats.command("verify")
@click.option("--day", default=None, help="only this UTC day")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@click.option("--timeout", default=600.0, show_default=True, help="seconds to wait for the answer")
def verify(day: str | None, as_json: bool, timeout: float) -> None:
    """Recompute every closed day the feedback still holds and compare it with its rollup.

    Exit 0 when all agree, 1 with the differing keys, 2 when --day cannot be recomputed.

    \b
    Examples:
      vigil stats verify
      vigil stats verify --day 2026-11-03 --json
    """
    body = {"day": day} if day else {}
    reply = asyncio.run(_request("stats.verify", body, timeout))
    if not reply.get("ok"):
        fail(reply, as_json)
    result = reply["result"]
    if as_json:
        click.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    else:
        for d in result["differences"]:
            click.echo(f"{d['key']}  {d['field']}: rollup {d['rollup']!r}, recomputed "
                       f"{d['recomputed']!r}")  # fmt: skip
        held = f"feedback holds days from {result['held_from']}" if result["held_from"] else (
            "feedback holds every day")  # fmt: skip
        click.echo(f"checked {len(result['checked'])} closed days ({held}); "
                   f"{len(result['open'])} open, {len(result['skipped'])} no longer held; "
                   f"{len(result['differences'])} differences", err=True)  # fmt: skip
    if result["differences"]:
        sys.exit(1)
    if day and day not in result["checked"]:
        why = "it is not closed yet" if day in result["open"] else (
            f"the feedback no longer holds it (it holds days from {result['held_from']})")  # fmt: skip
        click.echo(f"{day} was not recomputed: {why}", err=True)
        sys.exit(2)


@stats.command("close")
@click.option("--through", required=True, help="close every UTC day up to this one (included)")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def close(through: str, as_json: bool) -> None:
    """Close past days now, before the lateness horizon: their figures become final; deltas that
    arrive later are counted once, as corrections.

    \b
    Example:
      vigil stats close --through 2026-11-30      # invoice November on December 1st
    """
    reply = asyncio.run(request(load_client_settings(), "stats.close", {"through": through}))
    if not reply.get("ok"):
        fail(reply, as_json)
    result = reply["result"]
    if as_json:
        click.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(f"closed through {result['closed_through']}"
                   + (" (already)" if result["already"] else ""))  # fmt: skip


async def _request(name: str, body: dict[str, Any], timeout: float) -> dict[str, Any]:
    from nats.errors import NoRespondersError
    from nats.errors import TimeoutError as NatsTimeout

    async with connected(load_client_settings()) as nc:
        try:
            msg = await nc.request(subjects.command(name), orjson.dumps(body), timeout=timeout)
        except NoRespondersError:
            click.echo("error: no manager is running (no responders on vigil.cmd.*)", err=True)
            sys.exit(3)
        except NatsTimeout:
            click.echo(f"error: the manager did not answer within {timeout:g} s", err=True)
            sys.exit(3)
    reply: dict[str, Any] = orjson.loads(msg.data)
    return reply


async def _fetch_all(name: str, body: dict[str, Any], as_json: bool) -> dict[str, Any]:
    """Every page of a statistics query merged into one result."""
    settings = load_client_settings()
    merged: dict[str, Any] | None = None
    while True:
        reply = await request(settings, name, body)
        if not reply.get("ok"):
            fail(reply, as_json)
        result: dict[str, Any] = reply["result"]
        if merged is None:
            merged = result
        else:
            merged["items"].extend(result["items"])
        if not result["next_cursor"]:
            merged["next_cursor"] = None
            return merged
        body = body | {"cursor": result["next_cursor"]}


def _output(result: dict[str, Any], as_json: bool, csv_file: Path | None) -> None:
    if csv_file is not None:
        from ops.stats.queries import RangeItem, StatsItem, to_csv  # lazily: `vigil --help` fast

        if "date" in result:
            text = to_csv(msgspec.convert(result["items"], list[StatsItem]), result["date"])
        else:
            text = to_csv(msgspec.convert(result["items"], list[RangeItem]))
        if str(csv_file) == "-":
            click.echo(text, nl=False)
        else:
            csv_file.write_text(text)
            click.echo(f"wrote {len(result['items'])} lines to {csv_file}", err=True)
    if as_json:
        click.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    elif csv_file is None:
        _show(result)


ESSENTIAL = ("frames_decoded", "frames_dropped", "bytes_in", "avg_bitrate_bps", "uptime_s",
             "media_s", "reconnects", "stalls", "events")  # fmt: skip
"""The columns of a terminal narrower than all of them (--json and --csv have every figure)."""


def _show(result: dict[str, Any]) -> None:
    from rich.table import Table

    out = console()
    columns = COLUMNS if out.width >= 190 else tuple(c for c in COLUMNS if c[0] in ESSENTIAL)
    idents = IDENTS[result["by"]] or ("",)  # by total: one unnamed column, "all"
    ranged = "date" not in result
    if ranged:
        span = result["month"] or f"{result['from']} … {result['to']}"
        title = f"statistics {span} (UTC), {result['state']}"
    else:
        title = f"daily statistics {result['date']} (UTC), {result['state']}"
    table = Table(title=title)
    if ranged:
        table.add_column("date", no_wrap=True)
    for name in idents:
        table.add_column(name, no_wrap=True)
    for _, heading in columns:
        table.add_column(heading, justify="right", no_wrap=True)
    table.add_column("state", no_wrap=True)
    for item in result["items"]:
        table.add_row(*([item["date"]] if ranged else []),
                      *(item.get(k) or ("-" if k else "all") for k in idents),
                      *(_num(item[k]) for k, _ in columns), _state(item))  # fmt: skip
    total = result["total"]
    lead = ["total"] + [""] * (len(idents) - (0 if ranged else 1))
    table.add_row(*lead, *(_num(total[k]) for k, _ in columns), result["state"], style="bold")
    out.print(table)
    if columns is not COLUMNS:
        click.echo(
            "note: a wider terminal shows every figure; --json and --csv always do", err=True
        )
    if not result["complete"]:
        click.echo("note: this manager is still replaying feedback; totals may grow", err=True)
    if result["state"] == "open":
        click.echo("note: open days may still grow (late agents); closed days are final",
                   err=True)  # fmt: skip


def _state(item: dict[str, Any]) -> str:
    return f"corrected ({item['corrections']})" if item["state"] == "corrected" else item["state"]


def _num(value: int | float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:,.1f}"
