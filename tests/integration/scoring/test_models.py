"""The scoring model as data: validated field by field, versioned, and a new version
rescoring every lead in the background with its progress visible; ScoreLeads likewise."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest
from harness import eventually
from ingest_support import event, now
from scoring_support import suite

from leadflow.common.v1 import lead_pb2
from leadflow.scoring.v1 import scoring_model_pb2
from leadflow.scoring.v1 import scoring_service_pb2 as pb

pytestmark = pytest.mark.integration

SUCCEEDED = pb.SCORING_JOB_STATE_SUCCEEDED


async def _model(s, version: int | None = None) -> pb.GetScoringModelResponse:
    request = (
        pb.GetScoringModelRequest()
        if version is None
        else pb.GetScoringModelRequest(version=version)
    )
    return await s.scoring.GetScoringModel(request, metadata=s.metadata)


async def _put(s, model: scoring_model_pb2.ScoringModel, **kw) -> pb.PutScoringModelResponse:
    return await s.scoring.PutScoringModel(
        pb.PutScoringModelRequest(model=model, **kw), metadata=s.metadata
    )


async def _refused(s, model) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _put(s, model)
    return caught.value


async def _page_views(s, lead_id: str, n: int) -> None:
    at = now() - timedelta(seconds=30)
    await s.track(
        *(
            event(f"{lead_id}-pv{i}", type="page_view", lead_id=lead_id, occurred_at=at)
            for i in range(n)
        )
    )


async def test_built_in_model_is_design_defaults_and_bad_fields_are_named(settings):
    async with suite(settings) as s:
        current = await _model(s)
        model = current.model

        weights = scoring_model_pb2.ScoringModel()
        weights.CopyFrom(model)
        weights.weights.intent = 0.5
        bad_weights = await _refused(s, weights)

        grades = scoring_model_pb2.ScoringModel()
        grades.CopyFrom(model)
        grades.grade_thresholds.b = 75  # above b_plus (70)
        bad_grades = await _refused(s, grades)

        points = scoring_model_pb2.ScoringModel()
        points.CopyFrom(model)
        points.behavioural.event_points["page_view"] = -1
        bad_points = await _refused(s, points)

        half_life = scoring_model_pb2.ScoringModel()
        half_life.CopyFrom(model)
        half_life.ClearField("decay_half_life")
        missing = await _refused(s, half_life)

        after = await _model(s)
        with pytest.raises(grpc.aio.AioRpcError) as no_version:
            await _model(s, 5)

    assert no_version.value.code() == grpc.StatusCode.NOT_FOUND
    assert current.active_version == 0 and model.version == 0
    assert not current.HasField("rescoring_job")
    w = model.weights
    assert (w.demographic, w.behavioural, w.firmographic, w.engagement, w.intent) == (
        0.2,
        0.25,
        0.15,
        0.25,
        0.15,
    )
    assert model.behavioural.event_points["meeting_scheduled"] == 20
    assert model.grade_thresholds.a_plus == 90 and model.temperature_thresholds.hot == 75
    assert model.decay_half_life.seconds == 30 * 86400
    for error, field in (
        (bad_weights, "model.weights"),
        (bad_grades, "model.grade_thresholds.b"),
        (bad_points, "model.behavioural.event_points.page_view"),
        (missing, "model.decay_half_life"),
    ):
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in (error.details() or ""), (field, error.details())
    assert after.active_version == 0  # nothing stored


async def test_new_model_version_rescored_every_lead_with_job_state_visible(settings):
    async with suite(settings) as s:
        await _page_views(s, "lead-a", 1)
        await _page_views(s, "lead-b", 3)
        await _page_views(s, "lead-c", 5)
        await s.applied()
        before = {i: await s.score(i) for i in ("lead-a", "lead-b", "lead-c")}

        model = (await _model(s)).model
        model.description = "page views matter more"
        model.behavioural.event_points["page_view"] = 10
        with pytest.raises(grpc.aio.AioRpcError) as stale:
            await _put(s, model, base_version=7)
        put = await _put(s, model, base_version=0)

        async def done():
            reply = await _model(s)
            return reply if reply.rescoring_job.state == SUCCEEDED else None

        finished = await eventually(done, timeout=20)
        after = {i: await s.score(i) for i in ("lead-a", "lead-b", "lead-c")}
        old = await _model(s, 0)
        job = await s.scoring.GetScoringJob(
            pb.GetScoringJobRequest(job_id=put.rescoring_job.job_id), metadata=s.metadata
        )

    assert stale.value.code() == grpc.StatusCode.ABORTED
    assert put.model.version == 1
    assert put.rescoring_job.kind == pb.SCORING_JOB_KIND_MODEL_RESCORE
    assert put.rescoring_job.state in (pb.SCORING_JOB_STATE_QUEUED, pb.SCORING_JOB_STATE_RUNNING)
    assert finished.active_version == 1
    assert finished.model.description == "page views matter more"
    assert finished.model.behavioural.event_points["page_view"] == 10
    rescore = finished.rescoring_job
    assert rescore.job_id == put.rescoring_job.job_id == job.job.job_id
    assert (rescore.leads_total, rescore.leads_done, rescore.leads_changed) == (3, 3, 3)
    assert rescore.HasField("started_at") and rescore.HasField("finished_at")
    assert old.model.behavioural.event_points["page_view"] == 1 and old.active_version == 1
    # firmographic base 50 x .15 + recency 40 x .25 = 17.5, plus .25 x (points + 1 active day)
    for lead_id, n in (("lead-a", 1), ("lead-b", 3), ("lead-c", 5)):
        assert before[lead_id].undecayed_total == pytest.approx(17.5 + 0.25 * (n + 1))
        assert after[lead_id].model_version == 1
        assert after[lead_id].undecayed_total == pytest.approx(17.5 + 0.25 * (10 * n + 1))
        labels = {
            f.label: f.undecayed_points for f in after[lead_id].components.behavioural.factors
        }
        assert labels[f"page_view x{n}"] == 10 * n
    assert after["lead-c"].grade == lead_pb2.GRADE_D  # 30.25


async def test_newer_model_cancels_the_older_rescoring_and_new_events_use_it(settings):
    async with suite(settings) as s:
        await _page_views(s, "lead-a", 2)
        await s.applied()
        model = (await _model(s)).model
        model.behavioural.event_points["page_view"] = 4
        first = await _put(s, model)
        model.behavioural.event_points["page_view"] = 6
        second = await _put(s, model)

        async def done():
            reply = await _model(s)
            return reply if reply.rescoring_job.state == SUCCEEDED else None

        await eventually(done, timeout=20)
        older = await s.scoring.GetScoringJob(
            pb.GetScoringJobRequest(job_id=first.rescoring_job.job_id), metadata=s.metadata
        )
        await _page_views(s, "lead-new", 1)
        await s.applied()
        lead_a = await s.score("lead-a")
        fresh = await s.score("lead-new")

    assert second.model.version == 2
    assert older.job.state in (SUCCEEDED, pb.SCORING_JOB_STATE_CANCELLED)
    if older.job.state == pb.SCORING_JOB_STATE_CANCELLED:
        assert older.job.superseded_by_job_id == second.rescoring_job.job_id
    assert lead_a.model_version == 2
    assert lead_a.undecayed_total == pytest.approx(17.5 + 0.25 * (6 * 2 + 1))
    assert fresh.model_version == 2
    assert fresh.undecayed_total == pytest.approx(17.5 + 0.25 * (6 + 1))


async def test_score_leads_for_a_list_and_for_all_with_progress(settings, monkeypatch):
    monkeypatch.setenv("LEADFLOW_SCORING_JOB_CHUNK_SIZE", "2")  # 7 leads: 4 chunks
    async with suite(settings) as s:
        for i in range(7):
            await _page_views(s, f"lead-{i}", i + 1)
        await s.applied()
        listed = await s.scoring.ScoreLeads(
            pb.ScoreLeadsRequest(leads=pb.LeadIdList(lead_ids=["lead-1", "lead-2", "ghost"])),
            metadata=s.metadata,
        )
        everyone = await s.scoring.ScoreLeads(
            pb.ScoreLeadsRequest(all_leads=True), metadata=s.metadata
        )

        async def finished():
            reply = await s.scoring.GetScoringJob(
                pb.GetScoringJobRequest(job_id=everyone.job.job_id), metadata=s.metadata
            )
            return reply.job if reply.job.state == SUCCEEDED else None

        job = await eventually(finished, timeout=20)
        with pytest.raises(grpc.aio.AioRpcError) as empty:
            await s.scoring.ScoreLeads(
                pb.ScoreLeadsRequest(leads=pb.LeadIdList(lead_ids=[])), metadata=s.metadata
            )
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await s.scoring.ScoreLeads(pb.ScoreLeadsRequest(), metadata=s.metadata)
        with pytest.raises(grpc.aio.AioRpcError) as unknown_job:
            await s.scoring.GetScoringJob(
                pb.GetScoringJobRequest(job_id="no-such-job"), metadata=s.metadata
            )

    assert listed.job.kind == pb.SCORING_JOB_KIND_SCORE_LEADS
    assert listed.job.state == SUCCEEDED
    assert (listed.job.leads_total, listed.job.leads_done) == (2, 2)
    assert [sc.lead_id for sc in listed.scores] == ["lead-1", "lead-2"]
    assert [sc.undecayed_total for sc in listed.scores] == [17.5 + 0.25 * 3, 17.5 + 0.25 * 4]
    assert list(listed.unknown_lead_ids) == ["ghost"]
    assert everyone.job.kind == pb.SCORING_JOB_KIND_SCORE_LEADS
    assert (job.leads_total, job.leads_done) == (7, 7)
    assert job.HasField("finished_at")
    assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "leads.lead_ids" in (empty.value.details() or "")
    assert missing.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "target" in (missing.value.details() or "")
    assert unknown_job.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_new_half_life_rebuilds_activity_from_history(settings):
    """Ten-day-old events: at a 30-day half-life they keep 2^(-1/3) of their points, at a
    10-day one half."""
    at = now() - timedelta(days=10)
    async with suite(settings) as s:
        await s.track(
            *(event(f"d-{i}", type="content_downloaded", lead_id="lead-d", occurred_at=at)
              for i in range(4))
        )  # fmt: skip
        await s.applied()
        before = await s.score("lead-d")
        model = (await _model(s)).model
        model.decay_half_life.FromTimedelta(timedelta(days=10))
        await _put(s, model)

        async def rescored():
            score = await s.score("lead-d")
            return score if score.model_version == 1 else None

        after = await eventually(rescored, timeout=20)

    # 4 downloads x 8 points, plus 1 active day.
    assert before.components.behavioural.value == pytest.approx(32 * 2 ** (-1 / 3) + 1, abs=1e-3)
    assert after.components.behavioural.value == pytest.approx(32 * 0.5 + 1, abs=1e-3)
    assert (
        after.components.behavioural.undecayed_value
        == before.components.behavioural.undecayed_value
    )
