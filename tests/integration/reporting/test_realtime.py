"""GetRealTime over events pushed through ingest, each figure compared with the same question
answered in plain Python over the generated events (counts per bucket and type, day buckets
at local midnight, conversions per currency, endpoint percentiles and error rates, active
sessions and subjects)."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import grpc
import pytest
from google.protobuf import duration_pb2
from ingest_support import event
from reporting_support import suite

from leadflow.common.v1 import event_type_pb2, time_range_pb2
from leadflow.reporting.v1 import report_types_pb2 as rt
from leadflow.reporting.v1 import reporting_service_pb2 as pb

pytestmark = pytest.mark.integration

MINUTE = timedelta(minutes=1)
TYPES = ["page_view", "click", "signup", "purchase", "performance_sample", "custom"]
WEIGHTS = [40, 20, 5, 5, 25, 5]
ENDPOINTS = ["/api/checkout", "/api/search", "leadflow.ingest.v1.IngestService/Track"]


@dataclass(frozen=True)
class Ev:
    event_id: str
    at: datetime
    type: str
    custom: str
    brand: str
    lead: str
    session: str
    value: tuple[int, int, str] | None
    props: dict | None


def generate(now: datetime, n: int = 1500, seed: int = 5) -> list[Ev]:
    """Events over the last 3 days, a third of them in the last hour; none within a minute of
    the 30-minute activity boundary (the test cannot know the server's instant exactly)."""
    rng = random.Random(seed)
    out: list[Ev] = []
    for i in range(n):
        if i % 3 == 0:
            ago = rng.choice([rng.uniform(60, 28 * 60), rng.uniform(32 * 60, 59 * 60)])
        else:
            ago = rng.uniform(3600, 3 * 86400)
        at = (now - timedelta(seconds=ago)).replace(microsecond=0)
        kind = rng.choices(TYPES, WEIGHTS)[0]
        subject = rng.randrange(120)
        value = None
        props: dict | None = {"plan": rng.choice(["free", "pro"])}
        custom = ""
        if kind in ("signup", "purchase"):
            value = rng.choice(
                [
                    (rng.randint(1, 500), rng.choice([0, 500_000_000]), "USD"),
                    (rng.randint(1, 90), 250_000_000, "EUR"),
                    None,
                ]
            )
        if kind == "performance_sample":
            props = {"endpoint": rng.choice(ENDPOINTS)}
            if rng.random() < 0.95:
                props["duration_ms"] = round(rng.lognormvariate(4, 1), 3)
            roll = rng.random()
            if roll < 0.05:
                props["error"] = True
            elif roll < 0.1:
                props["status_code"] = 503
            elif roll < 0.2:
                props["status_code"] = 200
        if kind == "custom":
            custom = rng.choice(["video_played", "quiz_done"])
        out.append(
            Ev(
                f"rt-{i}",
                at,
                kind,
                custom,
                rng.choice(["modumind", "stacksense"]),
                f"lead-{subject}",
                f"sess-{subject}-{int(ago // 1800)}",
                value,
                props,
            )
        )
    return out


def track(events: list[Ev]) -> list:
    return [
        event(
            e.event_id,
            type=e.type,
            lead_id=e.lead,
            brand_id=e.brand,
            occurred_at=e.at,
            session_id=e.session,
            value=e.value,
            properties=e.props,
            custom_name=e.custom,
        )
        for e in events
    ]


def dt(ts) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered) - 1e-9)) - 1]


def expected_series(events: list[Ev], starts: list[datetime], end: datetime) -> dict:
    """(type, custom name) -> counts per bucket."""
    out: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0] * len(starts))
    bounds = [*starts, end]
    for e in events:
        if not bounds[0] <= e.at < end:
            continue
        k = max(i for i, b in enumerate(bounds) if b <= e.at)
        t = event_type_pb2.EventType.Value(f"EVENT_TYPE_{e.type.upper()}")
        out[(t, e.custom)][k] += 1
    return out


def check_view(reply: pb.GetRealTimeResponse, events: list[Ev]) -> None:
    starts = [dt(p.bucket_start) for p in reply.conversions.points]
    start, end = dt(reply.range.start_time), dt(reply.range.end_time)
    assert starts[0] == start
    inside = [e for e in events if start <= e.at < end]
    expected = expected_series(events, starts, end)
    got = {(s.event_type, s.custom_event_name): [p.count for p in s.points] for s in reply.series}
    assert got == dict(expected)
    for s in reply.series:
        assert s.total == sum(p.count for p in s.points)
        assert [dt(p.bucket_start) for p in s.points] == starts
    totals = [s.total for s in reply.series]
    assert totals == sorted(totals, reverse=True)
    # Conversions.
    conversions = [e for e in inside if e.type in ("signup", "purchase")]
    assert reply.conversions.count == len(conversions)
    assert sum(p.count for p in reply.conversions.points) == len(conversions)
    money: dict[str, Decimal] = defaultdict(Decimal)
    for e in conversions:
        if e.value:
            money[e.value[2]] += Decimal(e.value[0]) + Decimal(e.value[1]) / 10**9
    got_money = {
        m.currency_code: Decimal(m.units) + Decimal(m.nanos) / 10**9
        for m in reply.conversions.value
    }
    assert got_money == dict(money)
    assert [m.currency_code for m in reply.conversions.value] == sorted(money)
    # Performance.
    samples: dict[str, list[Ev]] = defaultdict(list)
    for e in inside:
        if e.type == "performance_sample":
            samples[e.props["endpoint"]].append(e)
    assert {p.endpoint for p in reply.performance} == set(samples)
    counts = [p.sample_count for p in reply.performance]
    assert counts == sorted(counts, reverse=True)
    for p in reply.performance:
        mine = samples[p.endpoint]
        assert p.sample_count == len(mine)
        errors = sum(
            1 for e in mine if e.props.get("error") is True or e.props.get("status_code", 0) >= 500
        )
        assert p.error_count == errors
        assert p.error_rate == pytest.approx(errors / len(mine))
        durations = [e.props["duration_ms"] for e in mine if "duration_ms" in e.props]
        for q, got_ms in (
            (0.5, p.p50_latency_ms),
            (0.95, p.p95_latency_ms),
            (0.99, p.p99_latency_ms),
        ):
            exact = nearest_rank(durations, q)
            assert got_ms == pytest.approx(exact, rel=0.0101), (p.endpoint, q)


@pytest.fixture
async def loaded(settings):
    now = datetime.now(UTC)
    events = generate(now)
    async with suite(settings) as s:
        await s.track(track(events))
        await s.applied()
        yield s, events


async def test_last_hour_per_minute_with_sessions_and_performance(loaded) -> None:
    s, events = loaded
    reply = await s.reporting.GetRealTime(
        pb.GetRealTimeRequest(preset=rt.RANGE_PRESET_LAST_HOUR), metadata=s.metadata
    )
    assert reply.bucket.seconds == 60
    assert len(reply.conversions.points) in (60, 61)
    check_view(reply, events)
    assert reply.performance and reply.conversions.value
    as_of = dt(reply.as_of)
    recent = [e for e in events if as_of - 30 * MINUTE < e.at <= as_of]
    assert reply.active_sessions == len({e.session for e in recent}) > 0
    assert reply.active_subjects == len({e.lead for e in recent})
    # A brand filter narrows every figure.
    branded = await s.reporting.GetRealTime(
        pb.GetRealTimeRequest(preset=rt.RANGE_PRESET_LAST_HOUR, brand_ids=["stacksense"]),
        metadata=s.metadata,
    )
    check_view(branded, [e for e in events if e.brand == "stacksense"])
    recent = [e for e in recent if e.brand == "stacksense"]
    assert branded.active_sessions == len({e.session for e in recent})


async def test_day_buckets_align_to_local_midnight(loaded) -> None:
    s, events = loaded
    now = datetime.now(UTC)
    request = pb.GetRealTimeRequest(
        range=time_range_pb2.TimeRange(),
        bucket=duration_pb2.Duration(seconds=86400),
        time_zone="Asia/Kolkata",
        event_types=[event_type_pb2.EVENT_TYPE_PAGE_VIEW, event_type_pb2.EVENT_TYPE_CUSTOM],
        custom_event_names=["video_played"],
    )
    request.range.start_time.FromDatetime(now - timedelta(days=3, hours=2))
    request.range.end_time.FromDatetime(now)
    reply = await s.reporting.GetRealTime(request, metadata=s.metadata)
    zone = ZoneInfo("Asia/Kolkata")
    starts = [dt(p.bucket_start) for p in reply.conversions.points]
    assert all(t.astimezone(zone).time() == datetime.min.time() for t in starts)
    assert len(starts) in (4, 5)  # 3 days and 2 hours, aligned outwards to local days
    chosen = [
        e
        for e in events
        if e.type == "page_view" or (e.type == "custom" and e.custom == "video_played")
    ]
    got = {(x.event_type, x.custom_event_name): [p.count for p in x.points] for x in reply.series}
    assert got == dict(expected_series(chosen, starts, dt(reply.range.end_time)))
    # Conversions and performance do not follow the type filter.
    everything = [e for e in events if starts[0] <= e.at < dt(reply.range.end_time)]
    assert reply.conversions.count == sum(1 for e in everything if e.type in ("signup", "purchase"))


async def test_two_hour_buckets_in_utc(loaded) -> None:
    s, events = loaded
    now = datetime.now(UTC)
    request = pb.GetRealTimeRequest(
        range=time_range_pb2.TimeRange(), bucket=duration_pb2.Duration(seconds=7200)
    )
    request.range.start_time.FromDatetime(now - timedelta(days=2, minutes=17))
    request.range.end_time.FromDatetime(now - timedelta(hours=1, minutes=3))
    reply = await s.reporting.GetRealTime(request, metadata=s.metadata)
    starts = [dt(p.bucket_start) for p in reply.conversions.points]
    assert all(t.minute == 0 and t.hour % 2 == 0 for t in starts)
    assert dt(reply.range.end_time) >= now - timedelta(hours=1, minutes=3)
    check_view(reply, events)


async def test_bad_requests_name_the_field(settings) -> None:
    async with suite(settings) as s:

        async def refused(request: pb.GetRealTimeRequest) -> str:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await s.reporting.GetRealTime(request, metadata=s.metadata)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            return info.value.details() or ""

        assert "bucket" in await refused(
            pb.GetRealTimeRequest(bucket=duration_pb2.Duration(seconds=7 * 60))
        )
        assert "time_zone" in await refused(pb.GetRealTimeRequest(time_zone="Mars/Olympus"))
        long = pb.GetRealTimeRequest(range=time_range_pb2.TimeRange())
        long.range.start_time.FromDatetime(datetime(2025, 1, 1, tzinfo=UTC))
        long.range.end_time.FromDatetime(datetime(2025, 3, 1, tzinfo=UTC))
        assert "range" in await refused(long)
        many = pb.GetRealTimeRequest(
            preset=rt.RANGE_PRESET_LAST_7_DAYS, bucket=duration_pb2.Duration(seconds=60)
        )
        assert "bucket" in await refused(many)
        empty = pb.GetRealTimeRequest(range=time_range_pb2.TimeRange())
        empty.range.start_time.FromDatetime(datetime(2025, 1, 2, tzinfo=UTC))
        empty.range.end_time.FromDatetime(datetime(2025, 1, 1, tzinfo=UTC))
        assert "range" in await refused(empty)
