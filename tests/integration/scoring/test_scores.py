"""Events through ingest give the score DESIGN.md's defaults say, with the factors behind it;
redelivered and duplicated messages change nothing; every change leaves a history row."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import grpc
import pytest
from harness import SHORT_DUPLICATE_WINDOW
from ingest_support import event, now, ts
from ingest_support import published as ingest_published
from scoring_support import published, suite

from leadflow.common.v1 import lead_pb2, pagination_pb2, time_range_pb2
from leadflow.ingest.v1 import events_pb2 as ingest_events
from leadflow.ingest.v1 import ingest_service_pb2 as ingest_pb
from leadflow.ingest.v1 import profile_pb2
from leadflow.scoring.v1 import lead_score_pb2
from leadflow.scoring.v1 import scoring_service_pb2 as pb
from leadflow_platform.nats import headers as h

pytestmark = pytest.mark.integration

BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"


def _start():
    at = now() - timedelta(seconds=60)
    if at.date() != (at + timedelta(seconds=5)).date():  # keep the events on one UTC day
        at += timedelta(seconds=10)
    return at


async def feed_ada(s, lead_id: str = "lead-ada") -> None:
    """A profile, email consent and five events, one of them an image-proxy open."""
    at = _start()
    await s.identify(
        lead_id,
        email="ada@example.com",
        first_name="Ada",
        last_name="Lovelace",
        company="Analytical Engines",
        customer_type="enterprise",
        location=profile_pb2.Location(country="GB", city="London"),
        lead_source="referral",
        home_brand_id="modumind",
    )
    await s.consent(lead_id, email=True)
    await s.track(
        event(f"{lead_id}-pv1", type="page_view", lead_id=lead_id, occurred_at=at),
        event(
            f"{lead_id}-pv2",
            type="page_view",
            lead_id=lead_id,
            occurred_at=at + timedelta(seconds=1),
        ),
        event(
            f"{lead_id}-open",
            type="email_opened",
            lead_id=lead_id,
            occurred_at=at + timedelta(seconds=2),
            user_agent=BROWSER,
        ),
        event(
            f"{lead_id}-proxy",
            type="email_opened",
            lead_id=lead_id,
            occurred_at=at + timedelta(seconds=2),
            user_agent="Mozilla/5.0 (Windows NT 5.1) GoogleImageProxy",
        ),
        event(
            f"{lead_id}-form",
            type="form_submitted",
            lead_id=lead_id,
            occurred_at=at + timedelta(seconds=3),
        ),
    )
    await s.applied()


def factors(component: lead_score_pb2.ComponentScore) -> dict[str, float]:
    return {f.label: round(f.undecayed_points, 6) for f in component.factors}


# DESIGN.md §3 defaults, by hand:
#   demographic  email 15 + first name 10 + last name 10 + customer type 20 + location 10 = 65
#   behavioural  page_view 2x1 + email_opened 1x2 (the proxy open ignored) + form 15
#                + 1 active day x 1                                                  = 20
#   firmographic base 50 + enterprise 15 + referral 15                               = 80
#   engagement   last activity < 7 d 40 + email consent 30 + stage qualified 10      = 80
#   intent       1 high-intent event 15 + stage qualified 20                         = 35
#   total .20x65 + .25x20 + .15x80 + .25x80 + .15x35 = 13 + 5 + 12 + 20 + 5.25      = 55.25
ADA_TOTAL = 55.25


async def test_events_through_ingest_give_the_hand_computed_score_with_factors(settings):
    async with suite(settings) as s:
        await feed_ada(s)
        score = await s.score("lead-ada")

    assert score.undecayed_total == ADA_TOTAL
    assert score.total == ADA_TOTAL  # a minute of decay moves it by < 0.0001
    assert score.grade == lead_pb2.GRADE_C_PLUS
    assert score.temperature == lead_pb2.TEMPERATURE_WARM
    assert score.stage == lead_pb2.LIFECYCLE_STAGE_QUALIFIED  # form submitted -> qualified
    assert score.model_version == 0
    assert score.home_brand_id == "modumind"
    c = score.components
    assert (c.demographic.value, c.behavioural.undecayed_value, c.firmographic.value) == (
        65,
        20,
        80,
    )
    assert (c.engagement.value, c.intent.value) == (80, 35)
    assert 19.99 < c.behavioural.value < 20  # event points decay, frequency does not
    assert (c.demographic.weight, c.behavioural.weight, c.intent.weight) == (0.2, 0.25, 0.15)
    assert factors(c.demographic) == {
        "customer_type present": 20,
        "email present": 15,
        "first_name present": 10,
        "last_name present": 10,
        "location present": 10,
    }
    assert factors(c.behavioural) == {
        "form_submitted x1": 15,
        "page_view x2": 2,
        "email_opened x1": 2,
        "active on 1 day in the last 30 d": 1,
    }
    assert factors(c.firmographic) == {
        "base points": 50,
        "customer type enterprise (high)": 15,
        "lead source referral (high)": 15,
    }
    assert factors(c.engagement) == {
        "last activity < 7 d": 40,
        "email consent": 30,
        "stage qualified": 10,
    }
    assert factors(c.intent) == {
        "high-intent events x1 in the last 30 d (form_submitted x1)": 15,
        "stage qualified": 20,
    }
    rules = {f.label: f.rule for f in c.behavioural.factors}
    assert rules["form_submitted x1"] == "behavioural.event_points.form_submitted"


async def test_unknown_lead_is_not_found_and_bad_ids_are_invalid(settings):
    async with suite(settings) as s:
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await s.score("nobody")
        with pytest.raises(grpc.aio.AioRpcError) as empty:
            await s.score("")
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "lead_id" in (empty.value.details() or "")


async def test_redelivered_and_duplicated_events_do_not_change_the_score(settings):
    settings = settings.with_overrides(stream_duplicate_window_seconds=SHORT_DUPLICATE_WINDOW)
    async with suite(settings) as s:
        await feed_ada(s)
        before = await s.score("lead-ada")
        changes_before = len(await published(settings, "scoring.score.changed"))
        history_before = await s.scoring.GetScoreHistory(
            pb.GetScoreHistoryRequest(lead_id="lead-ada"), metadata=s.metadata
        )

        # The same events sent again: ingest stores and publishes nothing.
        again = await s.ingest.TrackBatch(
            ingest_pb.TrackBatchRequest(
                events=[event("lead-ada-pv1", type="page_view", lead_id="lead-ada")]
            ),
            metadata=s.metadata,
        )
        assert again.duplicate == 1

        # Every message ingest published, in the stream again: once with its own message id
        # (a redelivery the inbox drops), once with another (a re-published copy, whose
        # events scoring already counted).
        bus = s.ingest_runtime.bus
        await asyncio.sleep(SHORT_DUPLICATE_WINDOW * 2.5)
        for subject in (
            "ingest.event.recorded",
            "ingest.subject.identified",
            "ingest.consent.changed",
        ):
            for msg_id, message in await ingest_published(
                settings.nats_url, settings.bus_namespace, subject
            ):
                data = message.SerializeToString()
                headers = {h.MSG_ID: msg_id, h.TENANT: "371minds"}
                await bus.publish(subject, data, headers)
                await bus.publish(subject, data, {**headers, h.MSG_ID: f"{msg_id}-copy"})
        await s.applied()
        after = await s.score("lead-ada")
        history_after = await s.scoring.GetScoreHistory(
            pb.GetScoreHistoryRequest(lead_id="lead-ada"), metadata=s.metadata
        )
        changes_after = len(await published(settings, "scoring.score.changed"))

        # A batch mixing a counted event with a new one: only the new one counts.
        (_, first), *_ = await ingest_published(settings.nats_url, settings.bus_namespace)
        mixed = ingest_events.EventsRecorded()
        mixed.CopyFrom(first)
        extra = mixed.events.add()
        extra.CopyFrom(first.events[0])
        extra.event_id = "lead-ada-pv3"
        await bus.publish(
            "ingest.event.recorded",
            mixed.SerializeToString(),
            {h.MSG_ID: "mixed-1", h.TENANT: "371minds"},
        )
        await s.applied()
        mixed_score = await s.score("lead-ada")

    assert after.undecayed_total == before.undecayed_total == ADA_TOTAL
    assert after.total == before.total
    assert after.components.behavioural.undecayed_value == 20
    assert factors(after.components.behavioural) == factors(before.components.behavioural)
    assert len(history_after.entries) == len(history_before.entries)
    assert changes_after == changes_before
    assert factors(mixed_score.components.behavioural)["page_view x3"] == 3
    assert mixed_score.undecayed_total == ADA_TOTAL + 0.25


async def test_score_history_pages_newest_first_and_matches_published_changes(settings):
    async with suite(settings) as s:
        start = now()
        await feed_ada(s)
        current = await s.score("lead-ada")
        entries = []
        token = ""
        while True:
            page = await s.scoring.GetScoreHistory(
                pb.GetScoreHistoryRequest(
                    lead_id="lead-ada",
                    page=pagination_pb2.PageRequest(page_size=1, page_token=token),
                ),
                metadata=s.metadata,
            )
            entries.extend(page.entries)
            token = page.page.next_page_token
            if not token:
                break
        ranged = await s.scoring.GetScoreHistory(
            pb.GetScoreHistoryRequest(
                lead_id="lead-ada",
                range=time_range_pb2.TimeRange(start_time=ts(start - timedelta(days=2))),
            ),
            metadata=s.metadata,
        )
        empty = await s.scoring.GetScoreHistory(
            pb.GetScoreHistoryRequest(
                lead_id="lead-ada",
                range=time_range_pb2.TimeRange(end_time=ts(start - timedelta(days=1))),
            ),
            metadata=s.metadata,
        )
        changes = [m for _, m in await published(settings, "scoring.score.changed")]
        with pytest.raises(grpc.aio.AioRpcError) as bad_token:
            await s.scoring.GetScoreHistory(
                pb.GetScoreHistoryRequest(
                    lead_id="lead-ada", page=pagination_pb2.PageRequest(page_token="garbage")
                ),
                metadata=s.metadata,
            )

    assert len(entries) >= 2
    assert len(entries) == len(changes)
    times = [e.computed_at.ToDatetime() for e in entries]
    assert times == sorted(times, reverse=True)
    assert entries[0].total == current.total
    assert entries[0].stage == lead_pb2.LIFECYCLE_STAGE_QUALIFIED
    assert entries[0].components.intent.value == 35
    assert {e.total for e in entries} == {round(m.score.total, 2) for m in changes}
    assert all(e.cause != lead_score_pb2.SCORE_CHANGE_CAUSE_UNSPECIFIED for e in entries)
    assert len(ranged.entries) == len(entries)
    assert list(empty.entries) == []
    assert bad_token.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page.page_token" in (bad_token.value.details() or "")
