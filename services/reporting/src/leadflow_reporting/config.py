"""Reporting's own settings (`LEADFLOW_REPORTING_*`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from leadflow_platform.settings import Setting, positive_float, positive_int, read_settings


def _not_negative(raw: str) -> float:
    value = float(raw)
    if not value >= 0:
        raise ValueError("must be 0 or more")
    return value


SETTINGS: dict[str, Setting] = {
    "alert_interval_seconds": Setting(
        "LEADFLOW_REPORTING_ALERT_INTERVAL_SECONDS",
        60.0,
        positive_float,
        "How often the alert job evaluates KPI alert rules over the periods that closed.",
    ),
    "alert_settle_seconds": Setting(
        "LEADFLOW_REPORTING_ALERT_SETTLE_SECONDS",
        300.0,
        _not_negative,
        "How long after a period closes its rules are evaluated, so that events still on"
        " their way are counted.",
    ),
    "retention_interval_seconds": Setting(
        "LEADFLOW_REPORTING_RETENTION_INTERVAL_SECONDS",
        3600.0,
        positive_float,
        "How often the retention job deletes old real-time rollups, alerts and published"
        " outbox rows.",
    ),
    "rollup_retention_days": Setting(
        "LEADFLOW_REPORTING_ROLLUP_RETENTION_DAYS",
        90,
        positive_int,
        "Days real-time rollup buckets are kept (never longer than the tenant's retention).",
    ),
    "alert_retention_days": Setting(
        "LEADFLOW_REPORTING_ALERT_RETENTION_DAYS",
        365,
        positive_int,
        "Days raised alerts (and their published outbox rows) are kept (never longer than"
        " the tenant's retention).",
    ),
}


@dataclass(frozen=True)
class ReportingSettings:
    alert_interval_seconds: float
    alert_settle_seconds: float
    retention_interval_seconds: float
    rollup_retention_days: int
    alert_retention_days: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ReportingSettings:
        return cls(**read_settings(SETTINGS, environ))
