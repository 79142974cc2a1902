"""``vigil agent list``: every agent with its groups, load and host figures (AddPac's
monitoring screen: active group, streams against capacity, CPU, memory, storage)."""

from __future__ import annotations

from typing import Any

import click

from ops.cli.groups import call

__all__ = ["agent_list"]


def _bytes(n: int | None) -> str:
    if not n:
        return "-"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1024
    return f"{value:.1f} TB"  # pragma: no cover


def _show(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None)
    for col in ("name", "agent_id", "status", "active groups", "standby", "streams", "cpu",
                "memory", "storage", "outbox", "seen"):  # fmt: skip
        table.add_column(col, no_wrap=True)
    for a in result["agents"]:
        hb = a.get("last_heartbeat") or {}
        running = len(hb.get("running", [])) if hb else 0
        table.add_row(
            a["name"], a["agent_id"], a["status"], ",".join(a.get("active_groups", [])) or "-",
            ",".join(a.get("standby_groups", [])) or "-",
            f"{a['load']}/{a['capacity']} ({running} running)",
            f"{hb['cpu_percent']:.1f}%" if hb else "-",
            f"{_bytes(hb.get('mem_used'))} / {_bytes(hb.get('mem_total'))}" if hb else "-",
            f"{_bytes(hb.get('disk_used'))} / {_bytes(hb.get('disk_total'))}" if hb else "-",
            str(hb.get("outbox_depth", "-")) if hb else "-",
            f"{hb['age_s']:.1f}s ago" if hb else "never",
        )  # fmt: skip
    Console(width=200).print(table)


@click.command("list")
@click.option("--status", type=click.Choice(["ready", "not_ready"]), default=None)
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def agent_list(status: str | None, as_json: bool) -> None:
    """List agents: groups (active, standby), streams against capacity, CPU, memory, storage."""
    call("agent.list", {"status": status} if status else {}, as_json, _show)
