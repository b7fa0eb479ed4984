"""The real-time view, read from the rollups (never from raw events): counts per bucket and
type, conversions, endpoint performance, and the sessions active in the last 30 minutes."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from leadflow_platform.errors import InvalidArgument
from leadflow_platform.lifecycle import ServiceContext
from leadflow_reporting.db import rollups
from leadflow_reporting.domain.query import RealTimeQuery
from leadflow_reporting.domain.realtime import TooManyBuckets, Window, percentiles, plan

QUANTILES = (0.5, 0.95, 0.99)


@dataclass(frozen=True)
class Series:
    event_type: int
    custom_name: str
    total: int
    points: list[int]


@dataclass(frozen=True)
class Endpoint:
    endpoint: str
    samples: int
    errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float


@dataclass(frozen=True)
class RealTimeAnswer:
    window: Window
    series: list[Series]
    conversions: int
    conversion_points: list[int]
    value_by_currency: list[tuple[str, Decimal]]
    performance: list[Endpoint]
    active_sessions: int
    active_subjects: int
    as_of_us: int


def _datetime(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


class RealTime:
    def __init__(self, context: ServiceContext) -> None:
        self._context = context

    async def view(self, tenant_id: str, query: RealTimeQuery) -> RealTimeAnswer:
        try:
            window = plan(
                query.start_us, query.end_us, query.bucket_minutes, ZoneInfo(query.time_zone)
            )
        except TooManyBuckets as exc:
            raise InvalidArgument.field("bucket", f"the window holds {exc}") from None
        start, end = _datetime(window.start_us), _datetime(window.end_us)
        async with (
            self._context.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            counts = await rollups.counts(conn, tenant_id, window.level, start, end, query)
            span = (window.level, start, end)
            conversions = await rollups.conversions(conn, tenant_id, span, query.brand_ids)
            latency = await rollups.latency(conn, tenant_id, span, query.brand_ids)
            sessions, subjects = await rollups.active(
                conn, tenant_id, _datetime(query.now_us), query.brand_ids
            )
        buckets = len(window.starts)
        points: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0] * buckets)
        for bucket_us, event_type, custom_name, n in counts:
            points[(event_type, custom_name)][window.bucket_of(bucket_us)] += n
        series = sorted(
            (Series(t, name, sum(p), p) for (t, name), p in points.items()),
            key=lambda s: (-s.total, s.event_type, s.custom_name),
        )
        conversion_points = [0] * buckets
        values: dict[str, Decimal] = defaultdict(Decimal)
        for bucket_us, currency, n, value in conversions:
            conversion_points[window.bucket_of(bucket_us)] += n
            if currency:
                values[currency] += value
        histograms: dict[str, list[tuple[int, int]]] = defaultdict(list)
        errors: dict[str, int] = defaultdict(int)
        for endpoint, bin_, samples, failed in latency:
            histograms[endpoint].append((bin_, samples))
            errors[endpoint] += failed
        performance = [
            Endpoint(e, sum(c for _, c in h), errors[e], *percentiles(h, QUANTILES))
            for e, h in histograms.items()
        ]
        performance.sort(key=lambda p: (-p.samples, p.endpoint))
        return RealTimeAnswer(
            window,
            series,
            sum(conversion_points),
            conversion_points,
            sorted(values.items()),
            performance,
            sessions,
            subjects,
            query.now_us,
        )
