"""GetRetention over the generated portfolio pushed through ingest (aliases applied), each
table compared with the same question answered in plain Python over the generated events:
first-time and recurring cohorts by day, week and month in a time zone, chosen cohort,
returning and conversion events, conversion and revenue per cohort, first-time versus
recurring activity."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import grpc
import pytest
from google.protobuf import struct_pb2
from ingest_support import event
from reporting_support import Generated, GenEvent, generate, suite

from leadflow.common.v1 import event_type_pb2, time_range_pb2
from leadflow.reporting.v1 import report_types_pb2 as rt
from leadflow.reporting.v1 import reporting_service_pb2 as pb

pytestmark = pytest.mark.integration

PERIODS = {
    rt.COHORT_PERIOD_DAY: "day",
    rt.COHORT_PERIOD_WEEK: "week",
    rt.COHORT_PERIOD_MONTH: "month",
}


def price(e: GenEvent) -> tuple[int, int, str] | None:
    """Purchases carry a value (in two currencies), signups none."""
    if e.type != "purchase":
        return None
    n = int(e.event_id.split("-")[0][1:])
    return (20 + n % 80, 250_000_000 * (n % 4), "EUR" if n % 5 == 0 else "USD")


def track(data: Generated) -> list:
    return [
        event(
            e.event_id,
            type=e.type,
            lead_id=e.lead_id,
            anonymous_id=e.anonymous_id,
            brand_id=e.brand,
            occurred_at=e.at,
            value=price(e),
            properties={"plan": e.plan},
        )
        for e in data.events
    ]


def period_start(t: datetime, period: str, zone: ZoneInfo) -> datetime:
    d = t.astimezone(zone).date()
    if period == "week":
        d -= timedelta(days=d.weekday())
    elif period == "month":
        d = d.replace(day=1)
    return datetime.combine(d, time(0), tzinfo=zone).astimezone(UTC)


def next_start(t: datetime, period: str, zone: ZoneInfo) -> datetime:
    d = t.astimezone(zone).date()
    if period == "day":
        d += timedelta(days=1)
    elif period == "week":
        d += timedelta(days=7)
    else:
        d = date(d.year + d.month // 12, d.month % 12 + 1, 1)
    return datetime.combine(d, time(0), tzinfo=zone).astimezone(UTC)


def reference(
    data: Generated,
    start: datetime,
    end: datetime,
    *,
    period: str,
    periods: int,
    zone: ZoneInfo,
    now: datetime,
    recurring: bool = False,
    cohort=lambda e: True,
    returning=lambda e: True,
    conversion=lambda e: e.type in ("signup", "purchase"),
    brands: tuple[str, ...] = (),
) -> dict:
    events = [e for e in data.events if e.at < now and (not brands or e.brand in brands)]
    starts: list[datetime] = []
    t = period_start(start, period, zone)
    if t < start:
        t = next_start(t, period, zone)
    while t < end:
        starts.append(t)
        t = next_start(t, period, zone)
    later = [t]
    for _ in range(periods):
        later.append(next_start(later[-1], period, zone))
    bounds = starts + later

    def index(at: datetime) -> int:
        found = [i for i, b in enumerate(bounds) if b <= at]
        return found[-1] if found else -1

    first: dict[str, datetime] = {}
    for e in sorted(events, key=lambda e: e.at):
        if cohort(e):
            first.setdefault(e.person, e.at)
    members: set[tuple[str, int]] = set()
    if recurring:
        members = {(e.person, index(e.at)) for e in events if cohort(e)}
        members = {(p, c) for p, c in members if 0 <= c < len(starts)}
    else:
        members = {(p, index(t)) for p, t in first.items() if 0 <= index(t) < len(starts)}
    returned = {(e.person, index(e.at)) for e in events if returning(e)}
    rows = []
    for c, cohort_start in enumerate(starts):
        who = sorted(p for p, m in members if m == c)
        cells = []
        for k in range(periods + 1):
            if bounds[c + k] > now:
                break
            active = (
                len(who) if k == 0 and not recurring else sum((p, c + k) in returned for p in who)
            )
            cells.append((active, bounds[c + k + 1] <= now))
        converting = [
            e
            for e in events
            if conversion(e) and e.person in who and c <= index(e.at) <= c + periods
        ]
        revenue: dict[str, Decimal] = defaultdict(Decimal)
        for e in converting:
            if price(e):
                units, nanos, currency = price(e)
                revenue[currency] += Decimal(units) + Decimal(nanos) / 10**9
        rows.append(
            (cohort_start, len(who), cells, len({e.person for e in converting}), dict(revenue))
        )
    activity = []
    for p_index, p_start in enumerate(starts):
        active = {p for p, i in returned if i == p_index}
        firsts = {p: index(first[p]) for p in active if p in first}
        activity.append(
            (
                p_start,
                len(active),
                sum(1 for p in active if firsts.get(p) == p_index),
                sum(1 for p in active if p in firsts and firsts[p] < p_index),
            )
        )
    return {"rows": rows, "activity": activity, "bounds": bounds}


def check(reply: pb.GetRetentionResponse, expected: dict, periods: int) -> None:
    got = []
    for c in reply.cohorts:
        got.append(
            (
                c.cohort_start.ToDatetime(tzinfo=UTC),
                c.size,
                [(x.active, x.complete) for x in c.cells],
                c.converted_subjects,
                {m.currency_code: Decimal(m.units) + Decimal(m.nanos) / 10**9 for m in c.revenue},
            )
        )
        for x in c.cells:
            assert x.share == pytest.approx(x.active / c.size if c.size else 0)
        assert c.conversion_rate == pytest.approx(c.converted_subjects / c.size if c.size else 0)
    assert got == expected["rows"]
    assert any(size for _, size, *_ in got)
    for k in range(periods + 1):
        done = [(r[1], r[2][k][0]) for r in expected["rows"] if len(r[2]) > k and r[2][k][1]]
        total = sum(s for s, _ in done)
        assert reply.average_share[k] == pytest.approx(
            sum(a for _, a in done) / total if total else 0
        )
    activity = [
        (
            a.period_start.ToDatetime(tzinfo=UTC),
            a.active_subjects,
            a.first_time_subjects,
            a.recurring_subjects,
        )
        for a in reply.activity
    ]
    assert activity == expected["activity"]


def selector(kind: str) -> rt.EventSelector:
    return rt.EventSelector(event_type=event_type_pb2.EventType.Value(f"EVENT_TYPE_{kind.upper()}"))


def request(start: datetime, end: datetime, **fields) -> pb.GetRetentionRequest:
    r = pb.GetRetentionRequest(range=time_range_pb2.TimeRange(), **fields)
    r.range.start_time.FromDatetime(start)
    r.range.end_time.FromDatetime(end)
    return r


@pytest.fixture
async def loaded(settings):
    data = generate(500, seed=21)
    async with suite(settings) as s:
        await s.track(track(data))
        for anonymous_id, lead_id in data.aliases:
            await s.alias(anonymous_id, lead_id)
        await s.applied()
        yield s, data


async def test_weekly_first_time_cohorts_in_a_time_zone(loaded) -> None:
    s, data = loaded
    zone = ZoneInfo("America/New_York")
    start, end = data.start + timedelta(days=3), data.end
    reply = await s.reporting.GetRetention(
        request(start, end, periods=4, time_zone="America/New_York"), metadata=s.metadata
    )
    now = datetime.now(UTC)
    assert reply.period == rt.COHORT_PERIOD_WEEK
    expected = reference(data, start, end, period="week", periods=4, zone=zone, now=now)
    check(reply, expected, 4)
    assert any(r[4] for r in expected["rows"])  # revenue somewhere
    assert all(
        c.cohort_start.ToDatetime(tzinfo=UTC).astimezone(zone).weekday() == 0 for c in reply.cohorts
    )


async def test_daily_recurring_with_chosen_events(loaded) -> None:
    s, data = loaded
    start, end = data.start, data.start + timedelta(days=10)
    reply = await s.reporting.GetRetention(
        request(
            start,
            end,
            period=rt.COHORT_PERIOD_DAY,
            periods=7,
            retention_type=rt.RETENTION_TYPE_RECURRING,
            cohort_event=selector("page_view"),
            returning_event=selector("form_submitted"),
            conversion_event=selector("purchase"),
        ),
        metadata=s.metadata,
    )
    expected = reference(
        data,
        start,
        end,
        period="day",
        periods=7,
        zone=ZoneInfo("UTC"),
        now=datetime.now(UTC),
        recurring=True,
        cohort=lambda e: e.type == "page_view",
        returning=lambda e: e.type == "form_submitted",
        conversion=lambda e: e.type == "purchase",
    )
    check(reply, expected, 7)
    assert len(reply.cohorts) == 10


async def test_monthly_by_first_form_for_one_brand(loaded) -> None:
    s, data = loaded
    start, end = data.start - timedelta(days=40), data.end
    reply = await s.reporting.GetRetention(
        request(
            start,
            end,
            period=rt.COHORT_PERIOD_MONTH,
            periods=2,
            cohort_event=selector("form_submitted"),
            brand_ids=["stacksense"],
            time_zone="Europe/Berlin",
        ),
        metadata=s.metadata,
    )
    expected = reference(
        data,
        start,
        end,
        period="month",
        periods=2,
        zone=ZoneInfo("Europe/Berlin"),
        now=datetime.now(UTC),
        cohort=lambda e: e.type == "form_submitted",
        brands=("stacksense",),
    )
    check(reply, expected, 2)


async def test_cohort_event_with_a_property_filter(loaded) -> None:
    s, data = loaded
    start, end = data.start, data.end
    pro = selector("page_view")
    pro.filters.add(
        property=rt.PropertyRef(key="plan"),
        operator=rt.PROPERTY_OPERATOR_EQUALS,
        values=[struct_pb2.Value(string_value="pro")],
    )
    reply = await s.reporting.GetRetention(
        request(start, end, periods=3, cohort_event=pro), metadata=s.metadata
    )
    expected = reference(
        data,
        start,
        end,
        period="week",
        periods=3,
        zone=ZoneInfo("UTC"),
        now=datetime.now(UTC),
        cohort=lambda e: e.type == "page_view" and e.plan == "pro",
    )
    check(reply, expected, 3)


async def test_bad_requests_name_the_field(loaded) -> None:
    s, data = loaded
    for bad, field in (
        (request(data.start, data.end, periods=61), "periods"),
        (request(data.end, data.start), "range"),
        (pb.GetRetentionRequest(), "range"),
        (request(data.start, data.end, time_zone="Nowhere/Land"), "time_zone"),
        (request(data.start, data.end, cohort_event=rt.EventSelector()), "cohort_event"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await s.reporting.GetRetention(bad, metadata=s.metadata)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in (info.value.details() or "")
