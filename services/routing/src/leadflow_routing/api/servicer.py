"""The RoutingService gRPC adapter: check the request, call the use case, map the answer."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

from leadflow.common.v1 import pagination_pb2, time_range_pb2
from leadflow.routing.v1 import routing_service_pb2 as pb
from leadflow.routing.v1 import routing_service_pb2_grpc
from leadflow.routing.v1 import routing_types_pb2 as tpb
from leadflow_platform.errors import FieldViolation, InvalidArgument
from leadflow_platform.grpc import current_principal
from leadflow_routing.api import mapping
from leadflow_routing.db import repository as repo
from leadflow_routing.domain.decision import Trigger
from leadflow_routing.service import RoutingService

ID_MAX = 100
REASON_MAX = 1000
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


class RoutingServicer(routing_service_pb2_grpc.RoutingServiceServicer):
    def __init__(self, service: RoutingService) -> None:
        self._service = service

    async def PutRoutingConfig(self, request, context):
        if not request.HasField("config"):
            raise InvalidArgument.field("config", "is required")
        principal = current_principal()
        config, warnings = await self._service.put_config(
            principal.tenant_id,
            mapping.config_from_proto(request.config),
            validate_only=request.validate_only,
            expected_active_version=request.expected_active_version
            if request.HasField("expected_active_version")
            else None,
            created_by=principal.key_id,
        )
        return pb.PutRoutingConfigResponse(
            version=config.version,
            config=mapping.config_to_proto(config),
            warnings=[pb.ConfigWarning(field=w.field, message=w.message) for w in warnings],
        )

    async def GetRoutingConfig(self, request, context):
        version = request.version if request.HasField("version") else None
        if version is not None and version <= 0:
            raise InvalidArgument.field("version", "must be positive")
        config, active = await self._service.get_config(_tenant(), version)
        return pb.GetRoutingConfigResponse(
            config=mapping.config_to_proto(config), active_version=active
        )

    async def RouteLead(self, request, context):
        violations = _id(request.lead_id, "lead_id")
        if len(request.reason) > REASON_MAX:
            violations.append(FieldViolation("reason", f"at most {REASON_MAX} characters"))
        if len(request.request_id) > ID_MAX:
            violations.append(FieldViolation("request_id", f"at most {ID_MAX} characters"))
        _refuse(violations)
        decision = await self._service.route_lead(
            _tenant(), request.lead_id, request.reason, request.request_id
        )
        return pb.RouteLeadResponse(decision=decision)

    async def ExplainRoute(self, request, context):
        which = request.WhichOneof("lead")
        if which is None:
            raise InvalidArgument.field("lead", "one of lead_id or hypothetical_lead is required")
        violations: list[FieldViolation] = []
        if which == "lead_id":
            violations += _id(request.lead_id, "lead_id")
        trigger = Trigger.MANUAL
        if request.trigger:
            try:
                trigger = Trigger(request.trigger)
            except ValueError:
                violations.append(FieldViolation("trigger", "unknown trigger"))
        if len(request.trigger_detail) > ID_MAX:
            violations.append(FieldViolation("trigger_detail", f"at most {ID_MAX} characters"))
        source = request.WhichOneof("config")
        if source == "config_version" and request.config_version <= 0:
            violations.append(FieldViolation("config_version", "must be positive"))
        _refuse(violations)
        decision = await self._service.explain(
            _tenant(),
            lead_id=request.lead_id if which == "lead_id" else None,
            hypothetical=mapping.snapshot_from_proto(request.hypothetical_lead)
            if which == "hypothetical_lead"
            else None,
            trigger=trigger,
            trigger_detail=request.trigger_detail,
            version=request.config_version if source == "config_version" else None,
            draft=mapping.config_from_proto(request.draft_config)
            if source == "draft_config"
            else None,
            at=mapping.get_timestamp(request, "as_of"),
        )
        return pb.ExplainRouteResponse(decision=mapping.decision_to_proto(decision))

    async def AcknowledgeAssignment(self, request, context):
        _refuse(_id(request.assignment_id, "assignment_id") + _id(request.owner_id, "owner_id"))
        row = await self._service.acknowledge(_tenant(), request.assignment_id, request.owner_id)
        return pb.AcknowledgeAssignmentResponse(assignment=assignment_to_proto(row))

    async def ListAssignments(self, request, context):
        violations: list[FieldViolation] = []
        size = _page_size(request.page, violations)
        start, end = _range(request, "range", violations)
        query = {
            "brand": request.brand_id,
            "owner": request.owner_id,
            "states": sorted(request.states),
            "lead": request.lead_id,
            "start": str(start),
            "end": str(end),
        }
        after = _after(request.page, query, violations)
        _refuse(violations)
        async with self._service.pool.acquire() as conn:
            rows = await repo.list_assignments(
                conn,
                _tenant(),
                brand_id=request.brand_id,
                owner_id=request.owner_id,
                states=list(request.states),
                lead_id=request.lead_id,
                start=start,
                end=end,
                after=after,
                limit=size + 1,
            )
        page = rows[:size]
        token = (
            _token(query, page[-1].assigned_at, page[-1].assignment_id) if len(rows) > size else ""
        )
        return pb.ListAssignmentsResponse(
            assignments=[assignment_to_proto(r) for r in page],
            page=pagination_pb2.PageResponse(next_page_token=token),
        )

    async def ListEnrollments(self, request, context):
        violations: list[FieldViolation] = []
        size = _page_size(request.page, violations)
        start, end = _range(request, "range", violations)
        query = {
            "lead": request.lead_id,
            "sequence": request.sequence_id,
            "states": sorted(request.states),
            "reasons": sorted(request.stop_reasons),
            "brand": request.brand_id,
            "start": str(start),
            "end": str(end),
        }
        after = _after(request.page, query, violations)
        _refuse(violations)
        async with self._service.pool.acquire() as conn:
            rows, steps = await repo.list_enrollments(
                conn,
                _tenant(),
                lead_id=request.lead_id,
                sequence_id=request.sequence_id,
                states=list(request.states),
                stop_reasons=list(request.stop_reasons),
                brand_id=request.brand_id,
                start=start,
                end=end,
                after=after,
                limit=size + 1,
            )
        page = rows[:size]
        token = (
            _token(query, page[-1]["enrolled_at"], page[-1]["enrollment_id"])
            if len(rows) > size
            else ""
        )
        return pb.ListEnrollmentsResponse(
            enrollments=[enrollment_to_proto(r, steps.get(r["enrollment_id"], [])) for r in page],
            page=pagination_pb2.PageResponse(next_page_token=token),
        )


def assignment_to_proto(row: repo.AssignmentRow) -> tpb.Assignment:
    out = tpb.Assignment(
        id=row.assignment_id,
        lead_id=row.lead_id,
        brand_id=row.brand_id,
        owner=tpb.OwnerRef(
            brand_id=row.brand_id, owner_id=row.owner_id, name=row.owner_name, email=row.owner_email
        ),
        state=row.state,  # type: ignore[arg-type]
        decision_id=row.decision_id,
        rule_id=row.rule_id,
        trigger=row.trigger,  # type: ignore[arg-type]
        config_version=row.config_version,
        previous_assignment_id=row.previous_assignment_id,
        next_assignment_id=row.next_assignment_id,
    )
    mapping.set_timestamp(out.assigned_at, row.assigned_at)
    mapping.set_timestamp(out.acknowledge_by, row.acknowledge_by)
    mapping.set_timestamp(out.acknowledged_at, row.acknowledged_at)
    mapping.set_timestamp(out.breached_at, row.breached_at)
    return out


def enrollment_to_proto(row: Any, steps: list[Any]) -> tpb.Enrollment:
    out = tpb.Enrollment(
        id=row["enrollment_id"],
        lead_id=row["lead_id"],
        brand_id=row["brand_id"],
        sequence_id=row["sequence_id"],
        segment=row["segment"],
        state=row["state"],
        stop_reason=row["stop_reason"],
        decision_id=row["decision_id"],
        config_version=row["config_version"],
    )
    mapping.set_timestamp(out.enrolled_at, row["enrolled_at"])
    mapping.set_timestamp(out.ended_at, row["ended_at"])
    for s in steps:
        step = out.steps.add(
            step_index=s["step_index"],
            day_offset=s["day_offset"],
            template=s["template"],
            channel=s["channel"],
        )
        mapping.set_timestamp(step.due_at, s["due_at"])
        mapping.set_timestamp(step.sent_at, s["sent_at"])
    return out


def _tenant() -> str:
    return current_principal().tenant_id


def _id(value: str, field: str) -> list[FieldViolation]:
    if not value:
        return [FieldViolation(field, "is required")]
    if len(value) > ID_MAX:
        return [FieldViolation(field, f"at most {ID_MAX} characters")]
    return []


def _refuse(violations: list[FieldViolation]) -> None:
    if violations:
        raise InvalidArgument(*violations)


def _page_size(page: pagination_pb2.PageRequest, violations: list[FieldViolation]) -> int:
    if not 0 <= page.page_size <= MAX_PAGE_SIZE:
        violations.append(FieldViolation("page.page_size", f"must be in 0..{MAX_PAGE_SIZE}"))
        return DEFAULT_PAGE_SIZE
    return page.page_size or DEFAULT_PAGE_SIZE


def _range(
    request: Any, field: str, violations: list[FieldViolation]
) -> tuple[datetime | None, datetime | None]:
    if not request.HasField(field):
        return None, None
    value: time_range_pb2.TimeRange = getattr(request, field)
    start = mapping.get_timestamp(value, "start_time")
    end = mapping.get_timestamp(value, "end_time")
    if start and end and end <= start:
        violations.append(FieldViolation(f"{field}.end_time", "must be after start_time"))
    return start, end


def _fingerprint(query: dict[str, Any]) -> str:
    return json.dumps(query, sort_keys=True, separators=(",", ":"))


def _token(query: dict[str, Any], at: datetime, item_id: str) -> str:
    raw = json.dumps({"q": _fingerprint(query), "t": at.isoformat(), "i": item_id})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _after(
    page: pagination_pb2.PageRequest, query: dict[str, Any], violations: list[FieldViolation]
) -> tuple[datetime, str] | None:
    if not page.page_token:
        return None
    try:
        data = json.loads(
            base64.urlsafe_b64decode(page.page_token + "=" * (-len(page.page_token) % 4))
        )
        if data["q"] != _fingerprint(query):
            raise ValueError("another query")
        return datetime.fromisoformat(data["t"]).astimezone(UTC), str(data["i"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        violations.append(FieldViolation("page.page_token", "not a token of this query"))
        return None
