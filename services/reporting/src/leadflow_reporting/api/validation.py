"""Funnel requests checked and turned into domain queries. Every violation names its field
(e.g. "funnel.steps[3].event.event_type: unknown event type"); all are reported at once."""

from __future__ import annotations

import math
import re

from google.protobuf import duration_pb2, struct_pb2

from leadflow.common.v1 import event_type_pb2, time_range_pb2
from leadflow.reporting.v1 import report_types_pb2 as rt
from leadflow_platform.errors import FieldViolation, InvalidArgument
from leadflow_reporting.domain.funnel import MAX_EXCLUSIONS, MAX_STEPS, Order
from leadflow_reporting.domain.funnel_stats import DEFAULT_BREAKDOWN_LIMIT, MAX_BREAKDOWN_LIMIT
from leadflow_reporting.domain.query import (
    EVENT_FIELDS,
    NUMERIC_OPERATORS,
    Breakdown,
    FunnelQuery,
    Operator,
    PropertyFilter,
    Scalar,
    Selector,
)

DAY_US = 86_400_000_000
MAX_RANGE_US = 366 * DAY_US
DEFAULT_WINDOW_US = 14 * DAY_US
MAX_WINDOW_US = 366 * DAY_US
MAX_FILTERS = 20
MAX_VALUES = 100
NAME_MAX = 200
ID_MAX = 100

ORDERS = {
    rt.FUNNEL_ORDER_UNSPECIFIED: Order.SEQUENTIAL,
    rt.FUNNEL_ORDER_SEQUENTIAL: Order.SEQUENTIAL,
    rt.FUNNEL_ORDER_STRICT: Order.STRICT,
    rt.FUNNEL_ORDER_ANY: Order.ANY,
}
ATTRIBUTIONS = {
    rt.BREAKDOWN_ATTRIBUTION_UNSPECIFIED: "first",
    rt.BREAKDOWN_ATTRIBUTION_FIRST_STEP: "first",
    rt.BREAKDOWN_ATTRIBUTION_LAST_STEP: "last",
    rt.BREAKDOWN_ATTRIBUTION_SPECIFIC_STEP: "specific",
}
DIMENSIONS = {
    rt.DIMENSION_CHANNEL: Breakdown("field", "channel"),
    rt.DIMENSION_SOURCE: Breakdown("field", "source"),
    rt.DIMENSION_MEDIUM: Breakdown("field", "medium"),
    rt.DIMENSION_CAMPAIGN: Breakdown("field", "campaign"),
    rt.DIMENSION_CONTENT: Breakdown("field", "content"),
    rt.DIMENSION_TERM: Breakdown("field", "term"),
    rt.DIMENSION_BRAND: Breakdown("field", "brand_id"),
    rt.DIMENSION_EVENT_TYPE: Breakdown("event_type"),
}
OPERATORS = {
    rt.PROPERTY_OPERATOR_EQUALS: Operator.EQUALS,
    rt.PROPERTY_OPERATOR_NOT_EQUALS: Operator.NOT_EQUALS,
    rt.PROPERTY_OPERATOR_CONTAINS: Operator.CONTAINS,
    rt.PROPERTY_OPERATOR_NOT_CONTAINS: Operator.NOT_CONTAINS,
    rt.PROPERTY_OPERATOR_REGEX: Operator.REGEX,
    rt.PROPERTY_OPERATOR_NOT_REGEX: Operator.NOT_REGEX,
    rt.PROPERTY_OPERATOR_GREATER_THAN: Operator.GREATER_THAN,
    rt.PROPERTY_OPERATOR_GREATER_THAN_OR_EQUAL: Operator.GREATER_THAN_OR_EQUAL,
    rt.PROPERTY_OPERATOR_LESS_THAN: Operator.LESS_THAN,
    rt.PROPERTY_OPERATOR_LESS_THAN_OR_EQUAL: Operator.LESS_THAN_OR_EQUAL,
    rt.PROPERTY_OPERATOR_IS_SET: Operator.IS_SET,
    rt.PROPERTY_OPERATOR_IS_NOT_SET: Operator.IS_NOT_SET,
}
# EVENT_TYPE_PAGE_VIEW -> "page_view": labels and the event_type breakdown.
EVENT_TYPE_NAMES: dict[int, str] = {
    value: name.removeprefix("EVENT_TYPE_").lower()
    for name, value in event_type_pb2.EventType.items()
    if value not in (event_type_pb2.EVENT_TYPE_UNSPECIFIED, event_type_pb2.EVENT_TYPE_CUSTOM)
}
CUSTOM = event_type_pb2.EVENT_TYPE_CUSTOM


def funnel_query(definition: rt.FunnelDefinition, field: str = "funnel") -> FunnelQuery:
    """The domain query of a FunnelDefinition, or InvalidArgument naming every bad field."""
    bad: list[FieldViolation] = []
    start_us, end_us = time_range(definition.range, f"{field}.range", bad, required=True)
    steps = list(definition.steps)
    if not 2 <= len(steps) <= MAX_STEPS:
        bad.append(FieldViolation(f"{field}.steps", f"2 to {MAX_STEPS} steps (got {len(steps)})"))
    selectors: list[Selector] = []
    labels: list[str] = []
    for i, step in enumerate(steps):
        at = f"{field}.steps[{i}]"
        selector = _selector(step.event, step.HasField("event"), f"{at}.event", bad)
        selectors.append(selector)
        if len(step.label) > NAME_MAX:
            bad.append(FieldViolation(f"{at}.label", f"at most {NAME_MAX} characters"))
        labels.append(
            step.label or selector.custom_name or EVENT_TYPE_NAMES.get(selector.event_type, "")
        )
    window_us = DEFAULT_WINDOW_US
    if definition.HasField("conversion_window"):
        window_us = _window(definition.conversion_window, f"{field}.conversion_window", bad)
    order = ORDERS.get(definition.order)
    if order is None:
        bad.append(FieldViolation(f"{field}.order", "unknown funnel order"))
    exclusions = []
    if len(definition.exclusions) > MAX_EXCLUSIONS:
        bad.append(FieldViolation(f"{field}.exclusions", f"at most {MAX_EXCLUSIONS} exclusions"))
    if definition.exclusions and order is Order.ANY:
        bad.append(FieldViolation(f"{field}.exclusions", "not allowed with order ANY"))
    for j, ex in enumerate(definition.exclusions):
        at = f"{field}.exclusions[{j}]"
        selector = _selector(ex.event, ex.HasField("event"), f"{at}.event", bad)
        if ex.from_step < 0:
            bad.append(FieldViolation(f"{at}.from_step", "must not be negative"))
        if not ex.from_step < ex.to_step < len(steps):
            bad.append(
                FieldViolation(
                    f"{at}.to_step",
                    f"must be after from_step and below the step count ({len(steps)})",
                )
            )
        exclusions.append((selector, ex.from_step, ex.to_step))
    breakdown = None
    if definition.HasField("breakdown"):
        breakdown = _breakdown(definition.breakdown, f"{field}.breakdown", bad)
    attribution = ATTRIBUTIONS.get(definition.breakdown_attribution)
    if attribution is None:
        bad.append(FieldViolation(f"{field}.breakdown_attribution", "unknown attribution"))
    if attribution == "specific" and not 0 <= definition.breakdown_attribution_step < len(steps):
        bad.append(
            FieldViolation(
                f"{field}.breakdown_attribution_step", f"must be a step index, 0..{len(steps) - 1}"
            )
        )
    limit = definition.breakdown_limit or DEFAULT_BREAKDOWN_LIMIT
    if not 1 <= limit <= MAX_BREAKDOWN_LIMIT:
        bad.append(
            FieldViolation(f"{field}.breakdown_limit", f"must be in 0..{MAX_BREAKDOWN_LIMIT}")
        )
    for i, brand in enumerate(definition.brand_ids):
        if not brand or len(brand) > ID_MAX:
            bad.append(FieldViolation(f"{field}.brand_ids[{i}]", f"1 to {ID_MAX} characters"))
    if bad:
        raise InvalidArgument(*bad)
    assert order is not None and attribution is not None
    return FunnelQuery(
        start_us=start_us,
        end_us=end_us,
        steps=tuple(selectors),
        labels=tuple(labels),
        window_us=window_us,
        order=order,
        exclusions=tuple(exclusions),
        breakdown=breakdown,
        attribution=attribution,
        attribution_step=definition.breakdown_attribution_step,
        breakdown_limit=limit,
        brand_ids=tuple(sorted(set(definition.brand_ids))),
    )


def time_range(
    value: time_range_pb2.TimeRange, field: str, bad: list[FieldViolation], *, required: bool
) -> tuple[int, int]:
    if not value.HasField("start_time") or not value.HasField("end_time"):
        if required:
            bad.append(FieldViolation(field, "start_time and end_time are required"))
        return 0, 0
    start = value.start_time.seconds * 1_000_000 + value.start_time.nanos // 1000
    end = value.end_time.seconds * 1_000_000 + value.end_time.nanos // 1000
    if start >= end:
        bad.append(FieldViolation(field, "start_time must be before end_time"))
    elif end - start > MAX_RANGE_US:
        bad.append(FieldViolation(field, "at most 366 days"))
    return start, end


def _window(value: duration_pb2.Duration, field: str, bad: list[FieldViolation]) -> int:
    us = value.seconds * 1_000_000 + value.nanos // 1000
    if us <= 0:
        bad.append(FieldViolation(field, "must be more than 0"))
    elif us > MAX_WINDOW_US:
        bad.append(FieldViolation(field, "at most 366 days"))
    return us


def _selector(
    event: rt.EventSelector, present: bool, field: str, bad: list[FieldViolation]
) -> Selector:
    kind = event.WhichOneof("event") if present else None
    selector = Selector(0)
    if kind is None:
        bad.append(FieldViolation(field, "an event_type or custom_event_name is required"))
    elif kind == "event_type":
        if event.event_type not in EVENT_TYPE_NAMES:
            bad.append(FieldViolation(f"{field}.event_type", "unknown event type"))
        selector = Selector(event.event_type)
    else:
        name = event.custom_event_name
        if not name or len(name) > NAME_MAX:
            bad.append(FieldViolation(f"{field}.custom_event_name", f"1 to {NAME_MAX} characters"))
        selector = Selector(CUSTOM, name)
    if len(event.filters) > MAX_FILTERS:
        bad.append(FieldViolation(f"{field}.filters", f"at most {MAX_FILTERS} filters"))
    filters = tuple(_filter(f, f"{field}.filters[{i}]", bad) for i, f in enumerate(event.filters))
    return Selector(selector.event_type, selector.custom_name, filters)


def _scope_and_key(ref: rt.PropertyRef, field: str, bad: list[FieldViolation]) -> tuple[str, str]:
    key = ref.key
    if not key or len(key) > NAME_MAX:
        bad.append(FieldViolation(f"{field}.key", f"1 to {NAME_MAX} characters"))
    if ref.scope == rt.PROPERTY_SCOPE_FIELD:
        if key and key not in EVENT_FIELDS:
            bad.append(
                FieldViolation(
                    f"{field}.key", f"not an event field (one of {', '.join(EVENT_FIELDS)})"
                )
            )
        return "field", key
    if ref.scope == rt.PROPERTY_SCOPE_SUBJECT:
        bad.append(FieldViolation(f"{field}.scope", "subject traits are not supported by funnels"))
        return "subject", key
    if ref.scope not in (rt.PROPERTY_SCOPE_UNSPECIFIED, rt.PROPERTY_SCOPE_EVENT):
        bad.append(FieldViolation(f"{field}.scope", "unknown property scope"))
    elif key and any(not part for part in key.split(".")):
        bad.append(FieldViolation(f"{field}.key", "a dotted path without empty parts"))
    return "event", key


def _scalar(value: struct_pb2.Value) -> tuple[bool, Scalar]:
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return True, value.string_value
    if kind == "number_value":
        return math.isfinite(value.number_value), value.number_value
    if kind == "bool_value":
        return True, value.bool_value
    if kind == "null_value":
        return True, None
    return False, None


def _filter(f: rt.PropertyFilter, field: str, bad: list[FieldViolation]) -> PropertyFilter:
    scope, key = _scope_and_key(f.property, f"{field}.property", bad)
    operator = OPERATORS.get(f.operator)
    values: list[Scalar] = []
    for i, v in enumerate(f.values):
        ok, scalar = _scalar(v)
        if not ok:
            bad.append(FieldViolation(f"{field}.values[{i}]", "a string, number, bool or null"))
        values.append(scalar)
    if operator is None:
        bad.append(FieldViolation(f"{field}.operator", "an operator is required"))
        return PropertyFilter(scope, key, Operator.IS_SET)
    count = len(values)
    if operator in (Operator.IS_SET, Operator.IS_NOT_SET):
        if count:
            bad.append(FieldViolation(f"{field}.values", "must be empty for IS_SET / IS_NOT_SET"))
    elif operator in NUMERIC_OPERATORS or operator in (Operator.REGEX, Operator.NOT_REGEX):
        if count != 1:
            bad.append(FieldViolation(f"{field}.values", "exactly one value"))
        elif operator in NUMERIC_OPERATORS and (
            isinstance(values[0], bool) or not isinstance(values[0], float)
        ):
            bad.append(FieldViolation(f"{field}.values[0]", "must be a number"))
        elif operator not in NUMERIC_OPERATORS:
            if not isinstance(values[0], str):
                bad.append(
                    FieldViolation(f"{field}.values[0]", "must be a regular expression string")
                )
            else:
                try:
                    re.compile(values[0])
                except re.error as exc:
                    bad.append(FieldViolation(f"{field}.values[0]", f"not a valid regex: {exc}"))
    elif not 1 <= count <= MAX_VALUES:
        bad.append(FieldViolation(f"{field}.values", f"1 to {MAX_VALUES} values"))
    return PropertyFilter(scope, key, operator, tuple(values))


def _breakdown(by: rt.BreakdownBy, field: str, bad: list[FieldViolation]) -> Breakdown | None:
    kind = by.WhichOneof("by")
    if kind is None:
        bad.append(FieldViolation(field, "a dimension or property is required"))
        return None
    if kind == "dimension":
        found = DIMENSIONS.get(by.dimension)
        if found is None:
            bad.append(FieldViolation(f"{field}.dimension", "unknown or unspecified dimension"))
        return found
    scope, key = _scope_and_key(by.property, f"{field}.property", bad)
    return Breakdown(scope, key)
