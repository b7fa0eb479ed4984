"""API keys as values: generate, parse, hash, and decide what a key allows. No I/O."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

KEY_PATTERN = re.compile(r"^lf_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$")
TENANT_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class Scope(StrEnum):
    """Mirrors leadflow.common.v1.Scope; stored by its lower-case name."""

    INGEST = "ingest"
    READ = "read"
    ADMIN = "admin"

    @classmethod
    def from_proto(cls, value: int) -> Scope | None:
        return {1: cls.INGEST, 2: cls.READ, 3: cls.ADMIN}.get(value)


@dataclass(frozen=True)
class Principal:
    """The caller an API key speaks for."""

    tenant_id: str
    key_id: str
    scopes: frozenset[Scope]

    def allows(self, required: Scope) -> bool:
        return Scope.ADMIN in self.scopes or required in self.scopes


@dataclass(frozen=True)
class NewKey:
    key_id: str
    secret: str

    @property
    def token(self) -> str:
        return f"lf_{self.key_id}_{self.secret}"

    @property
    def secret_sha256(self) -> bytes:
        return hash_secret(self.secret)


def generate_key() -> NewKey:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    key_id = "".join(secrets.choice(alphabet) for _ in range(12))
    return NewKey(key_id=key_id, secret=secrets.token_urlsafe(32))


def parse_key(token: str) -> tuple[str, str] | None:
    """Split `lf_<key_id>_<secret>`; None when the token is not shaped like a key."""
    match = KEY_PATTERN.match(token.strip())
    return (match[1], match[2]) if match else None


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def validate_tenant_id(tenant_id: str) -> str:
    if not TENANT_PATTERN.match(tenant_id):
        raise ValueError(
            "tenant id must be 1-63 characters of lower-case letters, digits and '-', "
            "starting with a letter or digit"
        )
    return tenant_id


def parse_scopes(names: list[str] | tuple[str, ...]) -> frozenset[Scope]:
    try:
        scopes = frozenset(Scope(name.strip().lower()) for name in names)
    except ValueError:
        allowed = ", ".join(s.value for s in Scope)
        raise ValueError(f"unknown scope in {list(names)}; allowed: {allowed}") from None
    if not scopes:
        raise ValueError("a key needs at least one scope")
    return scopes
