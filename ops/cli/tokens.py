"""``vigil tokens``: HTTP API tokens with roles (viewer, operator, admin).

Only a token's SHA-256 digest is kept (``<data-dir>/auth/tokens``, 0600, or the file named by
``VIGIL_API_TOKENS_FILE``); the token itself is printed once. Managers read the file at start.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

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
@click.option("--data-dir", default=".vigil", show_default=True, type=click.Path(path_type=Path))
def add(role: str, label: str, data_dir: Path) -> None:
    """Create a token; restart the managers (or vigil up) to take it into use."""
    token = add_token(_file(data_dir), role, label.replace(" ", "_"))  # type: ignore[arg-type]
    click.echo(token)
    click.echo(f"({role} token '{label}'; only its digest is stored in {_file(data_dir)})",
               err=True)  # fmt: skip


@tokens.command("list")
@click.option("--data-dir", default=".vigil", show_default=True, type=click.Path(path_type=Path))
def list_tokens(data_dir: Path) -> None:
    """Roles and labels of the tokens (never the tokens)."""
    for entry in read_tokens(_file(data_dir)):
        click.echo(f"{entry.role:<9} {entry.label}")
