"""Identify, Alias, SetConsent and EraseSubject over gRPC, with the events they publish."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import field_mask_pb2
from harness import auth, eventually
from ingest_support import event, published, recorded_events

from leadflow.common.v1 import lead_pb2, subject_pb2
from leadflow.ingest.v1 import ingest_service_pb2 as pb
from leadflow.ingest.v1 import profile_pb2

pytestmark = pytest.mark.integration
GRANTED, WITHDRAWN = profile_pb2.CONSENT_STATUS_GRANTED, profile_pb2.CONSENT_STATUS_WITHDRAWN


async def _track(ingest, key, *events):
    return await ingest.stub.TrackBatch(
        pb.TrackBatchRequest(events=list(events)), metadata=auth(key)
    )


async def _on_bus(ingest, subject, count):
    async def enough():
        found = await published(ingest.settings.nats_url, ingest.settings.bus_namespace, subject)
        return found if len(found) >= count else None

    return [m for _, m in await eventually(enough)]


async def test_identify_creates_then_changes_only_what_changed(ingest, writer_key):
    profile = profile_pb2.LeadProfile(
        email="Ada@Example.COM",
        first_name="Ada",
        phone="+1 512 555 0100",
        location=profile_pb2.Location(city="Austin", country="us"),
        segment=lead_pb2.SEGMENT_STARTUP,
        interests=["ai", "ai", "analytics"],
        home_brand_id="modumind",
    )
    profile.traits.update({"plan": "trial"})
    first = await ingest.stub.Identify(
        pb.IdentifyRequest(lead_id="lead-ada", profile=profile), metadata=auth(writer_key)
    )
    assert first.created is True
    assert first.profile.email == "Ada@example.com"  # domain part lower-cased
    assert first.profile.phone == "+15125550100"
    assert first.profile.location.country == "US"
    assert list(first.profile.interests) == ["ai", "analytics"]

    update = profile_pb2.LeadProfile(last_name="Lovelace")
    update.traits.update({"plan": "pro"})
    second = await ingest.stub.Identify(
        pb.IdentifyRequest(lead_id="lead-ada", profile=update), metadata=auth(writer_key)
    )
    assert (second.created, list(second.changed_fields)) == (False, ["last_name", "traits.plan"])
    assert second.profile.first_name == "Ada"  # untouched without a mask

    same = await ingest.stub.Identify(
        pb.IdentifyRequest(lead_id="lead-ada", profile=update), metadata=auth(writer_key)
    )
    assert list(same.changed_fields) == []

    masked = await ingest.stub.Identify(
        pb.IdentifyRequest(
            lead_id="lead-ada",
            profile=profile_pb2.LeadProfile(),
            update_mask=field_mask_pb2.FieldMask(paths=["phone"]),
        ),
        metadata=auth(writer_key),
    )
    assert list(masked.changed_fields) == ["phone"]
    assert masked.profile.phone == ""

    events = await _on_bus(ingest, "ingest.subject.identified", 3)
    assert len(events) == 3  # nothing published for the call that changed nothing
    assert events[0].created and events[0].profile.first_name == "Ada"
    assert list(events[1].changed_fields) == ["last_name", "traits.plan"]

    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await ingest.stub.Identify(
            pb.IdentifyRequest(lead_id="x", profile=profile_pb2.LeadProfile(email="not-an-email")),
            metadata=auth(writer_key),
        )
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "profile.email" in bad.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as unknown_path:
        await ingest.stub.Identify(
            pb.IdentifyRequest(lead_id="x", update_mask=field_mask_pb2.FieldMask(paths=["shoe"])),
            metadata=auth(writer_key),
        )
    assert "update_mask" in unknown_path.value.details()


async def test_alias_moves_anonymous_history_to_the_lead(ingest, writer_key):
    await _track(
        ingest, writer_key, *(event(f"anon-{i}", anonymous_id="visitor-1") for i in range(3))
    )
    reply = await ingest.stub.Alias(
        pb.AliasRequest(anonymous_id="visitor-1", lead_id="lead-1"), metadata=auth(writer_key)
    )
    assert (reply.created, reply.events_reassigned) == (True, 3)
    again = await ingest.stub.Alias(
        pb.AliasRequest(anonymous_id="visitor-1", lead_id="lead-1"), metadata=auth(writer_key)
    )
    assert (again.created, again.events_reassigned) == (False, 0)
    with pytest.raises(grpc.aio.AioRpcError) as taken:
        await ingest.stub.Alias(
            pb.AliasRequest(anonymous_id="visitor-1", lead_id="lead-2"), metadata=auth(writer_key)
        )
    assert taken.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    rows = await ingest.pool.fetch("SELECT lead_id FROM events WHERE anonymous_id = 'visitor-1'")
    assert {r["lead_id"] for r in rows} == {"lead-1"}
    # Later anonymous events belong to the lead from the start, and say how.
    later = await _track(ingest, writer_key, event("anon-later", anonymous_id="visitor-1"))
    assert later.results[0].flags.lead_resolved_by_alias is True
    aliased = await _on_bus(ingest, "ingest.subject.aliased", 1)
    assert (aliased[0].anonymous_id, aliased[0].lead_id, aliased[0].events_reassigned) == (
        "visitor-1", "lead-1", 3,
    )  # fmt: skip
    recorded = await eventually(lambda: _find(ingest, "anon-later"))
    assert recorded.subject.lead_id == "lead-1"


async def _find(ingest, event_id):
    messages = await published(ingest.settings.nats_url, ingest.settings.bus_namespace)
    return next((e for e in recorded_events(messages) if e.event_id == event_id), None)


async def test_consent_withdrawn_refuses_events_and_required_consent_flags_them(
    ingest, writer_key, settings
):
    subject = subject_pb2.SubjectRef(lead_id="lead-c")
    reply = await ingest.stub.SetConsent(
        pb.SetConsentRequest(
            subject=subject,
            tracking=profile_pb2.ConsentDecision(status=WITHDRAWN, source="preference_center"),
            email=profile_pb2.ConsentDecision(status=GRANTED, source="signup_form"),
        ),
        metadata=auth(writer_key),
    )
    assert reply.consent.tracking.status == WITHDRAWN
    assert sorted(reply.changed) == [profile_pb2.CONSENT_PURPOSE_TRACKING,
                                     profile_pb2.CONSENT_PURPOSE_EMAIL]  # fmt: skip
    refused = await _track(ingest, writer_key, event("c1", lead_id="lead-c"))
    assert refused.results[0].violations[0].code == pb.VIOLATION_CODE_CONSENT_WITHDRAWN

    regranted = await ingest.stub.SetConsent(
        pb.SetConsentRequest(subject=subject, tracking=profile_pb2.ConsentDecision(status=GRANTED)),
        metadata=auth(writer_key),
    )
    assert list(regranted.changed) == [profile_pb2.CONSENT_PURPOSE_TRACKING]
    assert (await _track(ingest, writer_key, event("c2", lead_id="lead-c"))).accepted == 1

    # A tenant that requires consent: an event with no decision is kept, flagged.
    conn_settings = await ingest.pool.acquire()
    try:
        from leadflow_platform.tenancy.store import update_tenant_settings

        await update_tenant_settings(conn_settings, "371minds", {"require_consent": True})
    finally:
        await ingest.pool.release(conn_settings)
    ingest.runtime.tenants._cache.clear()
    flagged = await _track(ingest, writer_key, event("c3", lead_id="nobody-asked"))
    assert flagged.results[0].flags.consent_missing is True
    assert (await _track(ingest, writer_key, event("c4", lead_id="lead-c"))).results[
        0
    ].flags.consent_missing is False

    changes = await _on_bus(ingest, "ingest.consent.changed", 2)
    assert changes[0].subject.lead_id == "lead-c"
    with pytest.raises(grpc.aio.AioRpcError) as empty:
        await ingest.stub.SetConsent(
            pb.SetConsentRequest(subject=subject), metadata=auth(writer_key)
        )
    assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_erasure_leaves_nothing_that_names_the_person_and_refuses_them_after(
    ingest, writer_key, admin_key
):
    await ingest.stub.Identify(
        pb.IdentifyRequest(
            lead_id="lead-e",
            anonymous_id="anon-e",
            profile=profile_pb2.LeadProfile(email="erin@example.org", phone="+14155550123",
                                            first_name="Erin"),
        ),
        metadata=auth(writer_key),
    )  # fmt: skip
    await ingest.stub.SetConsent(
        pb.SetConsentRequest(subject=subject_pb2.SubjectRef(lead_id="lead-e"),
                             email=profile_pb2.ConsentDecision(status=GRANTED)),
        metadata=auth(writer_key),
    )  # fmt: skip
    await _track(
        ingest, writer_key,
        event("e-1", anonymous_id="anon-e", ip="198.51.100.23", session_id="sess-e"),
        event("e-2", lead_id="lead-e", ip="198.51.100.23"),
        event("keep-1", lead_id="someone-else", ip="192.0.2.1"),
    )  # fmt: skip
    await _on_bus(ingest, "ingest.subject.identified", 1)

    reply = await ingest.stub.EraseSubject(
        pb.EraseSubjectRequest(email="ERIN@example.org", reason="GDPR request 17"),
        metadata=auth(admin_key),
    )
    assert list(reply.lead_ids) == ["lead-e"]
    assert list(reply.anonymous_ids) == ["anon-e"]
    assert (reply.counts.events, reply.counts.profiles, reply.counts.aliases,
            reply.counts.consents) == (2, 1, 1, 1)  # fmt: skip

    erased = await _on_bus(ingest, "ingest.subject.erased", 1)
    assert list(erased[0].emails) == ["erin@example.org"]
    assert list(erased[0].phones) == ["+14155550123"]

    async def redacted():
        return await ingest.pool.fetchval(
            "SELECT published_at IS NOT NULL AND length(payload) = 0 FROM outbox"
            " WHERE subject = 'ingest.subject.erased'"
        )

    await eventually(redacted)
    needles = ["lead-e", "anon-e", "erin@example.org", "ERIN", "+14155550123", "Erin",
               "198.51.100.23", "sess-e"]  # fmt: skip
    leftovers = await _rows_naming(ingest.pool, needles)
    assert leftovers == [], leftovers
    assert await ingest.pool.fetchval("SELECT count(*) FROM events") == 1  # someone else's

    later = await _track(ingest, writer_key, event("e-3", lead_id="lead-e"),
                         event("e-4", anonymous_id="anon-e"))  # fmt: skip
    assert [r.violations[0].code for r in later.results] == [pb.VIOLATION_CODE_SUBJECT_ERASED] * 2
    for call in (
        ingest.stub.Identify(pb.IdentifyRequest(lead_id="lead-e"), metadata=auth(writer_key)),
        ingest.stub.Alias(pb.AliasRequest(anonymous_id="anon-e", lead_id="new"),
                          metadata=auth(writer_key)),
    ):  # fmt: skip
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def _rows_naming(pool, needles: list[str]) -> list[tuple[str, str]]:
    """Every (table, needle) where some row of the ingest schema contains the needle,
    in any column, text or bytes."""
    tables = [r["tablename"] for r in await pool.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'ingest'")]  # fmt: skip
    found = []
    for table in tables:
        for row in await pool.fetch(f'SELECT * FROM ingest."{table}"'):
            blob = b"".join(
                v if isinstance(v, bytes) else str(v).encode() for v in row.values()
            ).lower()
            found += [(table, n) for n in needles if n.lower().encode() in blob]
    return found
