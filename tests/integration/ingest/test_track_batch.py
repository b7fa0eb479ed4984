"""TrackBatch: every rule of DESIGN.md section 3 "Ingest" answered per item, good events
stored and published even beside bad ones, counts that add up, and idempotence."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest
from harness import auth, eventually, new_key
from ingest_support import event, now, published, recorded_events

from leadflow.common.v1 import subject_pb2
from leadflow.ingest.v1 import ingest_service_pb2 as pb
from leadflow.ingest.v1 import profile_pb2

pytestmark = pytest.mark.integration
ACCEPTED, DUPLICATE, REJECTED = (
    pb.EVENT_STATUS_ACCEPTED,
    pb.EVENT_STATUS_DUPLICATE,
    pb.EVENT_STATUS_REJECTED,
)
V = pb.ViolationCode


async def _published_ids(ingest) -> list[str]:
    messages = await published(ingest.settings.nats_url, ingest.settings.bus_namespace)
    return [e.event_id for e in recorded_events(messages)]


async def test_mixed_batch_answers_each_event_and_keeps_the_good_ones(
    ingest, writer_key, admin_key
):
    t = now()
    # State some rules need: a subject who withdrew tracking consent, an erased lead.
    await ingest.stub.SetConsent(
        pb.SetConsentRequest(
            subject=subject_pb2.SubjectRef(lead_id="withdrawn-lead"),
            tracking=profile_pb2.ConsentDecision(status=profile_pb2.CONSENT_STATUS_WITHDRAWN),
        ),
        metadata=auth(writer_key),
    )
    await ingest.stub.EraseSubject(pb.EraseSubjectRequest(lead_id="gone"), metadata=auth(admin_key))

    cases = [
        # (event, expected status, expected (field, code) of the first violation or None)
        (event("ok-plain", anonymous_id="a1"), ACCEPTED, None),
        (event("no-brand", anonymous_id="a1", brand_id=""), REJECTED, ("brand_id", V.VIOLATION_CODE_FIELD_REQUIRED)),
        (event("no-type", anonymous_id="a1", type=""), REJECTED, ("type", V.VIOLATION_CODE_FIELD_REQUIRED)),
        (event("custom-unnamed", anonymous_id="a1", type="custom"), REJECTED, ("custom_name", V.VIOLATION_CODE_FIELD_REQUIRED)),
        (event("nobody"), REJECTED, ("subject", V.VIOLATION_CODE_MISSING_SUBJECT)),
        (event("bad-url", anonymous_id="a1", page_url="not a url"), REJECTED, ("page_url", V.VIOLATION_CODE_INVALID_VALUE)),
        (event("bad-ip", anonymous_id="a1", ip="999.1.1.1"), REJECTED, ("ip", V.VIOLATION_CODE_INVALID_VALUE)),
        (event("x" * 101, anonymous_id="a1"), REJECTED, ("event_id", V.VIOLATION_CODE_ID_TOO_LONG)),
        (event("too-large", anonymous_id="a1", properties={f"p{i}": "v" * 999 for i in range(40)}), REJECTED, ("", V.VIOLATION_CODE_EVENT_TOO_LARGE)),
        (event("too-many", anonymous_id="a1", properties={f"p{i}": i for i in range(257)}), REJECTED, ("properties", V.VIOLATION_CODE_TOO_MANY_PROPERTIES)),
        (event("too-deep", anonymous_id="a1", properties={"a": {"b": {"c": {"d": 1}}}}), REJECTED, ("properties.a.b.c", V.VIOLATION_CODE_NESTING_TOO_DEEP)),
        (event("too-long", anonymous_id="a1", properties={"note": "n" * 1001}), REJECTED, ("properties.note", V.VIOLATION_CODE_STRING_TOO_LONG)),
        (event("bad-currency", anonymous_id="a1", type="purchase", value=(10, 0, "ZZZ")), REJECTED, ("value.currency_code", V.VIOLATION_CODE_INVALID_CURRENCY)),
        (event("bad-amount", anonymous_id="a1", type="purchase", value=(5, -5, "USD")), REJECTED, ("value.nanos", V.VIOLATION_CODE_INVALID_AMOUNT)),
        (event("too-old", anonymous_id="a1", occurred_at=t - timedelta(days=400)), REJECTED, ("occurred_at", V.VIOLATION_CODE_OUTSIDE_RETENTION)),
        (event("no-consent", lead_id="withdrawn-lead"), REJECTED, ("subject", V.VIOLATION_CODE_CONSENT_WITHDRAWN)),
        (event("erased", lead_id="gone"), REJECTED, ("subject", V.VIOLATION_CODE_SUBJECT_ERASED)),
        # Accepted, with what the server noticed:
        (event("skewed", anonymous_id="a2", occurred_at=t + timedelta(hours=1, seconds=-10), sent_at=t + timedelta(hours=1)), ACCEPTED, None),
        (event("future", anonymous_id="a2", occurred_at=t + timedelta(hours=25)), ACCEPTED, None),
        (event("backfill", anonymous_id="a2", occurred_at=t - timedelta(hours=73)), ACCEPTED, None),
        (event("proxy-open", lead_id="l9", type="email_opened", user_agent="Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"), ACCEPTED, None),
        (event("utm", anonymous_id="a3", page_url="https://stacksense.example/p?utm_source=newsletter&utm_medium=email&utm_campaign=fall"), ACCEPTED, None),
        (event("with-ip", anonymous_id="a3", ip="203.0.113.77"), ACCEPTED, None),
        (event("", anonymous_id="a3"), ACCEPTED, None),  # the server makes the id
        (event("ok-plain", anonymous_id="a1"), DUPLICATE, None),  # twice in one batch
        (event("purchase", lead_id="l9", type="purchase", value=(49, 990_000_000, "EUR")), ACCEPTED, None),
    ]  # fmt: skip
    request = pb.TrackBatchRequest(events=[c[0] for c in cases])
    reply = await ingest.stub.TrackBatch(request, metadata=auth(writer_key))

    assert reply.received == len(cases)
    assert reply.received == reply.accepted + reply.duplicate + reply.rejected
    for i, ((_, status, violation), result) in enumerate(zip(cases, reply.results, strict=True)):
        assert result.index == i
        assert result.status == status, (i, result)
        if violation is not None:
            field, code = violation
            expected_field = f"events[{i}]" + (f".{field}" if field else "")
            assert (result.violations[0].field, result.violations[0].code) == (
                expected_field,
                code,
            ), result
            assert result.violations[0].reason
    by_id = {r.event_id: r for r in reply.results if r.status == ACCEPTED}
    assert by_id["skewed"].flags.clock_skew_clamped is False
    assert by_id["future"].flags.clock_skew_clamped is True
    assert by_id["backfill"].flags.backfill is True
    assert by_id["proxy-open"].flags.machine_generated is True
    assert by_id["proxy-open"].flags.machine_signal == 1  # IMAGE_PROXY_PREFETCH
    generated = next(
        r for r in reply.results if r.status == ACCEPTED and r.flags.event_id_generated
    )
    assert len(generated.event_id) == 36

    accepted = {r.event_id for r in reply.results if r.status == ACCEPTED}
    stored = {r["event_id"] for r in await ingest.pool.fetch("SELECT event_id FROM events")}
    assert stored == accepted
    assert sorted(await eventually(lambda: _published_ids(ingest))) == sorted(accepted)

    messages = await published(ingest.settings.nats_url, ingest.settings.bus_namespace)
    out = {e.event_id: e for e in recorded_events(messages)}
    skewed = out["skewed"]
    # occurred = received - (sent - occurred_as_sent) = received - 10 s
    assert skewed.received_at.ToSeconds() - skewed.occurred_at.ToSeconds() == pytest.approx(
        10, abs=1
    )
    assert out["future"].occurred_at == out["future"].received_at
    assert (out["utm"].marketing.source, out["utm"].marketing.medium, out["utm"].marketing.campaign,
            out["utm"].marketing.channel) == ("newsletter", "email", "fall", "email")  # fmt: skip
    assert out["utm"].flags.marketing_parsed is True
    assert out["with-ip"].ip_truncated == "203.0.113.0"
    assert out["purchase"].value.currency_code == "EUR"
    assert out["purchase"].value.nanos == 990_000_000
    assert all(e.session_id for e in out.values())
    assert messages[0][1].metadata.tenant_id == "371minds"


async def test_the_same_batch_twice_is_stored_and_published_once(ingest, writer_key, settings):
    batch = pb.TrackBatchRequest(
        events=[event(f"dup-{i}", anonymous_id=f"v{i % 3}") for i in range(50)]
    )
    first = await ingest.stub.TrackBatch(batch, metadata=auth(writer_key))
    second = await ingest.stub.TrackBatch(batch, metadata=auth(writer_key))
    assert (first.accepted, first.duplicate) == (50, 0)
    assert (second.accepted, second.duplicate) == (0, 50)
    assert {r.event_id for r in second.results} == {f"dup-{i}" for i in range(50)}

    other_tenant = await new_key(settings.database_url, "globex", "ingest")
    third = await ingest.stub.TrackBatch(batch, metadata=auth(other_tenant))
    assert third.accepted == 50  # the same ids in another tenant are other events

    rows = await ingest.pool.fetch("SELECT tenant_id, count(*) AS n FROM events GROUP BY 1")
    assert {r["tenant_id"]: r["n"] for r in rows} == {"371minds": 50, "globex": 50}

    async def all_published():
        ids = await _published_ids(ingest)
        return ids if len(ids) >= 100 else None

    ids = await eventually(all_published)
    assert len(ids) == 100  # 50 per tenant, none twice
    messages = await published(ingest.settings.nats_url, ingest.settings.bus_namespace)
    tenants = [m.metadata.tenant_id for _, m in messages]
    assert sorted(tenants) == ["371minds", "globex"]


async def test_batch_limits_and_sizes(ingest, writer_key):
    too_many = pb.TrackBatchRequest(events=[event(f"m{i}", anonymous_id="a") for i in range(1001)])
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await ingest.stub.TrackBatch(too_many, metadata=auth(writer_key))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details().startswith("events: 1001 events")

    huge = pb.TrackBatchRequest(
        events=[event(f"h{i}", anonymous_id="a", properties={"x": "y" * 900}) for i in range(1000)]
        + [event("h-last", anonymous_id="a", properties={f"p{i}": "z" * 999 for i in range(200)})]
    )
    assert huge.ByteSize() > 1024 * 1024 + 65536
    with pytest.raises(grpc.aio.AioRpcError) as too_big:
        await ingest.stub.TrackBatch(huge, metadata=auth(writer_key))
    assert too_big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

    empty = pb.TrackBatchRequest()
    with pytest.raises(grpc.aio.AioRpcError) as nothing:
        await ingest.stub.TrackBatch(empty, metadata=auth(writer_key))
    assert nothing.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert await ingest.pool.fetchval("SELECT count(*) FROM events") == 0

    # A batch of exactly 1,000 small events is fine, and is published in parts under the
    # bus message size.
    thousand = pb.TrackBatchRequest(
        events=[event(f"k{i}", anonymous_id=f"a{i % 10}", properties={"x": "y" * 900})
                for i in range(1000)]
    )  # fmt: skip
    reply = await ingest.stub.TrackBatch(thousand, metadata=auth(writer_key))
    assert reply.accepted == 1000

    async def all_out():
        ids = await _published_ids(ingest)
        return ids if len(ids) >= 1000 else None

    assert len(await eventually(all_out)) == 1000
    messages = await published(ingest.settings.nats_url, ingest.settings.bus_namespace)
    assert len(messages) >= 2
    assert max(m.ByteSize() for _, m in messages) <= 512 * 1024
