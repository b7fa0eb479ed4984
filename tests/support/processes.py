"""Services in their own processes, as in production: started, signalled, killed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from leadflow_platform.embedded import free_port
from leadflow_platform.settings import Settings

SUPPORT = Path(__file__).resolve().parent


def service_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    env.update(
        {
            "PYTHONPATH": os.pathsep.join([str(SUPPORT), *sys.path]),
            "LEADFLOW_DATABASE_URL": settings.database_url,
            "LEADFLOW_NATS_URL": settings.nats_url,
            "LEADFLOW_BUS_NAMESPACE": settings.bus_namespace,
            "LEADFLOW_STREAM_MAX_BYTES": str(settings.stream_max_bytes),
            "LEADFLOW_GRPC_HOST": "127.0.0.1",
            "LEADFLOW_CONSUMER_BACKOFF_SECONDS": "0.05,0.1,0.2,0.4",
            "LEADFLOW_OUTBOX_POLL_SECONDS": "0.2",
            "LEADFLOW_LOG_FORMAT": "json",
            # Many services run at once in tests: no fixed scrape port.
            "LEADFLOW_METRICS_PORT": "0",
        }
    )
    env.update(extra)
    return env


def start_probe(settings: Settings, **extra: str) -> tuple[subprocess.Popen[bytes], int]:
    """`python -m probe` on a free port; returns the process and its port."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "probe"],
        env=service_env(settings, LEADFLOW_GRPC_PORT=str(port), **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    return process, port


def install_probe_entry_point(site: Path) -> None:
    """Make the probe an installed leadflow service, the way any package registers one:
    a dist-info with a `leadflow.services` entry point, on PYTHONPATH."""
    dist = site / "leadflow_probe-0.0.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: leadflow-probe\nVersion: 0.0.0\n")
    (dist / "entry_points.txt").write_text("[leadflow.services]\nprobe = probe.service:SPEC\n")
