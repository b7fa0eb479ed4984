"""Routing's use cases: the transaction boundary around the pure domain.

A decision locks the lead's row (one decision per lead at a time, so the duplicate check
holds across replicas), evaluates the rules, locks the routed brands' state rows in id order
(so no two replicas take the same round-robin turn), then writes in the same transaction:
the audit record, the routes (duplicate keys), assignments, enrolments and their steps, the
sink deliveries and the `routing.lead.routed` events.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import asyncpg
from google.protobuf import json_format

from leadflow.routing.v1 import events_pb2
from leadflow.routing.v1 import routing_config_pb2 as cpb
from leadflow.routing.v1 import routing_types_pb2 as tpb
from leadflow_platform.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound
from leadflow_platform.lifecycle import ServiceContext
from leadflow_platform.logging import get_logger
from leadflow_platform.nats import add_to_outbox
from leadflow_platform.nats.headers import traceparent
from leadflow_routing.api import audit, mapping
from leadflow_routing.db import repository as repo
from leadflow_routing.domain.config import NurtureChannel, RoutingConfig, SinkKind, with_defaults
from leadflow_routing.domain.decision import (
    CompiledConfig,
    Decision,
    Route,
    Trigger,
    assign_owners,
    build_decision,
    compile_config,
    dedup_key,
    evaluate_rules,
    routed_brands,
)
from leadflow_routing.domain.nurture import StopReason, schedule
from leadflow_routing.domain.sla import AssignmentState, acknowledge_by
from leadflow_routing.domain.snapshot import LeadSnapshot
from leadflow_routing.domain.validation import ConfigWarning, validate_config
from leadflow_routing.events import published

log = get_logger(__name__)
Clock = Callable[[], datetime]
_CACHE_SIZE = 256


def system_clock() -> datetime:
    return datetime.now(UTC)


def day_start(at: datetime, zone: str) -> datetime:
    """Midnight of `at`'s day in the configuration's time zone (capacity resets there)."""
    local = at.astimezone(ZoneInfo(zone))
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def pseudonym(tenant_id: str, lead_id: str) -> str:
    digest = hashlib.sha256(f"{tenant_id}\x00{lead_id}".encode()).hexdigest()[:20]
    return f"erased-{digest}"


class RoutingService:
    def __init__(self, context: ServiceContext, clock: Clock = system_clock) -> None:
        self._context = context
        self.clock = clock
        self._compiled: OrderedDict[tuple[str, int], CompiledConfig] = OrderedDict()

    @property
    def pool(self) -> asyncpg.Pool:
        return self._context.pool

    # --- configuration ---------------------------------------------------------------------

    async def put_config(
        self,
        tenant_id: str,
        draft: RoutingConfig,
        *,
        validate_only: bool,
        expected_active_version: int | None,
        created_by: str,
    ) -> tuple[RoutingConfig, list[ConfigWarning]]:
        violations, warnings = validate_config(draft)
        if violations:
            raise InvalidArgument(*(FieldViolation(v.field, v.reason) for v in violations))
        config = with_defaults(replace(draft, version=0, created_at=None, created_by=""))
        if validate_only:
            return config, warnings
        at = self.clock()
        async with self.pool.acquire() as conn, conn.transaction():
            active = await repo.lock_head(conn, tenant_id)
            if expected_active_version is not None and expected_active_version != active:
                raise FailedPrecondition(
                    f"expected_active_version is {expected_active_version} but the active"
                    f" version is {active}"
                )
            config = replace(config, version=active + 1, created_at=at, created_by=created_by)
            payload = mapping.config_to_proto(config).SerializeToString()
            await repo.insert_config(conn, tenant_id, config.version, payload, at, created_by)
        log.info("routing_config_stored", tenant_id=tenant_id, version=config.version)
        return config, warnings

    async def get_config(self, tenant_id: str, version: int | None) -> tuple[RoutingConfig, int]:
        async with self.pool.acquire() as conn:
            active = await repo.active_version(conn, tenant_id)
            wanted = active if version is None else version
            payload = await repo.config_payload(conn, tenant_id, wanted) if wanted else None
        if payload is None:
            if version is None:
                raise NotFound("the tenant has no routing configuration yet")
            raise NotFound(f"routing configuration version {version} does not exist")
        return mapping.config_from_proto(cpb.RoutingConfig.FromString(payload)), active

    async def compiled(
        self, conn: asyncpg.Connection, tenant_id: str, version: int | None = None
    ) -> CompiledConfig | None:
        """The active (or a given) version, compiled once per process."""
        if version is None:
            version = await repo.active_version(conn, tenant_id)
        if not version:
            return None
        key = (tenant_id, version)
        found = self._compiled.get(key)
        if found is not None:
            self._compiled.move_to_end(key)
            return found
        payload = await repo.config_payload(conn, tenant_id, version)
        if payload is None:
            return None
        compiled = compile_config(mapping.config_from_proto(cpb.RoutingConfig.FromString(payload)))
        self._compiled[key] = compiled
        if len(self._compiled) > _CACHE_SIZE:
            self._compiled.popitem(last=False)
        return compiled

    # --- decisions -------------------------------------------------------------------------

    async def route(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        lead_id: str,
        trigger: Trigger,
        *,
        trigger_detail: str = "",
        trigger_event_id: str = "",
        reason: str = "",
        request_id: str | None = None,
    ) -> Decision | None:
        """Decide and apply, in the caller's transaction. None when the lead is unknown or
        the tenant has no configuration (nothing to decide with)."""
        compiled = await self.compiled(conn, tenant_id)
        if compiled is None:
            return None
        at = self.clock()
        snapshot = await repo.lock_lead(conn, tenant_id, lead_id, at)
        if snapshot is None:
            return None
        history = await repo.route_history(conn, tenant_id, lead_id)
        evaluations = evaluate_rules(compiled, snapshot, trigger, trigger_detail, history)
        config = compiled.config
        brands = routed_brands(evaluations)
        states = await repo.brand_states(
            conn, tenant_id, brands, day_start(at, config.zone), lock=True
        )
        evaluations, routes, new_states = assign_owners(compiled, snapshot, evaluations, states, at)
        await repo.save_brand_states(conn, tenant_id, new_states)
        decision_id = published.new_id("decision")
        decision = replace(
            build_decision(compiled, snapshot, trigger, trigger_detail, at, evaluations, routes),
            decision_id=decision_id,
            trigger_event_id=trigger_event_id or request_id or "",
            reason=reason,
        )
        applied = []
        for route in routes:
            applied.append(await self._apply_route(conn, tenant_id, decision, compiled, route))
        decision = replace(decision, routes=tuple(applied))
        if trigger is not Trigger.MANUAL:
            await repo.insert_routes(
                conn,
                tenant_id,
                lead_id,
                [dedup_key(r.brand_id, trigger, trigger_detail) for r in applied],
                decision_id,
                at,
            )
        lead = mapping.snapshot_to_proto(decision.lead)
        record = audit.compact_record(decision, lead).SerializeToString()
        await repo.insert_decision(
            conn, tenant_id, decision_id, lead_id, request_id, at, record, audit.COMPACT
        )
        await self._announce(conn, tenant_id, decision, compiled, lead)
        log.info(
            "lead_decided",
            tenant_id=tenant_id,
            lead_id=lead_id,
            decision_id=decision_id,
            trigger=trigger.short_name,
            brands=[r.brand_id for r in applied],
        )
        return decision

    async def _apply_route(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        decision: Decision,
        compiled: CompiledConfig,
        route: Route,
    ) -> Route:
        config = compiled.config
        at = decision.decided_at
        lead_id = decision.lead.lead_id
        rule = compiled.rules[route.rule_id]
        owner = route.selection.owner if route.selection is not None else None
        if owner is not None:
            deadline = acknowledge_by(config.sla, at)
            assignment_id = published.new_id("assignment")
            await repo.insert_assignment(
                conn,
                tenant_id,
                repo.AssignmentRow(
                    assignment_id=assignment_id,
                    lead_id=lead_id,
                    brand_id=route.brand_id,
                    owner_id=owner.id,
                    owner_name=owner.name,
                    owner_email=owner.email,
                    state=AssignmentState.ASSIGNED.value,
                    decision_id=decision.decision_id,
                    rule_id=rule.id,
                    strategy=rule.strategy.value,
                    fixed_owner_id=rule.fixed_owner_id,
                    trigger=decision.trigger.value,
                    config_version=config.version,
                    assigned_at=at,
                    acknowledge_by=deadline,
                ),
            )
            route = replace(route, assignment_id=assignment_id, acknowledge_by=deadline)
        sequence = config.sequence(route.nurture_sequence_id) if route.nurture_sequence_id else None
        if sequence is not None:
            existing = await repo.active_enrollment(
                conn, tenant_id, lead_id, sequence.id, route.brand_id
            )
            if existing is not None:
                return replace(route, enrollment_id=existing)
            enrollment_id = published.new_id("enrollment")
            steps = schedule(sequence, at)
            await repo.insert_enrollment(
                conn,
                tenant_id,
                enrollment_id=enrollment_id,
                lead_id=lead_id,
                brand_id=route.brand_id,
                sequence_id=sequence.id,
                segment=sequence.segment.value,
                channels=sorted({s.channel.value for s in steps}),
                enrolled_at=at,
                decision_id=decision.decision_id,
                config_version=config.version,
                steps=[
                    (s.step_index, s.day_offset, s.template, s.channel.value, s.due_at)
                    for s in steps
                ],
            )
            route = replace(route, enrollment_id=enrollment_id)
        return route

    async def _announce(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        decision: Decision,
        compiled: CompiledConfig,
        snapshot: tpb.LeadSnapshot,
    ) -> None:
        """One routing.lead.routed per route, and its sink delivery (log sinks log now)."""
        causation = decision.trigger_event_id
        for route in decision.routes:
            brand = compiled.brands[route.brand_id]
            selection = route.selection
            event = events_pb2.LeadRouted(
                decision_id=decision.decision_id,
                lead_id=decision.lead.lead_id,
                home_brand_id=decision.lead.home_brand_id,
                brand_id=route.brand_id,
                cross_brand=route.brand_id != decision.lead.home_brand_id,
                owner_choice_reason=selection.reason.value if selection else 0,  # type: ignore[arg-type]
                rule_id=route.rule_id,
                strategy=route.strategy.value,  # type: ignore[arg-type]
                trigger=decision.trigger.value,  # type: ignore[arg-type]
                trigger_detail=decision.trigger_detail,
                config_version=decision.config_version,
                assignment_id=route.assignment_id,
                nurture_sequence_id=route.nurture_sequence_id,
                enrollment_id=route.enrollment_id,
                lead=snapshot,
                reason=decision.reason,
            )
            published.metadata(
                event.metadata,
                published.new_id("routing"),
                tenant_id,
                decision.decided_at,
                causation,
            )
            ref = mapping.owner_ref(route.brand_id, selection.owner if selection else None)
            if ref is not None:
                event.owner.CopyFrom(ref)
            mapping.set_timestamp(event.acknowledge_by, route.acknowledge_by)
            await add_to_outbox(conn, published.lead_routed(tenant_id, event))
            if brand.sink.kind is SinkKind.LOG:
                log.info(
                    "lead_routed",
                    tenant_id=tenant_id,
                    lead_id=decision.lead.lead_id,
                    brand=route.brand_id,
                    owner=ref.owner_id if ref is not None else "",
                    rule=route.rule_id,
                    decision_id=decision.decision_id,
                )
                continue
            body = json_format.MessageToJson(event, indent=None).encode()
            await repo.insert_delivery(
                conn,
                tenant_id,
                event.metadata.event_id,
                decision.lead.lead_id,
                route.brand_id,
                mapping.sink_to_proto(brand.sink).SerializeToString(),
                body,
                decision.decided_at,
                traceparent(),  # sent later: its attempts continue this decision's trace
            )

    async def route_lead(
        self, tenant_id: str, lead_id: str, reason: str, request_id: str
    ) -> tpb.RouteDecision:
        async with self.pool.acquire() as conn, conn.transaction():
            if request_id:
                earlier = await repo.decision_by_request(conn, tenant_id, request_id)
                if earlier is not None:
                    return await self._stored_decision(conn, tenant_id, *earlier)
            if await self.compiled(conn, tenant_id) is None:
                raise FailedPrecondition("the tenant has no routing configuration")
            decision = await self.route(
                conn,
                tenant_id,
                lead_id,
                Trigger.MANUAL,
                reason=reason,
                request_id=request_id or published.new_id("request"),
            )
        if decision is None:
            raise NotFound(f"lead {lead_id!r} is not known to routing")
        return mapping.decision_to_proto(decision)

    async def _stored_decision(
        self, conn: asyncpg.Connection, tenant_id: str, payload: bytes, record_format: int
    ) -> tpb.RouteDecision:
        """A stored decision with its whole trace."""
        record = tpb.RouteDecision.FromString(payload)
        if record_format != audit.COMPACT:
            return record
        compiled = await self.compiled(conn, tenant_id, record.config_version)
        if compiled is None:  # configuration versions are never deleted
            raise NotFound(f"routing configuration version {record.config_version} is gone")
        return audit.full_record(record, compiled)

    async def explain(
        self,
        tenant_id: str,
        *,
        lead_id: str | None,
        hypothetical: LeadSnapshot | None,
        trigger: Trigger,
        trigger_detail: str,
        version: int | None,
        draft: RoutingConfig | None,
        at: datetime | None,
    ) -> Decision:
        """The same logic as a decision, read-only: the transaction is rolled back, no turn
        is taken, nothing is stored or sent."""
        at = at or self.clock()
        async with self.pool.acquire() as conn, conn.transaction(readonly=True):
            if draft is not None:
                violations, _ = validate_config(draft, prefix="draft_config")
                if violations:
                    raise InvalidArgument(*(FieldViolation(v.field, v.reason) for v in violations))
                compiled = compile_config(with_defaults(replace(draft, version=0)))
            else:
                found = await self.compiled(conn, tenant_id, version)
                if found is None:
                    if version is not None:
                        raise NotFound(f"routing configuration version {version} does not exist")
                    raise FailedPrecondition("the tenant has no routing configuration")
                compiled = found
            if lead_id is not None:
                snapshot = await repo.read_lead(conn, tenant_id, lead_id, at)
                if snapshot is None:
                    raise NotFound(f"lead {lead_id!r} is not known to routing")
                history = await repo.route_history(conn, tenant_id, lead_id)
            else:
                assert hypothetical is not None
                snapshot = hypothetical if hypothetical.as_of else replace(hypothetical, as_of=at)
                history = {}
            evaluations = evaluate_rules(compiled, snapshot, trigger, trigger_detail, history)
            states = await repo.brand_states(
                conn,
                tenant_id,
                routed_brands(evaluations),
                day_start(at, compiled.config.zone),
                lock=False,
            )
            evaluations, routes, _ = assign_owners(compiled, snapshot, evaluations, states, at)
        return build_decision(
            compiled, snapshot, trigger, trigger_detail, at, evaluations, routes, dry_run=True
        )

    # --- assignments and enrolments --------------------------------------------------------

    async def acknowledge(
        self, tenant_id: str, assignment_id: str, owner_id: str
    ) -> repo.AssignmentRow:
        at = self.clock()
        async with self.pool.acquire() as conn, conn.transaction():
            row = await repo.lock_assignment(conn, tenant_id, assignment_id)
            if row is None:
                raise NotFound(f"assignment {assignment_id!r} does not exist")
            if row.owner_id != owner_id:
                raise FailedPrecondition(f"owner_id {owner_id!r} is not the assignment's owner")
            if row.state in (AssignmentState.REASSIGNED.value, AssignmentState.ESCALATED.value):
                raise FailedPrecondition(
                    "the assignment was "
                    + AssignmentState(row.state).short_name
                    + f" to assignment {row.next_assignment_id}"
                )
            if row.state != AssignmentState.ACKNOWLEDGED.value:
                await repo.acknowledge(conn, tenant_id, assignment_id, at)
            found = await repo.lock_assignment(conn, tenant_id, assignment_id)
        assert found is not None
        return found

    async def stop_enrollments(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        lead_ids: list[str],
        decide: Callable[[frozenset[NurtureChannel]], StopReason | None],
    ) -> int:
        """Stops the leads' active enrolments for which `decide` gives a reason."""
        rows = await repo.active_enrollments_of(conn, tenant_id, lead_ids)
        by_reason: dict[StopReason, list[str]] = {}
        for row in rows:
            channels = frozenset(NurtureChannel(c) for c in row["channels"])
            reason = decide(channels)
            if reason is not None:
                by_reason.setdefault(reason, []).append(row["enrollment_id"])
        at = self.clock()
        for reason, ids in by_reason.items():
            await repo.stop_enrollments(conn, tenant_id, ids, reason.value, at)
            log.info(
                "enrollments_stopped", tenant_id=tenant_id, reason=reason.short_name, count=len(ids)
            )
        return sum(len(ids) for ids in by_reason.values())

    async def erase(self, conn: asyncpg.Connection, tenant_id: str, lead_ids: list[str]) -> None:
        await self.stop_enrollments(conn, tenant_id, lead_ids, lambda _: StopReason.ERASED)
        await repo.erase_leads(
            conn, tenant_id, lead_ids, [pseudonym(tenant_id, lead) for lead in lead_ids]
        )
