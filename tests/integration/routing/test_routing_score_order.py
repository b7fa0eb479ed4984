"""Routing keeps a lead's newest score and stage: replicas may apply a lead's scoring
messages in another order than scoring stored them, and an older score or stage applied last
must not replace a newer one among the facts the rules read."""

from __future__ import annotations

from datetime import timedelta

import nats
import pytest
from harness import eventually
from ingest_support import now, ts
from routing_support import example_config, routing_suite

from leadflow.common.v1 import event_metadata_pb2, lead_pb2
from leadflow.routing.v1 import routing_service_pb2 as pb
from leadflow.routing.v1 import routing_types_pb2 as tpb
from leadflow.scoring.v1 import events_pb2, lead_score_pb2, lifecycle_pb2
from leadflow_platform.nats import headers as h
from leadflow_platform.nats.streams import BusNames

pytestmark = pytest.mark.integration
LEAD = "lead-order"


def _changed(event_id: str, total: float, grade: int, temperature: int, at) -> bytes:
    return events_pb2.ScoreChanged(
        metadata=event_metadata_pb2.EventMetadata(
            event_id=event_id, tenant_id="371minds", occurred_at=ts(at), producer="scoring"
        ),
        lead_id=LEAD,
        score=lead_score_pb2.LeadScore(
            lead_id=LEAD,
            total=total,
            grade=grade,
            temperature=temperature,
            computed_at=ts(at),
            home_brand_id="modumind",
        ),
    ).SerializeToString()


async def test_an_older_score_applied_after_a_newer_one_does_not_replace_it(settings):
    t = now()
    async with routing_suite(settings) as s:
        await s.put_config(example_config())
        names = BusNames(settings.bus_namespace)
        nc = await nats.connect(settings.nats_url)
        try:
            js = nc.jetstream()
            for event_id, total, grade, temperature, at in (
                ("sc-newer", 81.5, lead_pb2.GRADE_A, lead_pb2.TEMPERATURE_HOT, t),
                ("sc-older", 35.25, lead_pb2.GRADE_C, lead_pb2.TEMPERATURE_COLD, t - timedelta(1)),
            ):
                await js.publish(
                    names.subject("scoring.score.changed"),
                    _changed(event_id, total, grade, temperature, at),
                    headers={h.MSG_ID: event_id, h.TENANT: "371minds"},
                )
        finally:
            await nc.close()

        async def applied_both() -> bool:
            n = await s.pool.fetchval(
                "SELECT count(*) FROM inbox WHERE message_id = ANY($1::text[])",
                ["sc-newer", "sc-older"],
            )
            return n == 2

        await eventually(applied_both, timeout=20)
        reply = await s.routing.ExplainRoute(
            pb.ExplainRouteRequest(lead_id=LEAD, trigger=tpb.ROUTING_TRIGGER_MANUAL),
            metadata=s.metadata,
        )
    lead = reply.decision.lead
    assert (lead.score.total, lead.grade, lead.temperature) == (
        81.5,
        lead_pb2.GRADE_A,
        lead_pb2.TEMPERATURE_HOT,
    )


S = lead_pb2
RULE, INITIAL, API = (
    lifecycle_pb2.TRANSITION_TRIGGER_RULE,
    lifecycle_pb2.TRANSITION_TRIGGER_INITIAL,
    lifecycle_pb2.TRANSITION_TRIGGER_API,
)


async def _publish_stages(settings, *changes: tuple[str, int, int, int]) -> None:
    names = BusNames(settings.bus_namespace)
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        for event_id, from_stage, to_stage, trigger in changes:
            message = events_pb2.StageChanged(
                metadata=event_metadata_pb2.EventMetadata(
                    event_id=event_id, tenant_id="371minds", occurred_at=ts(now())
                ),
                lead_id="lead-stages",
                from_stage=from_stage,
                to_stage=to_stage,
                trigger=trigger,
                home_brand_id="ikid",
            )
            await js.publish(
                names.subject("scoring.stage.changed"),
                message.SerializeToString(),
                headers={h.MSG_ID: event_id, h.TENANT: "371minds"},
            )
    finally:
        await nc.close()


async def test_stage_changes_applied_out_of_order_leave_the_lead_in_its_latest_stage(settings):
    async with routing_suite(settings) as s:
        await s.put_config(example_config())

        async def stage_after(*changes: tuple[str, int, int, int]) -> int:
            await _publish_stages(settings, *changes)

            async def applied() -> bool:
                n = await s.pool.fetchval(
                    "SELECT count(*) FROM inbox WHERE message_id = ANY($1::text[])",
                    [c[0] for c in changes],
                )
                return n == len(changes)

            await eventually(applied, timeout=20)
            reply = await s.routing.ExplainRoute(
                pb.ExplainRouteRequest(lead_id="lead-stages", trigger=tpb.ROUTING_TRIGGER_MANUAL),
                metadata=s.metadata,
            )
            return reply.decision.lead.stage

        # The lead's rules took it new -> qualified -> opportunity; before a late event
        # replayed its lifecycle, scoring had also announced new -> contacted. Applied in
        # the reverse order, the lead is where the rules took it.
        assert (
            await stage_after(
                ("st-3", S.LIFECYCLE_STAGE_QUALIFIED, S.LIFECYCLE_STAGE_OPPORTUNITY, RULE),
                ("st-2", S.LIFECYCLE_STAGE_NEW, S.LIFECYCLE_STAGE_QUALIFIED, RULE),
                ("st-x", S.LIFECYCLE_STAGE_NEW, S.LIFECYCLE_STAGE_CONTACTED, RULE),
                ("st-1", S.LIFECYCLE_STAGE_UNSPECIFIED, S.LIFECYCLE_STAGE_NEW, INITIAL),
            )
            == S.LIFECYCLE_STAGE_OPPORTUNITY
        )
        # A TransitionStage call always applies; an older rule change after it does not.
        assert (
            await stage_after(
                ("st-4", S.LIFECYCLE_STAGE_CUSTOMER, S.LIFECYCLE_STAGE_CHURNED, API),
                ("st-5", S.LIFECYCLE_STAGE_OPPORTUNITY, S.LIFECYCLE_STAGE_CUSTOMER, RULE),
            )
            == S.LIFECYCLE_STAGE_CHURNED
        )
        # A rule taking the lead on from where it is applies (back from churned).
        assert (
            await stage_after(
                ("st-6", S.LIFECYCLE_STAGE_CHURNED, S.LIFECYCLE_STAGE_CUSTOMER, RULE),
            )
            == S.LIFECYCLE_STAGE_CUSTOMER
        )
