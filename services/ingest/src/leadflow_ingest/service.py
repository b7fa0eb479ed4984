"""Ingest's use cases: each call is one transaction that changes state and writes the events
announcing it to the outbox, so what is acknowledged is stored and will be published."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from leadflow.ingest.v1 import event_pb2, events_pb2
from leadflow_ingest.api import mapping
from leadflow_ingest.db import erasure as erasure_sql
from leadflow_ingest.db import repository as repo
from leadflow_ingest.domain.consent import (
    ConsentDecision,
    ConsentState,
    apply_decisions,
)
from leadflow_ingest.domain.profile import Profile, merge_profile
from leadflow_ingest.events import subjects
from leadflow_ingest.recording import BatchOutcome, EventRecorder
from leadflow_ingest.tenant_state import TenantState, erased_keys, identifier_hash
from leadflow_platform.errors import FailedPrecondition
from leadflow_platform.lifecycle import ServiceContext
from leadflow_platform.nats import add_to_outbox


class IngestService:
    """The use cases: recording events (see recording.py) and the subject calls below."""

    def __init__(self, context: ServiceContext, *, bus_message_bytes: int = 512 * 1024) -> None:
        self._context = context
        self._tenants = TenantState(context)
        self._recorder = EventRecorder(context, self._tenants, bus_message_bytes=bus_message_bytes)

    @property
    def _pool(self) -> asyncpg.Pool:
        return self._context.pool

    async def record(
        self,
        tenant_id: str,
        sources: Sequence[event_pb2.TrackEvent],
        *,
        received_at: datetime,
        batch_sent_at: datetime | None = None,
    ) -> BatchOutcome:
        return await self._recorder.record(
            tenant_id, sources, received_at=received_at, batch_sent_at=batch_sent_at
        )

    # Subjects -----------------------------------------------------------------------------

    async def identify(
        self,
        tenant_id: str,
        lead_id: str,
        anonymous_id: str,
        update: Profile,
        mask: list[str] | None,
        *,
        now: datetime,
    ) -> tuple[bool, list[str], Profile]:
        """Create or update a lead's profile; returns (created, changed fields, profile)."""
        async with self._pool.acquire() as conn, conn.transaction():
            secret = await self._tenants.secret(conn, tenant_id)
            await self._refuse_if_erased(
                conn, tenant_id, secret, lead_id=lead_id, anonymous_id=anonymous_id
            )
            stored = await repo.profile_for_update(conn, tenant_id, lead_id)
            current = mapping.profile_from_json(stored) if stored is not None else None
            profile, changed = merge_profile(current, update, mask)
            created = current is None
            if created or changed:
                await repo.save_profile(conn, tenant_id, lead_id, mapping.profile_to_json(profile))
            if anonymous_id:
                await self._alias(conn, tenant_id, anonymous_id, lead_id, now)
            if created or changed:
                consent = await repo.consent_states(conn, tenant_id, [f"lead:{lead_id}"])
                await add_to_outbox(
                    conn,
                    subjects.identified(
                        tenant_id,
                        now,
                        lead_id=lead_id,
                        created=created,
                        profile=profile,
                        changed_fields=changed,
                        consent=mapping.consent_from_json(consent.get(f"lead:{lead_id}")),
                        anonymous_ids=await repo.anonymous_ids_of(conn, tenant_id, [lead_id]),
                    ),
                )
        return created, changed, profile

    async def alias(
        self, tenant_id: str, anonymous_id: str, lead_id: str, *, now: datetime
    ) -> tuple[bool, int]:
        """Merge an anonymous id into a lead; returns (created, events reassigned)."""
        async with self._pool.acquire() as conn, conn.transaction():
            secret = await self._tenants.secret(conn, tenant_id)
            await self._refuse_if_erased(
                conn, tenant_id, secret, lead_id=lead_id, anonymous_id=anonymous_id
            )
            return await self._alias(conn, tenant_id, anonymous_id, lead_id, now)

    async def _alias(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        anonymous_id: str,
        lead_id: str,
        now: datetime,
    ) -> tuple[bool, int]:
        owner, created = await repo.create_alias(conn, tenant_id, anonymous_id, lead_id)
        if owner != lead_id:
            raise FailedPrecondition("anonymous_id is already aliased to a different lead")
        if not created:
            return False, 0
        moved = await repo.reassign_events(conn, tenant_id, anonymous_id, lead_id)
        await add_to_outbox(
            conn,
            subjects.aliased(
                tenant_id, now, anonymous_id=anonymous_id, lead_id=lead_id, events_reassigned=moved
            ),
        )
        return True, moved

    async def set_consent(
        self,
        tenant_id: str,
        lead_id: str,
        anonymous_id: str,
        decisions: dict[str, ConsentDecision],
        *,
        now: datetime,
    ) -> tuple[ConsentState, list[str]]:
        """Record decisions for the lead (when given) or the visitor; returns the state and
        the purposes whose status changed."""
        key = f"lead:{lead_id}" if lead_id else f"anon:{anonymous_id}"
        async with self._pool.acquire() as conn, conn.transaction():
            secret = await self._tenants.secret(conn, tenant_id)
            await self._refuse_if_erased(
                conn, tenant_id, secret, lead_id=lead_id, anonymous_id=anonymous_id
            )
            if lead_id and anonymous_id:
                await self._alias(conn, tenant_id, anonymous_id, lead_id, now)
            stored = await repo.consent_states(conn, tenant_id, [key], lock=True)
            before = mapping.consent_from_json(stored.get(key)) if key in stored else None
            state, changed = apply_decisions(before, decisions)
            await repo.save_consent_state(conn, tenant_id, key, mapping.consent_to_json(state))
            if changed:
                await add_to_outbox(
                    conn,
                    subjects.consent_changed(
                        tenant_id,
                        now,
                        lead_id=lead_id,
                        anonymous_id=anonymous_id,
                        consent=state,
                        changed=changed,
                    ),
                )
        return state, changed

    async def erase(
        self,
        tenant_id: str,
        *,
        lead_id: str,
        anonymous_id: str,
        email: str,
        reason: str,
        now: datetime,
    ) -> tuple[str, erasure_sql.Person, dict[str, int]]:
        """GDPR erasure of the whole person; returns (erasure id, who, rows removed)."""
        erasure_id = str(uuid.uuid4())
        async with self._pool.acquire() as conn, conn.transaction():
            secret = await self._tenants.secret(conn, tenant_id)
            person = await erasure_sql.find_person(
                conn, tenant_id, lead_id=lead_id, anonymous_id=anonymous_id, email=email
            )
            counts = await erasure_sql.delete_person(conn, tenant_id, person)
            keys = [f"lead:{i}" for i in person.lead_ids] + [
                f"anon:{i}" for i in person.anonymous_ids
            ]
            await erasure_sql.block_identifiers(
                conn, tenant_id, [identifier_hash(secret, k) for k in keys], erasure_id
            )
            await erasure_sql.scrub_outbox(conn, tenant_id, person, _without(person))
            await erasure_sql.record_erasure(conn, tenant_id, erasure_id, reason, counts)
            await add_to_outbox(
                conn,
                subjects.erased(
                    tenant_id,
                    now,
                    erasure_id=erasure_id,
                    lead_ids=sorted(person.lead_ids),
                    anonymous_ids=sorted(person.anonymous_ids),
                    emails=sorted(person.emails),
                    phones=sorted(person.phones),
                ),
            )
        return erasure_id, person, counts

    # Helpers ------------------------------------------------------------------------------

    async def _refuse_if_erased(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        secret: bytes,
        *,
        lead_id: str = "",
        anonymous_id: str = "",
    ) -> None:
        fields = {f"lead:{lead_id}": "lead_id", f"anon:{anonymous_id}": "anonymous_id"}
        keys = {f"lead:{lead_id}"} if lead_id else set()
        if anonymous_id:
            keys.add(f"anon:{anonymous_id}")
        erased = await erased_keys(conn, tenant_id, secret, keys)
        if erased:
            raise FailedPrecondition(f"{fields[min(erased)]}: the subject was erased")


def _without(person: erasure_sql.Person) -> erasure_sql.Rewrite:
    """A payload rewriter that takes the person out of bus messages kept in the outbox.
    Rows are found by a byte search, so each message is checked exactly here."""
    leads, anons = person.lead_ids, person.anonymous_ids

    def about_person(lead_id: str, anonymous_id: str) -> bool:
        return (bool(lead_id) and lead_id in leads) or (
            bool(anonymous_id) and anonymous_id in anons
        )

    def rewrite(subject: str, payload: bytes) -> bytes | None:
        if subject == "ingest.event.recorded":
            batch = events_pb2.EventsRecorded.FromString(payload)
            kept = [
                e
                for e in batch.events
                if not about_person(e.subject.lead_id, e.subject.anonymous_id)
            ]
            if not kept:
                return None
            del batch.events[:]
            batch.events.extend(kept)
            return batch.SerializeToString()
        if subject == "ingest.subject.identified":
            identified = events_pb2.SubjectIdentified.FromString(payload)
            return None if about_person(identified.lead_id, "") else payload
        if subject == "ingest.subject.aliased":
            aliased = events_pb2.SubjectAliased.FromString(payload)
            return None if about_person(aliased.lead_id, aliased.anonymous_id) else payload
        if subject == "ingest.consent.changed":
            changed = events_pb2.ConsentChanged.FromString(payload)
            ref = changed.subject
            return None if about_person(ref.lead_id, ref.anonymous_id) else payload
        return payload

    return rewrite
