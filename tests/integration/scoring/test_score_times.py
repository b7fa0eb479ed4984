"""A lead's scores are timed in the order scoring stores them, so that readers of
scoring.score.changed (routing, reporting) can keep the newest by its computed_at whatever
order two replicas' messages reach them in."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
from ingest_support import event, now
from scoring_support import published

pytestmark = pytest.mark.integration


async def test_a_score_stored_after_a_later_timed_one_is_timed_after_it(suite, settings):
    lead = "lead-times"
    await suite.track(event("t-1", type="page_view", lead_id=lead, occurred_at=now()))
    await suite.applied()
    first = await suite.score(lead)
    # Another replica stored the lead's score with a clock ahead of this one's (or it read
    # its clock before this replica stored): the stored score is timed an hour from now.
    ahead = first.computed_at.ToDatetime(tzinfo=UTC) + timedelta(hours=1)
    await suite.pool.execute("UPDATE leads SET computed_at = $1 WHERE lead_id = $2", ahead, lead)

    await suite.track(event("t-2", type="form_submitted", lead_id=lead, occurred_at=now()))
    await suite.applied()
    second = await suite.score(lead)
    assert second.total > first.total
    assert second.computed_at.ToDatetime(tzinfo=UTC) == ahead + timedelta(microseconds=1)

    changes = [m for _, m in await published(settings, "scoring.score.changed")]
    times = [m.score.computed_at.ToDatetime(tzinfo=UTC) for m in changes if m.lead_id == lead]
    assert len(times) >= 2
    assert times == sorted(times) and len(set(times)) == len(times)
    assert times[-1] == ahead + timedelta(microseconds=1)
