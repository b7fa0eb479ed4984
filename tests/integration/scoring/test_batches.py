"""The messages of one fetch applied together (the consumer's batch handler) leave exactly
what applying them one per transaction leaves, with fewer announcements: a lead with
events in several messages is rescored once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from harness import open_service_pool
from ingest_support import now

from leadflow.common.v1 import event_type_pb2, lead_pb2, marketing_pb2
from leadflow.ingest.v1 import events_pb2, profile_pb2
from leadflow.scoring.v1 import lead_score_pb2
from leadflow_platform.nats import Delivery
from leadflow_scoring.app import SPEC
from leadflow_scoring.erasure import ErasedSubjects
from leadflow_scoring.events import consumers
from leadflow_scoring.ingestion import Ingestion
from leadflow_scoring.leads import Leads
from leadflow_scoring.model_store import ModelStore

pytestmark = pytest.mark.integration

TENANT = "371minds"
# (minute, type, lead) per event; messages of three events, dated out of order; lead-x's
# meeting (minute 30) comes before its form (minute 20) and its first email (minute 5).
EVENTS = [
    (30, "meeting_scheduled", "x"),
    (31, "page_view", "x"),
    (2, "page_view", "y"),
    (20, "form_submitted", "x"),
    (21, "email_opened", "x"),
    (3, "page_view", "y"),
    (5, "email_sent", "x"),
    (6, "email_clicked", "x"),
    (1, "page_view", "y"),
    (40, "email_replied", "x"),
    (41, "content_downloaded", "y"),
    (42, "page_view", "x"),
]


def _deliveries(p: str, base) -> list[Delivery]:
    out: list[Delivery] = []

    def add(message, subject: str) -> None:
        n = len(out) + 1
        message.metadata.event_id = f"{p}m{n}"
        message.metadata.tenant_id = TENANT
        message.metadata.occurred_at.FromDatetime(base)
        out.append(Delivery(subject, message, f"{p}m{n}", TENANT, n, 1))

    for m in range(0, len(EVENTS), 3):
        message = events_pb2.EventsRecorded()
        for i, (minute, kind, lead) in enumerate(EVENTS[m : m + 3], start=m):
            e = message.events.add(event_id=f"{p}e{i:02d}", brand_id="modumind")
            e.type = event_type_pb2.EventType.Value(f"EVENT_TYPE_{kind.upper()}")
            e.subject.lead_id = f"{p}lead-{lead}"
            e.occurred_at.FromDatetime(base + timedelta(minutes=minute))
            if i % 2 == 0:
                e.marketing.CopyFrom(marketing_pb2.MarketingContext(channel="paid_search"))
        add(message, "ingest.event.recorded")
        if m == 3:  # a profile between the event messages: applied in its place
            identified = events_pb2.SubjectIdentified(
                lead_id=f"{p}lead-x",
                profile=profile_pb2.LeadProfile(email="x@example.com", customer_type="smb"),
            )
            add(identified, "ingest.subject.identified")
    return out


async def _state(pool, p: str):
    leads = []
    for lead in ("x", "y"):
        blob = await pool.fetchval(
            "SELECT score FROM leads WHERE tenant_id = $1 AND lead_id = $2",
            TENANT,
            f"{p}lead-{lead}",
        )
        score = lead_score_pb2.LeadScore.FromString(blob)
        transitions = await pool.fetch(
            "SELECT from_stage, to_stage, transitioned_at, trigger, triggering_event_id,"
            " time_in_previous_stage, touchpoint_event_ids, touchpoint_count FROM transitions"
            " WHERE tenant_id = $1 AND lead_id = $2 ORDER BY transitioned_at, seq",
            TENANT,
            f"{p}lead-{lead}",
        )
        leads.append(
            (
                score.undecayed_total,
                score.grade,
                score.stage,
                [
                    (f.label, f.count, f.undecayed_points)
                    for c in (score.components.behavioural, score.components.intent)
                    for f in c.factors
                ],
                [
                    tuple(
                        v.removeprefix(p)
                        if isinstance(v, str)
                        else [i.removeprefix(p) for i in v]
                        if isinstance(v, list)
                        else v
                        for v in t.values()
                    )
                    for t in transitions
                ],
            )
        )
    return leads


async def test_a_batch_leaves_what_one_message_per_transaction_leaves(settings):
    base = now() - timedelta(hours=1)
    pool = await open_service_pool(settings.database_url, SPEC)
    handler = consumers.handler(Ingestion(Leads(ModelStore()), ErasedSubjects()))
    try:
        for d in _deliveries("one-", base):
            async with pool.acquire() as conn, conn.transaction():
                await handler(conn, d)
        one = await _state(pool, "one-")
        one_out = await pool.fetch("SELECT subject, count(*) AS n FROM outbox GROUP BY 1")
        async with pool.acquire() as conn, conn.transaction():
            await handler.apply(conn, _deliveries("all-", base))
        together = await _state(pool, "all-")
        all_out = await pool.fetch("SELECT subject, count(*) AS n FROM outbox GROUP BY 1")
    finally:
        await pool.close()

    assert together == one
    x = one[0]
    assert x[2] == lead_pb2.LIFECYCLE_STAGE_OPPORTUNITY
    assert [t[1] for t in x[4]] == ["new", "contacted", "qualified", "opportunity"]
    one_counts = {r["subject"]: r["n"] for r in one_out}
    all_counts = {r["subject"]: r["n"] - one_counts.get(r["subject"], 0) for r in all_out}
    # One score change per lead for the events before the profile, one for the profile,
    # one per lead for the events after it; one per message and lead one at a time.
    assert all_counts["scoring.score.changed"] == 5
    assert one_counts["scoring.score.changed"] > all_counts["scoring.score.changed"]
    # Every transition is announced once either way.
    assert all_counts["scoring.stage.changed"] == one_counts["scoring.stage.changed"] == 5
