"""The AttributionService gRPC adapter: check the request (every wrong field named), call
the use case, return its answer."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from leadflow.attribution.v1 import attribution_service_pb2 as pb
from leadflow.attribution.v1 import attribution_service_pb2_grpc
from leadflow.attribution.v1 import attribution_types_pb2 as types
from leadflow.common.v1 import pagination_pb2, time_range_pb2
from leadflow_attribution.api import mapping
from leadflow_attribution.db.repository import ConversionFilter
from leadflow_attribution.domain.models import AttributionModel, AttributionOptions
from leadflow_attribution.domain.summary import Dimension
from leadflow_attribution.service import AttributionService, RangeQuery, fingerprint
from leadflow_platform.errors import FieldViolation, InvalidArgument
from leadflow_platform.grpc import current_tenant

ID_MAX = 100
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
MAX_FILTER_VALUES = 100


def _refuse(violations: Sequence[FieldViolation]) -> None:
    if violations:
        raise InvalidArgument(*violations)


def _id(value: str, field: str, violations: list[FieldViolation], *, required: bool) -> None:
    if (required and not value) or len(value) > ID_MAX:
        violations.append(FieldViolation(field, f"must be 1 to {ID_MAX} characters"))


def _models(
    values: Sequence[int], field: str, violations: list[FieldViolation]
) -> list[AttributionModel]:
    """The requested models in order; empty means all eight."""
    if not values:
        return list(AttributionModel)
    out: list[AttributionModel] = []
    for i, value in enumerate(values):
        if value not in AttributionModel._value2member_map_:
            violations.append(FieldViolation(f"{field}[{i}]", "not an attribution model"))
            continue
        model = AttributionModel(value)
        if model in out:
            violations.append(FieldViolation(f"{field}[{i}]", f"{model.name} is listed twice"))
            continue
        out.append(model)
    return out


def _dimension(value: int, violations: list[FieldViolation]) -> Dimension:
    if value not in Dimension._value2member_map_:
        violations.append(FieldViolation("dimension", "an attribution dimension is required"))
        return Dimension.CHANNEL
    return Dimension(value)


def _range(
    message: time_range_pb2.TimeRange,
    field: str,
    violations: list[FieldViolation],
    *,
    required: bool,
) -> tuple[datetime | None, datetime | None]:
    start = mapping.to_datetime(message.start_time) if message.HasField("start_time") else None
    end = mapping.to_datetime(message.end_time) if message.HasField("end_time") else None
    if required and start is None:
        violations.append(FieldViolation(f"{field}.start_time", "is required"))
    if required and end is None:
        violations.append(FieldViolation(f"{field}.end_time", "is required"))
    if start is not None and end is not None and end <= start:
        violations.append(FieldViolation(f"{field}.end_time", "must be after start_time"))
    return start, end


def _page_size(page: pagination_pb2.PageRequest, violations: list[FieldViolation]) -> int:
    if not 0 <= page.page_size <= MAX_PAGE_SIZE:
        violations.append(FieldViolation("page.page_size", f"must be 0 to {MAX_PAGE_SIZE}"))
    return page.page_size or DEFAULT_PAGE_SIZE


def _names(values: Sequence[str], field: str, violations: list[FieldViolation]) -> tuple[str, ...]:
    if len(values) > MAX_FILTER_VALUES:
        violations.append(FieldViolation(field, f"at most {MAX_FILTER_VALUES} values"))
    for i, value in enumerate(values):
        _id(value, f"{field}[{i}]", violations, required=True)
    return tuple(values)


class AttributionServicer(attribution_service_pb2_grpc.AttributionServiceServicer):
    def __init__(self, service: AttributionService) -> None:
        self._service = service

    async def _options(
        self, tenant_id: str, message: types.AttributionOptions, violations: list[FieldViolation]
    ) -> AttributionOptions:
        policy = await self._service.policy(tenant_id)
        options = mapping.options_from_proto(message, policy.options)
        violations.extend(
            FieldViolation(v.field, v.reason) for v in options.violations(policy.retention)
        )
        return options

    async def GetAttribution(self, request, context):
        tenant_id = current_tenant()
        violations: list[FieldViolation] = []
        _id(request.conversion_id, "conversion_id", violations, required=True)
        models = _models(request.models, "models", violations)
        options = await self._options(tenant_id, request.options, violations)
        _refuse(violations)
        return await self._service.get_attribution(
            tenant_id, request.conversion_id, models, options
        )

    async def _range_query(self, request, violations: list[FieldViolation]) -> RangeQuery:
        tenant_id = current_tenant()
        dimension = _dimension(request.dimension, violations)
        start, end = _range(request.range, "range", violations, required=True)
        options = await self._options(tenant_id, request.options, violations)
        brands = _names(request.brand_ids, "brand_ids", violations)
        kinds = _names(request.conversion_types, "conversion_types", violations)
        page_size = _page_size(request.page, violations)
        return RangeQuery(
            where=ConversionFilter(
                tenant_id, start or datetime.min, end or datetime.max, brands, kinds
            ),
            dimension=dimension,
            options=options,
            page_size=page_size,
            page_token=request.page.page_token,
            fingerprint=fingerprint(request),
        )

    async def Summarize(self, request, context):
        violations: list[FieldViolation] = []
        query = await self._range_query(request, violations)
        model = AttributionModel.LINEAR
        if request.model:
            found = _models([request.model], "model", violations)
            if found:
                model = found[0]
            else:
                violations[-1] = FieldViolation("model", "not an attribution model")
        _refuse(violations)
        return await self._service.summarize(query, model)

    async def CompareModels(self, request, context):
        violations: list[FieldViolation] = []
        query = await self._range_query(request, violations)
        models = _models(request.models, "models", violations)
        _refuse(violations)
        return await self._service.compare(query, models)

    async def GetJourney(self, request, context):
        violations: list[FieldViolation] = []
        subject = request.subject
        if not subject.lead_id and not subject.anonymous_id:
            violations.append(FieldViolation("subject", "a lead_id or an anonymous_id is required"))
        _id(subject.lead_id, "subject.lead_id", violations, required=False)
        _id(subject.anonymous_id, "subject.anonymous_id", violations, required=False)
        since, until = (None, None)
        if request.HasField("range"):
            since, until = _range(request.range, "range", violations, required=False)
        page_size = _page_size(request.page, violations)
        _refuse(violations)
        return await self._service.journey(
            current_tenant(),
            subject.lead_id,
            subject.anonymous_id,
            since,
            until,
            page_size,
            request.page.page_token,
        )


__all__ = ["AttributionServicer", "pb"]
