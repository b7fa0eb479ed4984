"""Two attribution replicas on one database and one bus (each its own Runtime, sharing the
durable consumers): a portfolio of journeys pushed through ingest, with aliases and the stage
changes scoring derives, must come out credited exactly once, with the credits computed
here from the same data, and each revision published exactly once."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

import pytest
from attribution_support import published as attribution_published
from attribution_support import suite as run_suite
from ingest_support import event, now
from scoring_support import published as scoring_published

from leadflow.common.v1 import lead_pb2
from leadflow.ingest.v1 import ingest_service_pb2 as ingest_pb
from leadflow_attribution.domain.attribution import attribute
from leadflow_attribution.domain.journey import Conversion, Touchpoint
from leadflow_attribution.domain.models import HEURISTIC_MODELS, AttributionModel
from leadflow_attribution.domain.models import AttributionOptions as Options

pytestmark = pytest.mark.integration

CHANNELS = ("paid_search", "email", "organic_social", "referral", "display", "direct")
LEADS = 24
OPPORTUNITY = lead_pb2.LIFECYCLE_STAGE_OPPORTUNITY
CUSTOMER = lead_pb2.LIFECYCLE_STAGE_CUSTOMER


@dataclass
class Portfolio:
    """What the test sends, in the order it sends it, and what it implies."""

    batches: list[list] = field(default_factory=list)  # TrackBatch calls, first phase
    late: list[list] = field(default_factory=list)  # sent after everything else
    aliases_before: list[tuple[str, str]] = field(default_factory=list)
    aliases_after: list[tuple[str, str]] = field(default_factory=list)
    touchpoints: dict[str, list[Touchpoint]] = field(default_factory=lambda: defaultdict(list))
    conversions: list[Conversion] = field(default_factory=list)


def _touch(p: Portfolio, i: int, event_id: str, at, channel: str, subject_key: str, **who):
    """A touchpoint event of lead number i (or of `who`), kept under `subject_key`."""
    campaign = f"c{i % 3}"
    p.touchpoints[subject_key].append(
        Touchpoint(event_id, at, channel, f"{channel}-src", "", campaign, "", "", "modumind")
    )
    return event(
        event_id,
        type="ad_clicked" if channel == "paid_search" else "page_view",
        occurred_at=at,
        marketing={"channel": channel, "source": f"{channel}-src", "campaign": campaign},
        **who,
    )


def portfolio() -> Portfolio:
    """LEADS leads: 0-5 touchpoints each (some tied in time), a visitor's touchpoints merged
    by an alias sent before or after them, a meeting (scoring moves the lead to opportunity,
    anchoring W-shaped credit), a purchase (with value; scoring makes it a customer) or a
    signup, touchpoints after the conversion, and touchpoints that arrive late."""
    p = Portfolio()
    base = (now() - timedelta(days=6)).replace(microsecond=0)
    for i in range(LEADS):
        lead = f"rl{i:02d}"
        key = f"lead:{lead}"
        t0 = base + timedelta(minutes=i)
        batch = []
        for j in range(i % 6):
            # Leads 1, 5, 9...: the second and third touch share a time (ordered by id).
            at = t0 + timedelta(hours=j if not (i % 4 == 1 and j == 2) else 1)
            channel = CHANNELS[(i + j) % len(CHANNELS)]
            batch.append(_touch(p, i, f"{lead}-t{j}", at, channel, key, lead_id=lead))
        if i % 3 == 0:
            batch.append(event(f"{lead}-meet", type="meeting_scheduled", lead_id=lead,
                               occurred_at=t0 + timedelta(hours=1, minutes=30)))  # fmt: skip
        at = t0 + timedelta(hours=6)
        if i % 2 == 0:
            currency = "USD" if i % 3 else "EUR"
            nanos = 990_000_000 if i % 4 else 0
            batch.append(event(f"{lead}-buy", type="purchase", lead_id=lead, occurred_at=at,
                               value=(10 + i, nanos, currency)))  # fmt: skip
            p.conversions.append(
                Conversion(f"{lead}-buy", key, "purchase", at,
                           Decimal(10 + i) + Decimal(nanos) / 10**9, currency)
            )  # fmt: skip
        else:
            batch.append(event(f"{lead}-signup", type="signup", lead_id=lead, occurred_at=at))
            p.conversions.append(Conversion(f"{lead}-signup", key, "signup", at))
        if i % 5 == 2:
            after = t0 + timedelta(hours=7)
            batch.append(_touch(p, i, f"{lead}-after", after, "email", key, lead_id=lead))
        p.batches.append(batch)
        if i % 3 == 1:
            late = [_touch(p, i, f"{lead}-late", t0 + timedelta(minutes=30), "referral", key,
                           lead_id=lead)]  # fmt: skip
            p.late.append(late)
        if i % 4 == 0:
            visitor = f"rv{i:02d}"
            (p.aliases_before if i % 8 == 0 else p.aliases_after).append((visitor, lead))
            p.batches.append(
                [
                    _touch(p, i, f"{visitor}-v{j}", t0 - timedelta(days=1, hours=j), channel, key,
                           anonymous_id=visitor)
                    for j, channel in enumerate(("display", "organic_social"))
                ]
            )  # fmt: skip
    return p


def credits(result, model) -> list[tuple[str, Decimal, Decimal | None]]:
    has_value = bool(result.conversion.currency)
    return [
        (t.event_id, c.share, c.value if has_value else None)
        for t, c in zip(result.journey, result.credits[model], strict=True)
    ]


def published_credits(message, model) -> list[tuple[str, Decimal, Decimal | None]]:
    (entry,) = [a for a in message.attributions if a.model == model]
    return [
        (
            c.event_id,
            Decimal(c.share_decimal),
            Decimal(c.credited_value.units) + Decimal(c.credited_value.nanos) / 10**9
            if c.HasField("credited_value")
            else None,
        )
        for c in entry.credits
    ]


async def test_two_replicas_credit_every_conversion_once_and_publish_each_revision_once(
    settings,
):
    p = portfolio()
    # Small fetches, so the two replicas take turns on both durable consumers.
    replica_settings = settings.with_overrides(consumer_batch_size=2)
    async with run_suite(
        settings, attribution_replicas=2, attribution_settings=replica_settings
    ) as suite:
        for visitor, lead in p.aliases_before:
            await suite.ingest.Alias(
                ingest_pb.AliasRequest(anonymous_id=visitor, lead_id=lead), metadata=suite.metadata
            )
        for batch in p.batches:
            await suite.track(*batch)
        for visitor, lead in p.aliases_after:
            await suite.ingest.Alias(
                ingest_pb.AliasRequest(anonymous_id=visitor, lead_id=lead), metadata=suite.metadata
            )
        for batch in p.late:
            await suite.track(*batch)
        await suite.applied()

        applied = [
            sum(c.applied for c in runtime.consumers) for runtime in suite.attribution_runtimes
        ]
        stored = await suite.pool.fetch(
            "SELECT conversion_id, revision FROM conversions ORDER BY conversion_id"
        )
        rows = await suite.pool.fetch(
            "SELECT conversion_id, model, position, event_id, share, value FROM credits"
            " ORDER BY conversion_id, model, position"
        )
        stages = await scoring_published(settings, "scoring.stage.changed")
        messages = await attribution_published(settings)
        dead = await suite.pool.fetchval("SELECT count(*) FROM dead_letters")

    assert all(n > 0 for n in applied), f"messages applied per replica: {applied}"
    assert dead == 0

    # Scoring's stage changes: entering opportunity anchors W-shaped credit; entering
    # opportunity or customer is a conversion of its own (no value).
    opportunity_at: dict[str, list] = defaultdict(list)
    conversions = list(p.conversions)
    for _, change in stages:
        at = change.metadata.occurred_at.ToDatetime().replace(tzinfo=now().tzinfo)
        key = f"lead:{change.lead_id}"
        if change.to_stage == OPPORTUNITY:
            opportunity_at[key].append(at)
        if change.to_stage in (OPPORTUNITY, CUSTOMER):
            kind = "opportunity" if change.to_stage == OPPORTUNITY else "customer"
            conversions.append(Conversion(change.metadata.event_id, key, kind, at))
    assert len(opportunity_at) == len(range(0, LEADS, 3))  # every meeting moved its lead
    assert sum(c.type == "customer" for c in conversions) == LEADS // 2  # every purchase

    options = Options()
    expected = {}
    for conversion in conversions:
        entries = [at for at in opportunity_at[conversion.subject] if at <= conversion.occurred_at]
        anchored = Conversion(
            conversion.conversion_id, conversion.subject, conversion.type,
            conversion.occurred_at, conversion.value, conversion.currency,
            max(entries) if entries else None,
        )  # fmt: skip
        expected[conversion.conversion_id] = attribute(
            p.touchpoints[conversion.subject], anchored, options
        )

    # Every conversion stored once, credited once per model and position, exactly.
    assert sorted(r["conversion_id"] for r in stored) == sorted(expected)
    got: dict[tuple[str, int], list] = defaultdict(list)
    for r in rows:
        got[(r["conversion_id"], r["model"])].append((r["event_id"], r["share"], r["value"]))
    want = {
        (cid, int(model)): credits(result, model)
        for cid, result in expected.items()
        for model in HEURISTIC_MODELS
        if result.journey
    }
    assert dict(got) == want
    for result in expected.values():
        journey = result.journey
        # Independent of the models' code: first and last touch, linear shares of 1/n.
        if journey:
            firsts = credits(result, AttributionModel.FIRST_TOUCH)
            assert firsts[0][1] == 1 and all(s == 0 for _, s, _ in firsts[1:])
            lasts = credits(result, AttributionModel.LAST_TOUCH)
            assert lasts[-1][1] == 1 and all(s == 0 for _, s, _ in lasts[:-1])
            linear = [s for _, s, _ in credits(result, AttributionModel.LINEAR)]
            assert sum(linear) == 1
            assert all(abs(s - Decimal(1) / len(journey)) <= Decimal("1e-18") for s in linear)
            assert [t.event_id for t in journey] == [
                t.event_id
                for t in sorted(
                    p.touchpoints[result.conversion.subject],
                    key=lambda t: (t.occurred_at, t.event_id),
                )
                if result.conversion.occurred_at - options.lookback_window
                <= t.occurred_at
                <= result.conversion.occurred_at
            ]
    # Journeys that got a late touchpoint, a merged visitor or an opportunity anchor are
    # among them (the data set exercises what it is meant to).
    assert any(len(r.journey) >= 5 for r in expected.values())
    assert any(r.opportunity not in (None, 0, len(r.journey) - 1) for r in expected.values())

    # Each (conversion, revision) published exactly once, revisions 1..n without a gap, and
    # the last one carries the stored credits.
    ids = Counter(mid for mid, _ in messages)
    assert all(n == 1 for n in ids.values()), [m for m, n in ids.items() if n > 1]
    revisions: dict[str, list[int]] = defaultdict(list)
    last = {}
    for _, message in messages:
        cid = message.conversion.conversion_id
        revisions[cid].append(message.revision)
        if message.revision >= max(revisions[cid]):
            last[cid] = message
    assert {r["conversion_id"]: sorted(revisions[r["conversion_id"]]) for r in stored} == {
        r["conversion_id"]: list(range(1, r["revision"] + 1)) for r in stored
    }
    assert set(revisions) == set(expected)
    for cid, result in expected.items():
        for model in HEURISTIC_MODELS:
            assert published_credits(last[cid], model) == credits(result, model), (cid, model)
    assert any(r["revision"] > 1 for r in stored)  # late touchpoints re-attributed
