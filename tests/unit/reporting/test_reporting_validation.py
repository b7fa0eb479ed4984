"""Funnel requests: defaults, and every bad field named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2

from leadflow.common.v1 import event_type_pb2, time_range_pb2
from leadflow.reporting.v1 import report_types_pb2 as rt
from leadflow_platform.errors import InvalidArgument
from leadflow_reporting.api.validation import DAY_US, funnel_query
from leadflow_reporting.domain.funnel import Order
from leadflow_reporting.domain.query import Breakdown, Operator

T0 = datetime(2025, 3, 1, tzinfo=UTC)
PAGE_VIEW = event_type_pb2.EVENT_TYPE_PAGE_VIEW
SIGNUP = event_type_pb2.EVENT_TYPE_SIGNUP


def ts(d: datetime) -> timestamp_pb2.Timestamp:
    t = timestamp_pb2.Timestamp()
    t.FromDatetime(d)
    return t


def definition(steps=(PAGE_VIEW, SIGNUP), days: float = 30, **fields) -> rt.FunnelDefinition:
    d = rt.FunnelDefinition(
        range=time_range_pb2.TimeRange(start_time=ts(T0), end_time=ts(T0 + timedelta(days=days))),
        **fields,
    )
    for s in steps:
        if isinstance(s, str):
            d.steps.add(event=rt.EventSelector(custom_event_name=s))
        else:
            d.steps.add(event=rt.EventSelector(event_type=s))
    return d


def fields_of(d: rt.FunnelDefinition) -> dict[str, str]:
    with pytest.raises(InvalidArgument) as info:
        funnel_query(d)
    return {v.field: v.reason for v in info.value.violations}


def test_defaults():
    q = funnel_query(definition(steps=(PAGE_VIEW, "demo_booked")))
    assert q.window_us == 14 * DAY_US
    assert q.order is Order.SEQUENTIAL
    assert q.labels == ("page_view", "demo_booked")
    assert q.steps[1].custom_name == "demo_booked"
    assert q.breakdown is None and q.breakdown_limit == 25 and q.attribution == "first"
    assert q.end_us - q.start_us == 30 * DAY_US


def test_step_count():
    assert "funnel.steps" in fields_of(definition(steps=(PAGE_VIEW,)))
    assert "funnel.steps" in fields_of(definition(steps=(PAGE_VIEW,) * 11))
    funnel_query(definition(steps=(PAGE_VIEW,) * 10))


def test_unknown_step_and_empty_selector():
    d = definition(steps=(PAGE_VIEW, 999, event_type_pb2.EVENT_TYPE_CUSTOM))
    d.steps.add()  # no event at all
    d.steps.add(event=rt.EventSelector())  # event without a type
    got = fields_of(d)
    assert got["funnel.steps[1].event.event_type"] == "unknown event type"
    assert got["funnel.steps[2].event.event_type"] == "unknown event type"
    assert "funnel.steps[3].event" in got
    assert "funnel.steps[4].event" in got
    assert "funnel.steps[0].event" not in str(got)


def test_window_bounds():
    zero = definition(conversion_window=duration_pb2.Duration(seconds=0))
    assert fields_of(zero) == {"funnel.conversion_window": "must be more than 0"}
    long = definition(conversion_window=duration_pb2.Duration(seconds=367 * 86400))
    assert "funnel.conversion_window" in fields_of(long)
    edge = funnel_query(definition(conversion_window=duration_pb2.Duration(seconds=366 * 86400)))
    assert edge.window_us == 366 * DAY_US


def test_range_bounds():
    empty = definition(days=0)
    assert fields_of(empty) == {"funnel.range": "start_time must be before end_time"}
    assert fields_of(definition(days=366.5)) == {"funnel.range": "at most 366 days"}
    funnel_query(definition(days=366))
    missing = definition()
    missing.ClearField("range")
    assert "funnel.range" in fields_of(missing)


def test_exclusions():
    d = definition(steps=(PAGE_VIEW, SIGNUP, PAGE_VIEW))
    d.exclusions.add(event=rt.EventSelector(event_type=SIGNUP), from_step=0, to_step=2)
    d.exclusions.add(event=rt.EventSelector(event_type=SIGNUP), from_step=1, to_step=1)
    d.exclusions.add(event=rt.EventSelector(event_type=SIGNUP), from_step=-1, to_step=3)
    got = fields_of(d)
    assert set(got) == {
        "funnel.exclusions[1].to_step",
        "funnel.exclusions[2].from_step",
        "funnel.exclusions[2].to_step",
    }
    del d.exclusions[1:]
    q = funnel_query(d)
    assert [(lo, hi) for _, lo, hi in q.exclusions] == [(0, 2)]
    d.order = rt.FUNNEL_ORDER_ANY
    assert fields_of(d) == {"funnel.exclusions": "not allowed with order ANY"}


def test_breakdown_and_attribution():
    q = funnel_query(definition(breakdown=rt.BreakdownBy(dimension=rt.DIMENSION_SOURCE)))
    assert q.breakdown == Breakdown("field", "source")
    q = funnel_query(definition(breakdown=rt.BreakdownBy(property=rt.PropertyRef(key="plan.tier"))))
    assert q.breakdown == Breakdown("event", "plan.tier")
    bad = definition(
        breakdown=rt.BreakdownBy(
            property=rt.PropertyRef(scope=rt.PROPERTY_SCOPE_SUBJECT, key="industry")
        ),
        breakdown_limit=101,
        breakdown_attribution=rt.BREAKDOWN_ATTRIBUTION_SPECIFIC_STEP,
        breakdown_attribution_step=2,
    )
    assert set(fields_of(bad)) == {
        "funnel.breakdown.property.scope",
        "funnel.breakdown_limit",
        "funnel.breakdown_attribution_step",
    }
    field = definition(
        breakdown=rt.BreakdownBy(
            property=rt.PropertyRef(scope=rt.PROPERTY_SCOPE_FIELD, key="user_agent")
        )
    )
    assert "funnel.breakdown.property.key" in fields_of(field)
    assert "funnel.breakdown" in fields_of(definition(breakdown=rt.BreakdownBy()))


def test_filters():
    d = definition()
    step = d.steps[0].event
    step.filters.add(
        property=rt.PropertyRef(key="plan"),
        operator=rt.PROPERTY_OPERATOR_EQUALS,
        values=[struct_pb2.Value(string_value="pro")],
    )
    q = funnel_query(d)
    assert q.steps[0].filters[0].operator is Operator.EQUALS
    assert q.steps[0].filters[0].values == ("pro",)
    step.filters.add(
        property=rt.PropertyRef(key="total"),
        operator=rt.PROPERTY_OPERATOR_GREATER_THAN,
        values=[struct_pb2.Value(string_value="ten")],
    )
    step.filters.add(
        property=rt.PropertyRef(key="x"),
        operator=rt.PROPERTY_OPERATOR_IS_SET,
        values=[struct_pb2.Value(number_value=1)],
    )
    step.filters.add(property=rt.PropertyRef(key="x"))
    step.filters.add(
        property=rt.PropertyRef(key="x"),
        operator=rt.PROPERTY_OPERATOR_REGEX,
        values=[struct_pb2.Value(string_value="(")],
    )
    step.filters.add(property=rt.PropertyRef(key=""), operator=rt.PROPERTY_OPERATOR_IS_SET)
    got = fields_of(d)
    assert set(got) == {
        "funnel.steps[0].event.filters[1].values[0]",
        "funnel.steps[0].event.filters[2].values",
        "funnel.steps[0].event.filters[3].operator",
        "funnel.steps[0].event.filters[4].values[0]",
        "funnel.steps[0].event.filters[5].property.key",
    }


def test_all_violations_at_once():
    d = definition(steps=(PAGE_VIEW,), days=0, order=7, breakdown_limit=-1)
    d.brand_ids.append("")
    assert set(fields_of(d)) == {
        "funnel.range",
        "funnel.steps",
        "funnel.order",
        "funnel.breakdown_limit",
        "funnel.brand_ids[0]",
    }
