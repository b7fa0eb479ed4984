"""`leadflow migrate`: every installed service's schema and stream, from the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import nats
import pytest
from probe.service import SPEC as PROBE
from processes import SUPPORT, install_probe_entry_point

from leadflow_platform.service import discover_services

pytestmark = pytest.mark.integration


async def test_migrate_creates_schemas_and_streams_of_installed_services(
    tmp_path: Path, database_url: str, infra, bus_namespace: str
):
    install_probe_entry_point(tmp_path / "site")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    env.update(
        PYTHONPATH=os.pathsep.join([str(tmp_path / "site"), str(SUPPORT), *sys.path]),
        LEADFLOW_DATABASE_URL=database_url,
        LEADFLOW_NATS_URL=infra.nats_url,
        LEADFLOW_BUS_NAMESPACE=bus_namespace,
    )
    command = [sys.executable, "-m", "leadflow_platform.cli", "migrate"]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    # tenancy, then each installed service's schema (platform messaging tables and its own)
    installed = [*discover_services().values(), PROBE]
    expected = 1 + sum(len(spec.migrations()) for spec in installed)
    assert f"applied {expected} migrations" in first.stdout
    assert f"{bus_namespace.upper()}_PROBE" in first.stdout
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert "applied 0 migrations" in again.stdout

    conn = await asyncpg.connect(database_url)
    try:
        schemas = {r["nspname"] for r in await conn.fetch("SELECT nspname FROM pg_namespace")}
    finally:
        await conn.close()
    assert {"tenancy", "probe"} <= schemas
    nc = await nats.connect(infra.nats_url)
    try:
        info = await nc.jetstream().stream_info(f"{bus_namespace.upper()}_PROBE")
    finally:
        await nc.close()
    assert info.config.subjects == [f"{bus_namespace}.probe.>"]
    assert info.config.discard == "new"
