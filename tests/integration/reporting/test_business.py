"""The business reports over data pushed through ingest, scoring and attribution (reporting
reads only their events), each compared with the same question answered here in plain
Python: lead quality from scoring's published scores, the lifecycle funnel from scoring's
lifecycle history, engagement, attribution summary, insights with their z-tests, best
posting hour, an A/B test and portfolio metrics from the generated events."""

from __future__ import annotations

import math
import random
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import grpc
import pytest
from google.protobuf import duration_pb2
from harness import eventually
from ingest_support import event
from reporting_support import full_suite
from scoring_support import published as scoring_published

from leadflow.attribution.v1 import attribution_types_pb2 as at
from leadflow.common.v1 import event_type_pb2, lead_pb2, subject_pb2, time_range_pb2
from leadflow.ingest.v1 import ingest_service_pb2 as ingest_pb
from leadflow.ingest.v1 import profile_pb2
from leadflow.reporting.v1 import report_types_pb2 as rt
from leadflow.reporting.v1 import reporting_service_pb2 as pb
from leadflow.scoring.v1 import scoring_service_pb2 as scoring_pb

pytestmark = pytest.mark.integration

SOURCES = {"email": 0.45, "google": 0.2, "twitter": 0.0}
BRANDS = ("modumind", "stacksense", "epicquest")
LEADS = 240
MAIN = (1, 2, 3, 4, 5, 6)


@dataclass
class Lead:
    lead_id: str
    source: str
    brand: str
    variant: str
    visit: datetime
    purchase: Decimal | None
    mrr: int | None
    post_hour: int
    engagement: float


def _data(start: datetime) -> list[Lead]:
    rng = random.Random(11)
    leads = []
    for i in range(LEADS):
        source = list(SOURCES)[i % 3]
        variant = "control" if i % 2 == 0 else "b"
        # Variant b converts better on top of the source's rate.
        p = SOURCES[source] + (0.25 if variant == "b" else 0.0)
        buys = rng.random() < p
        hour = i % 24
        leads.append(
            Lead(
                lead_id=f"lead-{i}",
                source=source,
                brand=BRANDS[(i // 3) % 3],
                variant=variant,
                visit=start + timedelta(days=2, hours=i % 20, minutes=i % 7),
                purchase=Decimal(50 + 10 * (i % 5)) if buys else None,
                mrr=(20 + i % 3) if buys and i % 4 == 0 else None,
                post_hour=hour,
                engagement=(30.0 if hour == 14 else 5.0) + i % 4,
            )
        )
    return leads


def _events(leads: list[Lead], start: datetime) -> list[object]:
    out: list[object] = []
    for n, d in enumerate(leads):
        out.append(
            event(
                f"pv-{n}",
                type="page_view",
                lead_id=d.lead_id,
                brand_id=d.brand,
                occurred_at=d.visit,
                session_id=f"s-{n}",
                marketing={"channel": d.source, "source": d.source},
                properties={"experiment": {"pricing": d.variant}},
            )
        )
        out.append(
            event(
                f"post-{n}",
                type="social_interaction",
                lead_id=d.lead_id,
                brand_id=d.brand,
                occurred_at=start + timedelta(hours=d.post_hour, minutes=n % 50),
                properties={"engagement": d.engagement},
            )
        )
        if d.purchase is not None:
            properties = {"mrr": d.mrr} if d.mrr is not None else {}
            out.append(
                event(
                    f"buy-{n}",
                    type="purchase",
                    lead_id=d.lead_id,
                    brand_id=d.brand,
                    occurred_at=d.visit + timedelta(minutes=10),
                    session_id=f"s-{n}",
                    value=(int(d.purchase), 0, "USD"),
                    properties=properties,
                )
            )
    return out


def _range(start: datetime, end: datetime) -> time_range_pb2.TimeRange:
    r = time_range_pb2.TimeRange()
    r.start_time.FromDatetime(start)
    r.end_time.FromDatetime(end)
    return r


def _z(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float]:
    """The two-proportion z-test, written out again here: pooled standard error, two-sided
    p from the normal CDF."""
    p = (x1 + x2) / (n1 + n2)
    se = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    z = (x1 / n1 - x2 / n2) / se
    return z, 2 * (1 - statistics.NormalDist().cdf(abs(z)))


def _pct(x: int, n: int) -> str:
    text = f"{100 * x / n:.1f}"
    return (text[:-2] if text.endswith(".0") else text) + "%"


def _money(m: object) -> Decimal:
    return Decimal(m.units) + Decimal(m.nanos) / Decimal(10**9)  # type: ignore[attr-defined]


async def test_business_reports_match_an_independent_computation(settings) -> None:
    start = (datetime.now(UTC) - timedelta(days=6)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    end = datetime.now(UTC) + timedelta(hours=1)
    leads = _data(start)
    async with full_suite(settings) as s:
        up = s.upstream
        for d in leads:
            await up.ingest.Identify(
                ingest_pb.IdentifyRequest(
                    lead_id=d.lead_id,
                    profile=profile_pb2.LeadProfile(
                        home_brand_id=d.brand, email=f"{d.lead_id}@x.io"
                    ),
                ),
                metadata=s.metadata,
            )
        await s.track(_events(leads, start))
        await s.applied()
        # Lifecycle moves by API: every 4th lead contacted, every 8th then qualified, every
        # 12th lost.
        for i, d in enumerate(leads):
            moves = []
            if i % 4 == 0:
                moves.append(lead_pb2.LIFECYCLE_STAGE_CONTACTED)
            if i % 8 == 0:
                moves.append(lead_pb2.LIFECYCLE_STAGE_QUALIFIED)
            if i % 12 == 0:
                moves.append(lead_pb2.LIFECYCLE_STAGE_LOST)
            for stage in moves:
                try:
                    await up.scoring.TransitionStage(
                        scoring_pb.TransitionStageRequest(
                            lead_id=d.lead_id, to_stage=stage, reason="t"
                        ),
                        metadata=s.metadata,
                    )
                except grpc.aio.AioRpcError as exc:
                    # Buyers are customers by scoring's rules: no way back to contacted.
                    assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION
        await s.applied()
        rng = _range(start, end)
        md = s.metadata

        # Lead quality: the latest published score of each lead.
        latest: dict[str, object] = {}
        for _, m in await scoring_published(settings, "scoring.score.changed"):
            prev = latest.get(m.lead_id)
            if (
                prev is None
                or m.score.computed_at.ToMicroseconds() >= prev.score.computed_at.ToMicroseconds()
            ):  # type: ignore[attr-defined]
                latest[m.lead_id] = m
        quality = await s.reporting.GetLeadQuality(
            pb.GetLeadQualityRequest(by_brand=True), metadata=md
        )
        assert quality.total.lead_count == LEADS
        assert quality.total.scored_count == len(latest)
        grades = Counter(m.score.grade for m in latest.values())  # type: ignore[attr-defined]
        temps = Counter(m.score.temperature for m in latest.values())  # type: ignore[attr-defined]
        assert {g.grade: g.count for g in quality.total.grades} == {
            g: grades.get(g, 0) for g in range(1, 8)
        }
        assert {t.temperature: t.count for t in quality.total.temperatures} == {
            t: temps.get(t, 0) for t in (1, 2, 3)
        }
        totals = [m.score.total for m in latest.values()]  # type: ignore[attr-defined]
        assert quality.total.average_score == pytest.approx(statistics.fmean(totals))
        assert {b.brand_id: b.lead_count for b in quality.brands} == dict(
            Counter(d.brand for d in leads)
        )

        # Lifecycle funnel: scoring's own lifecycle history of each lead.
        histories = {}
        for d in leads:
            life = await up.scoring.GetLifecycle(
                scoring_pb.GetLifecycleRequest(lead_id=d.lead_id), metadata=md
            )
            histories[d.lead_id] = life
        funnel = await s.reporting.GetLifecycleFunnel(
            pb.GetLifecycleFunnelRequest(range=rng), metadata=md
        )
        cohort = [
            lid
            for lid, life in histories.items()
            if any(
                t.from_stage == 0 and start <= t.transitioned_at.ToDatetime(UTC) < end
                for t in life.history
            )
        ]
        assert funnel.cohort_size == len(cohort)
        by_stage = {st.stage: st for st in funnel.stages}
        for k, stage in enumerate(MAIN):
            reached = sum(
                1
                for lid in cohort
                if max(
                    (MAIN.index(t.to_stage) for t in histories[lid].history if t.to_stage in MAIN),
                    default=-1,
                )
                >= k
            )
            assert by_stage[stage].reached_count == reached, stage
        current = Counter(life.current_stage for life in histories.values())
        for stage, st in by_stage.items():
            assert st.current_count == current.get(stage, 0), stage
        lost = sum(
            1
            for lid in cohort
            if any(t.to_stage == lead_pb2.LIFECYCLE_STAGE_LOST for t in histories[lid].history)
        )
        assert lost > 0
        assert by_stage[lead_pb2.LIFECYCLE_STAGE_LOST].reached_count == lost

        # Engagement.
        eng = await s.reporting.GetEngagement(pb.GetEngagementRequest(range=rng), metadata=md)
        buyers = [d for d in leads if d.purchase is not None]
        assert eng.total_events == 2 * LEADS + len(buyers)
        assert {t.event_type: t.events for t in eng.by_type} == {
            event_type_pb2.EVENT_TYPE_PAGE_VIEW: LEADS,
            event_type_pb2.EVENT_TYPE_SOCIAL_INTERACTION: LEADS,
            event_type_pb2.EVENT_TYPE_PURCHASE: len(buyers),
        }
        channels = {c.channel: c for c in eng.by_channel}
        for source in SOURCES:
            assert channels[source].events == sum(1 for d in leads if d.source == source)
            assert channels[source].conversions == sum(1 for d in buyers if d.source == source)
        assert channels["(none)"].events == LEADS + len(buyers)

        # Attribution summary of purchases (scoring's move to customer is a conversion too):
        # each purchase's journey is its one page view.
        summary = await s.reporting.GetAttributionSummary(
            pb.GetAttributionSummaryRequest(range=rng, conversion_types=["purchase"]), metadata=md
        )
        assert [m.model for m in summary.models] == [
            at.ATTRIBUTION_MODEL_FIRST_TOUCH,
            at.ATTRIBUTION_MODEL_LAST_TOUCH,
            at.ATTRIBUTION_MODEL_LINEAR,
        ]
        assert summary.conversion_count == len(buyers)
        for model in summary.models:
            rows = {r.key: r for r in model.rows}
            for source in SOURCES:
                mine = [d for d in buyers if d.source == source]
                if not mine:
                    assert source not in rows
                    continue
                assert rows[source].attributed_conversions == pytest.approx(len(mine))
                assert _money(rows[source].attributed_value[0]) == sum(d.purchase for d in mine)

        # Source insights.
        ins = await s.reporting.GetSourceInsights(
            pb.GetSourceInsightsRequest(range=rng, dimensions=[rt.DIMENSION_SOURCE]),
            metadata=md,
        )
        groups = {g.value: g for g in ins.breakdowns[0].groups}
        counts = {
            src: (
                sum(1 for d in buyers if d.source == src),
                sum(1 for d in leads if d.source == src),
            )
            for src in SOURCES
        }
        for src, (x, n) in counts.items():
            g = groups[src]
            assert (g.conversions, g.participants) == (x, n)
            rest_x = sum(c[0] for k, c in counts.items() if k != src)
            rest_n = sum(c[1] for k, c in counts.items() if k != src)
            z, p = _z(x, n, rest_x, rest_n)
            assert g.versus_rest.z == pytest.approx(z)
            assert g.versus_rest.p_value == pytest.approx(p, abs=1e-9)
            revenue = sum(d.purchase for d in buyers if d.source == src and d.purchase)
            assert (_money(g.revenue[0]) if g.revenue else 0) == revenue
        (xe, ne), (xt, nt) = counts["email"], counts["twitter"]
        _, p = _z(xe, ne, xt, nt)
        expected = (
            f"Email converts at {_pct(xe, ne)} ({xe}/{ne}), Twitter at {_pct(xt, nt)}"
            f" ({xt}/{nt}): the difference is significant"
            f" ({'p < 0.001' if p < 0.0005 else f'p = {p:.3f}'})"
        )
        gap = [f for f in ins.findings if f.kind == rt.FINDING_KIND_CONVERSION_RATE_GAP]
        assert gap[0].text == expected, [f.text for f in ins.findings]
        assert list(gap[0].values) == ["email", "twitter"]
        impacts = [f.impact for f in ins.findings]
        assert impacts == sorted(impacts, reverse=True)

        # Best posting hour.
        hours = await s.reporting.GetBestPostingHour(
            pb.GetBestPostingHourRequest(range=rng, min_sample=5), metadata=md
        )
        per_hour: dict[int, list[float]] = defaultdict(list)
        for d in leads:
            per_hour[d.post_hour].append(d.engagement)
        for h in hours.overall.hours:
            assert h.sample_size == len(per_hour[h.hour])
            assert h.mean_engagement == pytest.approx(statistics.fmean(per_hour[h.hour]))
        assert hours.overall.best_hour == max(
            (h for h in per_hour if len(per_hour[h]) >= 5),
            key=lambda h: (statistics.fmean(per_hour[h]), -h),
        )

        # A/B test: variant from the page view's property, purchase as conversion.
        ab = await s.reporting.GetAbTest(
            pb.GetAbTestRequest(
                experiment_key="pricing",
                variant_property="experiment.pricing",
                conversion_event=rt.EventSelector(event_type=event_type_pb2.EVENT_TYPE_PURCHASE),
                range=rng,
                min_sample_per_variant=50,
            ),
            metadata=md,
        )
        variants = {v.variant: v for v in ab.variants}
        xc = sum(1 for d in buyers if d.variant == "control")
        xb = sum(1 for d in buyers if d.variant == "b")
        nc = nb = LEADS // 2
        assert (variants["control"].participants, variants["control"].conversions) == (nc, xc)
        assert (variants["b"].participants, variants["b"].conversions) == (nb, xb)
        z, p = _z(xb, nb, xc, nc)
        assert ab.test.z == pytest.approx(z)
        assert ab.test.p_value == pytest.approx(p, abs=1e-9)
        assert ab.winner == ("b" if p < 0.05 else "")
        assert variants["b"].lift == pytest.approx((xb / nb - xc / nc) / (xc / nc))

        # Portfolio metrics per brand.
        port = await s.reporting.GetPortfolioMetrics(
            pb.GetPortfolioMetricsRequest(range=rng, compare_previous=True), metadata=md
        )
        brands = {b.brand_id: b for b in port.brands}
        for brand in BRANDS:
            mine = [d for d in leads if d.brand == brand]
            bought = [d for d in mine if d.purchase is not None]
            b = brands[brand]
            assert b.total_leads == b.new_leads == len(mine)
            assert b.active_subjects == len(mine)
            assert b.conversions == len(bought)
            assert _money(b.revenue[0]) == sum(d.purchase for d in bought)
            mrr = sum(d.mrr for d in bought if d.mrr is not None)
            assert (_money(b.mrr[0]) if b.mrr else 0) == mrr
            assert (_money(b.arr[0]) if b.arr else 0) == 12 * mrr
        assert port.total.conversions == len(buyers)
        assert port.total.active_subjects == LEADS

        # Journeys now carry the score and the lifecycle from scoring's events.
        for d in (leads[0], buyers[0]):
            journey = await s.reporting.GetJourney(
                pb.GetJourneyRequest(subject=subject_pb2.SubjectRef(lead_id=d.lead_id)),
                metadata=md,
            )
            score = latest[d.lead_id].score  # type: ignore[attr-defined]
            assert journey.score == pytest.approx(score.total)
            assert journey.grade == score.grade
            assert journey.stage == histories[d.lead_id].current_stage
            stages = [
                m.stage for m in journey.milestones if m.kind == rt.MILESTONE_KIND_STAGE_CHANGED
            ]
            assert sorted(stages) == sorted(t.to_stage for t in histories[d.lead_id].history)

        # Erasure: the lead's score, stages and conversions leave the read model.
        victim = buyers[0].lead_id
        await up.ingest.EraseSubject(
            ingest_pb.EraseSubjectRequest(lead_id=victim, reason="test"), metadata=md
        )

        async def gone() -> bool:
            for table in ("lead_scores", "stage_changes", "attributed_conversions"):
                sql = f"SELECT count(*) FROM {table} WHERE lead_id = $1"
                if await s.pool.fetchval(sql, victim):
                    return False
            return True

        await eventually(gone, timeout=30)
        await s.applied()
        assert await gone()
        after = await s.reporting.GetLeadQuality(pb.GetLeadQualityRequest(), metadata=md)
        assert after.total.lead_count == LEADS - 1


async def test_business_reports_validate_their_input(settings) -> None:
    async with full_suite(settings) as s:
        md = s.metadata
        now = datetime.now(UTC)
        empty = _range(now, now)
        cases = [
            (s.reporting.GetLifecycleFunnel, pb.GetLifecycleFunnelRequest(range=empty), "range"),
            (s.reporting.GetEngagement, pb.GetEngagementRequest(), "range"),
            (
                s.reporting.GetAttributionSummary,
                pb.GetAttributionSummaryRequest(
                    range=_range(now - timedelta(days=1), now),
                    models=[at.ATTRIBUTION_MODEL_MARKOV],
                ),
                "models[0]",
            ),
            (
                s.reporting.GetSourceInsights,
                pb.GetSourceInsightsRequest(
                    range=_range(now - timedelta(days=1), now), significance_level=0.7
                ),
                "significance_level",
            ),
            (
                s.reporting.GetAbTest,
                pb.GetAbTestRequest(
                    experiment_key="x",
                    variant_property="v",
                    range=_range(now - timedelta(days=1), now),
                    conversion_window=duration_pb2.Duration(seconds=0),
                ),
                "conversion_event",
            ),
            (
                s.reporting.GetBestPostingHour,
                pb.GetBestPostingHourRequest(
                    range=_range(now - timedelta(days=1), now), time_zone="Mars/Olympus"
                ),
                "time_zone",
            ),
        ]
        for method, request, field in cases:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await method(request, metadata=md)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert field in (err.value.details() or ""), err.value.details()
