"""Attribution end to end: events through ingest (and stage changes through scoring),
credits read back over gRPC, events published through attribution's outbox."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import grpc
import pytest
from attribution_support import published
from harness import auth, eventually, new_key
from ingest_support import event, now

from leadflow.attribution.v1 import attribution_service_pb2 as pb
from leadflow.attribution.v1 import attribution_types_pb2 as types
from leadflow.common.v1 import lead_pb2
from leadflow.ingest.v1 import events_pb2 as ingest_events
from leadflow.ingest.v1 import ingest_service_pb2 as ingest_pb
from leadflow.scoring.v1 import scoring_service_pb2 as scoring_pb
from leadflow_platform.nats import headers as h

pytestmark = pytest.mark.integration

M = types
FIRST, LAST, LINEAR, DECAY, U, W = (
    M.ATTRIBUTION_MODEL_FIRST_TOUCH,
    M.ATTRIBUTION_MODEL_LAST_TOUCH,
    M.ATTRIBUTION_MODEL_LINEAR,
    M.ATTRIBUTION_MODEL_TIME_DECAY,
    M.ATTRIBUTION_MODEL_U_SHAPED,
    M.ATTRIBUTION_MODEL_W_SHAPED,
)


def credits_of(reply: pb.GetAttributionResponse, model: int) -> list[tuple[str, str, str]]:
    """(event id, share, credited value) per position under `model`."""
    (attribution,) = [a for a in reply.attributions if a.model == model]
    return [
        (
            c.event_id,
            c.share_decimal,
            str(Decimal(c.credited_value.units) + Decimal(c.credited_value.nanos) / 10**9)
            if c.HasField("credited_value")
            else "",
        )
        for c in attribution.credits
    ]


def touches(lead: str, start, channels: list[tuple[str, str]], step=timedelta(days=1)):
    """Touchpoint events `lead-tN`, one per `step`, with (channel, campaign)."""
    return [
        event(
            f"{lead}-t{i}",
            type="ad_clicked" if channel == "paid_search" else "page_view",
            lead_id=lead,
            occurred_at=start + i * step,
            marketing={"channel": channel, "source": channel + "-src", "campaign": campaign},
        )
        for i, (channel, campaign) in enumerate(channels)
    ]


async def test_a_purchase_is_credited_under_every_heuristic_model(suite):
    start = now() - timedelta(days=4)
    journey = touches(
        "lead-a", start, [("paid_search", "spring"), ("email", "spring"), ("organic_social", "")]
    )
    purchase = event(
        "lead-a-buy",
        type="purchase",
        lead_id="lead-a",
        occurred_at=start + timedelta(days=3),
        value=(100, 0, "USD"),
    )
    await suite.track(*journey, purchase)
    await suite.applied()

    reply = await suite.attribution_of("lead-a-buy")
    assert reply.conversion.conversion_type == "purchase"
    assert reply.conversion.value.units == 100 and reply.conversion.value.currency_code == "USD"
    assert [t.touchpoint.event_id for t in reply.touchpoints] == [
        "lead-a-t0",
        "lead-a-t1",
        "lead-a-t2",
    ]
    assert [list(t.roles) for t in reply.touchpoints] == [
        [types.TOUCH_ROLE_FIRST],
        [types.TOUCH_ROLE_MIDDLE],
        [types.TOUCH_ROLE_LAST],
    ]
    assert [a.model for a in reply.attributions] == list(range(1, 9))[: len(reply.attributions)]
    assert set(reply.pending_models) | {a.model for a in reply.attributions} == set(range(1, 9))
    ids = ["lead-a-t0", "lead-a-t1", "lead-a-t2"]
    assert credits_of(reply, FIRST) == [
        (ids[0], "1.000000000000000000", "100"),
        (ids[1], "0.000000000000000000", "0"),
        (ids[2], "0.000000000000000000", "0"),
    ]
    assert [c[2] for c in credits_of(reply, LAST)] == ["0", "0", "100"]
    assert credits_of(reply, LINEAR) == [
        (ids[0], "0.333333333333333334", "33.34"),
        (ids[1], "0.333333333333333333", "33.33"),
        (ids[2], "0.333333333333333333", "33.33"),
    ]
    assert [c[2] for c in credits_of(reply, U)] == ["40", "20", "40"]
    assert [c[2] for c in credits_of(reply, W)] == ["40", "20", "40"]  # no opportunity: U
    decay = credits_of(reply, DECAY)
    assert sum(Decimal(c[1]) for c in decay) == 1
    assert sum(Decimal(c[2]) for c in decay) == 100
    assert Decimal(decay[0][2]) < Decimal(decay[1][2]) < Decimal(decay[2][2])

    # The same credits went out through the outbox, once.
    events = await eventually(
        lambda: _attributed(suite, "lead-a-buy"),
    )
    (message_id, message) = events[0]
    assert len(events) == 1 and message.revision == 1
    assert message_id == message.metadata.event_id
    assert [a.model for a in message.attributions] == [FIRST, LAST, LINEAR, DECAY, U, W]
    linear = next(a for a in message.attributions if a.model == LINEAR)
    assert [c.share_decimal for c in linear.credits] == [c[1] for c in credits_of(reply, LINEAR)]

    # Another tenant never sees it.
    other = await new_key(suite.settings.database_url, "other-portfolio", "read")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await suite.attribution.GetAttribution(
            pb.GetAttributionRequest(conversion_id="lead-a-buy"), metadata=auth(other)
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def _attributed(suite, conversion_id: str):
    return [
        (mid, m)
        for mid, m in await published(suite.settings)
        if m.conversion.conversion_id == conversion_id
    ]


async def test_a_stage_change_to_opportunity_moves_w_shaped_credit(suite):
    at = now()
    past = touches("lead-w", at - timedelta(days=2), [("paid_search", "q1"), ("email", "q1")])
    future = [
        event(
            f"lead-w-f{i}",
            lead_id="lead-w",
            occurred_at=at + timedelta(minutes=1 + i),
            marketing={"channel": channel},
        )
        for i, channel in enumerate(["organic_social", "referral"])
    ]
    signup = event(
        "lead-w-signup", type="signup", lead_id="lead-w", occurred_at=at + timedelta(minutes=3)
    )
    await suite.track(*past, *future, signup)
    await suite.applied()
    before = await suite.attribution_of("lead-w-signup", models=[W])
    assert [c[1] for c in credits_of(before, W)] == [
        "0.400000000000000000",
        "0.100000000000000000",
        "0.100000000000000000",
        "0.400000000000000000",
    ]

    await suite.scoring.TransitionStage(
        scoring_pb.TransitionStageRequest(
            lead_id="lead-w", to_stage=lead_pb2.LIFECYCLE_STAGE_OPPORTUNITY, reason="demo booked"
        ),
        metadata=suite.metadata,
    )
    await suite.applied()
    after = await suite.attribution_of("lead-w-signup", models=[W])
    assert [c[1] for c in credits_of(after, W)] == [
        "0.300000000000000000",
        "0.300000000000000000",
        "0.100000000000000000",
        "0.300000000000000000",
    ]
    assert types.TOUCH_ROLE_OPPORTUNITY in after.touchpoints[1].roles
    revisions = [m.revision for _, m in await _attributed(suite, "lead-w-signup")]
    assert revisions == [1, 2]

    # Entering opportunity is itself a conversion (a default conversion type).
    journey = await suite.attribution.GetJourney(
        pb.GetJourneyRequest(subject={"lead_id": "lead-w"}), metadata=suite.metadata
    )
    kinds = [e.WhichOneof("entry") for e in journey.entries]
    stages = [e.stage_change.to_stage for e in journey.entries if e.HasField("stage_change")]
    assert kinds.count("touchpoint") == 4
    assert stages[-1] == lead_pb2.LIFECYCLE_STAGE_OPPORTUNITY
    conversions = [
        e.conversion.conversion_type for e in journey.entries if e.HasField("conversion")
    ]
    assert sorted(conversions) == ["opportunity", "signup"]


async def test_redelivered_and_duplicate_events_never_count_twice(suite):
    start = now() - timedelta(days=3)
    batch = [
        *touches("lead-d", start, [("email", "x"), ("referral", "y")]),
        event("lead-d-buy", type="purchase", lead_id="lead-d",
              occurred_at=start + timedelta(days=2), value=(50, 0, "EUR")),
    ]  # fmt: skip
    await suite.track(*batch)
    await suite.track(*batch)  # the same event ids again: ingest stores them once
    await suite.applied()
    # A copy of what ingest published, under another message id (as a relay that lost its
    # bookkeeping beyond the duplicate window would send): attribution's rows make it a no-op.
    recorded = ingest_events.EventsRecorded()
    recorded.metadata.event_id = "replayed-batch"
    recorded.metadata.tenant_id = "371minds"
    async with suite.ingest_runtime.pool.acquire() as conn:
        payloads = await conn.fetch(
            "SELECT payload FROM outbox WHERE subject = 'ingest.event.recorded'"
        )
    for row in payloads:
        recorded.events.extend(
            ingest_events.EventsRecorded.FromString(bytes(row["payload"])).events
        )
    await suite.ingest_runtime.bus.publish(
        "ingest.event.recorded",
        recorded.SerializeToString(),
        {
            h.MSG_ID: "replayed-batch",
            h.TENANT: "371minds",
            h.EVENT_TYPE: recorded.DESCRIPTOR.full_name,
        },
    )
    await suite.applied()

    counts = await suite.pool.fetchrow(
        "SELECT (SELECT count(*) FROM touchpoints) AS t, (SELECT count(*) FROM conversions"
        " WHERE origin = 'event') AS c, (SELECT count(*) FROM credits WHERE conversion_id ="
        " 'lead-d-buy') AS k"
    )
    assert (counts["t"], counts["c"], counts["k"]) == (2, 1, 12)
    assert [m.revision for _, m in await _attributed(suite, "lead-d-buy")] == [1]
    summary = await suite.attribution.Summarize(
        pb.SummarizeRequest(
            dimension=types.ATTRIBUTION_DIMENSION_CHANNEL,
            range={
                "start_time": _ts(start - timedelta(days=1)),
                "end_time": _ts(now() + timedelta(days=1)),
            },
            model=LINEAR,
            conversion_types=["purchase"],
        ),
        metadata=suite.metadata,
    )
    assert summary.conversion_count == 1
    assert {r.dimension_value: r.credited_conversions for r in summary.rows} == {
        "email": 0.5,
        "referral": 0.5,
    }
    assert [(v.currency_code, v.units) for v in summary.total_values] == [("EUR", 50)]


def _nonzero(values):
    return [(v.currency_code, v.units) for v in values if v.units or v.nanos]


def _ts(value):
    from ingest_support import ts

    return ts(value)


async def test_erasure_removes_every_row_of_the_subject(suite):
    start = now() - timedelta(days=3)
    await suite.track(
        event("anon-e-t0", anonymous_id="visitor-e", occurred_at=start, marketing={"channel": "display"}),
        *touches("lead-e", start + timedelta(hours=1), [("email", "")]),
        event("lead-e-buy", type="purchase", lead_id="lead-e",
              occurred_at=start + timedelta(days=1), value=(20, 0, "USD")),
        *touches("lead-keep", start, [("email", "")]),
        event("lead-keep-buy", type="signup", lead_id="lead-keep", occurred_at=start + timedelta(days=1)),
    )  # fmt: skip
    await suite.ingest.Alias(
        ingest_pb.AliasRequest(anonymous_id="visitor-e", lead_id="lead-e"), metadata=suite.metadata
    )
    await suite.applied()
    merged = await suite.attribution_of("lead-e-buy", models=[LINEAR])
    assert [t.touchpoint.event_id for t in merged.touchpoints] == ["anon-e-t0", "lead-e-t0"]

    await suite.ingest.EraseSubject(
        ingest_pb.EraseSubjectRequest(lead_id="lead-e", reason="gdpr request"),
        metadata=suite.metadata,
    )
    await suite.applied()
    left = await suite.pool.fetchval(
        "SELECT (SELECT count(*) FROM touchpoints WHERE lead_id = 'lead-e'"
        " OR anonymous_id = 'visitor-e' OR subject_key LIKE '%-e')"
        " + (SELECT count(*) FROM conversions WHERE lead_id = 'lead-e' OR subject_key LIKE '%-e')"
        " + (SELECT count(*) FROM credits WHERE conversion_id = 'lead-e-buy')"
        " + (SELECT count(*) FROM stage_changes WHERE lead_id = 'lead-e')"
        " + (SELECT count(*) FROM aliases WHERE lead_id = 'lead-e')"
        " + (SELECT count(*) FROM outbox WHERE position('lead-e'::bytea IN payload) > 0"
        "    OR position('visitor-e'::bytea IN payload) > 0)"
    )
    assert left == 0
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await suite.attribution_of("lead-e-buy")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    # Someone else is untouched.
    kept = await suite.attribution_of("lead-keep-buy", models=[LINEAR])
    assert len(kept.touchpoints) == 1


async def test_summarize_and_compare_models(suite):
    start = now() - timedelta(days=5)
    await suite.track(
        *touches("lead-s1", start, [("paid_search", "a"), ("email", "b")]),
        event("lead-s1-buy", type="purchase", lead_id="lead-s1",
              occurred_at=start + timedelta(days=2), value=(90, 0, "USD")),
        *touches("lead-s2", start, [("email", "b")]),
        event("lead-s2-buy", type="purchase", lead_id="lead-s2",
              occurred_at=start + timedelta(days=1), value=(1000, 0, "JPY")),
        event("lead-s3-signup", type="signup", lead_id="lead-s3", occurred_at=start),
    )  # fmt: skip
    await suite.applied()
    window = {"start_time": _ts(start - timedelta(days=1)), "end_time": _ts(now())}
    request = {
        "dimension": types.ATTRIBUTION_DIMENSION_CHANNEL,
        "range": window,
        "conversion_types": ["purchase", "signup"],
    }
    first = await suite.attribution.Summarize(
        pb.SummarizeRequest(**request, model=FIRST), metadata=suite.metadata
    )
    assert first.conversion_count == 3
    rows = {r.dimension_value: r for r in first.rows}
    assert set(rows) == {"paid_search", "email", "(unattributed)"}
    assert rows["paid_search"].credited_conversions == 1
    assert _nonzero(rows["paid_search"].credited_values) == [("USD", 90)]
    assert _nonzero(rows["email"].credited_values) == [("JPY", 1000)]
    assert rows["(unattributed)"].credited_conversions == 1
    assert [(v.currency_code, v.units) for v in first.total_values] == [("JPY", 1000), ("USD", 90)]

    compared = await suite.attribution.CompareModels(
        pb.CompareModelsRequest(**request, models=[FIRST, LAST, LINEAR]), metadata=suite.metadata
    )
    assert list(compared.models) == [FIRST, LAST, LINEAR]
    table = {r.dimension_value: [c.credited_conversions for c in r.credits] for r in compared.rows}
    assert table == {
        "paid_search": [1.0, 0.0, 0.5],
        "email": [1.0, 2.0, 1.5],
        "(unattributed)": [1.0, 1.0, 1.0],
    }
    # USD and JPY credits are never added together.
    email = next(r for r in compared.rows if r.dimension_value == "email")
    assert [(v.currency_code, v.units, v.nanos) for v in email.credits[2].credited_values] == [
        ("JPY", 1000, 0),
        ("USD", 45, 0),
    ]

    # Paging: one row per page, the tokens walk the rows in order.
    seen = []
    token = ""
    while True:
        page = await suite.attribution.Summarize(
            pb.SummarizeRequest(**request, model=FIRST, page={"page_size": 1, "page_token": token}),
            metadata=suite.metadata,
        )
        seen += [r.dimension_value for r in page.rows]
        token = page.page.next_page_token
        if not token:
            break
    assert seen == [r.dimension_value for r in first.rows]


async def test_data_driven_models_are_fitted_by_the_job(suite):
    start = now() - timedelta(days=5)
    batch = []
    for i in range(6):
        lead = f"lead-m{i}"
        channels = [("email", ""), ("paid_search", "")] if i % 2 else [("display", "")]
        batch += touches(lead, start, channels, step=timedelta(hours=1))
        if i % 2:
            batch.append(event(f"{lead}-buy", type="signup", lead_id=lead,
                               occurred_at=start + timedelta(hours=3), value=(10, 0, "USD")))  # fmt: skip
    await suite.track(*batch)
    await suite.applied()
    request = pb.SummarizeRequest(
        dimension=types.ATTRIBUTION_DIMENSION_CHANNEL,
        range={"start_time": _ts(start - timedelta(days=1)), "end_time": _ts(now())},
        model=M.ATTRIBUTION_MODEL_MARKOV,
    )
    first = await suite.attribution.Summarize(request, metadata=suite.metadata)
    assert first.pending and not first.rows

    async def fitted():
        reply = await suite.attribution.Summarize(request, metadata=suite.metadata)
        return None if reply.pending else reply

    reply = await eventually(fitted, timeout=20)
    assert reply.fit.journey_count == 6 and reply.fit.converting_journey_count == 3
    assert reply.fit.markov_order == 1 and not reply.fit.stale
    credited = {r.dimension_value: r.credited_conversions for r in reply.rows}
    # display never converts: no credit; the two converting channels share 3 conversions.
    assert credited.get("display", 0.0) == 0.0
    assert credited["email"] + credited["paid_search"] == pytest.approx(3.0)
    usd = sum(
        Decimal(v.units) + Decimal(v.nanos) / 10**9 for r in reply.rows for v in r.credited_values
    )
    assert usd == 30

    # New data makes the cached fit stale; it is still served, flagged.
    await suite.track(*touches("lead-late", start, [("display", "")]))
    await suite.applied()
    stale = await suite.attribution.Summarize(request, metadata=suite.metadata)
    assert stale.fit.stale and not stale.pending

    # GetAttribution of one conversion under the tenant's rolling Markov fit.
    async def attributed():
        reply = await suite.attribution_of("lead-m1-buy", models=[M.ATTRIBUTION_MODEL_SHAPLEY])
        return None if reply.pending_models else reply

    one = await eventually(attributed, timeout=20)
    shares = [Decimal(c.share_decimal) for c in one.attributions[0].credits]
    assert sum(shares) == 1 and len(shares) == 2


@pytest.mark.parametrize(
    ("method", "message", "field"),
    [
        ("GetAttribution", pb.GetAttributionRequest(), "conversion_id"),
        ("GetAttribution", pb.GetAttributionRequest(conversion_id="x", models=[0]), "models[0]"),
        ("GetAttribution", pb.GetAttributionRequest(conversion_id="x", models=[1, 1]), "models[1]"),
        (
            "GetAttribution",
            pb.GetAttributionRequest(
                conversion_id="x", options={"lookback_window": {"seconds": 60}}
            ),
            "options.lookback_window",
        ),
        (
            "GetAttribution",
            pb.GetAttributionRequest(conversion_id="x", options={"markov_order": 9}),
            "options.markov_order",
        ),
        ("Summarize", pb.SummarizeRequest(range={"start_time": {"seconds": 1}, "end_time": {"seconds": 2}}), "dimension"),
        ("Summarize", pb.SummarizeRequest(dimension=1), "range.start_time"),
        ("Summarize", pb.SummarizeRequest(dimension=1, range={"start_time": {"seconds": 5}, "end_time": {"seconds": 2}}), "range.end_time"),
        ("Summarize", pb.SummarizeRequest(dimension=1, model=42, range={"start_time": {"seconds": 1}, "end_time": {"seconds": 2}}), "model"),
        ("CompareModels", pb.CompareModelsRequest(dimension=1, range={"start_time": {"seconds": 1}, "end_time": {"seconds": 2}}, page={"page_size": 5000}), "page.page_size"),
        ("CompareModels", pb.CompareModelsRequest(dimension=1, range={"start_time": {"seconds": 1}, "end_time": {"seconds": 2}}, page={"page_token": "bogus"}), "page.page_token"),
        ("GetJourney", pb.GetJourneyRequest(), "subject"),
    ],
)  # fmt: skip
async def test_bad_input_names_the_field(suite, method, message, field):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await getattr(suite.attribution, method)(message, metadata=suite.metadata)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in err.value.details()


async def test_unknown_conversion_and_subject_are_not_found(suite):
    for call in (
        suite.attribution_of("nope"),
        suite.attribution.GetJourney(
            pb.GetJourneyRequest(subject={"lead_id": "nobody"}), metadata=suite.metadata
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_retention_deletes_rows_older_than_the_tenant_retention(suite):
    from leadflow_attribution.jobs.retention import delete_expired

    start = now() - timedelta(days=2)
    await suite.track(
        *touches("lead-r", start, [("email", "")]),
        event("lead-r-buy", type="signup", lead_id="lead-r", occurred_at=start + timedelta(days=1)),
    )
    await suite.applied()
    runtime = suite.attribution_runtime
    assert await delete_expired(runtime.pool, runtime.tenants, now()) == {}
    later = now() + timedelta(days=366)
    deleted = await delete_expired(runtime.pool, runtime.tenants, later)
    counts = deleted["371minds"]
    assert counts["touchpoints"] >= 1 and counts["conversions"] >= 1 and counts["credits"] >= 6
    left = await suite.pool.fetchval(
        "SELECT (SELECT count(*) FROM touchpoints) + (SELECT count(*) FROM conversions)"
        " + (SELECT count(*) FROM credits) + (SELECT count(*) FROM stage_changes)"
    )
    assert left == 0
