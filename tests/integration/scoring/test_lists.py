"""ListLeads: filters (grade, temperature, stage, brand, minimum score), sorting, and page
tokens that walk the whole list once and refuse another query's token."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest
from ingest_support import event, now
from scoring_support import suite

from leadflow.common.v1 import lead_pb2, pagination_pb2
from leadflow.ingest.v1 import profile_pb2
from leadflow.scoring.v1 import scoring_service_pb2 as pb

pytestmark = pytest.mark.integration

# lead id -> (home brand, page views); each page view adds .25 to 17.5 (+.25 for the day).
LEADS = {
    "lead-a": ("modumind", 1),
    "lead-b": ("stacksense", 3),
    "lead-c": ("modumind", 3),
    "lead-d": ("epicquest", 6),
    "lead-e": ("modumind", 8),
}


async def _populate(s) -> None:
    at = now() - timedelta(seconds=30)
    for lead_id, (brand, views) in LEADS.items():
        await s.identify(lead_id, home_brand_id=brand)
        await s.track(
            *(
                event(f"{lead_id}-{i}", type="page_view", lead_id=lead_id, occurred_at=at)
                for i in range(views)
            )
        )
    # A warm C+ lead: the whole profile, email consent and a form (qualified).
    await s.identify(
        "lead-hot",
        email="x@example.com",
        first_name="X",
        last_name="Y",
        customer_type="enterprise",
        location=profile_pb2.Location(country="US"),
        lead_source="referral",
        home_brand_id="ikid",
    )
    await s.consent("lead-hot", email=True)
    await s.track(event("hot-form", type="form_submitted", lead_id="lead-hot", occurred_at=at))
    await s.applied()


async def _list(s, **kw) -> pb.ListLeadsResponse:
    return await s.scoring.ListLeads(pb.ListLeadsRequest(**kw), metadata=s.metadata)


async def _all_pages(s, page_size: int, **kw) -> tuple[list[str], int]:
    ids: list[str] = []
    token = ""
    pages = 0
    while True:
        reply = await _list(
            s, page=pagination_pb2.PageRequest(page_size=page_size, page_token=token), **kw
        )
        ids.extend(lead.lead_id for lead in reply.leads)
        pages += 1
        token = reply.page.next_page_token
        if not token:
            return ids, pages


async def test_list_leads_filters_sorts_and_pages(settings):
    async with suite(settings) as s:
        await _populate(s)
        default = await _list(s)
        ascending = await _list(
            s,
            sort_field=pb.LEAD_SORT_FIELD_TOTAL,
            sort_direction=pb.SORT_DIRECTION_ASCENDING,
        )
        by_id = await _list(s, sort_field=pb.LEAD_SORT_FIELD_LEAD_ID)
        modumind = await _list(s, brand_id="modumind")
        warm = await _list(s, temperatures=[lead_pb2.TEMPERATURE_WARM])
        graded = await _list(s, grades=[lead_pb2.GRADE_C_PLUS, lead_pb2.GRADE_B])
        qualified = await _list(s, stages=[lead_pb2.LIFECYCLE_STAGE_QUALIFIED])
        new = await _list(s, stages=[lead_pb2.LIFECYCLE_STAGE_NEW], min_score=19)
        factors = await _list(s, include_factors=True, page=pagination_pb2.PageRequest(page_size=1))
        paged, pages = await _all_pages(s, 2)
        paged_asc, _ = await _all_pages(
            s,
            4,
            sort_field=pb.LEAD_SORT_FIELD_TOTAL,
            sort_direction=pb.SORT_DIRECTION_ASCENDING,
        )
        paged_recent, _ = await _all_pages(s, 2, sort_field=pb.LEAD_SORT_FIELD_COMPUTED_AT)
        first = await _list(s, page=pagination_pb2.PageRequest(page_size=2))
        with pytest.raises(grpc.aio.AioRpcError) as foreign:
            await _list(
                s,
                brand_id="modumind",
                page=pagination_pb2.PageRequest(page_size=2, page_token=first.page.next_page_token),
            )
        with pytest.raises(grpc.aio.AioRpcError) as bad_score:
            await _list(s, min_score=101)
        with pytest.raises(grpc.aio.AioRpcError) as bad_grade:
            await _list(s, grades=[lead_pb2.GRADE_UNSPECIFIED])

    everyone = [*LEADS, "lead-hot"]
    totals = {lead.lead_id: lead.total for lead in default.leads}
    assert default.total_count == 6
    assert totals["lead-hot"] == 54.25
    for lead_id, (_, views) in LEADS.items():
        assert totals[lead_id] == pytest.approx(17.5 + 0.25 * (views + 1), abs=0.01)
    # Highest first; the tie (lead-b, lead-c) by lead id.
    assert [lead.lead_id for lead in default.leads] == [
        "lead-hot",
        "lead-e",
        "lead-d",
        "lead-b",
        "lead-c",
        "lead-a",
    ]
    assert [lead.lead_id for lead in ascending.leads] == [
        "lead-a",
        "lead-b",
        "lead-c",
        "lead-d",
        "lead-e",
        "lead-hot",
    ]
    assert [lead.lead_id for lead in by_id.leads] == sorted(everyone)
    assert {lead.lead_id for lead in modumind.leads} == {"lead-a", "lead-c", "lead-e"}
    assert modumind.total_count == 3
    assert [lead.lead_id for lead in warm.leads] == ["lead-hot"]
    assert [lead.lead_id for lead in graded.leads] == ["lead-hot"]
    assert [lead.lead_id for lead in qualified.leads] == ["lead-hot"]
    assert [lead.lead_id for lead in new.leads] == ["lead-e", "lead-d"]  # 19.75, 19.25
    assert all(not lead.components.intent.factors for lead in default.leads)
    assert factors.leads[0].components.intent.factors
    assert (paged, pages) == ([lead.lead_id for lead in default.leads], 3)
    assert paged_asc == [lead.lead_id for lead in ascending.leads]
    assert sorted(paged_recent) == sorted(everyone)
    assert foreign.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page.page_token" in (foreign.value.details() or "")
    assert bad_score.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "min_score" in (bad_score.value.details() or "")
    assert "grades[0]" in (bad_grade.value.details() or "")
