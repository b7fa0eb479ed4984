"""The read model's subjects: Alias moves an anonymous visitor's events to the lead (earlier
and later ones), erasure leaves no row naming the person, and bad funnel requests are
refused with the field named."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest
from google.protobuf import duration_pb2
from ingest_support import event, now
from reporting_support import suite

from leadflow.common.v1 import event_type_pb2, pagination_pb2, time_range_pb2
from leadflow.reporting.v1 import report_types_pb2 as rt
from leadflow.reporting.v1 import reporting_service_pb2 as pb

pytestmark = pytest.mark.integration

VIEW, SIGNUP = event_type_pb2.EVENT_TYPE_PAGE_VIEW, event_type_pb2.EVENT_TYPE_SIGNUP


def funnel(start, *steps) -> rt.FunnelDefinition:
    d = rt.FunnelDefinition(range=time_range_pb2.TimeRange())
    d.range.start_time.FromDatetime(start)
    d.range.end_time.FromDatetime(start + timedelta(days=2))
    for s in steps:
        d.steps.add(event=rt.EventSelector(event_type=s))
    return d


async def counts(s, d) -> list[int]:
    reply = await s.reporting.RunFunnel(pb.RunFunnelRequest(funnel=d), metadata=s.metadata)
    return [x.count for x in reply.overall.steps]


async def test_alias_moves_the_visitors_events_to_the_lead(settings):
    t0 = now() - timedelta(hours=3)
    async with suite(settings) as s:
        await s.track(
            [
                event("a1", type="page_view", anonymous_id="anon-ann", occurred_at=t0),
                event("a2", type="signup", lead_id="lead-ann", occurred_at=t0 + timedelta(hours=1)),
            ]
        )
        await s.applied()
        d = funnel(t0 - timedelta(hours=1), VIEW, SIGNUP)
        assert await counts(s, d) == [1, 0]  # two subjects until Alias
        await s.alias("anon-ann", "lead-ann")
        await s.applied()
        assert await counts(s, d) == [1, 1]
        # A later event of the anonymous id lands on the lead too.
        await s.track(
            [
                event(
                    "a3",
                    type="page_view",
                    anonymous_id="anon-ann",
                    occurred_at=t0 + timedelta(hours=2),
                )
            ]
        )
        await s.applied()
        assert await s.pool.fetchval("SELECT count(DISTINCT subject_id) FROM events") == 1
        drops = await s.reporting.ListFunnelDropOffs(
            pb.ListFunnelDropOffsRequest(
                funnel=funnel(t0 - timedelta(hours=1), SIGNUP, VIEW), step_index=1
            ),
            metadata=s.metadata,
        )
        assert drops.total_count == 0  # the later page view follows the signup


async def test_erasure_leaves_no_row_naming_the_person(settings):
    t0 = now() - timedelta(hours=3)
    async with suite(settings) as s:
        await s.track(
            [
                event("b1", type="page_view", anonymous_id="anon-bob", occurred_at=t0),
                event("b2", type="signup", lead_id="lead-bob", occurred_at=t0 + timedelta(hours=1)),
                event("c1", type="page_view", lead_id="lead-cat", occurred_at=t0),
            ]
        )
        await s.alias("anon-bob", "lead-bob")
        await s.applied()
        d = funnel(t0 - timedelta(hours=1), VIEW, SIGNUP)
        assert await counts(s, d) == [2, 1]
        await s.erase("lead-bob")
        await s.applied()
        assert await counts(s, d) == [1, 0]
        for table, column in [
            ("events", "event_id"),
            ("subjects", "lead_id"),
            ("subjects", "anonymous_id"),
            ("anonymous_ids", "anonymous_id"),
        ]:
            found = await s.pool.fetchval(
                f"SELECT count(*) FROM {table} WHERE {column} IN ('b1', 'b2', 'lead-bob', 'anon-bob')"
            )
            assert found == 0, table
        # The same ids sent again never bring the person back.
        await s.pool.execute("SELECT 1")
        hashes = await s.pool.fetchval("SELECT count(*) FROM erased_identifiers")
        assert hashes == 2


async def test_bad_requests_name_the_field(settings):
    t0 = now()
    async with suite(settings) as s:

        async def refused(call, request) -> str:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call(request, metadata=s.metadata)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            return info.value.details()

        run = s.reporting.RunFunnel
        assert "funnel: is required" in await refused(run, pb.RunFunnelRequest())
        d = funnel(t0, VIEW, 999)
        assert "funnel.steps[1].event.event_type: unknown event type" in await refused(
            run, pb.RunFunnelRequest(funnel=d)
        )
        d = funnel(t0, VIEW, SIGNUP)
        d.range.end_time.CopyFrom(d.range.start_time)
        assert "funnel.range: start_time must be before end_time" in await refused(
            run, pb.RunFunnelRequest(funnel=d)
        )
        d = funnel(t0, VIEW, SIGNUP)
        d.conversion_window.CopyFrom(duration_pb2.Duration(seconds=0))
        assert "funnel.conversion_window: must be more than 0" in await refused(
            run, pb.RunFunnelRequest(funnel=d)
        )
        d = funnel(t0, VIEW, SIGNUP)
        d.steps.add()
        assert "funnel.steps[2].event" in await refused(run, pb.RunFunnelRequest(funnel=d))

        drops = s.reporting.ListFunnelDropOffs
        d = funnel(t0, VIEW, SIGNUP)
        assert "step_index" in await refused(
            drops, pb.ListFunnelDropOffsRequest(funnel=d, step_index=2)
        )
        assert "breakdown_value: needs funnel.breakdown" in await refused(
            drops, pb.ListFunnelDropOffsRequest(funnel=d, step_index=1, breakdown_value="x")
        )
        assert "page.page_token" in await refused(
            drops,
            pb.ListFunnelDropOffsRequest(
                funnel=d, step_index=1, page=pagination_pb2.PageRequest(page_token="nope")
            ),
        )
