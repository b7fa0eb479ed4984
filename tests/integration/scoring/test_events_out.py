"""What scoring publishes: a threshold crossing exactly once, either way, and the decay job
noticing a lead that cools below a threshold without any new event."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from harness import SHORT_DUPLICATE_WINDOW, eventually
from ingest_support import event, now
from ingest_support import published as ingest_published
from scoring_support import published, suite

from leadflow.common.v1 import lead_pb2
from leadflow.ingest.v1 import ingest_service_pb2 as ingest_pb
from leadflow.ingest.v1 import profile_pb2
from leadflow.scoring.v1 import events_pb2 as scoring_events
from leadflow.scoring.v1 import lead_score_pb2
from leadflow.scoring.v1 import scoring_service_pb2 as pb
from leadflow_platform.nats import headers as h

pytestmark = pytest.mark.integration

UP = scoring_events.CROSSING_DIRECTION_UP
DOWN = scoring_events.CROSSING_DIRECTION_DOWN
GRADE = scoring_events.THRESHOLD_DIMENSION_GRADE
TEMPERATURE = scoring_events.THRESHOLD_DIMENSION_TEMPERATURE


async def _profile(s, lead_id: str) -> None:
    await s.identify(
        lead_id,
        email="grace@example.com",
        first_name="Grace",
        last_name="Hopper",
        customer_type="enterprise",
        location=profile_pb2.Location(country="US"),
        lead_source="referral",
    )


async def _crossings(settings, lead_id: str) -> list[scoring_events.ThresholdCrossed]:
    return [
        m for _, m in await published(settings, "scoring.threshold.crossed") if m.lead_id == lead_id
    ]


def _grade_moves(crossings) -> list[tuple[int, int, int]]:
    return [
        (c.grade.from_grade, c.grade.to_grade, c.direction)
        for c in crossings
        if c.dimension == GRADE
    ]


async def test_threshold_crossing_is_published_exactly_once_either_way(settings):
    settings = settings.with_overrides(stream_duplicate_window_seconds=SHORT_DUPLICATE_WINDOW)
    at = now() - timedelta(seconds=30)
    async with suite(settings) as s:
        await _profile(s, "lead-grace")
        await s.consent("lead-grace", email=True)
        await s.track(
            event("g-pv1", type="page_view", lead_id="lead-grace", occurred_at=at),
            event("g-pv2", type="page_view", lead_id="lead-grace", occurred_at=at),
            event("g-open", type="email_opened", lead_id="lead-grace", occurred_at=at),
            event("g-form", type="form_submitted", lead_id="lead-grace", occurred_at=at),
        )
        await s.applied()
        assert (await s.score("lead-grace")).undecayed_total == 55.25  # C+, warm
        before = await _crossings(settings, "lead-grace")

        # A meeting: behavioural +20, intent +15 and stage opportunity (engagement 15 instead
        # of 10, intent 40 instead of 20): 55.25 + 5 + 2.25 + 1.25 + 3 = 66.75, C+ -> B.
        meeting = event("g-meet", type="meeting_scheduled", lead_id="lead-grace", occurred_at=at)
        await s.track(meeting)
        await s.applied()
        # The same event again, and ingest's message of it again in the stream.
        again = await s.ingest.TrackBatch(
            ingest_pb.TrackBatchRequest(events=[meeting]),
            metadata=s.metadata,
        )
        assert again.duplicate == 1
        await asyncio.sleep(SHORT_DUPLICATE_WINDOW * 2.5)
        last_id, last = (await ingest_published(settings.nats_url, settings.bus_namespace))[-1]
        assert [e.event_id for e in last.events] == ["g-meet"]
        for msg_id in (last_id, f"{last_id}-copy"):
            await s.ingest_runtime.bus.publish(
                "ingest.event.recorded",
                last.SerializeToString(),
                {h.MSG_ID: msg_id, h.TENANT: "371minds"},
            )
        await s.applied()
        up = await s.score("lead-grace")
        after_up = await _crossings(settings, "lead-grace")

        # Lost: no stage bonus any more (engagement 70, intent 30): 57.0, B -> C+.
        await s.scoring.TransitionStage(
            pb.TransitionStageRequest(
                lead_id="lead-grace", to_stage=lead_pb2.LIFECYCLE_STAGE_LOST, reason="went quiet"
            ),
            metadata=s.metadata,
        )
        await s.applied()
        down = await s.score("lead-grace")
        after_down = await _crossings(settings, "lead-grace")

    # Created D/cold; the profile, consent and events took it to C+/warm.
    assert _grade_moves(before)[-1][1] == lead_pb2.GRADE_C_PLUS
    assert up.undecayed_total == 66.75 and up.grade == lead_pb2.GRADE_B
    new = after_up[len(before) :]
    assert _grade_moves(new) == [(lead_pb2.GRADE_C_PLUS, lead_pb2.GRADE_B, UP)]
    assert [c for c in new if c.dimension == TEMPERATURE] == []  # warm stays warm
    assert new[0].score.total == up.total
    assert new[0].metadata.causation_id  # the ingest message that caused it
    assert down.undecayed_total == 57.0 and down.grade == lead_pb2.GRADE_C_PLUS
    assert _grade_moves(after_down[len(after_up) :]) == [
        (lead_pb2.GRADE_B, lead_pb2.GRADE_C_PLUS, DOWN)
    ]
    ids = [c.metadata.event_id for c in after_down]
    assert len(ids) == len(set(ids))


async def test_decay_job_notices_a_lead_cooling_below_a_threshold_without_new_events(
    settings, monkeypatch
):
    """The lead's last activity is 7 days old minus a few seconds: while it is younger than
    7 days recency is worth 40, then 30, which takes the total from warm C+ to cold C. No
    event arrives; the decay job (every 0.3 s here) rescored it when that moment came."""
    monkeypatch.setenv("LEADFLOW_SCORING_DECAY_INTERVAL_SECONDS", "0.3")
    at = now() - timedelta(days=7) + timedelta(seconds=12)
    async with suite(settings) as s:
        await _profile(s, "lead-cool")
        await s.consent("lead-cool", sms=True)
        await s.track(
            event("c-pv1", type="page_view", lead_id="lead-cool", occurred_at=at),
            event("c-pv2", type="page_view", lead_id="lead-cool", occurred_at=at),
            event("c-open", type="email_opened", lead_id="lead-cool", occurred_at=at),
            event("c-form", type="form_submitted", lead_id="lead-cool", occurred_at=at),
        )
        await s.applied()
        warm = await s.score("lead-cool")
        assert warm.temperature == lead_pb2.TEMPERATURE_WARM, warm
        # demographic 13 + behavioural .25 x (19 x 2^(-7/30) + 1) + firmographic 12
        # + engagement .25 x (40 + 15 sms + 10 qualified) + intent .15 x 35 = 50.79
        assert warm.total == pytest.approx(50.79, abs=0.01)
        assert warm.grade == lead_pb2.GRADE_C_PLUS

        cold = await s.score_when(
            "lead-cool", lambda sc: sc.temperature == lead_pb2.TEMPERATURE_COLD, timeout=30
        )
        crossings = await eventually(lambda: _has_cooled(settings, "lead-cool"), timeout=10)
        history = await s.scoring.GetScoreHistory(
            pb.GetScoreHistoryRequest(lead_id="lead-cool"), metadata=s.metadata
        )

    assert cold.total == pytest.approx(warm.total - 2.5, abs=0.01)  # recency 40 -> 30
    assert cold.grade == lead_pb2.GRADE_C
    assert history.entries[0].cause == lead_score_pb2.SCORE_CHANGE_CAUSE_DECAY
    assert history.entries[0].temperature == lead_pb2.TEMPERATURE_COLD
    assert {(c.dimension, c.direction) for c in crossings} == {(GRADE, DOWN), (TEMPERATURE, DOWN)}


async def _has_cooled(settings, lead_id):
    found = [c for c in await _crossings(settings, lead_id) if c.direction == DOWN]
    return found if len(found) >= 2 else None
