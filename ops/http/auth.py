"""Who may do what over HTTP: bearer tokens with roles.

::

    viewer     reads (GET): streams, agents, master, statistics, history, metrics
    operator   + writes: create, start, stop, delete streams (and acks, schedules, groups)
    admin      everything (VIGIL_API_TOKEN is an admin token)

A token arrives as ``Authorization: Bearer <token>`` or ``?accessToken=<token>`` (as Red5 clients
send it). Tokens are kept as SHA-256 digests (``tokens`` file: ``<role> sha256:<hex> <label>``,
managed by ``vigil tokens``) and compared in constant time. Writes always need a token: a
manager with none configured refuses them and says so. Reads are open only when configured
(``open_reads``, e.g. ``vigil up`` on loopback); ``/healthz`` and ``/readyz`` are always open.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from aiohttp import web

__all__ = [
    "AUTH",
    "ROLES",
    "HttpAuth",
    "HttpRole",
    "add_token",
    "digest",
    "presented_token",
    "read_tokens",
]

HttpRole = Literal["viewer", "operator", "admin"]
ROLES: tuple[HttpRole, ...] = ("viewer", "operator", "admin")
_RANK = {role: i for i, role in enumerate(ROLES)}


def digest(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenEntry:
    role: HttpRole
    digest: str
    label: str = ""


@dataclass
class HttpAuth:
    tokens: list[TokenEntry] = field(default_factory=list)
    open_reads: bool = False

    @classmethod
    def from_settings(cls, *, admin_token: str | None, tokens_file: str | Path | None = None,
                      open_reads: bool = False) -> HttpAuth:  # fmt: skip
        entries = list(read_tokens(Path(tokens_file))) if tokens_file else []
        if admin_token:
            entries.append(TokenEntry("admin", digest(admin_token), "VIGIL_API_TOKEN"))
        return cls(entries, open_reads)

    @property
    def can_write(self) -> bool:
        return any(_RANK[t.role] >= _RANK["operator"] for t in self.tokens)

    def role_of(self, token: str) -> HttpRole | None:
        """The role of a presented token (every entry compared, in constant time each)."""
        if not token:
            return None
        given = digest(token).encode()
        found: HttpRole | None = None
        for entry in self.tokens:
            if hmac.compare_digest(given, entry.digest.encode()):
                found = entry.role
        return found

    def check(self, request: web.Request, need: HttpRole) -> tuple[int, str] | None:
        """None when allowed; else (HTTP status, message)."""
        if need == "viewer" and self.open_reads:
            return None
        if need != "viewer" and not self.can_write:
            return 403, ("this manager has no API token: HTTP writes are disabled (set"
                         " VIGIL_API_TOKEN, or add one with `vigil tokens add --role operator`)")  # fmt: skip
        token = presented_token(request)
        if not token:
            return 401, (f"this needs a token with the {need} role: 'Authorization: Bearer"
                         " <token>' or ?accessToken=<token>")  # fmt: skip
        role = self.role_of(token)
        if role is None:
            return 401, "unknown token"
        if _RANK[role] < _RANK[need]:
            return 403, f"a {role} token may not do this (needs {need})"
        return None


AUTH: web.AppKey[HttpAuth] = web.AppKey("auth", HttpAuth)


def presented_token(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[7:].strip()
    return request.query.get("accessToken", "")


def read_tokens(path: Path) -> list[TokenEntry]:
    """``<role> sha256:<hex> [label]`` lines; blank lines and ``#`` comments skipped."""
    if not path.is_file():
        return []
    entries = []
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 2)
        if len(parts) < 2 or parts[0] not in _RANK or not parts[1].startswith("sha256:"):
            raise ValueError(f"{path}:{n}: expected '<role> sha256:<hex> [label]', got {line!r}")
        entries.append(TokenEntry(parts[0], parts[1], parts[2] if len(parts) > 2 else ""))
    return entries


def add_token(path: Path, role: HttpRole, label: str) -> str:
    """A new random token of ``role``; only its digest is written (0600). Returns the token."""
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    existing = path.read_text() if path.is_file() else "# vigil HTTP tokens: role digest label\n"
    text = existing + f"{role} {digest(token)} {label}\n"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.chmod(0o600)
    tmp.replace(path)
    return token
