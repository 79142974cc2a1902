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

from ops.cli.output import print_json
from ops.security.authority import Authority

__all__ = ["creds"]

data_dir_option = click.option(
    "--data-dir", default=".vigil", show_default=True, type=click.Path(path_type=Path),
    envvar="VIGIL_DATA_DIR", help="the installation's data directory (its auth/ holds the keys)",
)  # fmt: skip
json_option = click.option("--json", "as_json", is_flag=True, help="print JSON")


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
@json_option
def init_authority(data_dir: Path, as_json: bool) -> None:
    """Create this installation's authority (operator and account keys) and its server auth
    block, for NATS servers vigil does not start itself (docs/deploy.md). Idempotent.

    \b
    Example:
      vigil creds init --data-dir /etc/vigil      # then include /etc/vigil/auth/auth.conf
    """
    existed = (data_dir / "auth" / "vigil.nk").is_file()
    authority = Authority(data_dir / "auth")
    path = authority.write_server_auth()
    if as_json:
        print_json({"authority": str(authority.path), "server_auth": str(path),
                    "created": not existed})  # fmt: skip
        return
    click.echo(f"{'kept' if existed else 'created'} the authority in {authority.path}; include"
               f" {path} in every nats-server's config")  # fmt: skip


@creds.command("agent")
@click.option("--name", required=True, help="the agent's name")
@click.option("--agent-id", default=None, help="keep this agent id (e.g. an existing outbox's)")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="where to write the .creds (default: <data-dir>/creds/agent-NAME.creds)")  # fmt: skip
@data_dir_option
@json_option
def agent_creds(name: str, agent_id: str | None, out: Path | None, data_dir: Path,
                as_json: bool) -> None:  # fmt: skip
    """Mint an agent identity: it may speak only as its own agent id.

    \b
    Examples:
      vigil creds agent --name edge-7 --out edge-7.creds
      vigil creds agent --name edge-7 --agent-id a-3f2c9a1b7e12    # keep an outbox's identity
    """
    authority = _authority(data_dir)
    agent_id = agent_id or f"a-{uuid.uuid4().hex[:12]}"
    path = out or data_dir / "creds" / f"agent-{name}.creds"
    authority.write_creds(path, "agent", f"agent-{name}", agent_id=agent_id)
    _reload(data_dir, authority)  # an earlier identity of that name is revoked
    if as_json:
        print_json({"path": str(path), "name": f"agent-{name}", "agent_id": agent_id})
    else:
        click.echo(f"{path}  (agent id {agent_id})")


@creds.command("user")
@click.option("--role", type=click.Choice(["client", "viewer", "manager", "admin"]),
              required=True)  # fmt: skip
@click.option("--name", required=True)
@click.option("--out", type=click.Path(path_type=Path), default=None)
@data_dir_option
@json_option
def user_creds(role: str, name: str, out: Path | None, data_dir: Path, as_json: bool) -> None:
    """Mint a manager, client (commands, log reading), viewer (reads) or admin identity.

    \b
    Examples:
      vigil creds user --role viewer --name grafana
      vigil creds user --role manager --name m-2 --out m-2.creds
    """
    authority = _authority(data_dir)
    path = out or data_dir / "creds" / f"{name}.creds"
    authority.write_creds(path, role, name)  # type: ignore[arg-type]
    _reload(data_dir, authority)
    if as_json:
        print_json({"path": str(path), "name": name, "role": role})
    else:
        click.echo(str(path))


@creds.command("list")
@data_dir_option
@json_option
def list_creds(data_dir: Path, as_json: bool) -> None:
    """Every identity issued, with its role and whether it is revoked.

    \b
    Example:
      vigil creds list --data-dir /var/lib/vigil
    """
    issued = sorted(_authority(data_dir).issued.values(), key=lambda i: i.name)
    if as_json:
        print_json([{"name": i.name, "role": i.role, "revoked": i.revoked, "agent_id": i.agent_id}
                    for i in issued])  # fmt: skip
        return
    for ident in issued:
        state = "revoked" if ident.revoked else "active"
        agent = f" agent {ident.agent_id}" if ident.agent_id else ""
        click.echo(f"{ident.name:<32} {ident.role:<8} {state:<8}{agent}")


@creds.command("revoke")
@click.argument("name")
@data_dir_option
@json_option
def revoke_creds(name: str, data_dir: Path, as_json: bool) -> None:
    """Revoke an identity: the servers refuse it from their next reload on.

    \b
    Example:
      vigil creds revoke edge-7
    """
    authority = _authority(data_dir)
    try:
        authority.revoke(name)
    except KeyError as exc:
        raise click.ClickException(str(exc.args[0])) from None
    _reload(data_dir, authority)
    if as_json:
        print_json({"revoked": name})
    else:
        click.echo(f"revoked {name}")


@creds.command("server-auth")
@data_dir_option
def server_auth(data_dir: Path) -> None:
    """Print the auth block every nats-server of a cluster includes (docs/deploy.md).

    \b
    Example:
      vigil creds server-auth > /etc/nats/auth.conf
    """
    click.echo(_authority(data_dir).server_auth(), nl=False)
