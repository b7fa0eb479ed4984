"""Scale-out on one machine: two replicas of every service count exactly what one does.

The `leadflow demo` data set (the 371Minds portfolio, fixed seed, `now` fixed for the test)
goes through two suites of processes side by side, each on a database and a bus namespace of
its own, with the example routing configuration (log sinks):

- the reference: one process per service, fed through its ingest;
- the scale-out: two processes per service (ten, sharing one database and one set of streams
  and durable consumers), fed through both ingest replicas in turn, every third batch sent to
  both at the same moment and every fifth sent again at the end.

Once both have caught up (no outbox row unpublished, no consumer message pending), they must
agree on everything that does not depend on the order messages arrive in:

- ingest: every event accepted once (the copies answered DUPLICATE) and stored once;
- scoring: the same leads, events counted per lead and type, lifecycles to the transition
  (times, triggers, events, touchpoints), and scores recomputed by both at the same moment
  (a score decays with time: `ScoreLeads` on both at once);
- attribution: every conversion with the same credits per heuristic model and touchpoint
  (stage-change conversions are keyed by lead, type and time: their ids are scoring's);
- routing: the facts each lead is routed on (profile, consent, grade, temperature, stage:
  scoring's last word) and the brands each lead was routed to (each home rule, and the
  StackSense rule for hot enterprise leads, matches at a trigger of its own: identification,
  the stage leaving new, the crossing into grade C or into hot);
- reporting: events per type and channel, email engagement, lead quality, portfolio metrics
  per brand, and each lead's latest score and stage (scoring's).

Routing decisions themselves are not compared one to one: a lead is routed on each trigger
scoring announces (upward threshold crossings, stage changes), and which intermediate grades
and stages scoring announces depends on how a lead's events were batched and in what order
they arrived (an event arriving after a later one replays the lifecycle; a transition made
only in between was announced and is not retracted). Owners then follow the brand's turn
order. Within each run instead: no lead is routed twice for the same brand, trigger and
detail; a lead whose home rule reads its profile alone is routed once when identified; every
route is one assignment, one `routing.lead.routed` message and one count in reporting; and
each brand's owners are exactly what its strategy gives for its number of assignments taken
one after the other (replicas never took the same turn). In each run, routing and reporting
hold each lead's score as scoring stored it last.

Plumbing, in both runs: each outbox row published once (the stream holds each Nats-Msg-Id
once, at the sequence the row recorded), each durable consumer's inbox holds exactly the
stream messages it subscribes to, no dead letters. Both replicas of every service did work:
their Prometheus endpoints count applied messages (and, for ingest, TrackBatch calls), and
the replicas' counts add up to the inboxes.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import asyncpg
import nats
import pytest
from harness import auth, new_key
from suite_processes import SERVICES, Samples, SuiteProcesses, suite_processes

from leadflow.attribution.v1 import attribution_service_pb2 as apb
from leadflow.attribution.v1 import attribution_service_pb2_grpc, attribution_types_pb2
from leadflow.common.v1 import pagination_pb2, subject_pb2, time_range_pb2
from leadflow.ingest.v1 import ingest_service_pb2 as ipb
from leadflow.ingest.v1 import ingest_service_pb2_grpc
from leadflow.reporting.v1 import reporting_service_pb2 as rpt
from leadflow.reporting.v1 import reporting_service_pb2_grpc
from leadflow.routing.v1 import events_pb2 as routing_events
from leadflow.routing.v1 import routing_service_pb2 as rpb
from leadflow.routing.v1 import routing_service_pb2_grpc, routing_types_pb2
from leadflow.scoring.v1 import scoring_service_pb2 as spb
from leadflow.scoring.v1 import scoring_service_pb2_grpc
from leadflow_attribution.app import SPEC as ATTRIBUTION
from leadflow_demo import dataset
from leadflow_demo.catch_up import wait_until_caught_up
from leadflow_ingest.app import SPEC as INGEST
from leadflow_platform.grpc.client import open_channel
from leadflow_platform.nats import headers as h
from leadflow_platform.nats.streams import BusNames
from leadflow_platform.provision import provision_all
from leadflow_platform.settings import Settings
from leadflow_reporting.app import SPEC as REPORTING
from leadflow_routing.api.mapping import config_to_proto
from leadflow_routing.app import SPEC as ROUTING
from leadflow_routing.domain.config import LOG_SINK, RoutingConfig
from leadflow_routing.domain.document import load_yaml
from leadflow_routing.domain.strategies import BrandState, select_owner
from leadflow_scoring.app import SPEC as SCORING

pytestmark = pytest.mark.integration

SEED = 371
LEADS = 150
BATCH = 100  # events per TrackBatch call
IN_FLIGHT = 3  # calls in flight per suite
READERS = 4  # per-lead reads in flight per suite
TENANT = dataset.TENANT
EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "portfolio-371minds.yaml"
TRACK_BATCH = "/leadflow.ingest.v1.IngestService/TrackBatch"
HEURISTIC = [
    attribution_types_pb2.ATTRIBUTION_MODEL_FIRST_TOUCH,
    attribution_types_pb2.ATTRIBUTION_MODEL_LAST_TOUCH,
    attribution_types_pb2.ATTRIBUTION_MODEL_LINEAR,
    attribution_types_pb2.ATTRIBUTION_MODEL_TIME_DECAY,
    attribution_types_pb2.ATTRIBUTION_MODEL_U_SHAPED,
    attribution_types_pb2.ATTRIBUTION_MODEL_W_SHAPED,
]
IDENTIFIED = routing_types_pb2.ROUTING_TRIGGER_IDENTIFIED
# Brands whose leads the example configuration routes on identification by profile alone.
PROFILE_ROUTED = ("modumind", "epicquest", "ikid")
PROCESS_ENV = {
    # Fifteen processes share the machine's PostgreSQL connections.
    "LEADFLOW_DB_POOL_MIN_SIZE": "1",
    "LEADFLOW_DB_POOL_MAX_SIZE": "4",
    # A lead's grade decaying past a boundary while the suites are read would be rescored
    # by each suite's decay job at its own moment: not during this test.
    "LEADFLOW_SCORING_DECAY_INTERVAL_SECONDS": "3600",
}


def routing_config() -> RoutingConfig:
    """The example portfolio with log sinks, as `leadflow demo` applies it."""
    config = load_yaml(EXAMPLE.read_text())
    return replace(config, brands=tuple(replace(b, sink=LOG_SINK) for b in config.brands))


@contextlib.asynccontextmanager
async def another_environment(admin_url: str, settings: Settings) -> AsyncIterator[Settings]:
    """`settings` on a database and a bus namespace of their own, made and removed as the
    `settings` fixture makes and removes its own."""
    name = f"lf_test_{uuid.uuid4().hex[:12]}"
    namespace = f"t{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield settings.with_overrides(
            database_url=urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}")),
            bus_namespace=namespace,
        )
    finally:
        nc = await nats.connect(settings.nats_url)
        try:
            js = nc.jetstream()
            for info in await js.streams_info():
                if info.config.name.startswith(f"{namespace.upper()}_"):
                    await js.delete_stream(info.config.name)
        finally:
            await nc.close()
        admin = await asyncpg.connect(admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def prepare(settings: Settings) -> str:
    """Migrations and streams; an admin key."""
    await provision_all(settings, [INGEST, SCORING, ATTRIBUTION, ROUTING, REPORTING])
    return await new_key(settings.database_url, TENANT, "admin")


async def configure_routing(suite: SuiteProcesses, key: str) -> None:
    async with open_channel(suite.address("routing")) as channel:
        await routing_service_pb2_grpc.RoutingServiceStub(channel).PutRoutingConfig(
            rpb.PutRoutingConfigRequest(config=config_to_proto(routing_config())),
            metadata=auth(key),
        )


# --- feeding a suite --------------------------------------------------------------------


@dataclass
class Fed:
    """What ingest answered a suite."""

    accepted: Counter[str] = field(default_factory=Counter)  # event id: times accepted
    duplicate: Counter[str] = field(default_factory=Counter)
    rejected: int = 0
    track_calls: int = 0


async def feed(suite: SuiteProcesses, key: str, data: dataset.Dataset, *, retries: bool) -> Fed:
    """Profiles and consent, then the events in batches, call i to ingest replica i mod n.
    With `retries`, every third batch also goes to the next replica at the same moment (a
    client retrying elsewhere while the first still works on it), and every fifth once more
    after all the others."""
    metadata = auth(key)
    fed = Fed()
    async with contextlib.AsyncExitStack() as stack:
        stubs = [
            ingest_service_pb2_grpc.IngestServiceStub(
                await stack.enter_async_context(open_channel(r.address))
            )
            for r in suite.replicas("ingest")
        ]
        people = list(enumerate(zip(data.identifies, data.consents, strict=True)))

        async def person_sender() -> None:
            while people:
                i, (identify, consent) = people.pop(0)
                await stubs[i % len(stubs)].Identify(identify, metadata=metadata, timeout=60)
                await stubs[i % len(stubs)].SetConsent(consent, metadata=metadata, timeout=60)

        await asyncio.gather(*(person_sender() for _ in range(IN_FLIGHT)))

        async def track(stub: Any, batch: ipb.TrackBatchRequest) -> None:
            reply = await stub.TrackBatch(batch, metadata=metadata, timeout=120)
            fed.track_calls += 1
            fed.rejected += reply.rejected
            for result in reply.results:
                if result.status == ipb.EVENT_STATUS_ACCEPTED:
                    fed.accepted[result.event_id] += 1
                elif result.status == ipb.EVENT_STATUS_DUPLICATE:
                    fed.duplicate[result.event_id] += 1

        batches = [
            (b, ipb.TrackBatchRequest(events=data.events[i : i + BATCH]))
            for b, i in enumerate(range(0, len(data.events), BATCH))
        ]
        queue = list(batches)

        async def event_sender() -> None:
            while queue:
                b, batch = queue.pop(0)
                calls = [track(stubs[b % len(stubs)], batch)]
                if retries and b % 3 == 0:
                    calls.append(track(stubs[(b + 1) % len(stubs)], batch))
                await asyncio.gather(*calls)

        await asyncio.gather(*(event_sender() for _ in range(IN_FLIGHT)))
        for b, batch in batches:
            if retries and b % 5 == 0:
                await track(stubs[(b + 1) % len(stubs)], batch)
    return fed


# --- what a suite made of it ------------------------------------------------------------


@dataclass
class Outcome:
    """One suite's answers, in comparable form."""

    counted: dict[str, dict[str, int]] = field(default_factory=dict)  # lead: type: events
    lifecycles: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, Any] = field(default_factory=dict)  # as ScoreLeads gave them
    totals: dict[str, float] = field(default_factory=dict)
    stored: dict[str, Any] = field(default_factory=dict)  # GetScore: (total, grade, temp, stage)
    routing_facts: dict[str, Any] = field(default_factory=dict)
    reporting_facts: dict[str, Any] = field(default_factory=dict)
    credits: dict[tuple[str, str, datetime], Any] = field(default_factory=dict)
    assignments: list[Any] = field(default_factory=list)
    routed: list[routing_events.LeadRouted] = field(default_factory=list)
    engagement: dict[str, Any] = field(default_factory=dict)
    quality: dict[str, Any] = field(default_factory=dict)
    portfolio: dict[str, Any] = field(default_factory=dict)
    plumbing: dict[str, Any] = field(default_factory=dict)

    @property
    def leads(self) -> set[str]:
        return set(self.counted)


async def paged(call: Callable[..., Awaitable[Any]], request: Any, items: str, **kw: Any) -> list:
    """Every item of a paged list RPC."""
    out: list[Any] = []
    request.page.CopyFrom(pagination_pb2.PageRequest(page_size=500))
    while True:
        reply = await call(request, **kw)
        out.extend(getattr(reply, items))
        if not reply.page.next_page_token:
            return out
        request.page.page_token = reply.page.next_page_token


def _at(ts: Any) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def _money(values: Any) -> list[tuple[str, int, int]]:
    return sorted((m.currency_code, m.units, m.nanos) for m in values)


def _lifecycle(reply: spb.GetLifecycleResponse) -> Any:
    return (
        reply.current_stage,
        _at(reply.entered_at),
        [
            (
                t.from_stage,
                t.to_stage,
                _at(t.transitioned_at),
                t.trigger,
                t.triggering_event_id,
                t.time_in_previous_stage.ToTimedelta(),
                list(t.touchpoint_event_ids),
                t.touchpoint_count,
            )
            for t in reply.history
        ],
    )


async def read_outcome(suite: SuiteProcesses, key: str, now: datetime) -> Outcome:
    metadata = auth(key)
    out = Outcome()
    window = time_range_pb2.TimeRange()
    window.start_time.FromDatetime(now - timedelta(days=dataset.HISTORY_DAYS + 2))
    window.end_time.FromDatetime(datetime.now(UTC) + timedelta(hours=1))
    async with (
        open_channel(suite.address("scoring")) as sc,
        open_channel(suite.address("attribution")) as ac,
        open_channel(suite.address("routing")) as rc,
        open_channel(suite.address("reporting")) as pc,
    ):
        scoring = scoring_service_pb2_grpc.ScoringServiceStub(sc)
        attribution = attribution_service_pb2_grpc.AttributionServiceStub(ac)
        routing = routing_service_pb2_grpc.RoutingServiceStub(rc)
        reporting = reporting_service_pb2_grpc.ReportingServiceStub(pc)

        leads = await paged(
            scoring.ListLeads,
            spb.ListLeadsRequest(sort_field=spb.LEAD_SORT_FIELD_LEAD_ID, include_factors=True),
            "leads",
            metadata=metadata,
        )
        prefix = "behavioural.event_points."
        for s in leads:
            out.counted[s.lead_id] = {
                f.rule.removeprefix(prefix): f.count
                for f in s.components.behavioural.factors
                if f.rule.startswith(prefix)
            }

        async def per_lead(lead: str) -> None:
            lifecycle = await scoring.GetLifecycle(
                spb.GetLifecycleRequest(lead_id=lead), metadata=metadata
            )
            out.lifecycles[lead] = _lifecycle(lifecycle)
            stored = (
                await scoring.GetScore(spb.GetScoreRequest(lead_id=lead), metadata=metadata)
            ).score
            out.stored[lead] = (round(stored.total, 2), stored.grade, stored.temperature)
            explained = await routing.ExplainRoute(
                rpb.ExplainRouteRequest(
                    lead_id=lead, trigger=routing_types_pb2.ROUTING_TRIGGER_MANUAL
                ),
                metadata=metadata,
            )
            facts = explained.decision.lead
            out.routing_facts[lead] = (
                facts.home_brand_id,
                facts.segment,
                str(facts.consents),
                (round(facts.score.total, 2), facts.grade, facts.temperature),
                facts.stage,
            )
            journey = await reporting.GetJourney(
                rpt.GetJourneyRequest(
                    subject=subject_pb2.SubjectRef(lead_id=lead),
                    page=pagination_pb2.PageRequest(page_size=1),
                ),
                metadata=metadata,
            )
            out.reporting_facts[lead] = (
                journey.home_brand_id,
                (round(journey.score, 2), journey.grade, journey.temperature),
                journey.stage,
            )
            entries = await paged(
                attribution.GetJourney,
                apb.GetJourneyRequest(subject=subject_pb2.SubjectRef(lead_id=lead)),
                "entries",
                metadata=metadata,
            )
            for entry in entries:
                if entry.WhichOneof("entry") != "conversion":
                    continue
                c = entry.conversion
                reply = await attribution.GetAttribution(
                    apb.GetAttributionRequest(conversion_id=c.conversion_id, models=HEURISTIC),
                    metadata=metadata,
                )
                conversion = (lead, c.conversion_type, _at(c.occurred_at))
                assert conversion not in out.credits, f"{conversion} attributed twice"
                out.credits[conversion] = (
                    _money([c.value]) if c.HasField("value") else [],
                    {
                        a.model: [
                            (t.event_id, t.share_decimal, _money([t.credited_value]))
                            for t in a.credits
                        ]
                        for a in reply.attributions
                    },
                )

        queue = sorted(out.counted)

        async def reader() -> None:
            while queue:
                await per_lead(queue.pop())

        await asyncio.gather(*(reader() for _ in range(READERS)))

        out.assignments = await paged(
            routing.ListAssignments, rpb.ListAssignmentsRequest(), "assignments", metadata=metadata
        )
        engagement = await reporting.GetEngagement(
            rpt.GetEngagementRequest(range=window), metadata=metadata
        )
        out.engagement = {
            "events": (engagement.total_events, engagement.unique_subjects),
            "by_type": sorted(
                (t.event_type, t.custom_event_name, t.events, t.unique_subjects)
                for t in engagement.by_type
            ),
            # Server-assigned sessions (30 minutes of inactivity) depend on the order a
            # subject's events arrive in (ingest: an older event never reopens a session),
            # so they are not compared.
            "by_channel": sorted(
                (c.channel, c.events, c.unique_subjects, c.conversions)
                for c in engagement.by_channel
            ),
            "email": str(engagement.email),
            "daily": [(_at(b.bucket_start), b.count) for b in engagement.daily],
        }
        quality = await reporting.GetLeadQuality(
            rpt.GetLeadQualityRequest(by_brand=True), metadata=metadata
        )
        out.quality = {
            row.brand_id: (
                row.lead_count,
                row.scored_count,
                sorted((g.grade, g.count) for g in row.grades),
                sorted((t.temperature, t.count) for t in row.temperatures),
            )
            for row in [*quality.brands, quality.total]
        }
        portfolio = await reporting.GetPortfolioMetrics(
            rpt.GetPortfolioMetricsRequest(range=window), metadata=metadata
        )
        out.portfolio = {
            row.brand_id: {
                "new_leads": row.new_leads,
                "total_leads": row.total_leads,
                "active_subjects": row.active_subjects,
                "conversions": row.conversions,
                "revenue": _money(row.revenue),
                "mrr": _money(row.mrr),
                "hot_leads": row.hot_leads,
                # Checked against routing's own routes in each run (see the module doc).
                "routed": (row.routed_in, row.routed_out),
            }
            for row in [*portfolio.brands, portfolio.total]
        }
    return out


async def rescore_at_once(
    suites: list[tuple[SuiteProcesses, str, Outcome]], lead_ids: list[str]
) -> None:
    """Every lead recomputed by every suite at the same moment (scores decay with time)."""

    async def rescore(suite: SuiteProcesses, key: str) -> spb.ScoreLeadsResponse:
        async with open_channel(suite.address("scoring", -1)) as channel:
            return await scoring_service_pb2_grpc.ScoringServiceStub(channel).ScoreLeads(
                spb.ScoreLeadsRequest(leads=spb.LeadIdList(lead_ids=lead_ids)),
                metadata=auth(key),
            )

    replies = await asyncio.gather(*(rescore(suite, key) for suite, key, _ in suites))
    for (_, _, outcome), reply in zip(suites, replies, strict=True):
        assert not reply.unknown_lead_ids
        for s in reply.scores:
            outcome.totals[s.lead_id] = s.total
            outcome.scores[s.lead_id] = (
                s.undecayed_total,
                s.grade,
                s.temperature,
                s.stage,
                s.model_version,
                _at(s.last_activity_at),
            )


# --- the messaging invariants -----------------------------------------------------------


def _matches(pattern: str, subject: str) -> bool:
    p, s = pattern.split("."), subject.split(".")
    for i, token in enumerate(p):
        if token == ">":
            return len(s) > i
        if i >= len(s) or token not in ("*", s[i]):
            return False
    return len(p) == len(s)


async def plumbing(settings: Settings) -> tuple[dict[str, Any], list[routing_events.LeadRouted]]:
    """Per schema the outbox against its stream, per durable consumer its inbox against the
    stream messages it subscribes to, dead letters, events stored; and routing's
    `routing.lead.routed` messages."""
    names = BusNames(settings.bus_namespace)
    found: dict[str, Any] = {}
    routed: list[routing_events.LeadRouted] = []
    nc = await nats.connect(settings.nats_url)
    conn = await asyncpg.connect(settings.database_url)
    try:
        js = nc.jetstream()
        for service in SERVICES:
            stream = names.stream(service.upper())
            info = await js.stream_info(stream)
            messages = []
            for seq in range(max(info.state.first_seq, 1), info.state.last_seq + 1):
                msg = await js.get_msg(stream, seq)
                messages.append((seq, msg.subject or "", (msg.headers or {}).get(h.MSG_ID, "")))
                if names.logical_subject(msg.subject or "") == "routing.lead.routed":
                    routed.append(routing_events.LeadRouted.FromString(msg.data or b""))
            outbox = await conn.fetch(
                f"SELECT stream_sequence, message_id, published_at FROM {service}.outbox"
            )
            found[f"{service} outbox"] = {
                "rows": len(outbox),
                "unpublished": sum(r["published_at"] is None for r in outbox),
                "ids twice in the stream": sorted(
                    m for m, n in Counter(m for _, _, m in messages).items() if n > 1
                ),
                "rows = stream": sorted((r["stream_sequence"], r["message_id"]) for r in outbox)
                == [(seq, m) for seq, _, m in messages],
            }
            found[f"{service} dead letters"] = await conn.fetchval(
                f"SELECT count(*) FROM {service}.dead_letters"
            )
            for consumer in await js.consumers_info(stream):
                config = consumer.config
                filters = list(config.filter_subjects or []) or [config.filter_subject or ">"]
                durable = (config.durable_name or "").removeprefix(f"{settings.bus_namespace}-")
                wanted = [
                    (seq, m) for seq, s, m in messages if any(_matches(f, s) for f in filters)
                ]
                inbox = await conn.fetch(
                    f"SELECT stream_sequence, message_id FROM {durable.split('-')[0]}.inbox"
                    " WHERE consumer = $1",
                    durable,
                )
                found[f"{durable} inbox"] = {
                    "rows": len(inbox),
                    "rows = stream": sorted((r["stream_sequence"], r["message_id"]) for r in inbox)
                    == wanted,
                }
        found["ingest events"] = await conn.fetchval(
            "SELECT count(DISTINCT event_id) || '/' || count(*) FROM ingest.events"
        )
    finally:
        await conn.close()
        await nc.close()
    return found, routed


def check_plumbing(name: str, outcome: Outcome, events: int) -> None:
    p = outcome.plumbing
    assert p["ingest events"] == f"{events}/{events}", (name, p["ingest events"])
    for key, value in p.items():
        if key.endswith(" outbox"):
            assert value["rows"] > 0 or key.startswith("reporting"), (name, key, value)
            assert value["unpublished"] == 0, (name, key, value)
            assert value["rows = stream"] and not value["ids twice in the stream"], (
                name,
                key,
                value,
            )
        elif key.endswith(" inbox"):
            assert value["rows = stream"], (name, key, value)
        elif key.endswith(" dead letters"):
            assert value == 0, (name, key, value)


# --- routing, within one run ------------------------------------------------------------


def check_routes(name: str, outcome: Outcome, config: RoutingConfig) -> None:
    """No lead routed twice for one reason; each route one assignment, one message and one
    count in reporting; each brand's owners as its strategy gives them for its number of
    assignments taken one after the other."""
    reasons = Counter((r.lead_id, r.brand_id, r.trigger, r.trigger_detail) for r in outcome.routed)
    assert max(reasons.values()) == 1, (name, [k for k, n in reasons.items() if n > 1])
    assert sorted(r.decision_id for r in outcome.routed) == sorted(
        a.decision_id for a in outcome.assignments
    ), name
    assert Counter((r.brand_id, r.owner.owner_id) for r in outcome.routed) == Counter(
        (a.brand_id, a.owner.owner_id) for a in outcome.assignments
    ), name
    # Identified, a lead is routed once at most per brand; a lead of a brand whose rule at
    # identification reads the profile alone, exactly once, to that brand. (StackSense's
    # reads the score and Vision2Results' the stage, which routing may or may not have
    # heard of from scoring by then.)
    identified = Counter(
        (a.lead_id, a.brand_id) for a in outcome.assignments if a.trigger == IDENTIFIED
    )
    assert max(identified.values()) == 1, name
    for lead, facts in outcome.routing_facts.items():
        if facts[0] in PROFILE_ROUTED:
            assert identified[(lead, facts[0])] == 1, (name, lead)
    by_brand = Counter(a.brand_id for a in outcome.assignments)
    assert outcome.portfolio[""]["routed"][0] == len(outcome.assignments), name
    for brand, n in by_brand.items():
        assert outcome.portfolio[brand]["routed"][0] == n, (name, brand)

    zone = ZoneInfo(config.zone)
    days = {_at(a.assigned_at).astimezone(zone).date() for a in outcome.assignments}
    rules = {r.id: r for r in config.rules}
    for brand_id, n in by_brand.items():
        brand = config.brand(brand_id)
        assert brand is not None
        used = {rules[a.rule_id] for a in outcome.assignments if a.brand_id == brand_id}
        strategies = {r.strategy for r in used}
        if len(strategies) > 1 or len(days) > 1:
            continue  # the order of strategies, or a new day's capacity, would matter
        (rule,) = {(r.strategy, r.fixed_owner_id) for r in used}
        state, expected = BrandState(), Counter[str]()
        for _ in range(n):
            selection, state = select_owner(
                brand, rule[0], state, datetime.now(UTC), fixed_owner_id=rule[1]
            )
            assert selection.owner is not None
            expected[selection.owner.id] += 1
        got = Counter(a.owner.owner_id for a in outcome.assignments if a.brand_id == brand_id)
        assert got == expected, (name, brand_id, rule[0], got, expected)


def untimed(facts: dict[str, tuple]) -> dict[str, tuple]:
    """Facts without the score's total: (total, grade, temperature) -> (grade, temperature)."""
    return {
        lead: tuple(f[1:] if isinstance(f, tuple) else f for f in fact)
        for lead, fact in facts.items()
    }


def routed_brands(outcome: Outcome) -> dict[str, list[str]]:
    """Per lead, the brands it was routed to."""
    brands: dict[str, set[str]] = defaultdict(set)
    for a in outcome.assignments:
        brands[a.lead_id].add(a.brand_id)
    return {lead: sorted(b) for lead, b in brands.items()}


# --- the test ---------------------------------------------------------------------------


async def test_two_replicas_of_every_service_count_exactly_what_one_does(settings, infra, tmp_path):
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    data = dataset.generate(SEED, LEADS, now)
    config = routing_config()

    async with another_environment(infra.admin_url, settings) as scaled_settings:
        one_key, two_key = await asyncio.gather(prepare(settings), prepare(scaled_settings))
        with (
            suite_processes(settings, tmp_path / "one", **PROCESS_ENV) as one,
            suite_processes(scaled_settings, tmp_path / "two", **PROCESS_ENV) as two,
        ):
            for service in SERVICES:
                one.start(service)
                two.start(service, replicas=2)
            await asyncio.gather(one.serving(), two.serving())
            await asyncio.gather(configure_routing(one, one_key), configure_routing(two, two_key))

            fed_one, fed_two = await asyncio.gather(
                feed(one, one_key, data, retries=False), feed(two, two_key, data, retries=True)
            )
            backlogs = await asyncio.gather(
                *(
                    wait_until_caught_up(s.database_url, s.nats_url, timeout=180)
                    for s in (settings, scaled_settings)
                )
            )
            assert all(b.empty for b in backlogs), backlogs

            ref, scaled = await asyncio.gather(
                read_outcome(one, one_key, now), read_outcome(two, two_key, now)
            )
            # The replicas' counters, then the inboxes they count, nothing applied between.
            samples: dict[str, Samples] = {r.name: await r.scrape() for r in two.all_replicas()}
            for outcome, s in ((ref, settings), (scaled, scaled_settings)):
                outcome.plumbing, outcome.routed = await plumbing(s)
            # Last, as it publishes the score changes it makes.
            await rescore_at_once([(one, one_key, ref), (two, two_key, scaled)], sorted(ref.leads))
    compare(data, config, fed_one, fed_two, ref, scaled, samples)


def compare(
    data: dataset.Dataset,
    config: RoutingConfig,
    fed_one: Fed,
    fed_two: Fed,
    ref: Outcome,
    scaled: Outcome,
    samples: dict[str, Samples],
) -> None:
    """The checks of the module doc."""
    sent = {e.event_id for e in data.events}

    # Ingest: every event accepted exactly once, each copy answered DUPLICATE; stored once.
    assert fed_one.rejected == fed_two.rejected == 0
    assert set(fed_one.accepted) == set(fed_two.accepted) == sent
    assert max(fed_one.accepted.values()) == max(fed_two.accepted.values()) == 1
    assert not fed_one.duplicate
    batches = [data.events[i : i + BATCH] for i in range(0, len(data.events), BATCH)]
    again = [b for n, b in enumerate(batches) if n % 3 == 0] + batches[::5]
    assert fed_two.track_calls == len(batches) + len(again)
    assert fed_two.duplicate == Counter(e.event_id for b in again for e in b)
    for name, outcome in (("reference", ref), ("scale-out", scaled)):
        check_plumbing(name, outcome, len(sent))
        check_routes(name, outcome, config)

    # Scoring.
    assert scaled.leads == ref.leads == {i.lead_id for i in data.identifies}
    assert scaled.counted == ref.counted
    assert scaled.lifecycles == ref.lifecycles
    assert scaled.scores == ref.scores
    # The same moment within the time between two calls: the rounding may differ by 0.01.
    assert scaled.totals == pytest.approx(ref.totals, abs=0.011)

    # Attribution.
    assert scaled.credits == ref.credits
    assert {t for _, t, _ in ref.credits} >= {"purchase", "opportunity", "customer"}

    # Routing and reporting read the last word of scoring, whatever order they applied it in.
    for name, outcome in (("reference", ref), ("scale-out", scaled)):
        wrong = {
            lead: (outcome.stored[lead], outcome.routing_facts[lead][3])
            for lead in outcome.stored
            if outcome.routing_facts[lead][3] != outcome.stored[lead]
        }
        assert not wrong, (name, "routing holds an older score", wrong)
        wrong = {
            lead: (outcome.stored[lead], outcome.reporting_facts[lead][1])
            for lead in outcome.stored
            if outcome.reporting_facts[lead][1] != outcome.stored[lead]
        }
        assert not wrong, (name, "reporting holds an older score", wrong)
        stages = {lead: lc[0] for lead, lc in outcome.lifecycles.items()}
        assert {k: v[4] for k, v in outcome.routing_facts.items()} == stages, name
        assert {k: v[2] for k, v in outcome.reporting_facts.items()} == stages, name
    # Across the runs, what does not move with the time a score was computed at (the
    # suites stored their last scores seconds apart: the totals may differ by 0.01).
    assert untimed(scaled.routing_facts) == untimed(ref.routing_facts)
    assert untimed(scaled.reporting_facts) == untimed(ref.reporting_facts)
    assert routed_brands(scaled) == routed_brands(ref)

    # Reporting.
    assert scaled.engagement == ref.engagement
    assert scaled.quality == ref.quality
    assert {
        b: {k: v for k, v in m.items() if k != "routed"} for b, m in scaled.portfolio.items()
    } == {b: {k: v for k, v in m.items() if k != "routed"} for b, m in ref.portfolio.items()}

    # Both replicas of every service did work (TrackBatch calls answered, messages
    # applied), and their counts add up.
    work = {
        replica: s.value(
            "leadflow_rpc_server_requests_total",
            rpc_method=TRACK_BATCH,
            rpc_grpc_status_code="OK",
        )
        if replica.startswith("ingest-")
        else s.value("leadflow_consumer_messages_total", outcome="applied")
        for replica, s in samples.items()
    }
    assert len(work) == 2 * len(SERVICES) and all(n > 0 for n in work.values()), work
    assert work["ingest-0"] + work["ingest-1"] == fed_two.track_calls
    inboxes = {k: v["rows"] for k, v in scaled.plumbing.items() if k.endswith(" inbox")}
    for consumer, rows in inboxes.items():
        durable = consumer.removesuffix(" inbox")
        counted = sum(
            s.value("leadflow_consumer_messages_total", consumer=durable, outcome="applied")
            for replica, s in samples.items()
            if replica.startswith(durable.split("-")[0] + "-")
        )
        assert counted == rows, (durable, counted, rows)
