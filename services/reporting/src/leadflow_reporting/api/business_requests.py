"""The business reports' requests checked and turned into domain queries; every violation
names its field and all are reported at once."""

from __future__ import annotations

from leadflow.attribution.v1 import attribution_types_pb2 as at
from leadflow.common.v1 import event_type_pb2
from leadflow.reporting.v1 import report_types_pb2 as rt
from leadflow.reporting.v1 import reporting_service_pb2 as pb
from leadflow_platform.errors import FieldViolation, InvalidArgument
from leadflow_reporting.api.requests import brands, zone
from leadflow_reporting.api.validation import (
    DIMENSIONS,
    EVENT_TYPE_NAMES,
    NAME_MAX,
    _selector,
    _window,
    time_range,
)
from leadflow_reporting.business import AbQuery, InsightsQuery
from leadflow_reporting.domain.query import Breakdown, Selector

HEURISTIC_MODELS = (
    at.ATTRIBUTION_MODEL_FIRST_TOUCH,
    at.ATTRIBUTION_MODEL_LAST_TOUCH,
    at.ATTRIBUTION_MODEL_LINEAR,
    at.ATTRIBUTION_MODEL_TIME_DECAY,
    at.ATTRIBUTION_MODEL_U_SHAPED,
    at.ATTRIBUTION_MODEL_W_SHAPED,
)
DEFAULT_MODELS = HEURISTIC_MODELS[:3]
GROUP_COLUMNS = {
    rt.DIMENSION_UNSPECIFIED: "channel",
    rt.DIMENSION_CHANNEL: "channel",
    rt.DIMENSION_SOURCE: "source",
    rt.DIMENSION_MEDIUM: "medium",
    rt.DIMENSION_CAMPAIGN: "campaign",
    rt.DIMENSION_BRAND: "brand_id",
}
VARIANT_PATH_MAX = 200


def _fail(bad: list[FieldViolation]) -> None:
    if bad:
        raise InvalidArgument(*bad)


def lead_quality(
    request: pb.GetLeadQualityRequest,
) -> tuple[tuple[int, int] | None, tuple[str, ...]]:
    bad: list[FieldViolation] = []
    identified = None
    if request.HasField("range"):
        identified = time_range(request.range, "range", bad, required=True)
    brand_ids = brands(list(request.brand_ids), "brand_ids", bad)
    _fail(bad)
    return identified, brand_ids


def ranged(request: pb.GetLifecycleFunnelRequest) -> tuple[int, int, tuple[str, ...]]:
    bad: list[FieldViolation] = []
    start, end = time_range(request.range, "range", bad, required=True)
    brand_ids = brands(list(request.brand_ids), "brand_ids", bad)
    _fail(bad)
    return start, end, brand_ids


def engagement(
    request: pb.GetEngagementRequest,
) -> tuple[int, int, tuple[str, ...], tuple[int, ...]]:
    bad: list[FieldViolation] = []
    start, end = time_range(request.range, "range", bad, required=True)
    brand_ids = brands(list(request.brand_ids), "brand_ids", bad)
    excluded = []
    for i, t in enumerate(request.excluded_event_types):
        if t not in EVENT_TYPE_NAMES and t != event_type_pb2.EVENT_TYPE_CUSTOM:
            bad.append(FieldViolation(f"excluded_event_types[{i}]", "unknown event type"))
        excluded.append(int(t))
    _fail(bad)
    return start, end, brand_ids, tuple(sorted(set(excluded)))


def attribution_summary(
    request: pb.GetAttributionSummaryRequest,
) -> tuple[int, int, tuple[str, ...], tuple[int, ...], str, int, tuple[str, ...]]:
    bad: list[FieldViolation] = []
    start, end = time_range(request.range, "range", bad, required=True)
    brand_ids = brands(list(request.brand_ids), "brand_ids", bad)
    models: list[int] = []
    for i, m in enumerate(request.models):
        if m not in HEURISTIC_MODELS:
            bad.append(
                FieldViolation(
                    f"models[{i}]",
                    "only heuristic models are summarised here (first touch, last touch,"
                    " linear, time decay, U-shaped, W-shaped)",
                )
            )
        elif m in models:
            bad.append(FieldViolation(f"models[{i}]", "listed twice"))
        else:
            models.append(int(m))
    column = GROUP_COLUMNS.get(request.group_by)
    if column is None:
        bad.append(FieldViolation("group_by", "must be CHANNEL, SOURCE, MEDIUM, CAMPAIGN or BRAND"))
    limit = request.limit or 10
    if not 1 <= limit <= 100:
        bad.append(FieldViolation("limit", "must be in 1..100"))
    for i, name in enumerate(request.conversion_types):
        if not name or len(name) > NAME_MAX:
            bad.append(FieldViolation(f"conversion_types[{i}]", f"1 to {NAME_MAX} characters"))
    _fail(bad)
    assert column is not None
    return (
        start,
        end,
        brand_ids,
        tuple(models or DEFAULT_MODELS),
        column,
        limit,
        tuple(sorted(set(request.conversion_types))),
    )


def source_insights(request: pb.GetSourceInsightsRequest) -> InsightsQuery:
    bad: list[FieldViolation] = []
    start, end = time_range(request.range, "range", bad, required=True)
    dimensions: list[int] = []
    for i, d in enumerate(request.dimensions):
        if d not in DIMENSIONS:
            bad.append(FieldViolation(f"dimensions[{i}]", "unknown dimension"))
        elif d in dimensions:
            bad.append(FieldViolation(f"dimensions[{i}]", "listed twice"))
        else:
            dimensions.append(int(d))
    if request.assignment not in (
        rt.SUBJECT_ASSIGNMENT_UNSPECIFIED,
        rt.SUBJECT_ASSIGNMENT_FIRST_TOUCH,
        rt.SUBJECT_ASSIGNMENT_LAST_TOUCH,
    ):
        bad.append(FieldViolation("assignment", "unknown assignment"))
    conversion = (
        _selector(request.conversion_event, True, "conversion_event", bad)
        if request.HasField("conversion_event")
        else None
    )
    minimum = request.min_participants if request.HasField("min_participants") else 30
    if minimum < 0:
        bad.append(FieldViolation("min_participants", "must be 0 or more"))
    alpha = request.significance_level if request.HasField("significance_level") else 0.05
    if not 0 < alpha < 0.5:
        bad.append(FieldViolation("significance_level", "must be more than 0 and less than 0.5"))
    findings = request.max_findings if request.HasField("max_findings") else 10
    if not 0 <= findings <= 50:
        bad.append(FieldViolation("max_findings", "must be in 0..50"))
    brand_ids = brands(list(request.brand_ids), "brand_ids", bad)
    _fail(bad)
    return InsightsQuery(
        start_us=start,
        end_us=end,
        dimensions=tuple(dimensions) or (rt.DIMENSION_SOURCE, rt.DIMENSION_CHANNEL),
        last_touch=request.assignment == rt.SUBJECT_ASSIGNMENT_LAST_TOUCH,
        conversion=conversion,
        min_participants=minimum,
        alpha=alpha,
        max_findings=findings,
        brand_ids=brand_ids,
    )


def _path(value: str, field: str, bad: list[FieldViolation]) -> str:
    if not value or len(value) > VARIANT_PATH_MAX or any(not p for p in value.split(".")):
        bad.append(
            FieldViolation(field, f"a dotted property path of 1 to {VARIANT_PATH_MAX} characters")
        )
    return value


def best_posting_hour(
    request: pb.GetBestPostingHourRequest,
) -> tuple[int, int, tuple[str, ...], Selector, str, int, str, Breakdown | None]:
    bad: list[FieldViolation] = []
    start, end = time_range(request.range, "range", bad, required=True)
    tz = zone(request.time_zone, "time_zone", bad)
    selector = (
        _selector(request.post_event, True, "post_event", bad)
        if request.HasField("post_event")
        else Selector(event_type_pb2.EVENT_TYPE_SOCIAL_INTERACTION)
    )
    path = _path(request.engagement_property or "engagement", "engagement_property", bad)
    minimum = request.min_sample if request.HasField("min_sample") else 5
    if minimum < 1:
        bad.append(FieldViolation("min_sample", "must be 1 or more"))
    breakdown = None
    if request.breakdown != rt.DIMENSION_UNSPECIFIED:
        breakdown = DIMENSIONS.get(request.breakdown)
        if breakdown is None:
            bad.append(FieldViolation("breakdown", "unknown dimension"))
    brand_ids = brands(list(request.brand_ids), "brand_ids", bad)
    _fail(bad)
    return start, end, brand_ids, selector, path, minimum, tz, breakdown


def ab_test(request: pb.GetAbTestRequest) -> AbQuery:
    bad: list[FieldViolation] = []
    if not 1 <= len(request.experiment_key) <= 200:
        bad.append(FieldViolation("experiment_key", "1 to 200 characters"))
    path = _path(request.variant_property, "variant_property", bad)
    exposure = (
        _selector(request.exposure_event, True, "exposure_event", bad)
        if request.HasField("exposure_event")
        else None
    )
    conversion = _selector(
        request.conversion_event, request.HasField("conversion_event"), "conversion_event", bad
    )
    if len(request.control_variant) > NAME_MAX:
        bad.append(FieldViolation("control_variant", f"at most {NAME_MAX} characters"))
    start, end = time_range(request.range, "range", bad, required=True)
    minimum = request.min_sample_per_variant if request.HasField("min_sample_per_variant") else 100
    if minimum < 1:
        bad.append(FieldViolation("min_sample_per_variant", "must be 1 or more"))
    confidence = request.confidence_level if request.HasField("confidence_level") else 0.95
    if not 0.5 <= confidence <= 0.999:
        bad.append(FieldViolation("confidence_level", "must be in 0.5..0.999"))
    window_us = None
    if request.HasField("conversion_window"):
        window_us = _window(request.conversion_window, "conversion_window", bad)
    brand_ids = brands(list(request.brand_ids), "brand_ids", bad)
    _fail(bad)
    return AbQuery(
        experiment=request.experiment_key,
        variant_path=path,
        exposure=exposure,
        conversion=conversion,
        control=request.control_variant or "control",
        start_us=start,
        end_us=end,
        min_sample=minimum,
        confidence=confidence,
        window_us=window_us,
        brand_ids=brand_ids,
    )


def portfolio(request: pb.GetPortfolioMetricsRequest) -> tuple[int, int, tuple[str, ...]]:
    bad: list[FieldViolation] = []
    start, end = time_range(request.range, "range", bad, required=True)
    brand_ids = brands(list(request.brand_ids), "brand_ids", bad)
    _fail(bad)
    return start, end, brand_ids
