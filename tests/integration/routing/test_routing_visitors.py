"""Behaviour routing saw before it knew the lead: a visitor's anonymous events count in the
lead's recent behaviour once ingest aliases the visitor, and events under a lead id routing
had not seen count once that lead is identified; the decision made on identification
already sees them. Erasing the visitor removes its events."""

from __future__ import annotations

from datetime import timedelta

import pytest
from harness import eventually
from ingest_support import event, now
from routing_support import example_config, routing_env, routing_suite

from leadflow.ingest.v1 import ingest_service_pb2 as ingest_pb
from leadflow.routing.v1 import routing_service_pb2 as pb
from leadflow.routing.v1 import routing_types_pb2 as tpb

pytestmark = pytest.mark.integration


async def test_events_before_the_lead_was_known_count_when_it_is_identified(
    settings, monkeypatch, tmp_path
):
    routing_env(monkeypatch, tmp_path)
    async with routing_suite(settings) as s:
        await s.put_config(example_config())
        at = now() - timedelta(minutes=5)
        await s.base.track(
            event("v-1", type="page_view", anonymous_id="anon-7", occurred_at=at),
            event("v-2", type="page_view", anonymous_id="anon-7", occurred_at=at),
            event("v-3", type="page_view", anonymous_id="anon-7", occurred_at=at),
            event("v-4", type="email_opened", lead_id="lead-late", occurred_at=at),
            event("v-5", type="page_view", anonymous_id="anon-other", occurred_at=at),
        )
        await eventually(lambda: _equals(s, "SELECT count(*) FROM lead_events", 5), timeout=20)
        await s.base.ingest.Alias(
            ingest_pb.AliasRequest(anonymous_id="anon-7", lead_id="lead-late"),
            metadata=s.metadata,
        )
        await s.base.identify("lead-late", email="late@example.com", home_brand_id="epicquest")

        async def decided():  # type: ignore[no-untyped-def]
            rows = await s.pool.fetch(
                "SELECT record FROM decisions WHERE lead_id = 'lead-late' ORDER BY decided_at"
            )
            records = [tpb.RouteDecision.FromString(r["record"]) for r in rows]
            # scoring's stage change may come first; the identification is the one to see
            found = [d for d in records if d.trigger == tpb.ROUTING_TRIGGER_IDENTIFIED]
            return found[0] if found else None

        identified = await eventually(decided, timeout=20)
        counts = identified.lead.recent_event_counts
        assert (counts["page_view"], counts["email_opened"]) == (3, 1)

        explained = await s.routing.ExplainRoute(
            pb.ExplainRouteRequest(lead_id="lead-late"), metadata=s.metadata
        )
        counts = explained.decision.lead.recent_event_counts
        assert (counts["page_view"], counts["email_opened"]) == (3, 1)
        # another visitor's events stay its own
        assert await _equals(
            s,
            "SELECT count(*) FROM lead_events WHERE anonymous_id = 'anon-other' AND lead_id = ''",
            1,
        )

        await s.base.ingest.EraseSubject(
            ingest_pb.EraseSubjectRequest(anonymous_id="anon-other"), metadata=s.metadata
        )
        await eventually(
            lambda: _equals(
                s, "SELECT count(*) FROM lead_events WHERE anonymous_id = 'anon-other'", 0
            ),
            timeout=20,
        )


async def _equals(s, sql: str, expected: int) -> bool:  # type: ignore[no-untyped-def]
    return await s.pool.fetchval(sql) == expected
