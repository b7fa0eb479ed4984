"""Ingest's own settings (`LEADFLOW_INGEST_*`) and the per-tenant settings it reads.

Deployment-wide defaults come from the environment; each tenant may override them in its
settings (`tenancy.tenants.settings`, set with `leadflow tenants set`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from leadflow_platform.settings import Setting, positive_float, positive_int, read_settings

SETTINGS: dict[str, Setting] = {
    "events_per_second": Setting(
        "LEADFLOW_INGEST_EVENTS_PER_SECOND",
        50_000.0,
        positive_float,
        "Events per second one API key may send (token bucket, burst of two seconds);"
        " tenant setting `ingest_events_per_second` overrides it.",
    ),
    "bus_message_bytes": Setting(
        "LEADFLOW_INGEST_BUS_MESSAGE_BYTES",
        512 * 1024,
        positive_int,
        "Largest `ingest.event.recorded` message; a bigger committed batch is split.",
    ),
    "retention_interval_seconds": Setting(
        "LEADFLOW_INGEST_RETENTION_INTERVAL_SECONDS",
        3600.0,
        positive_float,
        "How often the retention job deletes rows older than each tenant's retention.",
    ),
}


@dataclass(frozen=True)
class IngestSettings:
    events_per_second: float
    bus_message_bytes: int
    retention_interval_seconds: float

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> IngestSettings:
        return cls(**read_settings(SETTINGS, environ))


# Keys of a tenant's settings that ingest reads, with their defaults (DESIGN.md section 3).
TENANT_DEFAULTS: dict[str, Any] = {
    "retention_days": 365,
    "require_consent": False,
    "ip_mode": "truncate",  # or "hash": keyed HMAC of the full address instead
    "ingest_events_per_second": None,  # None: the deployment's default
}
