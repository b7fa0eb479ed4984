"""Attribution's own settings (`LEADFLOW_ATTRIBUTION_*`); per-tenant settings are read by
domain/policy.py from `tenancy.tenants.settings`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from leadflow_platform.settings import Setting, positive_float, read_settings

SETTINGS: dict[str, Setting] = {
    "fit_interval_seconds": Setting(
        "LEADFLOW_ATTRIBUTION_FIT_INTERVAL_SECONDS",
        30.0,
        positive_float,
        "How often the fit job looks for data-driven fits to compute (a request for a fit"
        " that does not exist yet wakes it at once).",
    ),
    "fit_refresh_seconds": Setting(
        "LEADFLOW_ATTRIBUTION_FIT_REFRESH_SECONDS",
        300.0,
        positive_float,
        "A stale fit (data changed since it was computed) is recomputed at most this often;"
        " it is served, marked stale, meanwhile.",
    ),
    "fit_max_age_seconds": Setting(
        "LEADFLOW_ATTRIBUTION_FIT_MAX_AGE_SECONDS",
        86400.0,
        positive_float,
        "A tenant's rolling-window fit is recomputed after this long even without new data"
        " (its window moves).",
    ),
    "fit_lease_seconds": Setting(
        "LEADFLOW_ATTRIBUTION_FIT_LEASE_SECONDS",
        60.0,
        positive_float,
        "How long a replica holds a fit it computes without renewing (it renews every third of"
        " this); after a replica dies another takes the fit over within this.",
    ),
    "retention_interval_seconds": Setting(
        "LEADFLOW_ATTRIBUTION_RETENTION_INTERVAL_SECONDS",
        3600.0,
        positive_float,
        "How often the retention job deletes rows older than each tenant's retention.",
    ),
}


@dataclass(frozen=True)
class AttributionSettings:
    fit_interval_seconds: float
    fit_refresh_seconds: float
    fit_max_age_seconds: float
    fit_lease_seconds: float
    retention_interval_seconds: float

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AttributionSettings:
        return cls(**read_settings(SETTINGS, environ))
