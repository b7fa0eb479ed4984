"""The nurture scheduler: publishes `routing.nurture.step_due` for each step whose time has
come, exactly once. A step is claimed with `FOR UPDATE SKIP LOCKED`, marked sent and its
event written to the outbox in one transaction, and the event id is derived from (enrolment,
step); so neither a second replica nor a restart can emit a step twice, and a stopped
enrolment emits nothing more."""

from __future__ import annotations

from datetime import UTC, datetime

from leadflow.routing.v1 import events_pb2
from leadflow_platform.logging import get_logger
from leadflow_platform.nats import add_to_outbox
from leadflow_routing.api import mapping
from leadflow_routing.db import repository as repo
from leadflow_routing.events import published
from leadflow_routing.service import RoutingService

log = get_logger(__name__)
BATCH = 500


async def emit_due_steps(service: RoutingService, now: datetime | None = None) -> int:
    total = 0
    while True:
        at = now or service.clock()
        async with service.pool.acquire() as conn, conn.transaction():
            rows = await repo.claim_due_steps(conn, at, BATCH)
            for row in rows:
                tenant_id = row["tenant_id"]
                event = events_pb2.NurtureStepDue(
                    enrollment_id=row["enrollment_id"],
                    lead_id=row["lead_id"],
                    sequence_id=row["sequence_id"],
                    step_index=row["step_index"],
                    step_count=row["steps"],
                    day_offset=row["day_offset"],
                    template=row["template"],
                    channel=row["channel"],
                    segment=row["segment"],
                    brand_id=row["brand_id"],
                    decision_id=row["decision_id"],
                )
                due_at = row["due_at"].astimezone(UTC)
                published.metadata(
                    event.metadata,
                    published.step_event_id(row["enrollment_id"], row["step_index"]),
                    tenant_id,
                    due_at,
                    row["decision_id"],
                )
                mapping.set_timestamp(event.due_at, due_at)
                mapping.set_timestamp(event.enrolled_at, row["enrolled_at"])
                owner = await repo.current_owner(conn, tenant_id, row["lead_id"], row["brand_id"])
                if owner is not None:
                    event.owner.brand_id = row["brand_id"]
                    event.owner.owner_id = owner["owner_id"]
                    event.owner.name = owner["owner_name"]
                    event.owner.email = owner["owner_email"]
                await repo.mark_step_sent(
                    conn, tenant_id, row["enrollment_id"], row["step_index"], at
                )
                await add_to_outbox(conn, published.step_due(tenant_id, event))
                await repo.complete_finished_enrollments(conn, tenant_id, row["enrollment_id"], at)
        total += len(rows)
        if rows:
            log.info("nurture_steps_due", count=len(rows))
        if len(rows) < BATCH:
            return total
