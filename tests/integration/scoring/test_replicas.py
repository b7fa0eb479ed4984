"""Two scoring replicas consuming the same lead's events at once give exactly the result one
replica gives: no lost update, no double count."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
from ingest_support import event, now
from scoring_support import suite

from leadflow.common.v1 import lead_pb2 as S
from leadflow.ingest.v1 import profile_pb2
from leadflow.scoring.v1 import scoring_service_pb2 as pb

pytestmark = pytest.mark.integration

TYPES = [
    "page_view",
    "email_opened",
    "page_view",
    "email_clicked",
    "content_downloaded",
    "page_view",
    "email_replied",
    "search",
]
MESSAGES = 24
# Message m carries events of minute 2 x SLOT[m] (a permutation): most messages arrive
# after messages with later events, in one replica as in two.
SLOT = [(7 * m) % MESSAGES for m in range(MESSAGES)]
# lead-x's lifecycle events, by index: the meeting (message 3, minute 42) arrives first, the
# form (message 9, minute 31) next, the first email (message 14, minute 4) last; in event
# order they move the lead new -> contacted -> qualified -> opportunity.
RULE_EVENTS = {6: "meeting_scheduled", 19: "form_submitted", 28: "email_sent"}
AD = {"channel": "paid_search", "source": "google", "campaign": "spring"}


def _batches(p: str, base):
    """MESSAGES TrackBatch calls, each with two events of lead-x (a touchpoint every fifth)
    and a touchpoint of one of three other leads, at distinct times over the last hour.
    Ids start with `p`, so that both runs share the test's database and bus."""
    batches = []
    for m in range(MESSAGES):
        events = []
        for k in range(2):
            i = 2 * m + k
            events.append(
                event(
                    f"{p}x-{i:02d}",
                    type=RULE_EVENTS.get(i, TYPES[i % len(TYPES)]),
                    lead_id=f"{p}lead-x",
                    occurred_at=base + timedelta(minutes=2 * SLOT[m] + k),
                    marketing=AD if i % 5 == 0 else None,
                )
            )
        events.append(
            event(
                f"{p}y-{m:02d}",
                type="page_view",
                lead_id=f"{p}lead-y{m % 3}",
                occurred_at=base + timedelta(minutes=SLOT[m]),
                marketing=AD,
            )
        )
        batches.append(events)
    return batches


async def _run(settings, p: str, replicas: int, base):
    # One message per fetch, so the replicas take turns on the same lead's messages.
    scoring_settings = settings.with_overrides(consumer_batch_size=1)
    async with suite(settings, scoring_replicas=replicas, scoring_settings=scoring_settings) as s:
        for batch in _batches(p, base):
            await s.track(*batch)
        # After the events, so that the lead is first seen by its first event in both runs.
        await s.identify(
            f"{p}lead-x",
            email="x@example.com",
            customer_type="smb",
            location=profile_pb2.Location(country="FR"),
        )
        await s.applied()
        score = await s.score(f"{p}lead-x")
        others = [await s.score(f"{p}lead-y{i}") for i in range(3)]
        lifecycles = [
            await s.scoring.GetLifecycle(pb.GetLifecycleRequest(lead_id=lead), metadata=s.metadata)
            for lead in (f"{p}lead-x", f"{p}lead-y0", f"{p}lead-y1", f"{p}lead-y2")
        ]
        applied = [c.applied for r in s.scoring_runtimes for c in r.consumers]
    return score, others, lifecycles, applied


def _values(score) -> list[float]:
    c = score.components
    return [c.demographic.value, c.behavioural.value, c.firmographic.value, c.engagement.value]


def _comparable(score):
    """Everything but the computation time and the decayed values, which move with it."""
    out = []
    for name in ("demographic", "behavioural", "firmographic", "engagement", "intent"):
        c = getattr(score.components, name)
        out.append(
            (
                name,
                c.undecayed_value,
                c.capped,
                [(f.label, f.rule, f.count, f.undecayed_points) for f in c.factors],
            )
        )
    return (
        score.total,
        score.undecayed_total,
        score.grade,
        score.temperature,
        score.stage,
        score.model_version,
        score.last_activity_at,
        out,
    )


async def test_two_replicas_give_exactly_the_result_of_one(settings):
    base = now() - timedelta(hours=1)
    one, one_others, one_lifecycles, _ = await _run(settings, "one-", 1, base)
    two, two_others, two_lifecycles, applied = await _run(settings, "two-", 2, base)

    assert all(n > 0 for n in applied), applied  # both replicas did work
    assert _comparable(two) == _comparable(one)
    assert _values(two) == pytest.approx(_values(one), abs=1e-3)  # decayed: run seconds apart
    assert [_comparable(s) for s in two_others] == [_comparable(s) for s in one_others]
    counts = {f.label: f.count for f in two.components.behavioural.factors}
    assert counts["page_view x18"] == 18  # 3 of every 8 of 48 events
    # Lifecycles to the detail: times, triggers, time in stage, touchpoints per stage.
    assert [_lifecycle(lc, "two-") for lc in two_lifecycles] == [
        _lifecycle(lc, "one-") for lc in one_lifecycles
    ]
    # ... and the ones the events make in event order, whatever order they arrived in.
    x = _lifecycle(one_lifecycles[0], "one-")
    assert x[0] == S.LIFECYCLE_STAGE_OPPORTUNITY
    assert [(t[0], t[1], t[4]) for t in x[2]] == [
        (S.LIFECYCLE_STAGE_UNSPECIFIED, S.LIFECYCLE_STAGE_NEW, "x-00"),
        (S.LIFECYCLE_STAGE_NEW, S.LIFECYCLE_STAGE_CONTACTED, "x-28"),
        (S.LIFECYCLE_STAGE_CONTACTED, S.LIFECYCLE_STAGE_QUALIFIED, "x-19"),
        (S.LIFECYCLE_STAGE_QUALIFIED, S.LIFECYCLE_STAGE_OPPORTUNITY, "x-06"),
    ]
    assert [t[2] - base for t in x[2]] == [timedelta(minutes=m) for m in (0, 4, 31, 42)]
    assert [t[5] for t in x[2][1:]] == [timedelta(minutes=m) for m in (4, 27, 11)]
    # Touchpoints (every fifth event) in the stage of their time, oldest first.
    assert [(t[6], t[7]) for t in x[2][1:]] == [
        (["x-00", "x-15"], 2),  # minutes 0, 3
        (["x-30", "x-45", "x-10", "x-25", "x-05"], 5),  # minutes 18 .. 29
        (["x-40"], 1),  # minute 40
    ]
    # lead-y1's earliest event (minute 1) came in its third message: first seen then.
    y1 = _lifecycle(one_lifecycles[2], "one-")
    assert y1[1] == base + timedelta(minutes=1)
    assert [(t[1], t[2], t[4]) for t in y1[2]] == [
        (S.LIFECYCLE_STAGE_NEW, base + timedelta(minutes=1), "y-07")
    ]


def _lifecycle(lifecycle, p: str):
    return (
        lifecycle.current_stage,
        lifecycle.entered_at.ToDatetime(tzinfo=UTC),
        [
            (
                t.from_stage,
                t.to_stage,
                t.transitioned_at.ToDatetime(tzinfo=UTC),
                t.trigger,
                t.triggering_event_id.removeprefix(p),
                t.time_in_previous_stage.ToTimedelta(),
                [i.removeprefix(p) for i in t.touchpoint_event_ids],
                t.touchpoint_count,
                t.reason,
            )
            for t in lifecycle.history
        ],
    )
