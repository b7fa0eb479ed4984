"""EraseSubject through ingest: the lead (with the visitor aliased to it) is gone from every
scoring read and every scoring table, and its old messages never bring it back."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from harness import SHORT_DUPLICATE_WINDOW, eventually
from ingest_support import event
from ingest_support import published as ingest_published
from scoring_support import TENANT, suite

from leadflow.ingest.v1 import ingest_service_pb2 as ingest_pb
from leadflow.ingest.v1 import profile_pb2
from leadflow.scoring.v1 import scoring_service_pb2 as pb
from leadflow_platform.nats import headers as h

pytestmark = pytest.mark.integration

NEEDLES = ("lead-erin", "anon-erin")


async def _rows_naming(pool) -> list[tuple[str, str]]:
    """(table, column) of every scoring row whose text or bytes contain a needle."""
    found = []
    columns = await pool.fetch(
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = current_schema()"
        " AND data_type IN ('text', 'jsonb', 'bytea', 'ARRAY')"
    )
    for c in columns:
        table, column = c["table_name"], c["column_name"]
        value = f'"{column}"::text' if c["data_type"] != "bytea" else f'"{column}"'
        for needle in NEEDLES:
            if c["data_type"] == "bytea":
                hit = await pool.fetchval(
                    f'SELECT count(*) FROM "{table}" WHERE position($1::bytea IN {value}) > 0',
                    needle.encode(),
                )
            else:
                hit = await pool.fetchval(
                    f'SELECT count(*) FROM "{table}" WHERE strpos({value}, $1) > 0', needle
                )
            if hit:
                found.append((table, column))
    return found


async def test_erased_lead_is_gone_and_stays_gone(settings):
    settings = settings.with_overrides(stream_duplicate_window_seconds=SHORT_DUPLICATE_WINDOW)
    async with suite(settings) as s:
        await s.track(event("v1", type="page_view", anonymous_id="anon-erin"))
        await s.identify("lead-erin", email="erin@example.com", home_brand_id="modumind")
        await s.ingest.Alias(
            ingest_pb.AliasRequest(anonymous_id="anon-erin", lead_id="lead-erin"),
            metadata=s.metadata,
        )
        await s.track(
            event("e1", type="form_submitted", lead_id="lead-erin"),
            event("k1", type="page_view", lead_id="lead-kept"),
        )
        await s.applied()
        assert (await s.score("lead-erin")).components.behavioural.undecayed_value == 17
        assert await _rows_naming(s.pool)
        kept_before = await s.score("lead-kept")

        erased = await s.erase("lead-erin")
        assert "anon-erin" in erased.anonymous_ids
        await s.applied()

        async def gone():
            try:
                await s.score("lead-erin")
            except grpc.aio.AioRpcError as exc:
                return exc.code() == grpc.StatusCode.NOT_FOUND
            return False

        await eventually(gone)
        leftovers = await _rows_naming(s.pool)
        errors = []
        for call in (
            s.scoring.GetLifecycle(
                pb.GetLifecycleRequest(lead_id="lead-erin"), metadata=s.metadata
            ),
            s.scoring.GetScoreHistory(
                pb.GetScoreHistoryRequest(lead_id="lead-erin"), metadata=s.metadata
            ),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call
            errors.append(caught.value.code())
        listed = await s.scoring.ListLeads(pb.ListLeadsRequest(), metadata=s.metadata)

        # Its old messages, in the stream again under new ids: they stay erased.
        await asyncio.sleep(SHORT_DUPLICATE_WINDOW * 2.5)
        bus = s.ingest_runtime.bus
        for subject in ("ingest.event.recorded", "ingest.subject.aliased"):
            for msg_id, message in await ingest_published(
                settings.nats_url, settings.bus_namespace, subject
            ):
                await bus.publish(
                    subject,
                    message.SerializeToString(),
                    {h.MSG_ID: f"{msg_id}-again", h.TENANT: TENANT},
                )
        # Identify of an erased lead id again after erasure: scoring keeps it blocked.
        await bus.publish(
            "ingest.subject.identified",
            _identified("lead-erin").SerializeToString(),
            {h.MSG_ID: "identified-again", h.TENANT: TENANT},
        )
        await s.applied()
        after = await _rows_naming(s.pool)
        kept_after = await s.score("lead-kept")

    assert leftovers == []
    assert errors == [grpc.StatusCode.NOT_FOUND, grpc.StatusCode.NOT_FOUND]
    assert [lead.lead_id for lead in listed.leads] == ["lead-kept"]
    assert after == []
    assert kept_after.undecayed_total == kept_before.undecayed_total


def _identified(lead_id: str):
    from leadflow.common.v1 import event_metadata_pb2
    from leadflow.ingest.v1 import events_pb2

    return events_pb2.SubjectIdentified(
        metadata=event_metadata_pb2.EventMetadata(event_id="identified-again", tenant_id=TENANT),
        lead_id=lead_id,
        profile=profile_pb2.LeadProfile(email="erin@example.com"),
    )
