"""Lifecycle stages: moves by API (illegal ones refused), automatic rules from events (the
defaults and a model's own), history with time in stage and touchpoints, stage.changed."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest
from ingest_support import event, now
from scoring_support import published, suite

from leadflow.common.v1 import lead_pb2
from leadflow.scoring.v1 import lifecycle_pb2, scoring_model_pb2
from leadflow.scoring.v1 import scoring_service_pb2 as pb

pytestmark = pytest.mark.integration

S = lead_pb2
API = lifecycle_pb2.TRANSITION_TRIGGER_API
RULE = lifecycle_pb2.TRANSITION_TRIGGER_RULE
INITIAL = lifecycle_pb2.TRANSITION_TRIGGER_INITIAL


async def _move(
    s, lead_id: str, stage: int, reason: str = "sales call"
) -> pb.TransitionStageResponse:
    return await s.scoring.TransitionStage(
        pb.TransitionStageRequest(lead_id=lead_id, to_stage=stage, reason=reason),
        metadata=s.metadata,
    )


async def _refused(s, lead_id: str, stage: int, reason: str = "sales call") -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _move(s, lead_id, stage, reason)
    return caught.value


async def _lifecycle(s, lead_id: str) -> pb.GetLifecycleResponse:
    return await s.scoring.GetLifecycle(
        pb.GetLifecycleRequest(lead_id=lead_id), metadata=s.metadata
    )


def _path(lifecycle) -> list[tuple[int, int, int]]:
    return [(t.from_stage, t.to_stage, t.trigger) for t in lifecycle.history]


async def test_transition_stage_by_api_legal_and_illegal_with_lifecycle_history(settings):
    async with suite(settings) as s:
        await s.track(event("e1", type="page_view", lead_id="lead-1"))
        await s.applied()
        start = await _lifecycle(s, "lead-1")
        qualified = await _move(s, "lead-1", S.LIFECYCLE_STAGE_QUALIFIED, "asked for a demo")
        backwards = await _refused(s, "lead-1", S.LIFECYCLE_STAGE_CONTACTED)
        same = await _refused(s, "lead-1", S.LIFECYCLE_STAGE_QUALIFIED)
        no_reason = await _refused(s, "lead-1", S.LIFECYCLE_STAGE_ENGAGED, reason=" ")
        no_stage = await _refused(s, "lead-1", S.LIFECYCLE_STAGE_UNSPECIFIED)
        unknown = await _refused(s, "ghost", S.LIFECYCLE_STAGE_ENGAGED)
        await _move(s, "lead-1", S.LIFECYCLE_STAGE_LOST, "chose a competitor")
        back = await _move(s, "lead-1", S.LIFECYCLE_STAGE_ENGAGED, "came back")
        lifecycle = await _lifecycle(s, "lead-1")
        score = await s.score("lead-1")
        await s.applied()
        stage_events = [m for _, m in await published(settings, "scoring.stage.changed")]
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await _lifecycle(s, "ghost")

    assert start.current_stage == S.LIFECYCLE_STAGE_NEW
    assert _path(start) == [(S.LIFECYCLE_STAGE_UNSPECIFIED, S.LIFECYCLE_STAGE_NEW, INITIAL)]
    t = qualified.transition
    assert (t.from_stage, t.to_stage, t.trigger, t.reason) == (
        S.LIFECYCLE_STAGE_NEW,
        S.LIFECYCLE_STAGE_QUALIFIED,
        API,
        "asked for a demo",
    )
    assert t.actor  # the API key that asked
    assert qualified.score.stage == S.LIFECYCLE_STAGE_QUALIFIED
    # qualified: engagement +10, intent +20 -> +.25x10 +.15x20 = +5.5
    assert qualified.score.undecayed_total == pytest.approx(18.0 + 5.5)
    for error in (backwards, same):
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "to_stage" in (error.details() or "")
    assert no_reason.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "reason" in (no_reason.details() or "")
    assert no_stage.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "to_stage" in (no_stage.details() or "")
    assert unknown.code() == missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert back.transition.from_stage == S.LIFECYCLE_STAGE_LOST
    assert lifecycle.current_stage == S.LIFECYCLE_STAGE_ENGAGED == score.stage
    assert _path(lifecycle) == [
        (S.LIFECYCLE_STAGE_UNSPECIFIED, S.LIFECYCLE_STAGE_NEW, INITIAL),
        (S.LIFECYCLE_STAGE_NEW, S.LIFECYCLE_STAGE_QUALIFIED, API),
        (S.LIFECYCLE_STAGE_QUALIFIED, S.LIFECYCLE_STAGE_LOST, API),
        (S.LIFECYCLE_STAGE_LOST, S.LIFECYCLE_STAGE_ENGAGED, API),
    ]
    assert [h.reason for h in lifecycle.history[1:]] == [
        "asked for a demo",
        "chose a competitor",
        "came back",
    ]
    assert all(h.time_in_previous_stage.ToTimedelta() >= timedelta(0) for h in lifecycle.history)
    assert lifecycle.entered_at == lifecycle.history[-1].transitioned_at
    assert lifecycle.time_in_current_stage.ToTimedelta() >= timedelta(0)
    assert [(e.from_stage, e.to_stage) for e in stage_events] == [
        (h.from_stage, h.to_stage) for h in lifecycle.history
    ]
    assert [e.metadata.event_id for e in stage_events] == [
        h.transition_id for h in lifecycle.history
    ]


async def test_default_rules_move_leads_from_events_and_count_touchpoints(settings):
    base = now() - timedelta(hours=1)

    def at(minutes: int):
        return base + timedelta(minutes=minutes)

    ad = {"channel": "paid_search", "source": "google", "campaign": "spring"}
    async with suite(settings) as s:
        await s.track(
            event("b-ad", type="ad_clicked", lead_id="lead-b", occurred_at=at(0), marketing=ad),
            event("b-pv", type="page_view", lead_id="lead-b", occurred_at=at(1), marketing=ad),
            event("b-sent", type="email_sent", lead_id="lead-b", occurred_at=at(2)),
        )
        await s.track(event("b-form", type="form_submitted", lead_id="lead-b", occurred_at=at(3)))
        await s.applied()
        qualified = await _lifecycle(s, "lead-b")
        await s.track(
            event("b-meet", type="meeting_scheduled", lead_id="lead-b", occurred_at=at(4)),
            event("b-buy", type="purchase", lead_id="lead-b", occurred_at=at(5)),
            # qualified is behind customer: a rule never moves a lead back
            event("b-form2", type="form_submitted", lead_id="lead-b", occurred_at=at(6)),
        )
        await s.applied()
        lifecycle = await _lifecycle(s, "lead-b")
        score = await s.score("lead-b")

    assert qualified.current_stage == S.LIFECYCLE_STAGE_QUALIFIED
    assert lifecycle.current_stage == S.LIFECYCLE_STAGE_CUSTOMER == score.stage
    assert _path(lifecycle) == [
        (S.LIFECYCLE_STAGE_UNSPECIFIED, S.LIFECYCLE_STAGE_NEW, INITIAL),
        (S.LIFECYCLE_STAGE_NEW, S.LIFECYCLE_STAGE_CONTACTED, RULE),
        (S.LIFECYCLE_STAGE_CONTACTED, S.LIFECYCLE_STAGE_QUALIFIED, RULE),
        (S.LIFECYCLE_STAGE_QUALIFIED, S.LIFECYCLE_STAGE_OPPORTUNITY, RULE),
        (S.LIFECYCLE_STAGE_OPPORTUNITY, S.LIFECYCLE_STAGE_CUSTOMER, RULE),
    ]
    h = lifecycle.history
    assert [t.triggering_event_id for t in h] == ["b-ad", "b-sent", "b-form", "b-meet", "b-buy"]
    assert h[0].transitioned_at.ToDatetime(tzinfo=base.tzinfo) == at(0)  # first seen
    assert h[1].transitioned_at.ToDatetime(tzinfo=base.tzinfo) == at(2)
    assert h[1].time_in_previous_stage.ToTimedelta() == timedelta(minutes=2)
    assert h[1].reason == "rule: email_sent -> contacted"
    # The two touchpoints happened while the lead was new.
    assert (h[1].touchpoint_count, list(h[1].touchpoint_event_ids)) == (2, ["b-ad", "b-pv"])
    assert h[2].touchpoint_count == 0


async def test_a_models_own_stage_rule_moves_leads(settings):
    async with suite(settings) as s:
        model = (
            await s.scoring.GetScoringModel(pb.GetScoringModelRequest(), metadata=s.metadata)
        ).model
        model.lifecycle.stage_rules.append(
            scoring_model_pb2.StageRule(
                event_type="webinar_attended", stage=S.LIFECYCLE_STAGE_ENGAGED
            )
        )
        await s.scoring.PutScoringModel(pb.PutScoringModelRequest(model=model), metadata=s.metadata)
        await s.track(
            event("w1", type="custom", custom_name="webinar_attended", lead_id="lead-w"),
            event("w2", type="custom", custom_name="newsletter_read", lead_id="lead-x"),
        )
        await s.applied()
        webinar = await _lifecycle(s, "lead-w")
        other = await _lifecycle(s, "lead-x")
        exit_rule = scoring_model_pb2.ScoringModel()
        exit_rule.CopyFrom(model)
        exit_rule.lifecycle.stage_rules.append(
            scoring_model_pb2.StageRule(event_type="unsubscribed", stage=S.LIFECYCLE_STAGE_LOST)
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await s.scoring.PutScoringModel(
                pb.PutScoringModelRequest(model=exit_rule), metadata=s.metadata
            )

    assert webinar.current_stage == S.LIFECYCLE_STAGE_ENGAGED
    assert webinar.history[-1].reason == "rule: webinar_attended -> engaged"
    assert other.current_stage == S.LIFECYCLE_STAGE_NEW
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "model.lifecycle.stage_rules[5].stage" in (refused.value.details() or "")
