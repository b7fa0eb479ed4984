"""Reporting tests' independent computations and harness.

`reference_funnel` answers a funnel straight from the proto's words, event by event in
plain Python (no numpy, no shared code with the service), so the service's vectorised
engine can be checked against it.
"""

from __future__ import annotations

import contextlib
import random
import statistics
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from harness import auth, eventually, new_key, running
from ingest_support import event

from leadflow.ingest.v1 import ingest_service_pb2 as ingest_pb
from leadflow.ingest.v1 import ingest_service_pb2_grpc
from leadflow.reporting.v1 import reporting_service_pb2_grpc
from leadflow_ingest.app import SPEC as INGEST_SPEC
from leadflow_platform.grpc.client import open_channel
from leadflow_platform.lifecycle import Runtime
from leadflow_platform.settings import Settings
from leadflow_reporting.app import SPEC as REPORTING_SPEC
from leadflow_reporting.events.consumers import DURABLE

EXCLUSION_BIT = 16


@dataclass(frozen=True)
class RefEvent:
    subject: int
    time: int
    steps: frozenset[int]  # step indices the event matches
    exclusions: frozenset[int] = frozenset()  # exclusion indices it matches
    row: int = 0  # position in the input (ties are taken in input order)


@dataclass
class RefEntry:
    subject: int
    reached: int
    times: list[int]  # one per reached step
    rows: list[int]


@dataclass
class RefFunnel:
    entries: dict[int, RefEntry] = field(default_factory=dict)
    excluded: set[int] = field(default_factory=set)

    def counts(self, steps: int, subjects: Iterable[int] | None = None) -> list[int]:
        chosen = self.entries.values() if subjects is None else [self.entries[s] for s in subjects]
        return [sum(1 for e in chosen if e.reached > k) for k in range(steps)]

    def gaps(self, k: int, subjects: Iterable[int] | None = None) -> list[int]:
        keys = self.entries if subjects is None else subjects
        return [
            self.entries[s].times[k] - self.entries[s].times[k - 1]
            for s in keys
            if self.entries[s].reached > k
        ]

    def median_gap(self, k: int) -> float | None:
        gaps = self.gaps(k)
        return statistics.median(gaps) if gaps else None


def _sequential_path(rows: list[RefEvent], start: int, steps: int, window: int) -> list[int]:
    path = [start]
    t0 = rows[start].time
    for k in range(1, steps):
        prev = rows[path[-1]].time
        nxt = next(
            (
                i
                for i, e in enumerate(rows)
                if e.time > prev and k in e.steps and e.time - t0 <= window
            ),
            None,
        )
        if nxt is None:
            break
        path.append(nxt)
    return path


def _strict_path(rows: list[RefEvent], start: int, steps: int, window: int) -> list[int]:
    path = [start]
    t0 = rows[start].time
    for k in range(1, steps):
        prev = rows[path[-1]].time
        later = [e.time for e in rows if e.time > prev]
        if not later:
            break
        t_next = min(later)
        nxt = next(
            (i for i, e in enumerate(rows) if e.time == t_next and k in e.steps),
            None,
        )
        if nxt is None or t_next - t0 > window:
            break
        path.append(nxt)
    return path


def _any_path(rows: list[RefEvent], start: int, steps: int, window: int) -> list[int]:
    t0 = rows[start].time
    firsts: list[tuple[int, int, int]] = []
    for k in range(steps):
        hit = next(
            (i for i, e in enumerate(rows) if t0 <= e.time <= t0 + window and k in e.steps),
            None,
        )
        if hit is not None:
            firsts.append((rows[hit].time, k, hit))
    return [i for _, _, i in sorted(firsts)]


def reference_funnel(
    events: Sequence[RefEvent],
    *,
    steps: int,
    window: int,
    order: str = "sequential",
    exclusions: Sequence[tuple[int, int, int]] = (),  # (index, from_step, to_step)
) -> RefFunnel:
    by_subject: dict[int, list[RefEvent]] = defaultdict(list)
    for e in events:
        by_subject[e.subject].append(e)
    out = RefFunnel()
    for subject, rows in by_subject.items():
        rows.sort(key=lambda e: (e.time, e.row))
        best: list[int] | None = None
        for start, e in enumerate(rows):
            if order == "any":
                if not e.steps:
                    continue
                path = _any_path(rows, start, steps, window)
            else:
                if 0 not in e.steps:
                    continue
                walk = _strict_path if order == "strict" else _sequential_path
                path = walk(rows, start, steps, window)
            if best is None or len(path) > len(best):
                best = path
        if best is None:
            continue
        t0 = rows[best[0]].time
        excluded = False
        for index, from_step, to_step in exclusions:
            if len(best) <= from_step:
                continue
            lo = rows[best[from_step]].time
            for x in rows:
                if index not in x.exclusions or x.time <= lo:
                    continue
                if len(best) > to_step:
                    if x.time < rows[best[to_step]].time:
                        excluded = True
                elif x.time - t0 <= window:
                    excluded = True
        if excluded:
            out.excluded.add(subject)
            continue
        out.entries[subject] = RefEntry(
            subject, len(best), [rows[i].time for i in best], [rows[i].row for i in best]
        )
    return out


# ---------------------------------------------------------------------------------------
# Ingest and reporting running together
# ---------------------------------------------------------------------------------------

TENANT = "371minds"


@dataclass
class Suite:
    """Ingest and reporting in this process, with clients and an admin key."""

    ingest_runtime: Runtime
    reporting_runtime: Runtime
    ingest: ingest_service_pb2_grpc.IngestServiceStub
    reporting: reporting_service_pb2_grpc.ReportingServiceStub
    key: str

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return auth(self.key)

    async def track(self, events: Sequence[Any], batch: int = 500) -> None:
        for i in range(0, len(events), batch):
            reply = await self.ingest.TrackBatch(
                ingest_pb.TrackBatchRequest(events=list(events[i : i + batch])),
                metadata=self.metadata,
            )
            assert reply.rejected == 0, [r.violations for r in reply.results if r.violations]

    async def alias(self, anonymous_id: str, lead_id: str) -> None:
        await self.ingest.Alias(
            ingest_pb.AliasRequest(anonymous_id=anonymous_id, lead_id=lead_id),
            metadata=self.metadata,
        )

    async def erase(self, lead_id: str) -> None:
        await self.ingest.EraseSubject(
            ingest_pb.EraseSubjectRequest(lead_id=lead_id, reason="test erasure"),
            metadata=self.metadata,
        )

    async def applied(self) -> None:
        """Wait until reporting has applied every message ingest published."""
        bus = self.ingest_runtime.bus

        async def caught_up() -> bool:
            pending = await self.ingest_runtime.pool.fetchval(
                "SELECT count(*) FROM outbox WHERE published_at IS NULL"
            )
            if pending:
                return False
            stream = await bus.js.stream_info(bus.stream_name("INGEST"))
            info = await bus.js.consumer_info(bus.stream_name("INGEST"), bus.consumer_name(DURABLE))
            return info.ack_floor.stream_seq >= stream.state.last_seq

        await eventually(caught_up, timeout=60)

    @property
    def pool(self) -> Any:
        """A pool on the reporting schema."""
        return self.reporting_runtime.pool


@contextlib.asynccontextmanager
async def suite(settings: Settings) -> AsyncIterator[Suite]:
    key = await new_key(settings.database_url, TENANT, "admin")
    async with contextlib.AsyncExitStack() as stack:
        ingest_runtime = await stack.enter_async_context(running(INGEST_SPEC, settings))
        reporting_runtime = await stack.enter_async_context(running(REPORTING_SPEC, settings))
        ingest_channel = await stack.enter_async_context(
            open_channel(f"127.0.0.1:{ingest_runtime.port}")
        )
        reporting_channel = await stack.enter_async_context(
            open_channel(f"127.0.0.1:{reporting_runtime.port}")
        )
        yield Suite(
            ingest_runtime,
            reporting_runtime,
            ingest_service_pb2_grpc.IngestServiceStub(ingest_channel),
            reporting_service_pb2_grpc.ReportingServiceStub(reporting_channel),
            key,
        )


# ---------------------------------------------------------------------------------------
# A generated portfolio with known conversion behaviour
# ---------------------------------------------------------------------------------------

BRANDS = ("modumind", "stacksense", "epicquest")
# source -> (P(form | visit), P(signup | form), P(purchase | signup))
SOURCES = {
    "email": (0.6, 0.6, 0.5),
    "google": (0.5, 0.4, 0.3),
    "twitter": (0.3, 0.2, 0.1),
    "direct": (0.4, 0.5, 0.4),
}


@dataclass(frozen=True)
class GenEvent:
    event_id: str
    person: str  # the person as reporting counts them once every alias is applied
    lead_id: str
    anonymous_id: str
    type: str
    at: datetime
    brand: str
    source: str
    plan: str


@dataclass
class Generated:
    start: datetime
    end: datetime
    events: list[GenEvent]
    aliases: list[tuple[str, str]]  # (anonymous id, lead id)

    def track_events(self) -> list[Any]:
        return [
            event(
                e.event_id,
                type=e.type,
                lead_id=e.lead_id,
                anonymous_id=e.anonymous_id,
                brand_id=e.brand,
                occurred_at=e.at,
                marketing={"source": e.source, "channel": e.source},
                properties={"plan": e.plan},
            )
            for e in self.events
        ]


def generate(subjects: int, *, seed: int = 7, start: datetime | None = None) -> Generated:
    """Subjects visit (page views), then maybe submit a form, sign up and buy, with the
    conversion rates of their source; clicks and downloads fall in between (noise, strict
    breakers, exclusions). Some subjects are anonymous, some of those aliased to a lead."""
    rng = random.Random(seed)
    day = timedelta(days=1)
    start = start or (datetime.now(UTC) - 40 * day).replace(microsecond=0)
    end = start + 30 * day
    events: list[GenEvent] = []
    aliases: list[tuple[str, str]] = []
    for n in range(subjects):
        source = rng.choice(list(SOURCES))
        brand = BRANDS[n % len(BRANDS)]
        kind = rng.random()
        lead, anon = f"lead-{n}", f"anon-{n}"
        if kind < 0.7:
            ids = [(lead, "")] * 2
            person = lead
        elif kind < 0.85:
            ids = [("", anon), (lead, "")]  # anonymous first, then known: aliased
            aliases.append((anon, lead))
            person = lead
        else:
            ids = [("", anon)] * 2
            person = anon
        events += _person(rng, n, person, ids, brand, source, start)
    return Generated(start, end, events, aliases)


def _person(
    rng: random.Random,
    n: int,
    person: str,
    ids: list[tuple[str, str]],
    brand: str,
    source: str,
    start: datetime,
) -> list[GenEvent]:
    """One person's events: ids[0] (lead, anonymous) before the form, ids[1] from it on."""
    events: list[GenEvent] = []
    plan = rng.choice(["free", "pro"])

    def add(kind: str, at: datetime, part: int) -> None:
        lead_id, anonymous_id = ids[part]
        events.append(
            GenEvent(
                f"e{n}-{len(events)}", person, lead_id, anonymous_id, kind, at, brand, source, plan
            )
        )

    p_form, p_signup, p_buy = SOURCES[source]
    t = start + timedelta(seconds=rng.randrange(int(30 * 86400 * 0.9)))
    for _ in range(rng.randint(1, 3)):
        add("page_view", t, 0)
        if rng.random() < 0.3:
            add("click", t + timedelta(seconds=rng.randint(1, 600)), 0)
        t += timedelta(seconds=rng.randint(60, 3 * 86400))
    if rng.random() < 0.1:
        add("content_downloaded", t, 0)
        t += timedelta(seconds=rng.randint(1, 3600))
    if rng.random() >= p_form:
        return events
    add("form_submitted", t, 1)
    if rng.random() < 0.2:
        add("click", t + timedelta(seconds=rng.randint(1, 60)), 1)
    # Some signups come late: past a 7-day window, some past 14 days.
    late = rng.choice([rng.randint(1, 86400), rng.randint(86400, 12 * 86400)])
    t += timedelta(seconds=late)
    if rng.random() >= p_signup:
        return events
    add("signup", t, 1)
    t += timedelta(seconds=rng.randint(60, 5 * 86400))
    if rng.random() < p_buy:
        add("purchase", t, 1)
    return events


def reference_over(
    data: Generated,
    steps: Sequence[Callable[[GenEvent], bool]],
    *,
    window: timedelta,
    order: str = "sequential",
    exclusions: Sequence[tuple[Callable[[GenEvent], bool], int, int]] = (),
    brands: Sequence[str] = (),
) -> tuple[RefFunnel, dict[int, GenEvent]]:
    """The reference funnel over the generated events (persons numbered), with the events
    by row so breakdown values can be read from them."""
    people: dict[str, int] = {}
    rows: list[RefEvent] = []
    by_row: dict[int, GenEvent] = {}
    for e in data.events:
        if not data.start <= e.at < data.end or (brands and e.brand not in brands):
            continue
        matched = frozenset(k for k, s in enumerate(steps) if s(e))
        excluded = frozenset(j for j, (s, _, _) in enumerate(exclusions) if s(e))
        if order != "strict" and not matched and not excluded:
            continue
        row = len(rows)
        by_row[row] = e
        rows.append(
            RefEvent(
                people.setdefault(e.person, len(people)),
                int(e.at.timestamp() * 1_000_000),
                matched,
                excluded,
                row,
            )
        )
    ref = reference_funnel(
        rows,
        steps=len(steps),
        window=int(window.total_seconds() * 1_000_000),
        order=order,
        exclusions=[(j, lo, hi) for j, (_, lo, hi) in enumerate(exclusions)],
    )
    return ref, by_row


# ---------------------------------------------------------------------------------------
# Ingest, scoring, attribution and reporting running together
# ---------------------------------------------------------------------------------------

# Every durable consumer of the full suite, as (stream, durable).
FULL_CONSUMERS = (
    ("INGEST", "scoring-ingest-events"),
    ("INGEST", "attribution-ingest-events"),
    ("SCORING", "attribution-scoring-stages"),
    ("INGEST", DURABLE),
    ("SCORING", "reporting-scoring-events"),
    ("ATTRIBUTION", "reporting-attribution-events"),
)


@dataclass
class FullSuite:
    """Ingest, scoring, attribution and reporting in this process (reporting reads the
    other three services' events only)."""

    upstream: Any  # attribution_support.Suite: ingest, scoring and attribution
    reporting_runtime: Runtime
    reporting: reporting_service_pb2_grpc.ReportingServiceStub

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return self.upstream.metadata

    async def track(self, events: Sequence[Any], batch: int = 500) -> None:
        for i in range(0, len(events), batch):
            await self.upstream.track(*events[i : i + batch])

    async def applied(self) -> None:
        """Every outbox relayed and every consumer idle, twice in a row (each service's
        events feed the next)."""
        runtimes = (
            self.upstream.ingest_runtime,
            self.upstream.scoring_runtime,
            *self.upstream.attribution_runtimes,
        )
        bus = self.upstream.ingest_runtime.bus

        async def caught_up() -> bool:
            for runtime in runtimes:
                if await runtime.pool.fetchval(
                    "SELECT count(*) FROM outbox WHERE published_at IS NULL"
                ):
                    return False
            for stream, durable in FULL_CONSUMERS:
                info = await bus.js.consumer_info(
                    bus.stream_name(stream), bus.consumer_name(durable)
                )
                if info.num_pending or info.num_ack_pending:
                    return False
            return True

        for _ in range(3):
            await eventually(caught_up, timeout=60)

    @property
    def pool(self) -> Any:
        return self.reporting_runtime.pool


@contextlib.asynccontextmanager
async def full_suite(settings: Settings) -> AsyncIterator[FullSuite]:
    from attribution_support import suite as attribution_suite

    async with contextlib.AsyncExitStack() as stack:
        upstream = await stack.enter_async_context(attribution_suite(settings))
        runtime = await stack.enter_async_context(running(REPORTING_SPEC, settings))
        channel = await stack.enter_async_context(open_channel(f"127.0.0.1:{runtime.port}"))
        yield FullSuite(upstream, runtime, reporting_service_pb2_grpc.ReportingServiceStub(channel))


# ---------------------------------------------------------------------------------------
# KPI alerts
# ---------------------------------------------------------------------------------------


class MovableClock:
    """A reporting clock (leadflow_reporting.app.spec(clock)): the real time until a test
    sets `now` to close alert periods without waiting for them."""

    def __init__(self) -> None:
        self.now: datetime | None = None

    def __call__(self) -> datetime:
        return self.now or datetime.now(UTC)


async def published_alerts(settings: Settings) -> list[tuple[str, Any]]:
    """Every `reporting.alert.raised` message in the REPORTING stream, in stream order:
    (Nats-Msg-Id, decoded AlertRaised)."""
    import nats
    import nats.js.errors

    from leadflow.reporting.v1 import events_pb2 as reporting_events
    from leadflow_platform.nats import headers as h
    from leadflow_platform.nats.streams import BusNames

    names = BusNames(settings.bus_namespace)
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        stream = names.stream("REPORTING")
        info = await js.stream_info(stream)
        out: list[tuple[str, Any]] = []
        if info.state.messages == 0:
            return out
        for seq in range(max(info.state.first_seq, 1), info.state.last_seq + 1):
            try:
                msg = await js.get_msg(stream, seq)
            except nats.js.errors.NotFoundError:
                continue
            if names.logical_subject(msg.subject or "") != "reporting.alert.raised":
                continue
            decoded = reporting_events.AlertRaised.FromString(msg.data or b"")
            out.append(((msg.headers or {}).get(h.MSG_ID, ""), decoded))
        return out
    finally:
        await nc.close()
