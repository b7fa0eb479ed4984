from __future__ import annotations

import pytest
from attribution_support import suite as run_suite


@pytest.fixture
async def suite(settings):
    """Ingest, scoring and attribution, sharing this test's database and bus namespace."""
    async with run_suite(settings) as s:
        yield s
