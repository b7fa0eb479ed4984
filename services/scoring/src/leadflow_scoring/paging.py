"""Opaque page tokens: where a page stopped (keyset), tied to the query it belongs to.

A token is base64url JSON of the last item's sort key and a fingerprint of the filters and
sort, so a token used with another query is refused (INVALID_ARGUMENT) instead of silently
skipping or repeating items.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


class BadToken(ValueError):
    pass


def fingerprint(query: Any) -> str:
    text = json.dumps(query, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def encode(query_fingerprint: str, key: list[Any]) -> str:
    raw = json.dumps({"q": query_fingerprint, "k": key}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(token: str, query_fingerprint: str) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        key = data["k"]
        matches = data["q"] == query_fingerprint
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise BadToken("is not a page token of this list") from None
    if not matches or not isinstance(key, list):
        raise BadToken("belongs to a query with other filters or sort")
    return key
