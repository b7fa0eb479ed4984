"""Real-time, paths, journey and retention requests checked and turned into domain queries.
Every violation names its field; all are reported at once."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from leadflow.common.v1 import event_type_pb2
from leadflow.reporting.v1 import report_types_pb2 as rt
from leadflow.reporting.v1 import reporting_service_pb2 as pb
from leadflow_platform.errors import FieldViolation, InvalidArgument
from leadflow_reporting.api.validation import (
    EVENT_TYPE_NAMES,
    ID_MAX,
    NAME_MAX,
    _selector,
    funnel_query,
    time_range,
)
from leadflow_reporting.domain.paths import PathsQuery
from leadflow_reporting.domain.query import FunnelQuery, RealTimeQuery, Selector
from leadflow_reporting.domain.realtime import (
    DAY_MINUTES,
    MINUTE_US,
    default_bucket_minutes,
    valid_bucket_minutes,
)
from leadflow_reporting.domain.retention import Period, RetentionQuery
from leadflow_reporting.funnels import DEFAULT_PAGE_SIZE as DEFAULT_DROP_OFF_PAGE
from leadflow_reporting.funnels import MAX_PAGE_SIZE as MAX_DROP_OFF_PAGE
from leadflow_reporting.funnels import fingerprint
from leadflow_reporting.journeys import DEFAULT_PAGE_SIZE as DEFAULT_JOURNEY_PAGE
from leadflow_reporting.journeys import MAX_PAGE_SIZE as MAX_JOURNEY_PAGE
from leadflow_reporting.journeys import JourneyQuery

HOUR_US = 60 * MINUTE_US
DAY_US = 24 * HOUR_US
PRESETS = {
    rt.RANGE_PRESET_UNSPECIFIED: HOUR_US,
    rt.RANGE_PRESET_LAST_HOUR: HOUR_US,
    rt.RANGE_PRESET_LAST_6_HOURS: 6 * HOUR_US,
    rt.RANGE_PRESET_LAST_24_HOURS: DAY_US,
    rt.RANGE_PRESET_LAST_7_DAYS: 7 * DAY_US,
    rt.RANGE_PRESET_LAST_30_DAYS: 30 * DAY_US,
}
MAX_REALTIME_US = 31 * DAY_US
CUSTOM = event_type_pb2.EVENT_TYPE_CUSTOM
PERIODS = {
    rt.COHORT_PERIOD_UNSPECIFIED: Period.WEEK,
    rt.COHORT_PERIOD_DAY: Period.DAY,
    rt.COHORT_PERIOD_WEEK: Period.WEEK,
    rt.COHORT_PERIOD_MONTH: Period.MONTH,
}


def zone(name: str, field: str, bad: list[FieldViolation]) -> str:
    if not name:
        return "UTC"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        bad.append(FieldViolation(field, f"unknown time zone {name!r}"))
        return "UTC"
    return name


def brands(ids: list[str], field: str, bad: list[FieldViolation]) -> tuple[str, ...]:
    for i, brand in enumerate(ids):
        if not brand or len(brand) > ID_MAX:
            bad.append(FieldViolation(f"{field}[{i}]", f"1 to {ID_MAX} characters"))
    return tuple(sorted(set(ids)))


def real_time_query(request: pb.GetRealTimeRequest, now_us: int) -> RealTimeQuery:
    bad: list[FieldViolation] = []
    if request.WhichOneof("window") == "range":
        start_us, end_us = time_range(request.range, "range", bad, required=True)
        if end_us - start_us > MAX_REALTIME_US:
            bad.append(FieldViolation("range", "at most 31 days"))
    else:
        length = PRESETS.get(request.preset)
        if length is None:
            bad.append(FieldViolation("preset", "unknown range preset"))
            length = HOUR_US
        start_us, end_us = now_us - length, now_us
    if request.HasField("bucket"):
        whole, rest = divmod(request.bucket.seconds, 60)
        minutes = whole if not rest and not request.bucket.nanos else 0
        if not valid_bucket_minutes(minutes):
            bad.append(
                FieldViolation(
                    "bucket", "a whole number of minutes from 1 minute to 1 day that divides 1 day"
                )
            )
    else:
        minutes = default_bucket_minutes(max(end_us - start_us, 0))
    types = []
    for i, t in enumerate(request.event_types):
        if t not in EVENT_TYPE_NAMES and t != CUSTOM:
            bad.append(FieldViolation(f"event_types[{i}]", "unknown event type"))
        types.append(int(t))
    for i, name in enumerate(request.custom_event_names):
        if not name or len(name) > NAME_MAX:
            bad.append(FieldViolation(f"custom_event_names[{i}]", f"1 to {NAME_MAX} characters"))
    tz = zone(request.time_zone, "time_zone", bad)
    brand_ids = brands(list(request.brand_ids), "brand_ids", bad)
    if bad:
        raise InvalidArgument(*bad)
    return RealTimeQuery(
        start_us=start_us,
        end_us=end_us,
        bucket_minutes=minutes or DAY_MINUTES,
        time_zone=tz,
        event_types=tuple(sorted(set(types))),
        custom_names=tuple(sorted(set(request.custom_event_names))),
        brand_ids=brand_ids,
        now_us=now_us,
    )


def _optional_selector(
    message: rt.EventSelector, present: bool, field: str, bad: list[FieldViolation]
) -> Selector | None:
    return _selector(message, True, field, bad) if present else None


def paths_query(request: pb.GetPathsRequest) -> PathsQuery:
    bad: list[FieldViolation] = []
    start_us, end_us = time_range(request.range, "range", bad, required=True)
    anchor = _optional_selector(request.anchor, request.HasField("anchor"), "anchor", bad)
    if request.direction not in (
        rt.PATH_DIRECTION_UNSPECIFIED,
        rt.PATH_DIRECTION_NEXT,
        rt.PATH_DIRECTION_PREVIOUS,
    ):
        bad.append(FieldViolation("direction", "unknown direction"))
    depth = request.depth or 5
    if not 1 <= depth <= 10:
        bad.append(FieldViolation("depth", "must be in 1..10"))
    top_n = request.top_n or 10
    if not 1 <= top_n <= 50:
        bad.append(FieldViolation("top_n", "must be in 1..50"))
    top_pages = request.top_pages or 10
    if not 1 <= top_pages <= 100:
        bad.append(FieldViolation("top_pages", "must be in 1..100"))
    include = tuple(
        _selector(s, True, f"include_events[{i}]", bad)
        for i, s in enumerate(request.include_events)
    )
    exclude = tuple(
        _selector(s, True, f"exclude_events[{i}]", bad)
        for i, s in enumerate(request.exclude_events)
    )
    brand_ids = brands(list(request.brand_ids), "brand_ids", bad)
    if bad:
        raise InvalidArgument(*bad)
    return PathsQuery(
        start_us=start_us,
        end_us=end_us,
        anchor=anchor,
        previous=request.direction == rt.PATH_DIRECTION_PREVIOUS,
        depth=depth,
        top_n=top_n,
        include=include,
        exclude=exclude,
        top_pages=top_pages,
        brand_ids=brand_ids,
    )


def retention_query(request: pb.GetRetentionRequest) -> RetentionQuery:
    bad: list[FieldViolation] = []
    start_us, end_us = time_range(request.range, "range", bad, required=True)
    period = PERIODS.get(request.period)
    if period is None:
        bad.append(FieldViolation("period", "unknown cohort period"))
    periods = request.periods or 8
    if not 1 <= periods <= 60:
        bad.append(FieldViolation("periods", "must be in 1..60"))
    cohort = _optional_selector(
        request.cohort_event, request.HasField("cohort_event"), "cohort_event", bad
    )
    returning = _optional_selector(
        request.returning_event, request.HasField("returning_event"), "returning_event", bad
    )
    conversion = _optional_selector(
        request.conversion_event, request.HasField("conversion_event"), "conversion_event", bad
    )
    if request.retention_type not in (
        rt.RETENTION_TYPE_UNSPECIFIED,
        rt.RETENTION_TYPE_FIRST_TIME,
        rt.RETENTION_TYPE_RECURRING,
    ):
        bad.append(FieldViolation("retention_type", "unknown retention type"))
    tz = zone(request.time_zone, "time_zone", bad)
    brand_ids = brands(list(request.brand_ids), "brand_ids", bad)
    if bad:
        raise InvalidArgument(*bad)
    assert period is not None
    return RetentionQuery(
        start_us=start_us,
        end_us=end_us,
        period=period,
        periods=periods,
        cohort_event=cohort,
        returning_event=returning,
        conversion_event=conversion,
        recurring=request.retention_type == rt.RETENTION_TYPE_RECURRING,
        time_zone=tz,
        brand_ids=brand_ids,
    )


def journey_query(request: pb.GetJourneyRequest) -> JourneyQuery:
    bad: list[FieldViolation] = []
    lead_id, anonymous_id = request.subject.lead_id, request.subject.anonymous_id
    if not lead_id and not anonymous_id:
        bad.append(FieldViolation("subject", "a lead_id or anonymous_id is required"))
    for name, value in (("lead_id", lead_id), ("anonymous_id", anonymous_id)):
        if len(value) > ID_MAX:
            bad.append(FieldViolation(f"subject.{name}", f"at most {ID_MAX} characters"))
    start_us = end_us = None
    if request.HasField("range"):
        start_us, end_us = time_range(request.range, "range", bad, required=True)
    size = request.page.page_size
    if not 0 <= size <= MAX_JOURNEY_PAGE:
        bad.append(FieldViolation("page.page_size", f"must be in 0..{MAX_JOURNEY_PAGE}"))
    if bad:
        raise InvalidArgument(*bad)
    return JourneyQuery(
        lead_id=lead_id,
        anonymous_id=anonymous_id,
        start_us=start_us,
        end_us=end_us,
        hide_machine=request.hide_machine_events,
        page_size=size or DEFAULT_JOURNEY_PAGE,
        page_token=request.page.page_token,
    )


@dataclass(frozen=True)
class DropOffsQuery:
    funnel: FunnelQuery
    step_index: int
    breakdown_value: str | None  # None: every subject
    page_size: int
    fingerprint: str  # what a page token is tied to


def drop_offs_query(request: pb.ListFunnelDropOffsRequest, *, paged: bool = True) -> DropOffsQuery:
    """ListFunnelDropOffs's question (the page size is checked only when `paged`)."""
    bad: list[FieldViolation] = []
    query = None
    if not request.HasField("funnel"):
        bad.append(FieldViolation("funnel", "is required"))
    else:
        try:
            query = funnel_query(request.funnel)
        except InvalidArgument as exc:
            bad += exc.violations
    steps = len(request.funnel.steps)
    if not 1 <= request.step_index < max(steps, 2):
        bad.append(FieldViolation("step_index", f"must be in 1..{max(steps - 1, 1)}"))
    if request.HasField("breakdown_value") and not request.funnel.HasField("breakdown"):
        bad.append(FieldViolation("breakdown_value", "needs funnel.breakdown"))
    size = request.page.page_size if paged else 0
    if not 0 <= size <= MAX_DROP_OFF_PAGE:
        bad.append(FieldViolation("page.page_size", f"must be in 0..{MAX_DROP_OFF_PAGE}"))
    if bad:
        raise InvalidArgument(*bad)
    assert query is not None
    value = request.breakdown_value if request.HasField("breakdown_value") else None
    return DropOffsQuery(
        query,
        request.step_index,
        value,
        size or DEFAULT_DROP_OFF_PAGE,
        fingerprint(
            request.funnel.SerializeToString(deterministic=True),
            str(request.step_index).encode(),
            b"" if value is None else b"=" + value.encode(),
        ),
    )
