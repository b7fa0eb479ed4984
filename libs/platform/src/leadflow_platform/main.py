"""What a service's `__main__` calls: settings, logging, tracing, run, flush. Nothing else."""

from __future__ import annotations

import asyncio
import os
import sys

from leadflow_platform.lifecycle import Runtime
from leadflow_platform.logging import configure_logging, get_logger
from leadflow_platform.metrics import configure_metrics
from leadflow_platform.service import ServiceSpec
from leadflow_platform.settings import Settings, SettingsError
from leadflow_platform.telemetry import configure_tracing, shutdown_tracing
from leadflow_platform.workers import WORKER_ENV, supervise_workers


def run_service(spec: ServiceSpec) -> int:
    try:
        settings = Settings.from_env()
        settings.require_infrastructure()
    except SettingsError as exc:
        print(f"leadflow-{spec.name}: {exc}", file=sys.stderr)
        return 2
    if settings.workers > 1 and os.environ.get(WORKER_ENV) is None:
        return supervise_workers(settings)
    configure_logging(level=settings.log_level, fmt=settings.log_format, service=spec.name)
    configure_tracing(spec.name, enabled=settings.tracing)
    log = get_logger("leadflow")
    if settings.metrics:
        base = spec.default_metrics_port if settings.metrics_port is None else settings.metrics_port
        worker = int(os.environ.get(WORKER_ENV) or 0)
        try:
            port = configure_metrics(
                spec.name, host=settings.grpc_host, port=base + worker if base else 0
            )
        except OSError as exc:
            log.error("metrics_port_unavailable", port=base + worker, error=str(exc))
            return 1
        log.info("metrics_serving", port=port, path="/metrics")
    try:
        asyncio.run(Runtime(spec, settings).run())
    except Exception:
        log.exception("service_failed", service=spec.name)
        return 1
    finally:
        shutdown_tracing()
    return 0
