"""Scoring's own settings (`LEADFLOW_SCORING_*`) and the per-tenant settings it reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from leadflow_platform.settings import Setting, positive_float, positive_int, read_settings

SETTINGS: dict[str, Setting] = {
    "decay_interval_seconds": Setting(
        "LEADFLOW_SCORING_DECAY_INTERVAL_SECONDS",
        60.0,
        positive_float,
        "How often the decay job re-evaluates idle leads whose grade or temperature is due"
        " to drop.",
    ),
    "job_poll_seconds": Setting(
        "LEADFLOW_SCORING_JOB_POLL_SECONDS",
        2.0,
        positive_float,
        "How often an idle replica looks for a rescoring job to run (or resume).",
    ),
    "job_chunk_size": Setting(
        "LEADFLOW_SCORING_JOB_CHUNK_SIZE",
        500,
        positive_int,
        "Leads a rescoring job recomputes per transaction.",
    ),
    "job_lease_seconds": Setting(
        "LEADFLOW_SCORING_JOB_LEASE_SECONDS",
        30.0,
        positive_float,
        "How long a replica holds a job without progress before another one resumes it.",
    ),
    "retention_interval_seconds": Setting(
        "LEADFLOW_SCORING_RETENTION_INTERVAL_SECONDS",
        3600.0,
        positive_float,
        "How often the retention job deletes scoring history older than each tenant's retention.",
    ),
}


@dataclass(frozen=True)
class ScoringSettings:
    decay_interval_seconds: float
    job_poll_seconds: float
    job_chunk_size: int
    job_lease_seconds: float
    retention_interval_seconds: float

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ScoringSettings:
        return cls(**read_settings(SETTINGS, environ))


# Keys of a tenant's settings that scoring reads, with their defaults (DESIGN.md section 3).
TENANT_DEFAULTS: dict[str, Any] = {"retention_days": 365}
