"""``vigil stats daily``: the daily statistics as a table, JSON or a CSV file for billing.

Registered in ``ops.cli`` with ``main.add_command(stats)``. All pages of the query are fetched.
Exit codes as in ``ops.cli``: 1 the manager refused the query (the error and its field path are
printed), 3 NATS or the manager unreachable.
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

from ops.cli.client import fail, request
from ops.settings import load_client_settings

__all__ = ["stats"]

COLUMNS = (
    ("frames_decoded", "decoded"), ("frames_analysed", "analysed"), ("frames_dropped", "dropped"),
    ("bytes_in", "bytes in"), ("peak_bitrate_bps", "peak bps"), ("avg_bitrate_bps", "avg bps"),
    ("uptime_s", "uptime s"), ("reconnects", "reconn"), ("stalls", "stalls"),
    ("events", "events"), ("records", "records"), ("triggers", "triggers"),
)  # fmt: skip


@click.group()
def stats() -> None:
    """Statistics the agents measured (exactly once, also across outages)."""


@stats.command("daily")
@click.option("--date", "day", default=None, help="UTC day YYYY-MM-DD (default: today, UTC)")
@click.option("--stream", "stream_id", default=None, help="only this stream")
@click.option("--agent", "agent_id", default=None, help="only this agent")
@click.option("--group", default=None, help="only streams of this group")
@click.option("--by", type=click.Choice(["stream", "agent", "group", "row"]), default="stream",
              show_default=True, help="one line per stream, agent, group, or stream×agent")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@click.option("--csv", "csv_file", default=None, type=click.Path(path_type=Path),
              help="write the lines as CSV to FILE ('-' for stdout)")  # fmt: skip
def daily(day: str | None, stream_id: str | None, agent_id: str | None, group: str | None,
          by: str, as_json: bool, csv_file: Path | None) -> None:  # fmt: skip
    """Totals of one UTC day: frames, bytes, bitrate, uptime, reconnects, stalls, events..."""
    body: dict[str, Any] = {"date": day or datetime.now(UTC).strftime("%Y-%m-%d"), "by": by}
    body |= {k: v for k, v in (("stream_id", stream_id), ("agent_id", agent_id),
                               ("group", group)) if v is not None}  # fmt: skip
    result = asyncio.run(_fetch_all(body, as_json))
    if csv_file is not None:
        from ops.stats.queries import StatsItem, to_csv  # lazily: keeps `vigil --help` fast

        items = msgspec.convert(result["items"], list[StatsItem])
        text = to_csv(result["date"], items)
        if str(csv_file) == "-":
            click.echo(text, nl=False)
        else:
            csv_file.write_text(text)
            click.echo(f"wrote {len(result['items'])} lines to {csv_file}", err=True)
    if as_json:
        click.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    elif csv_file is None:
        _show(result)


async def _fetch_all(body: dict[str, Any], as_json: bool) -> dict[str, Any]:
    """Every page of ``stats.daily`` merged into one result."""

    settings = load_client_settings()
    merged: dict[str, Any] | None = None
    while True:
        reply = await request(settings, "stats.daily", body)
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


def _show(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    idents = {"stream": ("stream_id", "group"), "agent": ("agent_id",), "group": ("group",),
              "row": ("stream_id", "agent_id", "group")}[result["by"]]  # fmt: skip
    table = Table(title=f"daily statistics {result['date']} (UTC)")
    for name in idents:
        table.add_column(name, no_wrap=True)
    for _, title in COLUMNS:
        table.add_column(title, justify="right", no_wrap=True)
    for item in result["items"]:
        table.add_row(*(item[k] or "-" for k in idents), *(_num(item[k]) for k, _ in COLUMNS))
    total = result["total"]
    table.add_row("total", *([""] * (len(idents) - 1)), *(_num(total[k]) for k, _ in COLUMNS),
                  style="bold")  # fmt: skip
    # Piped output (a file, a pager, a test) gets the full table instead of an 80-column squeeze.
    Console(width=None if sys.stdout.isatty() else 400).print(table)
    if not result["complete"]:
        click.echo("note: this manager is still replaying feedback; totals may grow", err=True)


def _num(value: int | float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:,.1f}"
