"""Leads routed end to end: identified through ingest, scored by the real scoring service,
routed by the shipped 371minds configuration, delivered to a signed webhook."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from harness import eventually
from ingest_support import event, now
from routing_support import (
    SECRET,
    WebhookReceiver,
    example_config,
    published,
    routing_env,
    routing_suite,
)

from leadflow.common.v1 import lead_pb2
from leadflow.ingest.v1 import profile_pb2
from leadflow.routing.v1 import routing_service_pb2 as pb
from leadflow.routing.v1 import routing_types_pb2 as tpb
from leadflow_routing.domain.signing import verify

pytestmark = pytest.mark.integration


async def test_identified_then_warmed_lead_is_routed_and_delivered_signed(
    settings, monkeypatch, tmp_path
):
    routing_env(monkeypatch, tmp_path)
    receiver = WebhookReceiver()
    at = now() - timedelta(seconds=30)
    async with receiver.serving(), routing_suite(settings) as s:
        stored = await s.put_config(example_config(receiver.url))
        assert stored.version == 1

        await s.base.identify(
            "lead-ada",
            email="ada@example.com",
            first_name="Ada",
            last_name="Lovelace",
            home_brand_id="modumind",
            segment=lead_pb2.SEGMENT_SMB,
            customer_type="enterprise",
            location=profile_pb2.Location(country="US"),
            lead_source="referral",
        )
        # identified: rule modumind-new-cold (least loaded, SMB nurture)
        first = await eventually(lambda: len(receiver.accepted) >= 1, timeout=20)
        assert first
        await s.base.consent("lead-ada", email=True)
        await s.base.track(
            event("a-pv1", type="page_view", lead_id="lead-ada", occurred_at=at),
            event("a-pv2", type="page_view", lead_id="lead-ada", occurred_at=at),
            event("a-open", type="email_opened", lead_id="lead-ada", occurred_at=at),
            event("a-form", type="form_submitted", lead_id="lead-ada", occurred_at=at),
        )
        await s.base.score_when("lead-ada", lambda sc: sc.temperature == lead_pb2.TEMPERATURE_WARM)
        # C+ and warm: two thresholds crossed (two reasons) -> rule modumind-home (weighted)
        await eventually(lambda: len(receiver.accepted) >= 3, timeout=20)

        bodies = [r.json for r in receiver.accepted.values()]
        assert [(b["ruleId"], b["trigger"], b["brandId"]) for b in bodies] == [
            ("modumind-new-cold", "ROUTING_TRIGGER_IDENTIFIED", "modumind"),
            ("modumind-home", "ROUTING_TRIGGER_THRESHOLD_CROSSED", "modumind"),
            ("modumind-home", "ROUTING_TRIGGER_THRESHOLD_CROSSED", "modumind"),
        ]
        assert {b["triggerDetail"] for b in bodies[1:]} == {"grade:c_plus", "temperature:warm"}
        assert len(receiver.requests) == 3  # nothing sent twice
        for received in receiver.accepted.values():
            assert verify(SECRET.encode(), received.body, received.headers["x-leadflow-signature"])
            assert received.headers["idempotency-key"] == received.json["metadata"]["eventId"]
        # the outbox relay publishes independently of the delivery worker: wait for all three

        async def routed_events() -> list[Any]:
            found = [m for _, m in await published(settings, "routing.lead.routed")]
            return found if len(found) >= 3 else []

        routed = await eventually(routed_events, timeout=20)
        assert [m.rule_id for m in routed] == [
            "modumind-new-cold",
            "modumind-home",
            "modumind-home",
        ]

        assignments = await s.routing.ListAssignments(
            pb.ListAssignmentsRequest(lead_id="lead-ada"), metadata=s.metadata
        )
        assert len(assignments.assignments) == 3
        assert {a.owner.owner_id for a in assignments.assignments} <= {"ana", "bo", "maya"}
        enrollments = await s.routing.ListEnrollments(
            pb.ListEnrollmentsRequest(lead_id="lead-ada"), metadata=s.metadata
        )
        # one SMB enrolment: the second route found it active and kept it
        assert [(e.sequence_id, e.state) for e in enrollments.enrollments] == [
            ("smb-default", tpb.ENROLLMENT_STATE_ACTIVE)
        ]
        assert [st.day_offset for st in enrollments.enrollments[0].steps] == [1, 3, 6, 10, 15]

        explained = await s.routing.ExplainRoute(
            pb.ExplainRouteRequest(
                lead_id="lead-ada",
                trigger=tpb.ROUTING_TRIGGER_THRESHOLD_CROSSED,
                trigger_detail="temperature:warm",
            ),
            metadata=s.metadata,
        )
        decision = explained.decision
        assert decision.dry_run and not decision.decision_id
        dup = [e for e in decision.evaluations if e.rule_id == "modumind-home"]
        assert dup[0].outcome == tpb.RULE_OUTCOME_DUPLICATE
