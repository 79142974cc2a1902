"""How a participant (manager, agent, CLI) reaches NATS: settings and one ``connect``.

Agents, managers and the CLI share this so a third-party-style agent (``agent/``) needs nothing
from ``ops/``. Secrets never travel on a command line: they come from the environment or a file.
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import nats
from nats.aio.client import Client

__all__ = ["ConnectionSettings", "connect", "creds_identity", "tls_context"]


def creds_identity(path: str | Path) -> str:
    """The ``name`` claim of the user JWT in a ``.creds`` file (not verified: the server does)."""
    text = Path(path).read_text()
    try:
        jwt = text.split("-----BEGIN NATS USER JWT-----", 1)[1].split("---", 1)[0].strip()
        body = jwt.split(".")[1]
        claims = msgspec.json.decode(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        name = claims["name"]
    except (IndexError, KeyError, ValueError, TypeError, msgspec.DecodeError) as exc:
        raise ValueError(f"{path} is not a NATS .creds file: {exc!r}") from None
    if not isinstance(name, str) or not name:
        raise ValueError(f"{path}: its user JWT has no name")
    return name


class ConnectionSettings(msgspec.Struct, frozen=True, kw_only=True):
    """NATS endpoint and the identity to present there."""

    nats_url: str = "nats://127.0.0.1:4222"
    nats_user: str | None = None
    nats_password: str | None = None
    nats_creds: str | None = None
    """A ``.creds`` file (JWT + nkey seed) for decentralised auth."""
    nats_nkey_seed: str | None = None
    """A file holding an nkey seed (``SU…``) for nkey auth."""
    tls_ca: str | None = None
    """CA bundle that signed the server's certificate (enables TLS)."""
    tls_cert: str | None = None
    tls_key: str | None = None
    inbox_prefix: str | None = None
    """Where replies to this client arrive; by default derived from the creds' identity
    (``_INBOX_<name>``: the permissions of a vigil identity allow only its own inbox)."""

    def identity(self) -> str | None:
        """The name in the creds file's user JWT (an agent's id), if any."""
        return creds_identity(self.nats_creds) if self.nats_creds else None

    def redacted_url(self) -> str:
        """The URL with any inline password masked (for logs and messages)."""
        scheme, sep, rest = self.nats_url.partition("://")
        if "@" in rest and sep:
            cred, _, host = rest.rpartition("@")
            user = cred.split(":", 1)[0]
            return f"{scheme}://{user}:***@{host}"
        return self.nats_url


def tls_context(settings: ConnectionSettings) -> ssl.SSLContext | None:
    if not settings.tls_ca:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=settings.tls_ca)
    if settings.tls_cert:
        ctx.load_cert_chain(settings.tls_cert, settings.tls_key)
    return ctx


def connect_options(settings: ConnectionSettings) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "servers": [u.strip() for u in settings.nats_url.split(",") if u.strip()]
    }
    if settings.nats_creds:
        opts["user_credentials"] = settings.nats_creds
    elif settings.nats_nkey_seed:
        opts["nkeys_seed"] = settings.nats_nkey_seed
    elif settings.nats_user:
        opts["user"] = settings.nats_user
        opts["password"] = settings.nats_password or ""
    tls = tls_context(settings)
    if tls is not None:
        opts["tls"] = tls
    prefix = settings.inbox_prefix
    if prefix is None and settings.nats_creds:
        prefix = f"_INBOX_{creds_identity(settings.nats_creds)}"
    if prefix:
        opts["inbox_prefix"] = prefix
    return opts


async def connect(
    settings: ConnectionSettings,
    *,
    name: str,
    reconnect_forever: bool = True,
    connect_timeout: float = 5.0,
    error_cb: Callable[[Exception], Awaitable[None]] | None = None,
    **extra: Any,
) -> Client:
    """Connect; by default with reconnects forever (managers and agents outlive NATS restarts).

    ``reconnect_forever=False`` is for one-shot clients (the CLI): fail fast instead.
    """
    opts = connect_options(settings)
    if reconnect_forever:
        opts.update(max_reconnect_attempts=-1, reconnect_time_wait=0.5, allow_reconnect=True)
    else:
        opts.update(max_reconnect_attempts=0, allow_reconnect=False)
    if error_cb is not None:
        opts["error_cb"] = error_cb
    opts.update(extra)
    return await nats.connect(name=name, connect_timeout=connect_timeout, **opts)


def read_secret_file(path: str | Path) -> str:
    """A secret kept in a file (0600), stripped."""
    return Path(path).read_text().strip()
