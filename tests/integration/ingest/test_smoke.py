from __future__ import annotations

import pytest
from harness import auth, eventually
from ingest_support import event, published, recorded_events

from leadflow.ingest.v1 import ingest_service_pb2

pytestmark = pytest.mark.integration


async def test_a_batch_is_stored_and_published(ingest, writer_key):
    reply = await ingest.stub.TrackBatch(
        ingest_service_pb2.TrackBatchRequest(
            events=[
                event(
                    "e1",
                    anonymous_id="a1",
                    page_url="https://modumind.example/?utm_source=google&utm_medium=cpc",
                ),
                event("e2", lead_id="l1", type="form_submitted", ip="81.2.69.160"),
            ]
        ),
        metadata=auth(writer_key),
    )
    assert [r.status for r in reply.results] == [1, 1], reply
    assert (reply.received, reply.accepted) == (2, 2)
    rows = await ingest.pool.fetch(
        "SELECT event_id, session_id, channel FROM events ORDER BY event_id"
    )
    assert [r["event_id"] for r in rows] == ["e1", "e2"]
    assert rows[0]["channel"] == "paid_search"

    async def out():
        return list(
            recorded_events(
                await published(ingest.settings.nats_url, ingest.settings.bus_namespace)
            )
        )

    events = await eventually(out)
    assert {e.event_id for e in events} == {"e1", "e2"}
    e2 = next(e for e in events if e.event_id == "e2")
    assert e2.ip_truncated == "81.2.69.0"
    assert e2.geo.country == "GB"
