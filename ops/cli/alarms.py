"""``vigil alarms [--active] [--follow]`` and ``vigil alarms ack ID``.

``--follow`` prints the kept alarms, then every alarm event as it happens: it subscribes to
``vigil.alarm.>`` — the subject any operator tool can subscribe to as well.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import socket
from typing import Any

import click
import orjson

from events import subjects
from ops.cli.client import call, connected
from ops.cli.output import console, table

__all__ = ["alarms"]


def _line(a: dict[str, Any]) -> str:
    state = "ACTIVE " if a["active"] else "cleared"
    acked = f" acked by {a['acked_by']}" if a["acked"] else ""
    return (f"{a['raised_at']}  {state} {a['severity']:<8} {a['kind']:<19} {a['source']:<28}"
            f" {a['alarm_id']}  {a['reason']}{acked}")  # fmt: skip


def _show(result: dict[str, Any]) -> None:
    t = table("raised", "state", "severity", "kind", "source", "alarm_id", "reason", "ack",
              wide=("reason", "source"))  # fmt: skip
    for a in reversed(result["alarms"]):
        t.add_row(a["raised_at"] or "-", "ACTIVE" if a["active"] else "cleared", a["severity"],
                  a["kind"], a["source"], a["alarm_id"], a["reason"] or "-",
                  f"acked by {a['acked_by']}" if a["acked"] else "-")  # fmt: skip
    console().print(t)
    click.echo(f"{result['active']} active")


async def _follow(as_json: bool) -> None:
    async with connected() as nc:
        done = asyncio.Event()

        async def on_msg(msg: Any) -> None:
            if as_json:
                click.echo(msg.data.decode(errors="replace"))
                return
            e = orjson.loads(msg.data)
            what = {"AlarmRaised": "RAISED ", "AlarmCleared": "CLEARED", "AlarmAcked": "ACKED  "}
            extra = e.get("reason") or (f"by {e['by']}" if "by" in e else "")
            click.echo(f"{e['at']:.3f}  {what.get(e['type'], e['type'])} {e.get('severity', ''):<8}"
                       f" {e['kind']:<19} {e['source']:<28} {e['alarm_id']}  {extra}")  # fmt: skip

        await nc.subscribe(subjects.ALARMS_ALL, cb=on_msg)
        await nc.flush()
        click.echo(f"following {subjects.ALARMS_ALL} (Ctrl-C stops)", err=True)
        await done.wait()


@click.group(invoke_without_command=True)
@click.option("--active", is_flag=True, help="active alarms only")
@click.option("--kind", default=None, help="one kind (agent_disconnected, group_failover, ...)")
@click.option("--limit", default=200, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--follow", is_flag=True, help="then print alarm events as they happen")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@click.pass_context
def alarms(ctx: click.Context, active: bool, kind: str | None, limit: int, follow: bool,
           as_json: bool) -> None:  # fmt: skip
    """Alarms kept for the retention period (newest last), raised and cleared by vigil.

    \b
    Examples:
      vigil alarms --active
      vigil alarms --kind group_failover --json
      vigil alarms --follow                      # then every raise, clear and ack as it happens
      vigil alarms ack al-3f2c9a1b7e12 --by ops@noc
    """
    if ctx.invoked_subcommand is not None:
        return
    body: dict[str, Any] = {"limit": limit}
    if active:
        body["active"] = True
    if kind:
        body["kind"] = kind
    call("alarm.list", body, as_json, _show)
    if follow:
        try:
            asyncio.run(_follow(as_json))
        except KeyboardInterrupt:
            pass


@alarms.command("ack")
@click.argument("alarm_id")
@click.option("--by", default=None, help="who acknowledges (default: user@host)")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def ack(alarm_id: str, by: str | None, as_json: bool) -> None:
    """Acknowledge alarm ALARM_ID (recorded with who and when).

    \b
    Example:
      vigil alarms ack al-3f2c9a1b7e12 --by ops@noc
    """
    who = by or f"{_user()}@{socket.gethostname()}"
    call("alarm.ack", {"alarm_id": alarm_id, "by": who}, as_json,
         lambda a: click.echo(_line(a)))  # fmt: skip


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER", "someone")
