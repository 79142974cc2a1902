"""``vigil agent list`` and ``vigil agent get``: every agent with its groups, load and host
figures (AddPac's monitoring screen: active group, streams against capacity, CPU, memory,
storage), and one agent in full."""

from __future__ import annotations

from typing import Any

import click

from ops.cli.client import call
from ops.cli.output import console, human_bytes, labels, print_fields, table, when

__all__ = ["agent_get", "agent_list"]


def _hb(a: dict[str, Any]) -> dict[str, Any]:
    return a.get("last_heartbeat") or {}


def _show(result: dict[str, Any]) -> None:
    t = table("name", "agent_id", "status", "streams", "cpu", "seen", "active", "standby",
              "memory", "storage", "outbox", wide=("active", "standby"), right=("cpu", "outbox"),
              drop=("storage", "memory", "outbox", "seen", "agent_id"))  # fmt: skip
    for a in result["agents"]:
        hb = _hb(a)
        t.add_row(
            a["name"], a["agent_id"], a["status"], f"{a['load']}/{a['capacity']}",
            f"{hb['cpu_percent']:.1f}%" if hb else "-", f"{hb['age_s']:.1f}s ago" if hb else "never",
            ",".join(a.get("active_groups", [])) or "-", ",".join(a.get("standby_groups", [])) or "-",
            f"{human_bytes(hb.get('mem_used'))} / {human_bytes(hb.get('mem_total'))}" if hb else "-",
            f"{human_bytes(hb.get('disk_used'))} / {human_bytes(hb.get('disk_total'))}" if hb else "-",
            str(hb.get("outbox_depth", "-")) if hb else "-",
        )  # fmt: skip
    console().print(t)
    if not result["agents"]:
        click.echo("no agent has registered (vigil agent --name NAME ...)", err=True)


def _show_one(a: dict[str, Any]) -> None:
    hb = _hb(a)
    rows: list[tuple[str, Any]] = [
        ("agent", f"{a['name']} ({a['agent_id']})"),
        ("status", a["status"] + (f": {a['not_ready_reason']}" if a.get("not_ready_reason") else "")),
        ("streams", f"{a['load']} of {a['capacity']} ({a['free']} free)"),
        ("groups", ", ".join(a["groups"]) or "-"),
        ("active in", ", ".join(a.get("active_groups", [])) or "-"),
        ("standby for", ", ".join(a.get("standby_groups", [])) or "-"),
        ("analytics", ", ".join(f"{o['name']} {o.get('version', '')}".strip() for o in a["analytics"]) or "-"),
        ("labels", labels(a["labels"])),
        ("host", f"{a['host'].get('hostname') or '-'} (pid {a['host'].get('pid') or '-'},"
                 f" {a['host'].get('cpus') or '-'} cpus)"),
        ("registered", when(a["registered_at"])),
        ("not ready since", when(a["not_ready_since"])),
        ("intervals", f"heartbeat {a['heartbeat_interval_s']:g} s, feedback"
                      f" {a['feedback_interval_s']:g} s, downgrade after {a['downgrade_s']:g} s"),
    ]  # fmt: skip
    if hb:
        rows += [
            ("heartbeat", f"{hb['age_s']:.1f} s ago ({len(hb.get('running', []))} running)"),
            ("cpu", f"{hb['cpu_percent']:.1f} % (100 = one core)"),
            ("memory", f"{human_bytes(hb['mem_used'])} of {human_bytes(hb['mem_total'])}"),
            ("storage", f"{human_bytes(hb['disk_used'])} of {human_bytes(hb['disk_total'])}"),
            ("outbox", f"{hb['outbox_depth']} unsent feedback row(s)"),
        ]  # fmt: skip
        if hb.get("alarms"):
            rows.append(("alarms", "; ".join(hb["alarms"])))
    else:
        rows.append(("heartbeat", "none heard by this manager yet"))
    if a.get("feedback_refused"):
        rows.append(
            ("feedback refused", labels({k: str(v) for k, v in a["feedback_refused"].items()}))
        )
    print_fields(rows)


@click.command("list")
@click.option("--status", type=click.Choice(["ready", "not_ready"]), default=None)
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def agent_list(status: str | None, as_json: bool) -> None:
    """List agents: groups (active, standby), streams against capacity, CPU, memory, storage.

    \b
    Examples:
      vigil agent list
      vigil agent list --status not_ready --json
    """
    call("agent.list", {"status": status} if status else {}, as_json, _show)


@click.command("get")
@click.argument("agent_id")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def agent_get(agent_id: str, as_json: bool) -> None:
    """Show one agent: status and why, load, groups, analytics, host figures, intervals.

    \b
    Example:
      vigil agent get a-3f2c9a1b7e12
    """
    call("agent.get", {"agent_id": agent_id}, as_json, _show_one)
