"""Two scoring replicas consuming the same lead's events at once give exactly the result one
replica gives: no lost update, no double count."""

from __future__ import annotations

from datetime import timedelta

import pytest
from ingest_support import event, now
from scoring_support import suite

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


def _batches(p: str, base):
    """MESSAGES TrackBatch calls, each with two events of lead-x (and one of another lead),
    at distinct times over the last hour; one form submitted in the middle. Ids start with
    `p`, so that both runs share the test's database and bus."""
    batches = []
    for m in range(MESSAGES):
        events = []
        for k in range(2):
            i = 2 * m + k
            kind = "form_submitted" if i == MESSAGES else TYPES[i % len(TYPES)]
            events.append(
                event(
                    f"{p}x-{i}",
                    type=kind,
                    lead_id=f"{p}lead-x",
                    occurred_at=base + timedelta(minutes=i),
                )
            )
        events.append(
            event(f"{p}y-{m}", type="page_view", lead_id=f"{p}lead-y{m % 3}", occurred_at=base)
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
        lifecycle = await s.scoring.GetLifecycle(
            pb.GetLifecycleRequest(lead_id=f"{p}lead-x"), metadata=s.metadata
        )
        applied = [c.applied for r in s.scoring_runtimes for c in r.consumers]
    return score, others, lifecycle, applied


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
    one, one_others, one_lifecycle, _ = await _run(settings, "one-", 1, base)
    two, two_others, two_lifecycle, applied = await _run(settings, "two-", 2, base)

    assert all(n > 0 for n in applied), applied  # both replicas did work
    assert _comparable(two) == _comparable(one)
    assert _values(two) == pytest.approx(_values(one), abs=1e-3)  # decayed: run seconds apart
    assert [_comparable(s) for s in two_others] == [_comparable(s) for s in one_others]
    counts = {f.label: f.count for f in two.components.behavioural.factors}
    assert counts["page_view x17"] == 17  # 3 of every 8 of 48 events, one a form instead
    assert two_lifecycle.current_stage == one_lifecycle.current_stage
    assert _path(two_lifecycle, "two-") == _path(one_lifecycle, "one-")


def _path(lifecycle, p: str):
    return [
        (
            t.from_stage,
            t.to_stage,
            t.transitioned_at,
            t.triggering_event_id.removeprefix(p),
            t.time_in_previous_stage,
            t.touchpoint_count,
        )
        for t in lifecycle.history
    ]
