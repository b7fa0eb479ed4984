from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from leadflow_attribution.domain.errors import InvalidInput
from leadflow_attribution.domain.journey import (
    Conversion,
    Touchpoint,
    TouchRole,
    build_journey,
    channel_path,
    conversion_violations,
    opportunity_index,
    touch_roles,
    touchpoint_violations,
)

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def tp(event_id: str, age: timedelta, channel: str = "email", **fields: str) -> Touchpoint:
    return Touchpoint(event_id, AT - age, channel, **fields)


def conversion(**changes: object) -> Conversion:
    fields: dict[str, object] = {
        "conversion_id": "c1",
        "subject": "lead-1",
        "type": "purchase",
        "occurred_at": AT,
        "value": Decimal("100.00"),
        "currency": "USD",
    }
    fields.update(changes)
    return Conversion(**fields)  # type: ignore[arg-type]


def ids(journey: tuple[Touchpoint, ...]) -> list[str]:
    return [t.event_id for t in journey]


def test_journey_is_oldest_first_with_ties_in_time_ordered_by_event_id():
    events = [tp("e9", DAY), tp("e2", 3 * DAY), tp("b", 2 * DAY), tp("a", 2 * DAY)]
    assert ids(build_journey(events, conversion(), timedelta(days=90))) == ["e2", "a", "b", "e9"]


def test_event_ids_compare_as_strings_not_numbers():
    events = [tp("10", DAY), tp("9", DAY), tp("1", DAY)]
    assert ids(build_journey(events, conversion(), timedelta(days=90))) == ["1", "10", "9"]


def test_window_includes_both_ends_and_nothing_outside():
    lookback = timedelta(days=90)
    events = [
        tp("at-conversion", timedelta(0)),
        tp("at-window-start", lookback),
        tp("just-too-old", lookback + timedelta(microseconds=1)),
        tp("after-conversion", -timedelta(seconds=1)),
    ]
    journey = build_journey(events, conversion(), lookback)
    assert ids(journey) == ["at-window-start", "at-conversion"]


def test_identical_duplicates_are_removed():
    event = tp("e1", DAY)
    journey = build_journey([event, event, tp("e2", 2 * DAY), event], conversion(), 90 * DAY)
    assert ids(journey) == ["e2", "e1"]


def test_conflicting_copies_of_one_event_keep_the_earliest_whatever_the_order():
    early = tp("e1", 2 * DAY, "email")
    late = tp("e1", DAY, "paid_search")
    for events in ([early, late], [late, early]):
        assert build_journey(events, conversion(), 90 * DAY) == (early,)


def test_conflicting_copies_at_the_same_instant_keep_the_smallest_fields():
    one = tp("e1", DAY, "email", source="b")
    other = tp("e1", DAY, "email", source="a")
    assert build_journey([one, other], conversion(), 90 * DAY) == (other,)
    assert build_journey([other, one], conversion(), 90 * DAY) == (other,)


def test_mixed_time_zones_compare_as_instants():
    plus_two = timezone(timedelta(hours=2))
    local = Touchpoint("local", (AT - DAY).astimezone(plus_two), "email")
    utc = tp("utc", 2 * DAY)
    assert ids(build_journey([local, utc], conversion(), 90 * DAY)) == ["utc", "local"]


def test_negative_lookback_is_refused_with_the_field():
    with pytest.raises(InvalidInput) as caught:
        build_journey([], conversion(), -DAY)
    assert caught.value.violations[0].field == "options.lookback_window"


def test_empty_history_gives_an_empty_journey():
    assert build_journey([], conversion(), 90 * DAY) == ()


def test_opportunity_touch_is_the_last_touch_at_or_before_the_stage_change():
    journey = (tp("a", 3 * DAY), tp("b", 2 * DAY), tp("c", DAY))
    assert opportunity_index(journey, AT - 2 * DAY, AT) == 1  # exactly at b
    assert opportunity_index(journey, AT - 2 * DAY + timedelta(hours=1), AT) == 1
    assert opportunity_index(journey, AT - DAY, AT) == 2
    assert opportunity_index(journey, AT - 4 * DAY, AT) is None  # before the first touch
    assert opportunity_index(journey, None, AT) is None
    assert opportunity_index(journey, AT + timedelta(seconds=1), AT) is None  # after conversion
    assert opportunity_index((), AT - DAY, AT) is None


def test_touch_roles_name_first_last_opportunity_and_middle():
    assert touch_roles(0, None) == ()
    assert touch_roles(1, 0) == ((TouchRole.FIRST, TouchRole.LAST, TouchRole.OPPORTUNITY),)
    assert touch_roles(4, 2) == (
        (TouchRole.FIRST,),
        (TouchRole.MIDDLE,),
        (TouchRole.OPPORTUNITY,),
        (TouchRole.LAST,),
    )
    assert touch_roles(3, None)[1] == (TouchRole.MIDDLE,)


def test_channel_path_labels_missing_channels():
    assert channel_path([tp("a", DAY, "email"), tp("b", DAY, "")]) == ("email", "(none)")


def test_touchpoint_violations_name_the_fields():
    naive = Touchpoint("", datetime(2026, 1, 1), "email")
    found = {(v.field, v.code) for v in touchpoint_violations(naive)}
    assert found == {
        ("touchpoint.event_id", "INVALID_ID"),
        ("touchpoint.occurred_at", "NAIVE_TIME"),
    }
    assert touchpoint_violations(tp("ok", DAY)) == []
    assert touchpoint_violations(tp("x" * 101, DAY))[0].code == "INVALID_ID"


@pytest.mark.parametrize(
    ("changes", "field", "code"),
    [
        ({"conversion_id": ""}, "conversion.conversion_id", "INVALID_ID"),
        ({"subject": ""}, "conversion.subject", "REQUIRED"),
        ({"currency": "usd"}, "conversion.value.currency_code", "INVALID_CURRENCY"),
        ({"currency": ""}, "conversion.value.currency_code", "INVALID_CURRENCY"),
        ({"value": Decimal("-1")}, "conversion.value.units", "INVALID_VALUE"),
        ({"value": Decimal("NaN")}, "conversion.value.units", "INVALID_VALUE"),
        ({"value": Decimal("1.0000000001")}, "conversion.value.nanos", "INVALID_VALUE"),
        ({"opportunity_at": datetime(2026, 1, 1)}, "conversion.opportunity_at", "NAIVE_TIME"),
    ],
)
def test_conversion_violations_name_the_field(changes, field, code):
    found = conversion_violations(conversion(**changes))
    assert [(v.field, v.code) for v in found] == [(field, code)]


def test_a_valid_conversion_and_one_without_value_have_no_violations():
    assert conversion_violations(conversion()) == []
    assert conversion_violations(conversion(value=Decimal(0), currency="")) == []
    assert conversion_violations(conversion(value=Decimal("0.000000001"))) == []
