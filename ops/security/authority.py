"""The trust root of one vigil installation: an operator, the vigil and system accounts, and
the identities (users) they issue — decentralised NATS auth, no server restart to add a user.

Kept in ``<data-dir>/auth`` (directory 0700, every file 0600)::

    operator.nk  vigil.nk  sys.nk     seeds (secrets): whoever holds vigil.nk mints identities
    operator.jwt                      the operator's JWT, minted once (a server refuses to
                                      reload a config whose operator JWT changed)
    issued.json                       name → {role, public key, agent id, issued_at, revoked}
    auth.conf                         the server side: operator JWT, account JWTs (with the
                                      revocations), system account — included by nats.conf

An identity is a ``.creds`` file (a user JWT signed by the vigil account + its nkey seed),
written 0600. Its JWT ``name`` is its tag: the agent id for an agent, which also names its inbox
prefix. Revoking an identity re-signs the account JWT with a revocation and reloads the server.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ops.security.jwt import NKey, decode_claims, encode_jwt, new_nkey
from ops.security.roles import Role, permissions

__all__ = ["Authority", "Identity", "write_secret"]

_UNLIMITED = -1


def write_secret(path: Path, text: str) -> None:
    """Write ``text`` atomically with mode 0600 (the directory is created 0700)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _subject_of(creds: Path) -> str | None:
    """The user public key of a ``.creds`` file (None if it is not one)."""
    try:
        jwt = creds.read_text().split("-----BEGIN NATS USER JWT-----", 1)[1].split("---", 1)[0]
        subject = decode_claims(jwt.strip()).get("sub")
    except (IndexError, ValueError, OSError):
        return None
    return subject if isinstance(subject, str) else None


def creds_text(jwt: str, seed: str) -> str:
    return (
        "-----BEGIN NATS USER JWT-----\n"
        f"{jwt}\n"
        "------END NATS USER JWT------\n\n"
        "************************* IMPORTANT *************************\n"
        "NKEY Seed printed below can be used to sign and prove identity.\n"
        "NKEYs are sensitive and should be treated as secrets.\n\n"
        "-----BEGIN USER NKEY SEED-----\n"
        f"{seed}\n"
        "------END USER NKEY SEED------\n"
    )


@dataclass(frozen=True)
class Identity:
    name: str
    role: Role
    public_key: str
    agent_id: str | None
    issued_at: int
    revoked: bool = False


class Authority:
    """Loads (or creates) the keys under ``path``; mints identities; writes the server side."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.operator = self._key("operator.nk", "operator")
        self.account = self._key("vigil.nk", "account")
        self.system = self._key("sys.nk", "account")
        self.issued: dict[str, Identity] = self._load_issued()

    # ---- keys ----------------------------------------------------------------------------------

    def _key(self, file: str, kind: str) -> NKey:
        path = self.path / file
        if path.is_file():
            return NKey(path.read_text().strip())
        key = new_nkey(kind)  # type: ignore[arg-type]
        write_secret(path, key.seed + "\n")
        return key

    def _load_issued(self) -> dict[str, Identity]:
        path = self.path / "issued.json"
        if not path.is_file():
            return {}
        raw: dict[str, dict[str, Any]] = json.loads(path.read_text())
        return {name: Identity(**entry) for name, entry in raw.items()}

    def _save_issued(self) -> None:
        data = {name: vars(ident) for name, ident in sorted(self.issued.items())}
        write_secret(self.path / "issued.json", json.dumps(data, indent=1) + "\n")

    # ---- JWTs ----------------------------------------------------------------------------------

    def operator_jwt(self) -> str:
        """The operator's JWT, minted once and kept (``operator.jwt``). A running nats-server
        refuses a config reload whose operator JWT differs at all ("config reload not supported
        for TrustedOperators"), and a JWT minted anew differs by its ``iat`` once the second
        has turned: the reload that carries a revocation would be refused. An installation from
        before this file (or whose copy is not one this operator key minted) takes the operator
        JWT of its ``auth.conf``."""
        path = self.path / "operator.jwt"
        for token in (self._read(path), self._operator_in(self.path / "auth.conf")):
            if token is not None and self._is_ours(token):
                if token != self._read(path):  # none kept yet, or not ours: keep this one
                    write_secret(path, token + "\n")
                return token
        token = self._mint_operator()
        write_secret(path, token + "\n")
        return token

    def _mint_operator(self, issued_at: int | None = None) -> str:
        op = self.operator
        return encode_jwt(op, op.public, "vigil",
                          {"type": "operator", "version": 2, "system_account": self.system.public},
                          issued_at=issued_at)  # fmt: skip

    @staticmethod
    def _read(path: Path) -> str | None:
        try:
            return path.read_text().strip() or None
        except OSError:
            return None

    @classmethod
    def _operator_in(cls, auth_conf: Path) -> str | None:
        for line in (cls._read(auth_conf) or "").splitlines():
            key, _, value = line.strip().partition(":")
            if key.strip() == "operator":
                return value.strip().strip('"') or None
        return None

    def _is_ours(self, token: str) -> bool:
        """Exactly the operator JWT this authority mints at that ``iat`` (Ed25519 signatures
        are deterministic): signed by our operator key, naming our system account, untouched."""
        try:
            return token == self._mint_operator(int(decode_claims(token)["iat"]))
        except (ValueError, KeyError, TypeError):
            return False

    def account_jwt(self, *, issued_after: int = 0) -> str:
        """The vigil account's JWT, issued after ``issued_after`` (a server keeps the account
        JWT it has unless the new one is newer: two written in the same second would lose the
        second one's revocations)."""
        revocations = {
            i.public_key: int(time.time()) + 1 for i in self.issued.values() if i.revoked
        }
        limits = {
            "subs": _UNLIMITED, "data": _UNLIMITED, "payload": _UNLIMITED,
            "imports": _UNLIMITED, "exports": _UNLIMITED, "wildcards": True,
            "conn": _UNLIMITED, "leaf": _UNLIMITED,
            "mem_storage": _UNLIMITED, "disk_storage": _UNLIMITED,
            "streams": _UNLIMITED, "consumer": _UNLIMITED,
        }  # fmt: skip
        nats: dict[str, Any] = {"limits": limits, "type": "account", "version": 2,
                                "imports": [self._advisories(import_from=self.system.public)]}  # fmt: skip
        if revocations:
            nats["revocations"] = revocations
        return encode_jwt(self.operator, self.account.public, "vigil", nats,
                          issued_at=max(int(time.time()), issued_after + 1))  # fmt: skip

    def _advisories(self, *, import_from: str | None = None) -> dict[str, Any]:
        """The system account's connect/disconnect advisories of the vigil account, exported
        by the system account and imported by the vigil account: managers hear at once that an
        agent's connection closed (``ops.commands.connections``)."""
        claim: dict[str, Any] = {"name": "advisories",
                                 "subject": f"$SYS.ACCOUNT.{self.account.public}.>",
                                 "type": "stream"}  # fmt: skip
        if import_from is not None:
            claim["account"] = import_from
        return claim

    def system_jwt(self) -> str:
        limits = {"subs": _UNLIMITED, "data": _UNLIMITED, "payload": _UNLIMITED,
                  "imports": _UNLIMITED, "exports": _UNLIMITED, "wildcards": True,
                  "conn": _UNLIMITED, "leaf": _UNLIMITED}  # fmt: skip
        return encode_jwt(self.operator, self.system.public, "SYS",
                          {"limits": limits, "type": "account", "version": 2,
                           "exports": [self._advisories()]})  # fmt: skip

    def server_auth(self, *, issued_after: int = 0) -> str:
        """The auth part of a nats-server config (``include`` it on every server)."""
        return (
            "# written by vigil: the operator, its accounts and their revocations\n"
            f'operator: "{self.operator_jwt()}"\n'
            f"system_account: {self.system.public}\n"
            "resolver: MEMORY\n"
            "resolver_preload: {\n"
            f'  {self.account.public}: "{self.account_jwt(issued_after=issued_after)}"\n'
            f'  {self.system.public}: "{self.system_jwt()}"\n'
            "}\n"
        )

    def write_server_auth(self) -> Path:
        path = self.path / "auth.conf"
        write_secret(path, self.server_auth(issued_after=self._written_iat(path)))
        return path

    def _written_iat(self, path: Path) -> int:
        """When the account JWT in ``path`` was issued (0: none there)."""
        try:
            text = path.read_text()
        except OSError:
            return 0
        for line in text.splitlines():
            key, _, value = line.strip().partition(":")
            if key.strip() == self.account.public:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    return int(decode_claims(value.strip().strip('"'))["iat"])
        return 0

    # ---- identities ----------------------------------------------------------------------------

    def mint(self, role: Role, name: str, *, agent_id: str | None = None,
             system: bool = False) -> str:  # fmt: skip
        """The ``.creds`` text of a new identity ``name`` (replacing any earlier one of that
        name: its key is revoked). ``system``: a user of the system account (advisories)."""
        tag = agent_id or name
        user = new_nkey("user")
        perms = {} if system else permissions(role, tag=tag, agent_id=agent_id).claims()
        nats: dict[str, Any] = {**perms, "subs": _UNLIMITED, "data": _UNLIMITED,
                                "payload": _UNLIMITED, "type": "user", "version": 2,
                                "tags": [f"role:{role}"]}  # fmt: skip
        signer = self.system if system else self.account
        jwt = encode_jwt(signer, user.public, tag, nats)
        old = self.issued.get(name)
        if old is not None and not old.revoked:
            self.issued[f"{name}@{old.issued_at}"] = Identity(**{**vars(old), "revoked": True})
        self.issued[name] = Identity(name=name, role=role, public_key=user.public,
                                     agent_id=agent_id, issued_at=int(time.time()))  # fmt: skip
        self._save_issued()
        return creds_text(jwt, user.seed)

    def write_creds(self, path: Path, role: Role, name: str, *, agent_id: str | None = None,
                    system: bool = False) -> Path:  # fmt: skip
        write_secret(path, self.mint(role, name, agent_id=agent_id, system=system))
        return path

    def ensure_creds(self, path: Path, role: Role, name: str, *,
                     agent_id: str | None = None) -> Path:  # fmt: skip
        """``path`` holds a valid identity ``name`` of ``role`` (and agent id): kept if it
        does, minted (revoking the earlier one) if not."""
        ident = self.issued.get(name)
        if (ident is not None and not ident.revoked and ident.role == role
                and ident.agent_id == agent_id and path.is_file()
                and _subject_of(path) == ident.public_key):  # fmt: skip
            return path
        return self.write_creds(path, role, name, agent_id=agent_id)

    def revoke(self, name: str) -> Identity:
        ident = self.issued.get(name)
        if ident is None:
            known = ", ".join(sorted(n for n in self.issued if "@" not in n)) or "none"
            raise KeyError(f"no identity named {name!r} (issued: {known})")
        self.issued[name] = Identity(**{**vars(ident), "revoked": True})
        self._save_issued()
        return self.issued[name]
