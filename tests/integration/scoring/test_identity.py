"""A visitor's activity follows them into their lead when ingest aliases them, and consent
decisions move the engagement component both ways."""

from __future__ import annotations

import pytest
from ingest_support import event
from scoring_support import suite

from leadflow.common.v1 import lead_pb2
from leadflow.ingest.v1 import ingest_service_pb2 as ingest_pb

pytestmark = pytest.mark.integration


async def test_visitor_activity_and_stage_rules_merge_into_the_lead_on_alias(settings):
    async with suite(settings) as s:
        await s.track(
            event("v-pv", type="page_view", anonymous_id="anon-1"),
            event("v-form", type="form_submitted", anonymous_id="anon-1"),
        )
        await s.track(event("l-pv", type="page_view", lead_id="lead-1"))
        await s.applied()
        before = await s.score("lead-1")
        await s.ingest.Alias(
            ingest_pb.AliasRequest(anonymous_id="anon-1", lead_id="lead-1"), metadata=s.metadata
        )
        await s.applied()
        merged = await s.score("lead-1")
        # Later events of the visitor's id count for the lead.
        await s.track(event("v-dl", type="content_downloaded", anonymous_id="anon-1"))
        await s.applied()
        after = await s.score("lead-1")

    assert before.components.behavioural.undecayed_value == 2  # 1 page view + 1 day
    assert merged.stage == lead_pb2.LIFECYCLE_STAGE_QUALIFIED  # the visitor's form
    labels = {f.label: f.count for f in merged.components.behavioural.factors}
    assert labels["page_view x2"] == 2 and labels["form_submitted x1"] == 1
    # behavioural 2 + 15 + 1 day = 18; engagement 40 + 10 qualified; intent 15 + 20
    assert merged.undecayed_total == pytest.approx(0.25 * 18 + 7.5 + 0.25 * 50 + 0.15 * 35)
    assert after.components.behavioural.undecayed_value == 26


async def test_consent_granted_and_withdrawn_moves_engagement(settings):
    async with suite(settings) as s:
        await s.track(event("c1", type="page_view", lead_id="lead-c"))
        await s.consent("lead-c", email=True, sms=True)
        await s.applied()
        granted = await s.score("lead-c")
        await s.consent("lead-c", email=False)
        await s.applied()
        withdrawn = await s.score("lead-c")

    assert granted.components.engagement.value == 40 + 30 + 15
    assert withdrawn.components.engagement.value == 40 + 15
    assert granted.undecayed_total - withdrawn.undecayed_total == pytest.approx(7.5)
