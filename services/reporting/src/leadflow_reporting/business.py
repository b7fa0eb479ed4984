"""The business reports: lead quality, lifecycle funnel, engagement, attribution summary,
source insights, best posting hour, A/B tests and portfolio metrics. Each reads the read
model in one repeatable-read snapshot (db/business_rows.py) and computes with the pure
functions of domain/."""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import asyncpg

from leadflow_platform.lifecycle import ServiceContext
from leadflow_reporting.api.validation import EVENT_TYPE_NAMES
from leadflow_reporting.db import business_rows as rows
from leadflow_reporting.domain import insights, kpis
from leadflow_reporting.domain.experiments import (
    AbAnswer,
    HourSeries,
    ab_test,
    local_hour,
    posting_hours,
)
from leadflow_reporting.domain.quality import (
    LeadScoreRow,
    LifecycleAnswer,
    Quality,
    Transition,
    by_brand,
    lifecycle,
    quality,
)
from leadflow_reporting.domain.query import Breakdown, Selector

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DAY_US = 86_400_000_000


def at(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def window(start_us: int, end_us: int, brand_ids: Sequence[str] = ()) -> rows.Window:
    return rows.Window(at(start_us), at(end_us), tuple(brand_ids))


class _Reader:
    def __init__(self, context: ServiceContext) -> None:
        self._context = context

    @contextlib.asynccontextmanager
    async def _snapshot(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection in a read-only repeatable-read transaction."""
        async with (
            self._context.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            yield conn


# Lead quality and lifecycle ---------------------------------------------------------------


@dataclass
class LeadQualityAnswer:
    total: Quality
    brands: list[Quality]


class LeadQuality(_Reader):
    async def run(
        self,
        tenant_id: str,
        identified: tuple[int, int] | None,
        brand_ids: Sequence[str],
        per_brand: bool,
    ) -> LeadQualityAnswer:
        async with self._snapshot() as conn:
            found = await rows.leads(
                conn,
                tenant_id,
                None if identified is None else (at(identified[0]), at(identified[1])),
            )
        leads = [
            LeadScoreRow(
                r["brand_id"],
                r["total"],
                r["grade"] or 0,
                r["temperature"] or 0,
            )
            for r in found
            if not brand_ids or r["brand_id"] in brand_ids
        ]
        return LeadQualityAnswer(quality("", leads), by_brand(leads) if per_brand else [])


class Lifecycle(_Reader):
    async def run(
        self, tenant_id: str, start_us: int, end_us: int, brand_ids: Sequence[str]
    ) -> LifecycleAnswer:
        async with self._snapshot() as conn:
            found = await rows.stage_changes(conn, tenant_id, brand_ids)
        changes = [
            Transition(
                r["lead_id"],
                r["from_stage"],
                r["to_stage"],
                r["t"],
                r["time_in_previous_us"],
                r["event_id"],
            )
            for r in found
        ]
        return lifecycle(changes, start_us, end_us)


# Engagement ----------------------------------------------------------------------------


@dataclass
class EngagementAnswer:
    total_events: int
    unique_subjects: int
    by_type: list[tuple[int, str, int, int]]  # (type, custom name, events, subjects)
    by_channel: list[tuple[str, int, int, int, int]]  # (channel, events, subjects, sessions, conv)
    cells: list[tuple[str, int, str, int, int]]
    email: dict[str, int]
    daily: list[tuple[int, int]]  # (day start us, events)


NO_CHANNEL = "(none)"


class Engagement(_Reader):
    async def run(
        self,
        tenant_id: str,
        start_us: int,
        end_us: int,
        brand_ids: Sequence[str],
        include_machine: bool,
        excluded_types: Sequence[int],
    ) -> EngagementAnswer:
        async with self._snapshot() as conn:
            found = await rows.engagement(
                conn,
                tenant_id,
                window(start_us, end_us, brand_ids),
                include_machine,
                excluded_types,
            )
        conv = {r["channel"] or NO_CHANNEL: r["n"] for r in found["conversions"]}
        channels = sorted(
            (
                (
                    r["channel"] or NO_CHANNEL,
                    r["events"],
                    r["subjects"],
                    r["sessions"],
                    conv.get(r["channel"] or NO_CHANNEL, 0),
                )
                for r in found["channels"]
            ),
            key=lambda c: (-c[1], c[0]),
        )
        types = sorted(
            (
                (r["event_type"], r["custom_name"], r["events"], r["subjects"])
                for r in found["types"]
            ),
            key=lambda t: (-t[2], t[0], t[1]),
        )
        cells = sorted(
            (
                (
                    r["channel"] or NO_CHANNEL,
                    r["event_type"],
                    r["custom_name"],
                    r["events"],
                    r["subjects"],
                )
                for r in found["cells"]
            ),
            key=lambda c: (-c[3], c[0], c[1], c[2]),
        )
        per_day = {
            int((r["day"] - EPOCH).total_seconds()) * 1_000_000: r["events"] for r in found["daily"]
        }
        first = start_us - start_us % DAY_US
        daily = [(d, per_day.get(d, 0)) for d in range(first, end_us, DAY_US)]
        email = dict(found["email"]) if found["email"] else {}
        return EngagementAnswer(
            found["totals"]["events"],
            found["totals"]["subjects"],
            types,
            channels,
            cells,
            {k: int(v or 0) for k, v in email.items()},
            daily,
        )


# Attribution summary -------------------------------------------------------------------


@dataclass
class AttributionRow:
    key: str
    conversions: float
    value: dict[str, Decimal]
    touchpoints: int
    touched: int


@dataclass
class ModelSummary:
    model: int
    rows: list[AttributionRow]
    total: float
    total_value: dict[str, Decimal]


@dataclass
class AttributionAnswer:
    models: list[ModelSummary]
    conversion_count: int
    conversion_value: dict[str, Decimal]
    unattributed: int


class AttributionSummary(_Reader):
    async def run(
        self,
        tenant_id: str,
        start_us: int,
        end_us: int,
        brand_ids: Sequence[str],
        models: Sequence[int],
        group_column: str,
        limit: int,
        conversion_types: Sequence[str],
    ) -> AttributionAnswer:
        async with self._snapshot() as conn:
            found = await rows.attribution_summary(
                conn,
                tenant_id,
                window(start_us, end_us, brand_ids),
                models,
                group_column,
                conversion_types,
            )
        values: dict[tuple[int, str], dict[str, Decimal]] = defaultdict(dict)
        for r in found["values"]:
            values[(r["model"], r["key"])][r["currency_code"]] = r["value"]
        per_model: dict[int, list[AttributionRow]] = defaultdict(list)
        for r in found["rows"]:
            per_model[r["model"]].append(
                AttributionRow(
                    r["key"],
                    float(r["conversions"]),
                    dict(sorted(values[(r["model"], r["key"])].items())),
                    r["touchpoints"],
                    r["touched"],
                )
            )
        summaries = []
        for model in models:
            all_rows = sorted(per_model[model], key=lambda a: (-a.conversions, a.key))
            total_value: dict[str, Decimal] = defaultdict(Decimal)
            for a in all_rows:
                for currency, amount in a.value.items():
                    total_value[currency] += amount
            summaries.append(
                ModelSummary(
                    model,
                    all_rows[:limit],
                    sum(a.conversions for a in all_rows),
                    dict(sorted(total_value.items())),
                )
            )
        count = unattributed = 0
        value: dict[str, Decimal] = defaultdict(Decimal)
        for r in found["conversions"]:
            if not r["attributed"]:
                unattributed += r["n"]
                continue
            count += r["n"]
            if r["currency_code"] and r["value"] is not None:
                value[r["currency_code"]] += r["value"]
        return AttributionAnswer(summaries, count, dict(sorted(value.items())), unattributed)


# Source insights -----------------------------------------------------------------------

# Dimension enum value -> the touch's key.
DIMENSION_KEYS = {
    1: "channel",
    2: "source",
    3: "medium",
    4: "campaign",
    5: "content",
    6: "term",
    7: "brand_id",
    8: "event_type",
}


@dataclass
class InsightsAnswer:
    breakdowns: list[tuple[int, list[insights.Group], float]]
    findings: list[insights.Finding]
    kpi_changes: list[kpis.KpiChange]
    previous: tuple[int, int]


@dataclass(frozen=True)
class InsightsQuery:
    start_us: int
    end_us: int
    dimensions: tuple[int, ...]
    last_touch: bool
    conversion: Selector | None
    min_participants: int
    alpha: float
    max_findings: int
    brand_ids: tuple[str, ...] = ()


def _touch_values(r: asyncpg.Record) -> dict[str, str]:
    values = {k: r[k] for k in ("channel", "source", "medium", "campaign", "content", "term")}
    values["brand_id"] = r["brand_id"]
    values["event_type"] = (
        r["custom_name"] if r["event_type"] == 24 else EVENT_TYPE_NAMES.get(r["event_type"], "")
    )
    return values


class Insights(_Reader):
    def __init__(self, context: ServiceContext, portfolio: Portfolio) -> None:
        super().__init__(context)
        self._portfolio = portfolio

    async def run(self, tenant_id: str, q: InsightsQuery) -> InsightsAnswer:
        w = window(q.start_us, q.end_us, q.brand_ids)
        async with self._snapshot() as conn:
            touch_rows = await rows.touchpoints(conn, tenant_id, w)
            conv_rows = await rows.conversions(conn, tenant_id, w, q.conversion)
        touches = [insights.Touch(r["subject_id"], r["t"], _touch_values(r)) for r in touch_rows]
        conversions = [
            insights.Conversion(r["subject_id"], r["t"], r["value"], r["currency_code"])
            for r in conv_rows
        ]
        breakdowns = []
        found: list[insights.Finding] = []
        for dimension in q.dimensions:
            people = insights.participants(
                touches, conversions, DIMENSION_KEYS[dimension], q.last_touch
            )
            groups = insights.groups(people, q.min_participants, q.alpha)
            n = sum(g.participants for g in groups)
            x = sum(g.conversions for g in groups)
            breakdowns.append((dimension, groups, x / n if n else 0.0))
            found += insights.findings(dimension, groups, q.min_participants, q.alpha)
        length = q.end_us - q.start_us
        previous = (q.start_us - length, q.start_us)
        current_m = await self._portfolio.run(tenant_id, q.start_us, q.end_us, q.brand_ids)
        previous_m = await self._portfolio.run(tenant_id, *previous, q.brand_ids)
        changes = kpi_changes(current_m.total, previous_m.total)
        for c in changes:
            rel = c.relative
            if rel is not None and abs(rel) >= 0.1:
                found.append(
                    insights.Finding(
                        kpi_text(c), insights.Kind.KPI_CHANGE, abs(rel) * 100, (), None, 0
                    )
                )
        return InsightsAnswer(breakdowns, insights.ranked(found, q.max_findings), changes, previous)


KPI_NAMES = {
    kpis.LEADS: "leads",
    kpis.CONVERSIONS: "conversions",
    kpis.CONVERSION_RATE: "conversion rate",
    kpis.REVENUE: "revenue",
    kpis.ACTIVE_SUBJECTS: "active subjects",
    kpis.ROUTED_LEADS: "routed leads",
    kpis.SLA_BREACHES: "SLA breaches",
}


def kpi_text(c: kpis.KpiChange) -> str:
    """E.g. "Conversions up 25% (40 vs 32)"."""
    rel = c.relative or 0.0
    way = "up" if rel > 0 else "down"
    name = KPI_NAMES.get(c.kpi, "kpi")
    if c.kpi == kpis.CONVERSION_RATE:
        now, before = f"{float(c.current):.1%}", f"{float(c.previous):.1%}"
    elif c.currency:
        now, before = f"{c.current:.2f} {c.currency}", f"{c.previous:.2f} {c.currency}"
    else:
        now, before = f"{c.current:g}", f"{c.previous:g}"
    scope = f" at {c.brand_id}" if c.brand_id else ""
    return f"{name[:1].upper() + name[1:]}{scope} {way} {abs(rel):.0%} ({now} vs {before})"


# Best posting hour ---------------------------------------------------------------------


@dataclass
class PostingAnswer:
    overall: HourSeries
    series: list[HourSeries]
    posts: int
    time_zone: str


class PostingHours(_Reader):
    async def run(
        self,
        tenant_id: str,
        start_us: int,
        end_us: int,
        brand_ids: Sequence[str],
        selector: Selector,
        engagement_path: str,
        min_sample: int,
        time_zone: str,
        breakdown: Breakdown | None,
    ) -> PostingAnswer:
        async with self._snapshot() as conn:
            found = await rows.posts(
                conn,
                tenant_id,
                window(start_us, end_us, brand_ids),
                selector,
                engagement_path,
                breakdown,
            )
        zone = ZoneInfo(time_zone)
        posts = [(local_hour(r["t"], zone), float(r["engagement"]), r["value"]) for r in found]
        overall = posting_hours([(h, e) for h, e, _ in posts], min_sample)
        groups: dict[str, list[tuple[int, float]]] = defaultdict(list)
        if breakdown is not None:
            for h, e, v in posts:
                groups[v or ""].append((h, e))
        series = [
            posting_hours(items, min_sample, value)
            for value, items in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        ]
        return PostingAnswer(overall, series, len(posts), time_zone)


# A/B tests -----------------------------------------------------------------------------


@dataclass(frozen=True)
class AbQuery:
    experiment: str
    variant_path: str
    exposure: Selector | None
    conversion: Selector
    control: str
    start_us: int
    end_us: int
    min_sample: int
    confidence: float
    window_us: int | None
    brand_ids: tuple[str, ...] = ()


class Experiments(_Reader):
    async def run(self, tenant_id: str, q: AbQuery) -> AbAnswer:
        w = window(q.start_us, q.end_us, q.brand_ids)
        async with self._snapshot() as conn:
            exposed = await rows.exposures(conn, tenant_id, w, q.variant_path, q.exposure)
            converted = await rows.conversions(conn, tenant_id, w, q.conversion)
        return ab_test(
            [(r["subject_id"], r["t"], r["variant"]) for r in exposed],
            [(r["subject_id"], r["t"]) for r in converted],
            experiment=q.experiment,
            control=q.control,
            min_sample=q.min_sample,
            confidence=q.confidence,
            window_us=q.window_us,
        )


# Portfolio -----------------------------------------------------------------------------


@dataclass
class BrandFigures:
    brand_id: str
    new_leads: int = 0
    total_leads: int = 0
    active: int = 0
    conversions: int = 0
    converting: int = 0
    revenue: dict[str, Decimal] = field(default_factory=dict)
    mrr: dict[str, Decimal] = field(default_factory=dict)
    arr: dict[str, Decimal] = field(default_factory=dict)
    routed_in: int = 0
    routed_out: int = 0
    sla_breaches: int = 0
    hot_leads: int = 0

    @property
    def conversion_rate(self) -> float:
        return self.converting / self.active if self.active else 0.0


@dataclass
class PortfolioAnswer:
    total: BrandFigures
    brands: list[BrandFigures]


class Portfolio(_Reader):
    async def run(
        self, tenant_id: str, start_us: int, end_us: int, brand_ids: Sequence[str]
    ) -> PortfolioAnswer:
        w = window(start_us, end_us, brand_ids)
        async with self._snapshot() as conn:
            found = await rows.portfolio(conn, tenant_id, w)
        wanted = set(brand_ids)
        figures: dict[str, BrandFigures] = {}
        total = BrandFigures("")

        def brand(b: str) -> BrandFigures | None:
            if not b or (wanted and b not in wanted):
                return None
            return figures.setdefault(b, BrandFigures(b))

        for r in found["activity"]:
            target = total if r["brand_id"] is None else brand(r["brand_id"])
            if target is not None:
                target.active, target.conversions = r["active"], r["conversions"]
                target.converting = r["converting"]
        for r in found["revenue"]:
            target = total if r["brand_id"] is None else brand(r["brand_id"])
            if target is not None:
                target.revenue[r["currency_code"]] = r["value"]
        for r in found["recurring"]:
            target = brand(r["brand_id"])
            currency = r["currency_code"]
            if not currency:
                continue
            mrr, arr = r["mrr"], r["arr"]
            annual = arr if arr is not None else (mrr * 12 if mrr is not None else None)
            for figs in (target, total) if target is not None else (total,):
                if mrr is not None:
                    figs.mrr[currency] = figs.mrr.get(currency, Decimal(0)) + mrr
                if annual is not None:
                    figs.arr[currency] = figs.arr.get(currency, Decimal(0)) + annual
        for key, attr in (
            ("routed_in", "routed_in"),
            ("routed_out", "routed_out"),
            ("breaches", "sla_breaches"),
            ("hot", "hot_leads"),
        ):
            for r in found[key]:
                target = brand(r["brand_id"])
                if target is not None:
                    setattr(target, attr, getattr(target, attr) + r["n"])
                if target is not None or (not wanted and key != "routed_out"):
                    setattr(total, attr, getattr(total, attr) + r["n"])
        for r in found["leads"]:
            target = brand(r["brand_id"])
            if target is not None:
                target.total_leads, target.new_leads = r["total"], r["new"]
            if target is not None or not wanted:
                total.total_leads += r["total"]
                total.new_leads += r["new"]
        if wanted:
            total.routed_out = sum(f.routed_out for f in figures.values())
        else:
            total.routed_out = sum(r["n"] for r in found["routed_out"])
        ordered = sorted(figures.values(), key=lambda f: (-f.conversions, f.brand_id))
        return PortfolioAnswer(total, ordered)


def kpi_changes(now: BrandFigures, before: BrandFigures) -> list[kpis.KpiChange]:
    b = now.brand_id
    out = [
        kpis.KpiChange(kpis.LEADS, b, now.new_leads, before.new_leads),
        kpis.KpiChange(kpis.ACTIVE_SUBJECTS, b, now.active, before.active),
        kpis.KpiChange(kpis.CONVERSIONS, b, now.conversions, before.conversions),
        kpis.KpiChange(kpis.CONVERSION_RATE, b, now.conversion_rate, before.conversion_rate),
    ]
    for currency in sorted(set(now.revenue) | set(before.revenue)):
        out.append(
            kpis.KpiChange(
                kpis.REVENUE,
                b,
                now.revenue.get(currency, Decimal(0)),
                before.revenue.get(currency, Decimal(0)),
                currency,
            )
        )
    out.append(kpis.KpiChange(kpis.ROUTED_LEADS, b, now.routed_in, before.routed_in))
    out.append(kpis.KpiChange(kpis.SLA_BREACHES, b, now.sla_breaches, before.sla_breaches))
    return out


@dataclass(frozen=True)
class BusinessReports:
    lead_quality: LeadQuality
    lifecycle: Lifecycle
    engagement: Engagement
    attribution: AttributionSummary
    insights: Insights
    posting: PostingHours
    experiments: Experiments
    portfolio: Portfolio

    @classmethod
    def of(cls, context: ServiceContext) -> BusinessReports:
        portfolio = Portfolio(context)
        return cls(
            LeadQuality(context),
            Lifecycle(context),
            Engagement(context),
            AttributionSummary(context),
            Insights(context, portfolio),
            PostingHours(context),
            Experiments(context),
            portfolio,
        )
