"""NATS nkeys and JWTs (decentralised auth), minted here instead of with ``nsc``.

An nkey is an ed25519 key pair whose public key says what it is by its first letter (``O``
operator, ``A`` account, ``U`` user) and whose seed (``S…``) is the secret. A NATS JWT is
``base64url(header).base64url(claims).base64url(ed25519 signature)``, header
``{"typ": "JWT", "alg": "ed25519-nkey"}``; ``jti`` is the base32 SHA-512/256 of the claims
without it. The operator signs accounts, an account signs its users; nats-server checks the
chain. See ``docs/security.md``.
"""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any, Literal

import msgspec
import nacl.signing
import nkeys

__all__ = ["KeyKind", "NKey", "decode_claims", "encode_jwt", "new_nkey"]

KeyKind = Literal["operator", "account", "user"]

_PREFIX: dict[KeyKind, int] = {
    "operator": nkeys.PREFIX_BYTE_OPERATOR,
    "account": nkeys.PREFIX_BYTE_ACCOUNT,
    "user": nkeys.PREFIX_BYTE_USER,
}

_HEADER = {"typ": "JWT", "alg": "ed25519-nkey"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class NKey:
    """A key pair from its seed: ``public`` (``O…``/``A…``/``U…``) and ``sign``."""

    def __init__(self, seed: str) -> None:
        self.seed = seed
        self._kp = nkeys.from_seed(seed.encode())
        self.public: str = self._kp.public_key.decode()

    def sign(self, data: bytes) -> bytes:
        signature: bytes = self._kp.sign(data)
        return signature


def new_nkey(kind: KeyKind) -> NKey:
    raw = bytes(nacl.signing.SigningKey.generate())
    seed: bytes = nkeys.encode_seed(raw, _PREFIX[kind])
    return NKey(seed.decode())


def _jti(claims: dict[str, Any]) -> str:
    digest = hashlib.new("sha512_256", msgspec.json.encode(claims)).digest()
    return base64.b32encode(digest).decode().rstrip("=")


def encode_jwt(
    signer: NKey,
    subject: str,
    name: str,
    nats: dict[str, Any],
    *,
    expires: int | None = None,
    issued_at: int | None = None,
) -> str:
    """A JWT for ``subject`` signed by ``signer`` with the type-specific ``nats`` claims
    (issued now, or at ``issued_at``)."""
    iat = int(time.time()) if issued_at is None else issued_at
    claims: dict[str, Any] = {"iat": iat, "iss": signer.public, "name": name,
                              "sub": subject}  # fmt: skip
    if expires is not None:
        claims["exp"] = expires
    claims["jti"] = _jti(claims)
    claims["nats"] = nats
    head = _b64(msgspec.json.encode(_HEADER))
    body = _b64(msgspec.json.encode(claims))
    signature = _b64(signer.sign(f"{head}.{body}".encode()))
    return f"{head}.{body}.{signature}"


def decode_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT, *not verified* (the server verifies; this reads names and ids)."""
    try:
        body = token.split(".")[1]
        claims: dict[str, Any] = msgspec.json.decode(
            base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        )
    except (IndexError, ValueError, msgspec.DecodeError) as exc:
        raise ValueError(f"not a JWT: {exc}") from None
    return claims
