"""Routing's own settings (`LEADFLOW_ROUTING_*`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from leadflow_platform.settings import Setting, positive_float, positive_int, read_settings

SETTINGS: dict[str, Setting] = {
    "sla_interval_seconds": Setting(
        "LEADFLOW_ROUTING_SLA_INTERVAL_SECONDS",
        30.0,
        positive_float,
        "How often the SLA job looks for assignments past their acknowledgement deadline.",
    ),
    "nurture_interval_seconds": Setting(
        "LEADFLOW_ROUTING_NURTURE_INTERVAL_SECONDS",
        30.0,
        positive_float,
        "How often the nurture scheduler publishes the steps that became due.",
    ),
    "delivery_poll_seconds": Setting(
        "LEADFLOW_ROUTING_DELIVERY_POLL_SECONDS",
        1.0,
        positive_float,
        "How often the sink delivery worker looks for due deliveries (a new one wakes it at once).",
    ),
    "delivery_batch_size": Setting(
        "LEADFLOW_ROUTING_DELIVERY_BATCH_SIZE",
        50,
        positive_int,
        "Sink deliveries a worker leases and sends at once.",
    ),
    "retention_interval_seconds": Setting(
        "LEADFLOW_ROUTING_RETENTION_INTERVAL_SECONDS",
        3600.0,
        positive_float,
        "How often the retention job deletes routing history past its use or each tenant's"
        " retention.",
    ),
    "secrets_file": Setting(
        "LEADFLOW_ROUTING_SECRETS_FILE",
        "",
        str,
        "JSON file mapping secret names (webhook `secret_ref`, Mautic `credentials_ref` as"
        " `user:password`) to their values; read at each delivery, so a rotated secret applies"
        " at once.",
    ),
}


@dataclass(frozen=True)
class RoutingSettings:
    sla_interval_seconds: float
    nurture_interval_seconds: float
    delivery_poll_seconds: float
    delivery_batch_size: int
    retention_interval_seconds: float
    secrets_file: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RoutingSettings:
        return cls(**read_settings(SETTINGS, environ))
