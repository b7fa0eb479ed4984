"""The SLA job: assignments past their acknowledgement deadline are re-assigned or escalated
(or marked BREACHED when nobody else can take them), each with a
`routing.assignment.breached` event in the same transaction. Rows are claimed with
`FOR UPDATE SKIP LOCKED`, so replicas split the work and none acts on a breach twice."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from leadflow.routing.v1 import routing_types_pb2 as tpb
from leadflow_platform.logging import get_logger
from leadflow_platform.nats import add_to_outbox
from leadflow_routing.api import mapping
from leadflow_routing.db import repository as repo
from leadflow_routing.domain.config import Strategy
from leadflow_routing.domain.sla import AssignmentState, acknowledge_by, decide_breach
from leadflow_routing.events import published
from leadflow_routing.service import RoutingService, day_start

log = get_logger(__name__)
BATCH = 100


async def handle_breaches(service: RoutingService, now: datetime | None = None) -> int:
    """Acts on every breached assignment; returns how many."""
    total = 0
    while True:
        at = now or service.clock()
        async with service.pool.acquire() as conn, conn.transaction():
            claimed = await repo.claim_breached(conn, at, BATCH)
            for tenant_id, row in claimed:
                await _breach(service, conn, tenant_id, row, at)
        total += len(claimed)
        if len(claimed) < BATCH:
            return total


async def _breach(
    service: RoutingService,
    conn: asyncpg.Connection,
    tenant_id: str,
    row: repo.AssignmentRow,
    at: datetime,
) -> None:
    compiled = await service.compiled(conn, tenant_id)
    if compiled is None:
        return
    config = compiled.config
    brand = compiled.brands.get(row.brand_id)
    outcome_state = AssignmentState.BREACHED
    new_assignment_id = ""
    new_owner_ref: tpb.OwnerRef | None = None
    new_deadline = None
    if brand is not None:
        chain = await repo.breached_owners(conn, tenant_id, row.assignment_id)
        states = await repo.brand_states(
            conn, tenant_id, [brand.id], day_start(at, config.zone), lock=True
        )
        rule = config.rule(row.rule_id)
        outcome = decide_breach(
            config.sla,
            brand,
            rule.strategy if rule is not None else Strategy(row.strategy),
            rule.fixed_owner_id if rule is not None else row.fixed_owner_id,
            frozenset(chain),
            row.owner_id,
            states[brand.id],
            at,
        )
        outcome_state = outcome.resulting_state
        owner = outcome.selection.owner if outcome.selection is not None else None
        if owner is not None:
            await repo.save_brand_states(conn, tenant_id, {brand.id: outcome.brand_state})
            new_assignment_id = published.new_id("assignment")
            new_deadline = acknowledge_by(config.sla, at)
            await repo.insert_assignment(
                conn,
                tenant_id,
                repo.AssignmentRow(
                    assignment_id=new_assignment_id,
                    lead_id=row.lead_id,
                    brand_id=brand.id,
                    owner_id=owner.id,
                    owner_name=owner.name,
                    owner_email=owner.email,
                    state=AssignmentState.ASSIGNED.value,
                    decision_id=row.decision_id,
                    rule_id=row.rule_id,
                    strategy=row.strategy,
                    fixed_owner_id=row.fixed_owner_id,
                    trigger=row.trigger,
                    config_version=config.version,
                    assigned_at=at,
                    acknowledge_by=new_deadline,
                    previous_assignment_id=row.assignment_id,
                ),
            )
            new_owner_ref = mapping.owner_ref(brand.id, owner)
    await repo.mark_breached(
        conn, tenant_id, row.assignment_id, outcome_state.value, at, new_assignment_id
    )
    await add_to_outbox(
        conn,
        published.assignment_breached(
            tenant_id,
            assignment_id=row.assignment_id,
            lead_id=row.lead_id,
            brand_id=row.brand_id,
            owner=tpb.OwnerRef(
                brand_id=row.brand_id,
                owner_id=row.owner_id,
                name=row.owner_name,
                email=row.owner_email,
            ),
            assigned_at=row.assigned_at,
            acknowledge_by=row.acknowledge_by,
            within=config.sla.acknowledge_within,
            action=config.sla.breach_action.value,
            resulting_state=outcome_state.value,
            new_assignment_id=new_assignment_id,
            new_owner=new_owner_ref,
            new_acknowledge_by=new_deadline,
            config_version=config.version,
            decision_id=row.decision_id,
            at=at,
        ),
    )
    log.info(
        "assignment_breached",
        tenant_id=tenant_id,
        assignment_id=row.assignment_id,
        resulting_state=outcome_state.short_name,
        new_assignment_id=new_assignment_id,
    )
