"""``vigil group create|update|get|list|delete``: redundancy groups (a client of the NATS
commands ``vigil.cmd.group.*``)."""

from __future__ import annotations

import asyncio
from typing import Any

import click
import orjson

from ops.cli.client import fail, request
from ops.settings import load_client_settings

__all__ = ["call", "group"]


def call(name: str, body: dict[str, Any], as_json: bool, show: Any) -> None:
    """Send command ``name``; print its result (``--json``: as JSON), or the error and exit 1."""
    reply = asyncio.run(request(load_client_settings(), name, body))
    if not reply.get("ok"):
        fail(reply, as_json)
    if as_json:
        click.echo(orjson.dumps(reply["result"], option=orjson.OPT_INDENT_2).decode())
    else:
        show(reply["result"])


def _member(text: str) -> dict[str, Any]:
    name, sep, priority = text.rpartition(":")
    if not sep or not priority.isdigit() or not name:
        return {"agent": text, "priority": 1}
    return {"agent": name, "priority": int(priority)}


def _show(g: dict[str, Any]) -> None:
    click.echo(f"group      {g['name']}  ({g['mode']}, version {g['version']})")
    if g["mode"] == "active_standby":
        click.echo(f"active     {g['active'] or '-'}  since {g['active_since'] or '-'}")
        click.echo(f"why        {g['last_change'] or '-'}")
        click.echo(f"timings    keepalive {g['keepalive_s']}s, failover {g['failover_s']}s,"
                   f" failback {'on' if g['failback'] else 'off'}"
                   f" (hold {g['failback_hold_s']}s)")  # fmt: skip
        click.echo(f"history    {g['failovers']} failover(s), {g['failbacks']} failback(s)")
    click.echo(f"streams    {g['streams']}")
    for m in g["members"]:
        ids = ",".join(m["agent_ids"]) or "-"
        click.echo(f"  {m['priority']:>4}  {m['agent']:<24} {m['role']:<8} {m['status']:<9} {ids}")


def _show_list(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None)
    for col in ("group", "mode", "active", "members", "streams", "failovers", "failbacks"):
        table.add_column(col)
    for g in result["groups"]:
        members = " ".join(f"{m['agent']}:{m['priority']}" + ("*" if m["role"] == "active" else "")
                           for m in g["members"])  # fmt: skip
        table.add_row(g["name"], g["mode"], g["active"] or "-", members, str(g["streams"]),
                      str(g["failovers"]), str(g["failbacks"]))  # fmt: skip
    Console().print(table)


json_option = click.option("--json", "as_json", is_flag=True, help="print JSON")
member_option = click.option("--member", "members", multiple=True,
                             help="AGENT_NAME[:PRIORITY] (lowest priority first); repeatable")  # fmt: skip


@click.group()
def group() -> None:
    """Redundancy groups: pools, active/standby (N+1, N+2, N:1), failover and failback."""


@group.command("create")
@click.argument("name")
@click.option("--mode", type=click.Choice(["pool", "active_standby"]), default="pool",
              show_default=True)  # fmt: skip
@member_option
@click.option("--keepalive", "keepalive_s", type=float, default=None,
              help="heartbeat interval members are told (s) [1]")  # fmt: skip
@click.option("--failover", "failover_s", type=float, default=None,
              help="active member silent this long: fail over (s) [3]")  # fmt: skip
@click.option("--failback/--no-failback", default=None, help="return to the primary [on]")
@click.option("--hold", "failback_hold_s", type=float, default=None,
              help="the primary must be healthy this long before failback (s) [10]")  # fmt: skip
@json_option
def create(name: str, mode: str, members: tuple[str, ...], keepalive_s: float | None,
           failover_s: float | None, failback: bool | None, failback_hold_s: float | None,
           as_json: bool) -> None:  # fmt: skip
    """Create group NAME."""
    body: dict[str, Any] = {"name": name, "mode": mode, "members": [_member(m) for m in members]}
    for key, value in (("keepalive_s", keepalive_s), ("failover_s", failover_s),
                       ("failback", failback), ("failback_hold_s", failback_hold_s)):  # fmt: skip
        if value is not None:
            body[key] = value
    call("group.create", body, as_json, _show)


@group.command("update")
@click.argument("name")
@click.option("--mode", type=click.Choice(["pool", "active_standby"]), default=None)
@member_option
@click.option("--keepalive", "keepalive_s", type=float, default=None)
@click.option("--failover", "failover_s", type=float, default=None)
@click.option("--failback/--no-failback", default=None)
@click.option("--hold", "failback_hold_s", type=float, default=None)
@json_option
def update(name: str, mode: str | None, members: tuple[str, ...], keepalive_s: float | None,
           failover_s: float | None, failback: bool | None, failback_hold_s: float | None,
           as_json: bool) -> None:  # fmt: skip
    """Change group NAME (options left out are kept; --member replaces all members)."""
    body: dict[str, Any] = {"name": name}
    if members:
        body["members"] = [_member(m) for m in members]
    for key, value in (("mode", mode), ("keepalive_s", keepalive_s), ("failover_s", failover_s),
                       ("failback", failback), ("failback_hold_s", failback_hold_s)):  # fmt: skip
        if value is not None:
            body[key] = value
    call("group.update", body, as_json, _show)


@group.command("get")
@click.argument("name")
@json_option
def get(name: str, as_json: bool) -> None:
    """Show group NAME: members, roles, the active member and why."""
    call("group.get", {"name": name}, as_json, _show)


@group.command("list")
@json_option
def list_(as_json: bool) -> None:
    """List groups."""
    call("group.list", {}, as_json, _show_list)


@group.command("delete")
@click.argument("name")
@json_option
def delete(name: str, as_json: bool) -> None:
    """Delete group NAME (refused while streams name it)."""
    call("group.delete", {"name": name}, as_json, lambda r: click.echo(f"deleted {r['name']}"))
