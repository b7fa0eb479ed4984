"""What runs on its own: sink retries until delivered (exactly once) or dead-lettered, the SLA
job re-assigning a breached assignment, the nurture scheduler emitting each step once at its
time on a controllable clock, and two replicas sharing turns and steps."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace
from datetime import timedelta

import grpc
import pytest
from harness import eventually, metric_sum
from ingest_support import event, now
from routing_support import (
    Clock,
    WebhookReceiver,
    example_config,
    published,
    routing_env,
    routing_suite,
)

from leadflow.common.v1 import lead_pb2
from leadflow.routing.v1 import routing_service_pb2 as pb
from leadflow.routing.v1 import routing_types_pb2 as tpb
from leadflow_routing.domain.config import RetryPolicy, Sink

pytestmark = pytest.mark.integration


def fast_retries(config, *, attempts: int = 20):  # type: ignore[no-untyped-def]
    brands = []
    for brand in config.brands:
        if brand.id == "modumind":
            retry = RetryPolicy(
                max_attempts=attempts,
                initial_backoff=timedelta(milliseconds=50),
                max_backoff=timedelta(milliseconds=200),
            )
            brand = replace(brand, sink=Sink(webhook=brand.sink.webhook, retry=retry))
        brands.append(brand)
    return replace(config, brands=tuple(brands))


async def identify(s, lead_id: str, segment=lead_pb2.SEGMENT_SMB) -> None:  # type: ignore[no-untyped-def]
    await s.base.identify(
        lead_id, email=f"{lead_id}@example.com", home_brand_id="modumind", segment=segment
    )


async def deliveries(s) -> list:  # type: ignore[no-untyped-def]
    return await s.pool.fetch(
        "SELECT state, attempts, last_error FROM deliveries ORDER BY created_at"
    )


async def test_a_sink_down_then_up_gets_each_delivery_exactly_once(settings, monkeypatch, tmp_path):
    routing_env(monkeypatch, tmp_path)
    receiver = WebhookReceiver(behaviours=["fail", "fail", "hang", "fail"])
    async with receiver.serving(), routing_suite(settings) as s:
        config = example_config(receiver.url, timeout=timedelta(milliseconds=300))
        await s.put_config(fast_retries(config))
        await identify(s, "lead-down")
        rows = await eventually(lambda: _delivered(s), timeout=20)
        assert [(r["state"], r["attempts"]) for r in rows] == [("delivered", 5)]
        assert len(receiver.requests) == 5
        keys = {r.headers["idempotency-key"] for r in receiver.requests}
        assert len(keys) == 1 and list(receiver.accepted) == list(keys)
        await asyncio.sleep(0.5)  # nothing more is sent once delivered
        assert len(receiver.requests) == 5


async def _delivered(s):  # type: ignore[no-untyped-def]
    rows = await deliveries(s)
    return rows if rows and all(r["state"] == "delivered" for r in rows) else None


async def test_a_sink_that_stays_down_is_dead_lettered_with_the_reason(
    settings, monkeypatch, tmp_path, metric_reader
):
    failures = "leadflow.sink.delivery.failures"
    before = {
        final: metric_sum(metric_reader, failures, sink="webhook", final=final)
        for final in ("true", "false")
    }
    routing_env(monkeypatch, tmp_path)
    receiver = WebhookReceiver(behaviours=["fail"] * 10)
    async with receiver.serving(), routing_suite(settings) as s:
        await s.put_config(fast_retries(example_config(receiver.url), attempts=3))
        await identify(s, "lead-dead")

        async def dead():  # type: ignore[no-untyped-def]
            rows = await deliveries(s)
            return rows if rows and rows[0]["state"] == "dead" else None

        rows = await eventually(dead, timeout=20)
        assert [(r["attempts"], r["last_error"]) for r in rows] == [(3, "webhook: HTTP 500")]
        assert len(receiver.requests) == 3 and not receiver.accepted
    # Two failed attempts retried, then the final one.
    assert metric_sum(metric_reader, failures, sink="webhook", final="false") == before["false"] + 2
    assert metric_sum(metric_reader, failures, sink="webhook", final="true") == before["true"] + 1


async def test_sla_breach_reassigns_to_the_next_free_owner(settings, monkeypatch, tmp_path):
    routing_env(monkeypatch, tmp_path)
    clock = Clock()
    async with routing_suite(settings, clock=clock) as s:
        await s.put_config(example_config())  # SLA 4 h, reassign
        await identify(s, "lead-sla")

        async def assignments():  # type: ignore[no-untyped-def]
            reply = await s.routing.ListAssignments(
                pb.ListAssignmentsRequest(lead_id="lead-sla"), metadata=s.metadata
            )
            return list(reply.assignments)

        (first,) = await eventually(assignments, timeout=15)
        assert first.state == tpb.ASSIGNMENT_STATE_ASSIGNED and first.owner.owner_id == "ana"
        assert first.acknowledge_by.ToDatetime() - first.assigned_at.ToDatetime() == timedelta(
            hours=4
        )

        clock.advance(timedelta(hours=3))
        await asyncio.sleep(0.4)
        assert [a.state for a in await assignments()] == [tpb.ASSIGNMENT_STATE_ASSIGNED]

        clock.advance(timedelta(hours=1, seconds=1))
        breached = await eventually(lambda: _published_breaches(settings), timeout=15)
        (event_,) = breached
        assert event_.assignment_id == first.id and event_.owner.owner_id == "ana"
        assert event_.resulting_state == tpb.ASSIGNMENT_STATE_REASSIGNED
        assert event_.new_owner.owner_id == "bo"
        newest, old = await assignments()
        assert (old.state, old.next_assignment_id) == (tpb.ASSIGNMENT_STATE_REASSIGNED, newest.id)
        assert (newest.owner.owner_id, newest.previous_assignment_id) == ("bo", first.id)

        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await s.routing.AcknowledgeAssignment(
                pb.AcknowledgeAssignmentRequest(assignment_id=first.id, owner_id="ana"),
                metadata=s.metadata,
            )
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        acked = await s.routing.AcknowledgeAssignment(
            pb.AcknowledgeAssignmentRequest(assignment_id=newest.id, owner_id="bo"),
            metadata=s.metadata,
        )
        assert acked.assignment.state == tpb.ASSIGNMENT_STATE_ACKNOWLEDGED
        clock.advance(timedelta(hours=10))
        await asyncio.sleep(0.4)
        assert len(await _published_breaches(settings)) == 1


async def _published_breaches(settings):  # type: ignore[no-untyped-def]
    return [m for _, m in await published(settings, "routing.assignment.breached")]


async def _steps(settings) -> list:  # type: ignore[no-untyped-def]
    return await published(settings, "routing.nurture.step_due")


async def test_nurture_steps_fall_due_at_their_time_once_and_stop_on_reply(
    settings, monkeypatch, tmp_path
):
    routing_env(monkeypatch, tmp_path)
    clock = Clock()
    start = clock.now
    async with routing_suite(settings, clock=clock) as s:
        await s.put_config(example_config())
        await identify(s, "lead-nurture")
        reply = await eventually(
            lambda: s.routing.ListEnrollments(
                pb.ListEnrollmentsRequest(lead_id="lead-nurture"), metadata=s.metadata
            ),
            timeout=15,
        )
        await eventually(lambda: _has_enrollment(s), timeout=15)
        assert reply is not None

        clock.advance(timedelta(hours=23))
        await asyncio.sleep(0.4)
        assert await _steps(settings) == []

        clock.advance(timedelta(hours=1, seconds=1))  # day 1: welcome
        await eventually(lambda: _count(settings, 1), timeout=15)
        clock.advance(timedelta(days=5))  # day 6: value proposition and case study
        steps = await eventually(lambda: _count(settings, 3), timeout=15)
        assert [(m.step_index, m.template, m.day_offset) for _, m in steps] == [
            (0, "welcome", 1),
            (1, "value-proposition", 3),
            (2, "case-study", 6),
        ]
        (_, welcome) = steps[0]
        assert (
            timedelta(days=1)
            <= welcome.due_at.ToDatetime(tzinfo=start.tzinfo) - start
            < timedelta(days=1, seconds=5)
        )
        assert welcome.step_count == 5 and welcome.segment == lead_pb2.SEGMENT_SMB
        # ana's assignment breached its 4 h SLA during the first day: bo has the lead now
        assert welcome.owner.owner_id == "bo"
        assert len({msg_id for msg_id, _ in steps}) == 3

        await s.base.track(
            event("n-reply", type="email_replied", lead_id="lead-nurture", occurred_at=now())
        )
        stopped = await eventually(lambda: _stopped(s), timeout=15)
        assert stopped.stop_reason == tpb.ENROLLMENT_STOP_REASON_REPLIED
        clock.advance(timedelta(days=20))
        await asyncio.sleep(0.5)
        assert len(await _steps(settings)) == 3
        sent = [st.HasField("sent_at") for st in stopped.steps]
        assert sent == [True, True, True, False, False]


async def _has_enrollment(s):  # type: ignore[no-untyped-def]
    return await s.pool.fetchval("SELECT count(*) FROM enrollments")


async def _count(settings, n: int):  # type: ignore[no-untyped-def]
    steps = await _steps(settings)
    assert len(steps) <= n, steps
    return steps if len(steps) == n else None


async def _stopped(s):  # type: ignore[no-untyped-def]
    reply = await s.routing.ListEnrollments(
        pb.ListEnrollmentsRequest(lead_id="lead-nurture", states=[tpb.ENROLLMENT_STATE_STOPPED]),
        metadata=s.metadata,
    )
    return reply.enrollments[0] if reply.enrollments else None


async def test_two_replicas_never_double_assign_a_turn_or_emit_a_step_twice(
    settings, monkeypatch, tmp_path
):
    routing_env(monkeypatch, tmp_path)
    clock = Clock()
    async with routing_suite(settings, replicas=2, clock=clock) as s:
        config = example_config()
        # ModuMind's new leads by round robin over its three owners, no capacity limits
        rules = tuple(
            replace(r, strategy=type(r.strategy).ROUND_ROBIN) if r.id == "modumind-new-cold" else r
            for r in config.rules
        )
        brands = tuple(
            replace(b, owners=tuple(replace(o, daily_capacity=0) for o in b.owners))
            for b in config.brands
        )
        await s.put_config(replace(config, rules=rules, brands=brands))
        leads = [f"lead-r{i:02d}" for i in range(30)]
        await asyncio.gather(*(identify(s, lead) for lead in leads))

        async def all_assigned():  # type: ignore[no-untyped-def]
            rows = await s.pool.fetch("SELECT lead_id, owner_id FROM assignments")
            return rows if len(rows) >= 30 else None

        rows = await eventually(all_assigned, timeout=30)
        await asyncio.sleep(0.3)
        rows = await s.pool.fetch("SELECT lead_id, owner_id FROM assignments")
        assert sorted(r["lead_id"] for r in rows) == leads  # one assignment per lead
        assert Counter(r["owner_id"] for r in rows) == {"ana": 10, "bo": 10, "maya": 10}
        handled = await s.pool.fetch("SELECT consumer, count(*) FROM inbox GROUP BY consumer")
        assert handled

        clock.advance(timedelta(days=3, seconds=1))  # steps day 1 and day 3 of 30 enrolments
        steps = await eventually(lambda: _count(settings, 60), timeout=30)
        await asyncio.sleep(0.5)
        assert len(await _steps(settings)) == 60
        assert Counter((m.enrollment_id, m.step_index) for _, m in steps).most_common(1)[0][1] == 1
