"""``vigil tokens``: HTTP API tokens with roles (viewer, operator, admin).

Only a token's SHA-256 digest is kept (``<data-dir>/auth/tokens``, 0600, or the file named by
``VIGIL_API_TOKENS_FILE``); the token itself is printed once. Managers read the file at start.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from ops.cli.output import print_json
from ops.http.auth import ROLES, add_token, read_tokens

__all__ = ["tokens"]


def _file(data_dir: Path) -> Path:
    explicit = os.environ.get("VIGIL_API_TOKENS_FILE")
    return Path(explicit) if explicit else data_dir / "auth" / "tokens"


@click.group()
def tokens() -> None:
    """HTTP API tokens with roles.

    \b
    Examples:
      vigil tokens add --role viewer --label grafana     # prints the token once
      vigil tokens list
    """


@tokens.command("add")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--label", required=True, help="who or what uses it")
@click.option(
    "--data-dir",
    default=".vigil",
    show_default=True,
    envvar="VIGIL_DATA_DIR",
    type=click.Path(path_type=Path),
)
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def add(role: str, label: str, data_dir: Path, as_json: bool) -> None:
    """Create a token; restart the managers (or vigil up) to take it into use.

    \b
    Examples:
      vigil tokens add --role viewer --label grafana
      vigil tokens add --role operator --label noc-desk --json
    """
    token = add_token(_file(data_dir), role, label.replace(" ", "_"))  # type: ignore[arg-type]
    if as_json:
        print_json({"token": token, "role": role, "label": label, "file": str(_file(data_dir))})
        return
    click.echo(token)
    click.echo(f"({role} token '{label}'; only its digest is stored in {_file(data_dir)})",
               err=True)  # fmt: skip


@tokens.command("list")
@click.option(
    "--data-dir",
    default=".vigil",
    show_default=True,
    envvar="VIGIL_DATA_DIR",
    type=click.Path(path_type=Path),
)
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def list_tokens(data_dir: Path, as_json: bool) -> None:
    """Roles and labels of the tokens (never the tokens).

    \b
    Example:
      vigil tokens list
    """
    entries = read_tokens(_file(data_dir))
    if as_json:
        print_json([{"role": e.role, "label": e.label} for e in entries])
        return
    for entry in entries:
        click.echo(f"{entry.role:<9} {entry.label}")
