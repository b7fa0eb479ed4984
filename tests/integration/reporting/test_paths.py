"""GetPaths and GetJourney over sessions pushed through ingest. Paths, page figures and session
figures are compared with the proto's words applied in plain Python over the generated
events (a loop per session, nothing shared with the service's numpy code)."""

from __future__ import annotations

import random
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from ingest_support import event
from reporting_support import suite

from leadflow.common.v1 import event_type_pb2, pagination_pb2, subject_pb2, time_range_pb2
from leadflow.reporting.v1 import report_types_pb2 as rt
from leadflow.reporting.v1 import reporting_service_pb2 as pb

pytestmark = pytest.mark.integration

SITE = "https://modumind.io"
PAGES = ["/", "/pricing", "/blog", "/docs", "/about", "/careers", "/contact"]
KINDS = ["page_view"] * 6 + ["click", "click", "signup", "custom"]


@dataclass(frozen=True)
class Ev:
    event_id: str
    person: str
    session: str
    at: datetime
    type: str
    page: str  # page path for page views
    custom: str
    brand: str

    @property
    def item(self) -> str:
        if self.type == "page_view":
            return f"{SITE}{self.page}"
        return self.custom if self.type == "custom" else self.type


def generate(start: datetime, sessions: int = 400, seed: int = 3) -> list[Ev]:
    rng = random.Random(seed)
    out: list[Ev] = []
    for n in range(sessions):
        person = f"lead-{rng.randrange(150)}"
        # Some sessions start up to half a day before the range or after its 2 days.
        t = start + timedelta(seconds=rng.randint(-12 * 3600, 60 * 3600))
        brand = rng.choice(["modumind", "stacksense"])
        for k in range(rng.choice([1, 1, 2, 3, 4, 6, 9])):
            kind = rng.choice(KINDS)
            page = rng.choices(PAGES, [8, 6, 4, 3, 2, 1, 1])[0] if kind == "page_view" else ""
            custom = rng.choice(["video_played", "quiz_done"]) if kind == "custom" else ""
            out.append(Ev(f"p{n}-{k}", person, f"s{n}", t, kind, page, custom, brand))
            t += timedelta(seconds=rng.randint(1, 900))
    return out


def track(events: list[Ev]) -> list:
    return [
        event(
            e.event_id,
            type=e.type,
            lead_id=e.person,
            brand_id=e.brand,
            occurred_at=e.at,
            session_id=e.session,
            page_url=f"{SITE}{e.page}?ref=x#top" if e.page else "",
            custom_name=e.custom,
        )
        for e in events
    ]


def sessions_in(events: list[Ev], start: datetime, end: datetime) -> list[list[Ev]]:
    by: dict[tuple[str, str], list[Ev]] = defaultdict(list)
    for e in events:
        by[(e.person, e.session)].append(e)
    out = []
    for rows in by.values():
        rows.sort(key=lambda e: e.at)
        if start <= rows[0].at < end:
            out.append(rows)
    return out


def reference_paths(
    sessions: list[list[Ev]],
    *,
    anchor=None,
    previous=False,
    depth=5,
    top_n=10,
    include=None,
    exclude=None,
) -> tuple[dict, dict, int]:
    """(nodes {(step, name): (count, drop_off)}, edges {(src, dst): (count, median s)}, paths)."""
    paths: list[list[Ev]] = []
    for rows in sessions:
        ok = [(include is None or include(e)) and (exclude is None or not exclude(e)) for e in rows]
        if anchor is not None:
            a = next((i for i, e in enumerate(rows) if anchor(e)), None)
        elif previous:
            a = max((i for i in range(len(rows)) if ok[i]), default=None)
        else:
            a = next((i for i in range(len(rows)) if ok[i]), None)
        if a is None:
            continue
        if previous:
            chosen = [rows[a]] + [rows[i] for i in range(a - 1, -1, -1) if ok[i]]
        else:
            chosen = [rows[a]] + [rows[i] for i in range(a + 1, len(rows)) if ok[i]]
        collapsed: list[Ev] = []
        for e in chosen:
            if not collapsed or collapsed[-1].item != e.item:
                collapsed.append(e)
        paths.append(collapsed)
    kept: dict[int, set[str]] = {}
    for k in range(depth + 1):
        counts = Counter(p[k].item for p in paths if len(p) > k)
        ranked = sorted(counts.items(), key=lambda x: (-x[1], x[0]))
        kept[k] = {name for name, _ in ranked[:top_n]} if len(counts) > top_n else set(counts)
    sign = -1 if previous else 1

    def name(p: list[Ev], k: int) -> str:
        return p[k].item if p[k].item in kept[k] else "(other)"

    nodes: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0, 0])
    gaps: dict[tuple[str, str], list[float]] = defaultdict(list)
    for p in paths:
        for k in range(min(len(p), depth + 1)):
            node = nodes[(sign * k, name(p, k))]
            node[0] += 1
            node[1] += len(p) == k + 1
            if k + 1 < min(len(p), depth + 1):
                near = f"{sign * k}_{name(p, k)}"
                far = f"{sign * (k + 1)}_{name(p, k + 1)}"
                key = (far, near) if previous else (near, far)
                gaps[key].append(abs((p[k + 1].at - p[k].at).total_seconds()))
    edges = {key: (len(g), statistics.median(g)) for key, g in gaps.items()}
    return {k: tuple(v) for k, v in nodes.items()}, edges, len(paths)


def check_paths(reply: pb.GetPathsResponse, expected) -> None:
    nodes, edges, count = expected
    assert reply.path_count == count
    got_nodes = {(n.step, n.name): (n.count, n.drop_off_count) for n in reply.nodes}
    assert got_nodes == nodes
    for n in reply.nodes:
        assert n.id == f"{n.step}_{n.name}"
    got_edges = {(e.source_id, e.target_id): e.count for e in reply.edges}
    assert got_edges == {k: v[0] for k, v in edges.items()}
    for e in reply.edges:
        median = e.median_time_between.seconds + e.median_time_between.nanos / 1e9
        assert median == pytest.approx(edges[(e.source_id, e.target_id)][1], abs=1e-6)
    counts = [e.count for e in reply.edges]
    assert counts == sorted(counts, reverse=True)


def selector(kind: str) -> rt.EventSelector:
    return rt.EventSelector(event_type=event_type_pb2.EventType.Value(f"EVENT_TYPE_{kind.upper()}"))


@pytest.fixture
async def loaded(settings):
    start = (datetime.now(UTC) - timedelta(days=5)).replace(microsecond=0)
    events = generate(start)
    async with suite(settings) as s:
        await s.track(track(events))
        await s.applied()
        yield s, events, start, start + timedelta(days=2)


def request(start: datetime, end: datetime, **fields) -> pb.GetPathsRequest:
    r = pb.GetPathsRequest(range=time_range_pb2.TimeRange(), **fields)
    r.range.start_time.FromDatetime(start)
    r.range.end_time.FromDatetime(end)
    return r


async def test_paths_pages_and_sessions_match_the_reference(loaded) -> None:
    s, events, start, end = loaded
    sessions = sessions_in(events, start, end)
    # Without anchor, every session from its first event, 3 items per step (the rest merged).
    reply = await s.reporting.GetPaths(request(start, end, top_n=3), metadata=s.metadata)
    check_paths(reply, reference_paths(sessions, top_n=3))
    assert any(n.name == "(other)" for n in reply.nodes)
    # Anchored on signup, NEXT, without clicks.
    reply = await s.reporting.GetPaths(
        request(start, end, anchor=selector("signup"), exclude_events=[selector("click")], depth=3),
        metadata=s.metadata,
    )
    expected = reference_paths(
        sessions, anchor=lambda e: e.type == "signup", exclude=lambda e: e.type == "click", depth=3
    )
    check_paths(reply, expected)
    assert expected[2] > 10
    # PREVIOUS from the first signup, page views only.
    reply = await s.reporting.GetPaths(
        request(
            start,
            end,
            anchor=selector("signup"),
            direction=rt.PATH_DIRECTION_PREVIOUS,
            include_events=[selector("page_view")],
        ),
        metadata=s.metadata,
    )
    check_paths(
        reply,
        reference_paths(
            sessions,
            anchor=lambda e: e.type == "signup",
            previous=True,
            include=lambda e: e.type == "page_view",
        ),
    )
    assert min(n.step for n in reply.nodes) < -1
    # Session figures.
    stats = reply.sessions
    durations = [(r[-1].at - r[0].at).total_seconds() for r in sessions]
    assert stats.session_count == len(sessions)
    as_seconds = lambda d: d.seconds + d.nanos / 1e9  # noqa: E731
    assert as_seconds(stats.median_duration) == pytest.approx(statistics.median(durations))
    assert as_seconds(stats.average_duration) == pytest.approx(statistics.mean(durations), abs=1e-6)
    p90 = statistics.quantiles(durations, n=10, method="inclusive")[8]
    assert as_seconds(stats.p90_duration) == pytest.approx(p90, abs=1e-6)
    assert stats.average_events_per_session == pytest.approx(
        sum(len(r) for r in sessions) / len(sessions)
    )
    views = [sum(1 for e in r if e.type == "page_view") for r in sessions]
    assert stats.sessions_with_page_views == sum(1 for v in views if v)
    assert stats.bounced_sessions == sum(1 for v in views if v == 1)
    assert stats.bounce_rate == pytest.approx(
        stats.bounced_sessions / stats.sessions_with_page_views
    )
    # Most visited pages.
    in_range = [e for e in events if e.type == "page_view" and start <= e.at < end]
    views_by = Counter(e.item for e in in_range)
    ranked = sorted(views_by.items(), key=lambda x: -x[1])[:10]
    got = [(p.page, p.views) for p in reply.most_visited_pages]
    assert [v for _, v in got] == [v for _, v in ranked]
    assert dict(got) == {k: views_by[k] for k, _ in got}
    for p in reply.most_visited_pages:
        assert p.unique_subjects == len({e.person for e in in_range if e.item == p.page})
        firsts = [[e for e in r if e.type == "page_view"] for r in sessions]
        assert p.entrances == sum(1 for f in firsts if f and f[0].item == p.page)
        assert p.exits == sum(1 for f in firsts if f and f[-1].item == p.page)
        assert p.bounces == sum(1 for f in firsts if len(f) == 1 and f[0].item == p.page)


async def test_brand_filter_and_bad_requests(loaded) -> None:
    s, events, start, end = loaded
    mine = [e for e in events if e.brand == "stacksense"]
    reply = await s.reporting.GetPaths(
        request(start, end, brand_ids=["stacksense"]), metadata=s.metadata
    )
    check_paths(reply, reference_paths(sessions_in(mine, start, end)))
    for bad, field in (
        (request(start, end, depth=11), "depth"),
        (request(start, end, top_n=51), "top_n"),
        (request(end, start), "range"),
        (request(start, end, anchor=rt.EventSelector(event_type=999)), "anchor.event_type"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await s.reporting.GetPaths(bad, metadata=s.metadata)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in (info.value.details() or "")


async def test_journey_timeline_milestones_and_pages(settings) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    day = timedelta(days=1)
    events = [
        event("j0", type="page_view", anonymous_id="anon-j", occurred_at=now - 50 * day,
              marketing={"source": "google", "channel": "paid_search"}, session_id="a"),
        event("j1", type="form_submitted", lead_id="lead-j", occurred_at=now - 45 * day,
              session_id="b"),
        event("j2", type="signup", lead_id="lead-j", occurred_at=now - 44 * day,
              value=(10, 0, "USD"), session_id="b"),
        event("j3", type="meeting_scheduled", lead_id="lead-j", occurred_at=now - 40 * day),
        event("j4", type="purchase", lead_id="lead-j", occurred_at=now - 33 * day,
              value=(99, 500_000_000, "USD"), properties={"plan": "pro"}),
    ] + [
        event(f"jp{i}", type="page_view", lead_id="lead-j", occurred_at=now - (31 + i % 20) * day)
        for i in range(12)
    ] + [
        event("jr", type="click", lead_id="lead-j", occurred_at=now - 20 * day),
    ]  # fmt: skip
    async with suite(settings) as s:
        await s.track(events)
        await s.alias("anon-j", "lead-j")
        await s.applied()
        ask = lambda **f: s.reporting.GetJourney(  # noqa: E731
            pb.GetJourneyRequest(
                subject=subject_pb2.SubjectRef(**f), page=pagination_pb2.PageRequest(page_size=7)
            ),
            metadata=s.metadata,
        )
        reply = await ask(anonymous_id="anon-j")
        assert reply.subject.lead_id == "lead-j"
        assert list(reply.merged_anonymous_ids) == ["anon-j"]
        assert reply.event_count == len(events) and reply.conversion_count == 2
        assert [(m.units, m.nanos, m.currency_code) for m in reply.revenue] == [
            (109, 500_000_000, "USD")
        ]
        kinds = [m.kind for m in reply.milestones]
        assert kinds[0] == rt.MILESTONE_KIND_FIRST_SEEN
        for kind in (
            rt.MILESTONE_KIND_FIRST_TOUCH,
            rt.MILESTONE_KIND_ALIASED,
            rt.MILESTONE_KIND_FIRST_MEETING,
        ):
            assert kind in kinds
        assert kinds.count(rt.MILESTONE_KIND_CONVERSION) == 2
        times = [m.occurred_at.ToDatetime() for m in reply.milestones]
        assert times == sorted(times)
        # 1 event in the last 28 days against 17 before: declining, and 20 days quiet.
        assert (reply.recent_event_count, reply.previous_event_count) == (1, 17)
        assert reply.engagement_trend == rt.ENGAGEMENT_TREND_DECLINING
        codes = [f.code for f in reply.churn_factors]
        assert set(codes) == {"days_since_last_activity", "declining_engagement"}
        assert reply.churn_risk == pytest.approx(sum(f.contribution for f in reply.churn_factors))
        assert 0 < reply.churn_risk < 1
        # The timeline, newest first, in pages of 7.
        seen, token = [], ""
        while True:
            page = await s.reporting.GetJourney(
                pb.GetJourneyRequest(
                    subject=subject_pb2.SubjectRef(lead_id="lead-j"),
                    page=pagination_pb2.PageRequest(page_size=7, page_token=token),
                ),
                metadata=s.metadata,
            )
            seen += [(t.occurred_at.ToDatetime(), t.event_id) for t in page.timeline]
            token = page.page.next_page_token
            if not token:
                break
        assert len(seen) == len(events) == len({i for _, i in seen})
        assert [t for t, _ in seen] == sorted((t for t, _ in seen), reverse=True)
        first = reply.timeline[0]
        assert first.event_id == "jr"
        purchase = next(t for t in seen if t[1] == "j4")
        assert purchase
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await ask(lead_id="nobody")
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
