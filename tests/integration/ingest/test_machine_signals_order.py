"""An open or click is judged against its own email's delivery whatever order the events
arrive in: sent in several calls, out of time order, the flags are those of one call."""

from __future__ import annotations

from datetime import timedelta

import pytest
from harness import auth
from ingest_support import event, now

from leadflow.ingest.v1 import ingest_service_pb2 as pb

pytestmark = pytest.mark.integration
HUMAN = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1"


def _story(lead: str) -> dict[str, list]:
    """Three emails two days apart; a person opens and clicks the first one 20 minutes after
    it, a scanner clicks the second one 3 s after it, and the third one is opened 4 s before
    its delivery as the sender's clock has it."""
    t = (now() - timedelta(days=6)).replace(microsecond=0)
    day = timedelta(days=2)

    def e(name: str, kind: str, at, **fields) -> object:
        return event(f"{lead}-{name}", type=kind, lead_id=lead, occurred_at=at, **fields)

    return {
        "sent": [
            e("sent-1", "email_sent", t),
            e("sent-2", "email_sent", t + day),
            e("sent-3", "email_sent", t + 2 * day),
        ],
        "engagement": [
            e("open-1", "email_opened", t + timedelta(minutes=20), user_agent=HUMAN),
            e("click-1", "email_clicked", t + timedelta(minutes=21), user_agent=HUMAN),
            e("click-2", "email_clicked", t + day + timedelta(seconds=3), user_agent=HUMAN),
            e("open-3", "email_opened", t + 2 * day - timedelta(seconds=4), user_agent=HUMAN),
        ],
    }


async def _flags(ingest, key: str, *batches: list) -> dict[str, bool]:
    flags = {}
    for batch in batches:
        reply = await ingest.stub.TrackBatch(pb.TrackBatchRequest(events=batch), metadata=auth(key))
        assert reply.accepted == len(batch), reply
        flags.update(
            {r.event_id.split("-", 1)[1]: r.flags.machine_generated for r in reply.results}
        )
    return flags


async def test_opens_and_clicks_are_judged_by_their_own_delivery_in_any_arrival_order(
    ingest, writer_key
):
    expected = {
        "sent-1": False,
        "sent-2": False,
        "sent-3": False,
        "open-1": False,  # 20 minutes after its delivery: a person
        "click-1": False,
        "click-2": True,  # 3 s after its delivery: a link scanner
        "open-3": True,  # before its delivery by the sender's clock: a prefetch
    }
    one = _story("one")
    assert await _flags(ingest, writer_key, one["sent"] + one["engagement"]) == expected

    # Every delivery first, then the engagement: the first email's open and click arrive
    # after two later deliveries, and are still measured from the first.
    late = _story("late")
    assert await _flags(ingest, writer_key, late["sent"], late["engagement"]) == expected

    # One event per call, out of time order (each delivery before its own engagement).
    single = {e.event_id.removeprefix("single-"): e for b in _story("single").values() for e in b}
    order = ("sent-3", "sent-2", "click-2", "open-3", "sent-1", "click-1", "open-1")
    assert await _flags(ingest, writer_key, *([single[n]] for n in order)) == expected

    stored = await ingest.pool.fetch(
        "SELECT event_id FROM events WHERE 'machine_generated' = ANY(flags)"
    )
    machine = {r["event_id"] for r in stored}
    assert machine == {
        f"{lead}-{n}" for lead in ("one", "late", "single") for n in ("click-2", "open-3")
    }
