"""ListAssignments and ListEnrollments over gRPC: pages in newest-first order that join up
without gaps or repeats, each filter, and a token refused for another query."""

from __future__ import annotations

from dataclasses import replace

import grpc
import pytest
from harness import eventually
from routing_support import example_config, routing_env, routing_suite

from leadflow.common.v1 import lead_pb2, pagination_pb2
from leadflow.routing.v1 import routing_service_pb2 as pb
from leadflow.routing.v1 import routing_types_pb2 as tpb

pytestmark = pytest.mark.integration

MODUMIND = [f"lead-m{i}" for i in range(5)]
EPICQUEST = ["lead-e0", "lead-e1"]


async def pages(call, request, size: int) -> list[list]:  # type: ignore[no-untyped-def]
    """Every page of a list call, following the tokens."""
    out: list[list] = []
    token = ""
    while True:
        request.page.CopyFrom(pagination_pb2.PageRequest(page_size=size, page_token=token))
        reply = await call(request)
        items = list(getattr(reply, "assignments", None) or reply.enrollments)
        out.append(items)
        token = reply.page.next_page_token
        if not token:
            return out


async def test_paging_and_filters_of_assignments_and_enrollments(settings, monkeypatch, tmp_path):
    routing_env(monkeypatch, tmp_path)
    async with routing_suite(settings) as s:
        config = example_config()
        # EpicQuest's leads routed once, when identified (not again on their first stage)
        rules = tuple(
            replace(r, condition=r.condition + ' && trigger == "identified"')
            if r.id == "epicquest-home"
            else r
            for r in config.rules
        )
        await s.put_config(replace(config, rules=rules))
        for lead in MODUMIND:
            await s.base.identify(
                lead,
                email=f"{lead}@example.com",
                home_brand_id="modumind",
                segment=lead_pb2.SEGMENT_SMB,
            )
        for lead in EPICQUEST:
            await s.base.identify(lead, email=f"{lead}@example.com", home_brand_id="epicquest")

        async def listed(**filters):  # type: ignore[no-untyped-def]
            reply = await s.routing.ListAssignments(
                pb.ListAssignmentsRequest(
                    **filters, page=pagination_pb2.PageRequest(page_size=100)
                ),
                metadata=s.metadata,
            )
            return list(reply.assignments)

        async def seven():  # type: ignore[no-untyped-def]
            found = await listed()
            return found if len(found) == 7 else None

        everything = await eventually(seven, timeout=20)
        assert sorted(a.lead_id for a in everything) == sorted(MODUMIND + EPICQUEST)
        keys = [(a.assigned_at.ToDatetime(), a.id) for a in everything]
        assert keys == sorted(keys, reverse=True)  # newest first

        def assignments(request):  # type: ignore[no-untyped-def]
            return s.routing.ListAssignments(request, metadata=s.metadata)

        paged = await pages(assignments, pb.ListAssignmentsRequest(), 3)
        assert [len(p) for p in paged] == [3, 3, 1]
        assert [a.id for p in paged for a in p] == [a.id for a in everything]

        epic = await listed(brand_id="epicquest")
        assert sorted(a.lead_id for a in epic) == EPICQUEST
        owner = everything[0].owner.owner_id
        mine = await listed(owner_id=owner)
        assert mine and {a.owner.owner_id for a in mine} == {owner}
        assert len(mine) == sum(a.owner.owner_id == owner for a in everything)
        (one,) = await listed(lead_id="lead-m3")
        await s.routing.AcknowledgeAssignment(
            pb.AcknowledgeAssignmentRequest(assignment_id=one.id, owner_id=one.owner.owner_id),
            metadata=s.metadata,
        )
        acked = await listed(states=[tpb.ASSIGNMENT_STATE_ACKNOWLEDGED])
        assert [a.id for a in acked] == [one.id]
        assert len(await listed(states=[tpb.ASSIGNMENT_STATE_ASSIGNED])) == 6
        middle = everything[3].assigned_at
        newer = pb.ListAssignmentsRequest()
        newer.range.start_time.CopyFrom(middle)
        newer.page.page_size = 100
        reply = await s.routing.ListAssignments(newer, metadata=s.metadata)
        assert [a.id for a in reply.assignments] == [a.id for a in everything[:4]]

        # a token belongs to its query
        first = await s.routing.ListAssignments(
            pb.ListAssignmentsRequest(page=pagination_pb2.PageRequest(page_size=2)),
            metadata=s.metadata,
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await s.routing.ListAssignments(
                pb.ListAssignmentsRequest(
                    brand_id="modumind",
                    page=pagination_pb2.PageRequest(
                        page_size=2, page_token=first.page.next_page_token
                    ),
                ),
                metadata=s.metadata,
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "page.page_token" in refused.value.details()

        def enrollments(request):  # type: ignore[no-untyped-def]
            return s.routing.ListEnrollments(request, metadata=s.metadata)

        paged_enrollments = await pages(enrollments, pb.ListEnrollmentsRequest(), 2)
        assert [len(p) for p in paged_enrollments] == [2, 2, 2, 1]
        flat = [e for p in paged_enrollments for e in p]
        assert len({e.id for e in flat}) == 7
        assert all(len(e.steps) == 5 for e in flat)
        keys = [(e.enrolled_at.ToDatetime(), e.id) for e in flat]
        assert keys == sorted(keys, reverse=True)
        startup = await pages(
            enrollments, pb.ListEnrollmentsRequest(sequence_id="startup-default"), 1
        )
        assert sorted(e.lead_id for p in startup for e in p) == EPICQUEST
        brand = await enrollments(pb.ListEnrollmentsRequest(brand_id="modumind"))
        assert sorted(e.lead_id for e in brand.enrollments) == MODUMIND
        assert {e.sequence_id for e in brand.enrollments} == {"smb-default"}
        stopped = await enrollments(
            pb.ListEnrollmentsRequest(states=[tpb.ENROLLMENT_STATE_STOPPED])
        )
        assert list(stopped.enrollments) == []
        by_lead = await enrollments(pb.ListEnrollmentsRequest(lead_id="lead-e1"))
        assert [e.sequence_id for e in by_lead.enrollments] == ["startup-default"]
