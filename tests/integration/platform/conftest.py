from __future__ import annotations

import pytest
from harness import SHORT_DUPLICATE_WINDOW, open_service_pool
from probe.service import SPEC

from leadflow_platform.nats.bus import Bus, StreamLimits


@pytest.fixture
async def probe_pool(settings):
    pool = await open_service_pool(settings.database_url, SPEC)
    yield pool
    await pool.close()


async def _bus(settings, duplicate_window: float) -> Bus:
    bus = await Bus.connect(
        settings.nats_url,
        name="test",
        namespace=settings.bus_namespace,
        limits=StreamLimits(duplicate_window_seconds=duplicate_window),
    )
    await bus.ensure_stream(SPEC.stream)
    return bus


@pytest.fixture
async def probe_bus(settings):
    """The probe's stream with the default duplicate window (2 minutes)."""
    bus = await _bus(settings, 120.0)
    yield bus
    await bus.drain()


@pytest.fixture
async def leaky_bus(settings):
    """The probe's stream with the shortest duplicate window, so re-published copies land."""
    bus = await _bus(settings, SHORT_DUPLICATE_WINDOW)
    yield bus
    await bus.drain()
