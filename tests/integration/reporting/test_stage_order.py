"""A lead's current stage as reporting answers it when scoring replayed the lifecycle: the
meeting and the purchase arrived before the form, scoring announced new -> opportunity ->
customer, then new -> qualified, and kept (without announcing it again) the change into
opportunity, which now leaves qualified."""

from __future__ import annotations

from datetime import timedelta

import nats
import pytest
from harness import eventually
from ingest_support import event, now, ts
from reporting_support import suite

from leadflow.common.v1 import event_metadata_pb2, lead_pb2, pagination_pb2, subject_pb2
from leadflow.reporting.v1 import reporting_service_pb2 as pb
from leadflow.scoring.v1 import events_pb2, lifecycle_pb2
from leadflow_platform.nats import headers as h
from leadflow_platform.nats.streams import BusNames
from leadflow_platform.provision import provision_all
from leadflow_scoring.app import SPEC as SCORING

pytestmark = pytest.mark.integration
S = lead_pb2
LEAD = "lead-replayed"


async def test_the_current_stage_goes_on_past_a_change_a_replay_kept(settings):
    await provision_all(settings, [SCORING])  # the stream scoring publishes to
    t0 = now() - timedelta(days=3)
    changes = [  # as scoring announced them, in this order
        ("initial", S.LIFECYCLE_STAGE_UNSPECIFIED, S.LIFECYCLE_STAGE_NEW, t0),
        ("meeting", S.LIFECYCLE_STAGE_NEW, S.LIFECYCLE_STAGE_OPPORTUNITY, t0 + timedelta(1)),
        ("purchase", S.LIFECYCLE_STAGE_OPPORTUNITY, S.LIFECYCLE_STAGE_CUSTOMER, t0 + timedelta(2)),
        ("form", S.LIFECYCLE_STAGE_NEW, S.LIFECYCLE_STAGE_QUALIFIED, t0 + timedelta(hours=2)),
    ]
    async with suite(settings) as s:
        await s.track([event("r-1", type="page_view", lead_id=LEAD, occurred_at=t0)])
        await s.applied()
        names = BusNames(settings.bus_namespace)
        nc = await nats.connect(settings.nats_url)
        try:
            js = nc.jetstream()
            for event_id, from_stage, to_stage, at in changes:
                message = events_pb2.StageChanged(
                    metadata=event_metadata_pb2.EventMetadata(
                        event_id=event_id, tenant_id="371minds", occurred_at=ts(at)
                    ),
                    lead_id=LEAD,
                    from_stage=from_stage,
                    to_stage=to_stage,
                    trigger=lifecycle_pb2.TRANSITION_TRIGGER_RULE,
                    triggering_event_id=event_id,
                )
                await js.publish(
                    names.subject("scoring.stage.changed"),
                    message.SerializeToString(),
                    headers={h.MSG_ID: f"stage-{event_id}", h.TENANT: "371minds"},
                )
        finally:
            await nc.close()

        async def applied() -> bool:
            n = await s.pool.fetchval("SELECT count(*) FROM inbox WHERE message_id LIKE 'stage-%'")
            return n == len(changes)

        await eventually(applied, timeout=20)
        journey = await s.reporting.GetJourney(
            pb.GetJourneyRequest(
                subject=subject_pb2.SubjectRef(lead_id=LEAD),
                page=pagination_pb2.PageRequest(page_size=1),
            ),
            metadata=s.metadata,
        )
    assert journey.stage == S.LIFECYCLE_STAGE_CUSTOMER
