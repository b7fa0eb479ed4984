"""The secret store sinks sign and authenticate with: a JSON file of name -> value
(LEADFLOW_ROUTING_SECRETS_FILE), read when a delivery needs it, so rotating a secret needs no
restart. Configurations only name secrets; values never reach configurations, responses or
logs."""

from __future__ import annotations

import json
from pathlib import Path


class SecretMissing(LookupError):
    pass


class SecretStore:
    def __init__(self, path: str) -> None:
        self._path = Path(path) if path else None

    def get(self, name: str) -> str:
        if self._path is None:
            raise SecretMissing(f"no secret store configured for secret {name!r}")
        try:
            data = json.loads(self._path.read_text())
        except (OSError, ValueError) as exc:
            raise SecretMissing(f"secret store unreadable: {type(exc).__name__}") from None
        value = data.get(name) if isinstance(data, dict) else None
        if not isinstance(value, str) or not value:
            raise SecretMissing(f"secret {name!r} not found")
        return value
