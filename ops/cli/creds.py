"""``vigil creds``: mint, list and revoke identities of this installation (``ops.security``).

Run on the host that holds the authority (``<data-dir>/auth``, written by ``vigil up``). A
``.creds`` file is a secret: it is written 0600; copy it to its host over a secure channel.
"""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import click

from ops.security.authority import Authority

__all__ = ["creds"]

data_dir_option = click.option(
    "--data-dir", default=".vigil", show_default=True, type=click.Path(path_type=Path),
    help="the installation's data directory (its auth/ holds the keys)",
)  # fmt: skip


def _authority(data_dir: Path) -> Authority:
    auth = data_dir / "auth"
    if not (auth / "vigil.nk").is_file():
        raise click.ClickException(
            f"no authority in {auth}: run `vigil creds init --data-dir {data_dir}` (or"
            f" `vigil up --data-dir {data_dir}` once), or give the --data-dir of the installation"
        )
    return Authority(auth)


def _reload(data_dir: Path, authority: Authority) -> None:
    """Rewrite the server side of the auth and reload the embedded server if it runs."""
    authority.write_server_auth()
    pid_file = data_dir / "nats" / "nats-server.pid"
    if pid_file.is_file():
        try:
            os.kill(int(pid_file.read_text().strip()), signal.SIGHUP)
            click.echo("nats-server reloaded", err=True)
            return
        except (ProcessLookupError, ValueError):
            pass
    click.echo(f"not running here: copy {authority.path / 'auth.conf'} to every nats-server and"
               " reload it (nats-server --signal reload)", err=True)  # fmt: skip


@click.group()
def creds() -> None:
    """Identities: one per agent, manager, client, viewer (docs/security.md).

    \b
    Examples:
      vigil creds init                                       # once, for servers of your own
      vigil creds agent --name edge-7 --out edge-7.creds     # then: vigil agent --creds edge-7.creds
      vigil creds user --role viewer --name grafana
      vigil creds revoke edge-7
    """


@creds.command("init")
@data_dir_option
def init_authority(data_dir: Path) -> None:
    """Create this installation's authority (operator and account keys) and its server auth
    block, for NATS servers vigil does not start itself (docs/deploy.md). Idempotent."""
    existed = (data_dir / "auth" / "vigil.nk").is_file()
    authority = Authority(data_dir / "auth")
    path = authority.write_server_auth()
    click.echo(f"{'kept' if existed else 'created'} the authority in {authority.path}; include"
               f" {path} in every nats-server's config")  # fmt: skip


@creds.command("agent")
@click.option("--name", required=True, help="the agent's name")
@click.option("--agent-id", default=None, help="keep this agent id (e.g. an existing outbox's)")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="where to write the .creds (default: <data-dir>/creds/agent-NAME.creds)")  # fmt: skip
@data_dir_option
def agent_creds(name: str, agent_id: str | None, out: Path | None, data_dir: Path) -> None:
    """Mint an agent identity: it may speak only as its own agent id."""
    authority = _authority(data_dir)
    agent_id = agent_id or f"a-{uuid.uuid4().hex[:12]}"
    path = out or data_dir / "creds" / f"agent-{name}.creds"
    authority.write_creds(path, "agent", f"agent-{name}", agent_id=agent_id)
    _reload(data_dir, authority)  # an earlier identity of that name is revoked
    click.echo(f"{path}  (agent id {agent_id})")


@creds.command("user")
@click.option("--role", type=click.Choice(["client", "viewer", "manager", "admin"]),
              required=True)  # fmt: skip
@click.option("--name", required=True)
@click.option("--out", type=click.Path(path_type=Path), default=None)
@data_dir_option
def user_creds(role: str, name: str, out: Path | None, data_dir: Path) -> None:
    """Mint a manager, client (commands, log reading), viewer (reads) or admin identity."""
    authority = _authority(data_dir)
    path = out or data_dir / "creds" / f"{name}.creds"
    authority.write_creds(path, role, name)  # type: ignore[arg-type]
    _reload(data_dir, authority)
    click.echo(str(path))


@creds.command("list")
@data_dir_option
def list_creds(data_dir: Path) -> None:
    """Every identity issued, with its role and whether it is revoked."""
    for ident in sorted(_authority(data_dir).issued.values(), key=lambda i: i.name):
        state = "revoked" if ident.revoked else "active"
        agent = f" agent {ident.agent_id}" if ident.agent_id else ""
        click.echo(f"{ident.name:<32} {ident.role:<8} {state:<8}{agent}")


@creds.command("revoke")
@click.argument("name")
@data_dir_option
def revoke_creds(name: str, data_dir: Path) -> None:
    """Revoke an identity: the servers refuse it from their next reload on."""
    authority = _authority(data_dir)
    try:
        authority.revoke(name)
    except KeyError as exc:
        raise click.ClickException(str(exc.args[0])) from None
    _reload(data_dir, authority)
    click.echo(f"revoked {name}")


@creds.command("server-auth")
@data_dir_option
def server_auth(data_dir: Path) -> None:
    """Print the auth block every nats-server of a cluster includes (docs/deploy.md)."""
    click.echo(_authority(data_dir).server_auth(), nl=False)
