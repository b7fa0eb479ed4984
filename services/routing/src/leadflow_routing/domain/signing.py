"""Webhook signatures: HMAC-SHA256 of the exact body bytes, sent as
`X-Leadflow-Signature: sha256=<hex>` with `Idempotency-Key: <event id>`."""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Leadflow-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
_PREFIX = "sha256="


def sign(secret: bytes, body: bytes) -> str:
    return _PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, signature: str) -> bool:
    """What a receiver does: constant-time comparison with the expected signature."""
    return hmac.compare_digest(sign(secret, body), signature.strip())
