"""The ScoringService gRPC adapter: check the request, call the use case, map the answer."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from leadflow.common.v1 import pagination_pb2
from leadflow.scoring.v1 import scoring_service_pb2 as pb
from leadflow.scoring.v1 import scoring_service_pb2_grpc
from leadflow_platform.errors import FieldViolation, InvalidArgument
from leadflow_platform.grpc import current_principal
from leadflow_scoring import paging
from leadflow_scoring.api import mapping
from leadflow_scoring.db.repository import LeadFilter
from leadflow_scoring.domain.model import validate_model
from leadflow_scoring.domain.violations import Violation
from leadflow_scoring.service import LeadQuery, ScoringService

E = TypeVar("E")
ID_MAX = 100
REASON_MAX = 500
MAX_LISTED_LEADS = 1000
SORTS = {
    pb.LEAD_SORT_FIELD_UNSPECIFIED: "total",
    pb.LEAD_SORT_FIELD_TOTAL: "total",
    pb.LEAD_SORT_FIELD_UNDECAYED_TOTAL: "undecayed_total",
    pb.LEAD_SORT_FIELD_COMPUTED_AT: "computed_at",
    pb.LEAD_SORT_FIELD_LAST_ACTIVITY_AT: "last_activity_at",
    pb.LEAD_SORT_FIELD_LEAD_ID: "lead_id",
}


class ScoringServicer(scoring_service_pb2_grpc.ScoringServiceServicer):
    def __init__(self, service: ScoringService) -> None:
        self._service = service

    async def GetScore(self, request, context):
        _refuse(_lead_id(request.lead_id))
        score = await self._service.get_score(_tenant(), request.lead_id)
        return pb.GetScoreResponse(score=score)

    async def ScoreLeads(self, request, context):
        target = request.WhichOneof("target")
        if target is None:
            raise InvalidArgument.field("target", "one of leads or all_leads is required")
        if target == "all_leads":
            if not request.all_leads:
                raise InvalidArgument.field("all_leads", "must be true when set")
            job = await self._service.score_all(_tenant(), _now())
            return pb.ScoreLeadsResponse(job=job)
        ids = list(request.leads.lead_ids)
        violations: list[FieldViolation] = []
        if not ids or len(ids) > MAX_LISTED_LEADS:
            violations.append(
                FieldViolation("leads.lead_ids", f"1 to {MAX_LISTED_LEADS} ids (got {len(ids)})")
            )
        for i, lead_id in enumerate(ids):
            violations += _lead_id(lead_id, f"leads.lead_ids[{i}]")
        _refuse(violations)
        job, scores, unknown = await self._service.score_listed(_tenant(), ids, _now())
        return pb.ScoreLeadsResponse(job=job, scores=scores, unknown_lead_ids=unknown)

    async def GetScoringJob(self, request, context):
        _refuse(_id(request.job_id, "job_id"))
        return pb.GetScoringJobResponse(job=await self._service.job(_tenant(), request.job_id))

    async def ListLeads(self, request, context):
        violations: list[FieldViolation] = []
        grades = _enum_values(request.grades, mapping.GRADES, "grades", violations)
        temperatures = _enum_values(
            request.temperatures, mapping.TEMPERATURES, "temperatures", violations
        )
        stages = _enum_values(request.stages, mapping.STAGES, "stages", violations)
        if len(request.brand_id) > ID_MAX:
            violations.append(FieldViolation("brand_id", f"at most {ID_MAX} characters"))
        min_score = request.min_score if request.HasField("min_score") else None
        if min_score is not None and not (math.isfinite(min_score) and 0 <= min_score <= 100):
            violations.append(FieldViolation("min_score", "must be in 0..100"))
        sort = SORTS.get(request.sort_field)
        if sort is None:
            violations.append(FieldViolation("sort_field", "unknown sort field"))
        direction = request.sort_direction
        if direction not in (
            pb.SORT_DIRECTION_UNSPECIFIED,
            pb.SORT_DIRECTION_ASCENDING,
            pb.SORT_DIRECTION_DESCENDING,
        ):
            violations.append(FieldViolation("sort_direction", "unknown sort direction"))
        page_size = _page_size(request.page, violations)
        _refuse(violations)
        assert sort is not None
        if direction == pb.SORT_DIRECTION_UNSPECIFIED:
            descending = sort != "lead_id"
        else:
            descending = direction == pb.SORT_DIRECTION_DESCENDING
        query = LeadQuery(
            filter=LeadFilter(
                grades=[g.value for g in grades],
                temperatures=[t.value for t in temperatures],
                stages=[s.value for s in stages],
                brand_id=request.brand_id,
                min_score=min_score,
            ),
            sort=sort,
            descending=descending,
            include_factors=request.include_factors,
            page_size=page_size,
            page_token=request.page.page_token,
        )
        leads, count, token = await self._service.list_leads(_tenant(), query)
        return pb.ListLeadsResponse(
            leads=leads,
            total_count=count,
            page=pagination_pb2.PageResponse(next_page_token=token),
        )

    async def GetScoreHistory(self, request, context):
        violations = _lead_id(request.lead_id)
        start = end = None
        if request.HasField("range"):
            r = request.range
            start = mapping.to_datetime(r.start_time) if r.HasField("start_time") else None
            end = mapping.to_datetime(r.end_time) if r.HasField("end_time") else None
            if start is not None and end is not None and end <= start:
                violations.append(FieldViolation("range.end_time", "must be after start_time"))
        page_size = _page_size(request.page, violations)
        _refuse(violations)
        entries, token = await self._service.score_history(
            _tenant(),
            request.lead_id,
            start=start,
            end=end,
            page_size=page_size,
            page_token=request.page.page_token,
        )
        return pb.GetScoreHistoryResponse(
            entries=entries, page=pagination_pb2.PageResponse(next_page_token=token)
        )

    async def TransitionStage(self, request, context):
        violations = _lead_id(request.lead_id)
        stage = mapping.STAGES.get(request.to_stage)
        if stage is None:
            violations.append(FieldViolation("to_stage", "a lifecycle stage is required"))
        if not request.reason.strip():
            violations.append(FieldViolation("reason", "is required"))
        elif len(request.reason) > REASON_MAX:
            violations.append(FieldViolation("reason", f"at most {REASON_MAX} characters"))
        _refuse(violations)
        assert stage is not None
        principal = current_principal()
        transition, score = await self._service.transition_stage(
            principal.tenant_id,
            request.lead_id,
            stage,
            request.reason,
            actor=principal.key_id,
            now=_now(),
        )
        return pb.TransitionStageResponse(transition=transition, score=score)

    async def GetLifecycle(self, request, context):
        _refuse(_lead_id(request.lead_id))
        return await self._service.lifecycle(_tenant(), request.lead_id, _now())

    async def PutScoringModel(self, request, context):
        if not request.HasField("model"):
            raise InvalidArgument.field("model", "is required")
        model, problems = mapping.model_from_message(request.model)
        if not problems:
            problems = validate_model(model)
        _refuse([_field(v) for v in problems])
        base = request.base_version if request.HasField("base_version") else None
        stored, job = await self._service.put_model(_tenant(), model, base, _now())
        return pb.PutScoringModelResponse(model=mapping.model_message(stored), rescoring_job=job)

    async def GetScoringModel(self, request, context):
        version = request.version if request.HasField("version") else None
        if version is not None and version < 0:
            raise InvalidArgument.field("version", "must not be negative")
        model, active, job = await self._service.scoring_model(_tenant(), version)
        response = pb.GetScoringModelResponse(
            model=mapping.model_message(model), active_version=active
        )
        if job is not None:
            response.rescoring_job.CopyFrom(job)
        return response


def _tenant() -> str:
    return current_principal().tenant_id


def _now() -> datetime:
    return datetime.now(UTC)


def _id(value: str, field: str) -> list[FieldViolation]:
    if not value:
        return [FieldViolation(field, "is required")]
    if len(value) > ID_MAX:
        return [FieldViolation(field, f"at most {ID_MAX} characters")]
    return []


def _lead_id(value: str, field: str = "lead_id") -> list[FieldViolation]:
    return _id(value, field)


def _enum_values(
    values: Iterable[int], known: Mapping[Any, E], field: str, violations: list[FieldViolation]
) -> list[E]:
    out: list[E] = []
    for i, value in enumerate(values):
        found = known.get(value)
        if found is None:
            violations.append(FieldViolation(f"{field}[{i}]", "unknown or unspecified value"))
        else:
            out.append(found)
    return out


def _page_size(page: pagination_pb2.PageRequest, violations: list[FieldViolation]) -> int:
    if page.page_size < 0 or page.page_size > paging.MAX_PAGE_SIZE:
        violations.append(FieldViolation("page.page_size", f"must be in 0..{paging.MAX_PAGE_SIZE}"))
        return paging.DEFAULT_PAGE_SIZE
    return page.page_size or paging.DEFAULT_PAGE_SIZE


def _field(v: Violation) -> FieldViolation:
    return FieldViolation(v.field, v.reason)


def _refuse(violations: list[FieldViolation]) -> None:
    if violations:
        raise InvalidArgument(*violations)
