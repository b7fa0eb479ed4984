from __future__ import annotations

import pytest
from ingest_support import event

pytestmark = pytest.mark.integration


async def test_smoke(suite):
    await suite.track(event("e1", type="page_view", lead_id="lead-1"))
    score = await suite.score_when("lead-1", lambda s: s.total > 0)
    print(score)
    assert score.lead_id == "lead-1"
