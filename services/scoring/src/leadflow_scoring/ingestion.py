"""Applying what ingest publishes, each message inside the consumer's transaction (which
also records the message in the inbox, so a redelivered message is never applied twice).

Events are counted once per event id (scoring's own events table; a re-published copy of a
message has another message id). A lead is keyed by its lead id; events with only an
anonymous id accumulate under the visitor until ingest.subject.aliased merges the visitor
into its lead (and later events arrive with the lead id resolved by ingest, or are resolved
here by the alias when they were published before it).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from opentelemetry.context import Context

from leadflow.ingest.v1 import events_pb2
from leadflow_platform.logging import get_logger
from leadflow_scoring.api.mapping import to_datetime
from leadflow_scoring.db import codec
from leadflow_scoring.db import repository as repo
from leadflow_scoring.domain.features import (
    ActivityEvent,
    LeadFeatures,
    apply_consent,
    apply_event,
    apply_profile,
    empty_features,
    merge_features,
    needs_rebuild,
)
from leadflow_scoring.domain.model import ScoringModel
from leadflow_scoring.erasure import ErasedSubjects
from leadflow_scoring.events import inputs
from leadflow_scoring.leads import Leads, LeadState, Prepared, rebuilt, sorted_events, write

log = get_logger(__name__)


@dataclass(slots=True)
class _Visitor:
    anonymous_id: str
    features: LeadFeatures
    first_seen_at: datetime | None
    first_event_id: str


class Ingestion:
    def __init__(self, leads: Leads, erased: ErasedSubjects) -> None:
        self._leads = leads
        self._erased = erased

    # ingest.event.recorded -----------------------------------------------------------------

    async def events_recorded(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        *messages: events_pb2.EventsRecorded,
        traces: Sequence[Context | None] = (),
    ) -> None:
        """Apply one or more messages (in stream order) as one: each lead is rescored once,
        with all its new events, whichever message they came in. `traces`: each message's
        trace context (in a batch), continued by the events about the leads it changed."""
        if not messages:
            return
        items = [i for m in messages for i in inputs.counted_events(m.events)]
        if not items:
            return
        causes = _traces_by_event(messages, traces)
        now = datetime.now(UTC)
        blocked_leads, blocked_anons = await self._erased.blocked(
            conn,
            tenant_id,
            {i.lead_id for i in items if i.lead_id},
            {i.anonymous_id for i in items if i.anonymous_id},
        )
        if blocked_leads or blocked_anons:
            items = [
                i
                for i in items
                if i.lead_id not in blocked_leads and i.anonymous_id not in blocked_anons
            ]
        aliased = await repo.leads_of(
            conn, tenant_id, sorted({i.anonymous_id for i in items if not i.lead_id})
        )
        by_lead: dict[str, list[ActivityEvent]] = defaultdict(list)
        by_visitor: dict[str, list[ActivityEvent]] = defaultdict(list)
        rows = []
        seen: set[str] = set()
        for i in items:
            e = i.event
            if e.event_id in seen:
                continue  # the same id twice in the messages counts once
            seen.add(e.event_id)
            lead_id = i.lead_id or aliased.get(i.anonymous_id, "")
            if lead_id:
                by_lead[lead_id].append(e)
            else:
                by_visitor[i.anonymous_id].append(e)
            rows.append(
                (
                    e.event_id,
                    lead_id or None,
                    i.anonymous_id or None,
                    e.type,
                    e.occurred_at,
                    e.channel,
                )
            )
        if not rows:
            return
        fresh = await repo.insert_events(conn, tenant_id, rows)
        if by_lead:
            causation_id = messages[-1].metadata.event_id
            model = await self._apply_to_leads(
                conn, tenant_id, causation_id, by_lead, fresh, now, causes
            )
        else:
            model = await self._leads.models.active(conn, tenant_id)
        visitors = await self._lock_visitors(conn, tenant_id, by_visitor, model, create=True)
        touched = []
        for anonymous_id, events in by_visitor.items():
            visitor = visitors[anonymous_id]
            for e in sorted_events(e for e in events if e.event_id in fresh):
                visitor.features = apply_event(visitor.features, e, model)
                key = (e.occurred_at, e.event_id)
                if visitor.first_seen_at is None or key < (
                    visitor.first_seen_at,
                    visitor.first_event_id,
                ):
                    visitor.first_seen_at, visitor.first_event_id = e.occurred_at, e.event_id
            touched.append(visitor)
        await _save_visitors(conn, tenant_id, touched)

    async def _apply_to_leads(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        causation_id: str,
        by_lead: dict[str, list[ActivityEvent]],
        fresh: set[str],
        now: datetime,
        causes: Mapping[str, Context | None],
    ) -> ScoringModel:
        """Apply the new events to their leads (a new lead enters `new` at its first
        event) and store them; returns the model used."""
        first_seen = {
            lead_id: min((e.occurred_at, e.event_id) for e in events)
            for lead_id, events in by_lead.items()
        }
        # The leads' changes are computed from their rows read unlocked, then the rows are
        # locked and only the leads changed meanwhile (by another replica) are computed
        # again: row locks are held for the writes, not for the computation.
        states, model = await self._leads.read(
            conn, tenant_id, by_lead, now=now, first_seen=first_seen
        )

        async def prepare(states: dict[str, LeadState], model: ScoringModel) -> dict[str, Prepared]:
            return await self._leads.prepare(
                conn,
                tenant_id,
                _with_events(states, by_lead, fresh, model, causes),
                model,
                now=now,
                cause="event",
                causation_id=causation_id,
            )

        prepared = await prepare(states, model)
        stale, _ = await self._leads.stale(conn, tenant_id, states, model)
        if stale:
            states, model = await self._leads.lock(
                conn, tenant_id, stale, now=now, create=True, first_seen=first_seen
            )
            for lead_id in stale:
                prepared.pop(lead_id, None)
            prepared.update(await prepare(states, model))
        await write(conn, tenant_id, prepared.values())
        return model

    # ingest.subject.identified -------------------------------------------------------------

    async def subject_identified(
        self, conn: asyncpg.Connection, tenant_id: str, message: events_pb2.SubjectIdentified
    ) -> None:
        lead_id = message.lead_id
        if not lead_id or (await self._erased.blocked(conn, tenant_id, [lead_id], []))[0]:
            return
        now = datetime.now(UTC)
        at = to_datetime(message.metadata.occurred_at)
        states, model = await self._leads.lock(
            conn, tenant_id, [lead_id], now=now, create=True, first_seen={lead_id: (at, "")}
        )
        state = states[lead_id]
        state.seen((at, ""))
        state.features = apply_profile(state.features, inputs.profile(message.profile), at)
        state.features = apply_consent(state.features, inputs.consent(message.consent))
        await self._leads.save(
            conn,
            tenant_id,
            [state],
            model,
            now=now,
            cause="profile",
            causation_id=message.metadata.event_id,
        )

    # ingest.consent.changed ----------------------------------------------------------------

    async def consent_changed(
        self, conn: asyncpg.Connection, tenant_id: str, message: events_pb2.ConsentChanged
    ) -> None:
        lead_id, anonymous_id = message.subject.lead_id, message.subject.anonymous_id
        blocked_leads, blocked_anons = await self._erased.blocked(
            conn, tenant_id, [lead_id], [anonymous_id]
        )
        if blocked_leads or blocked_anons:
            return
        if not lead_id and anonymous_id:
            lead_id = (await repo.leads_of(conn, tenant_id, [anonymous_id])).get(anonymous_id, "")
        consent = inputs.consent(message.consent)
        now = datetime.now(UTC)
        if lead_id:
            at = to_datetime(message.metadata.occurred_at)
            states, model = await self._leads.lock(
                conn, tenant_id, [lead_id], now=now, create=True, first_seen={lead_id: (at, "")}
            )
            state = states[lead_id]
            state.seen((at, ""))
            state.features = apply_consent(state.features, consent)
            await self._leads.save(
                conn,
                tenant_id,
                [state],
                model,
                now=now,
                cause="consent",
                causation_id=message.metadata.event_id,
            )
        elif anonymous_id:
            model = await self._leads.models.active(conn, tenant_id)
            visitors = await self._lock_visitors(
                conn, tenant_id, [anonymous_id], model, create=True
            )
            visitor = visitors[anonymous_id]
            visitor.features = apply_consent(visitor.features, consent)
            await _save_visitors(conn, tenant_id, [visitor])

    # ingest.subject.aliased ----------------------------------------------------------------

    async def subject_aliased(
        self, conn: asyncpg.Connection, tenant_id: str, message: events_pb2.SubjectAliased
    ) -> None:
        anonymous_id, lead_id = message.anonymous_id, message.lead_id
        if not (anonymous_id and lead_id):
            return
        blocked_leads, blocked_anons = await self._erased.blocked(
            conn, tenant_id, [lead_id], [anonymous_id]
        )
        if blocked_leads or blocked_anons:
            return
        now = datetime.now(UTC)
        # A lead created by its alias entered `new` when its visitor was first seen.
        at = to_datetime(message.metadata.occurred_at)
        first = await repo.visitor_first_seen(conn, tenant_id, anonymous_id) or (at, "")
        states, model = await self._leads.lock(
            conn, tenant_id, [lead_id], now=now, create=True, first_seen={lead_id: first}
        )
        state = states[lead_id]
        owner = await repo.add_alias(conn, tenant_id, anonymous_id, lead_id)
        if owner != lead_id:
            log.warning("alias_conflict", message_id=message.metadata.event_id)
            if state.created:  # nothing else to record for it
                await self._leads.save(conn, tenant_id, [state], model, now=now, cause="alias")
            return
        state.seen(first)
        visitors = await self._lock_visitors(conn, tenant_id, [anonymous_id], model, create=False)
        visitor = visitors.get(anonymous_id)
        if visitor is not None:
            state.features = merge_features(state.features, visitor.features)
            # Its events are now the lead's: its touchpoints count in the lead's stages and
            # its events' rules apply, as if they had come with the lead id.
            if await repo.reassign_events(conn, tenant_id, anonymous_id, lead_id):
                state.replay_after(first)
            await repo.delete_visitor(conn, tenant_id, anonymous_id)
        state.causation_id = message.metadata.event_id
        await self._leads.save(conn, tenant_id, [state], model, now=now, cause="alias")

    # ingest.subject.erased -----------------------------------------------------------------

    async def subject_erased(
        self, conn: asyncpg.Connection, tenant_id: str, message: events_pb2.SubjectErased
    ) -> None:
        counts = await self._erased.erase(conn, tenant_id, message.lead_ids, message.anonymous_ids)
        log.info(
            "subject_erased",
            erasure_id=message.erasure_id,
            message_id=message.metadata.event_id,
            **counts,
        )

    # visitors ------------------------------------------------------------------------------

    async def _lock_visitors(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        anonymous_ids: Iterable[str],
        model: ScoringModel,
        *,
        create: bool,
    ) -> dict[str, _Visitor]:
        ids = list(anonymous_ids)
        if not ids:
            return {}
        rows, created = await repo.lock_visitors(conn, tenant_id, ids, create=create)
        out: dict[str, _Visitor] = {}
        for row in rows:
            anonymous_id = row["anonymous_id"]
            if anonymous_id in created or row["features"] is None:
                features = empty_features(model)
            else:
                features = codec.features_from_json(row["features"])
            out[anonymous_id] = _Visitor(
                anonymous_id, features, row["first_seen_at"], row["first_event_id"]
            )
        stale = [v for v in out.values() if needs_rebuild(v.features, model)]
        if stale:
            history = await repo.visitor_events(conn, tenant_id, [v.anonymous_id for v in stale])
            for v in stale:
                v.features = rebuilt(v.features, history.get(v.anonymous_id, ()), model)
        return out


def _with_events(
    states: dict[str, LeadState],
    by_lead: dict[str, list[ActivityEvent]],
    fresh: set[str],
    model: ScoringModel,
    causes: Mapping[str, Context | None],
) -> list[LeadState]:
    """The leads with their new events applied (those that changed or are new)."""
    changed = []
    for lead_id, state in states.items():
        new = sorted_events(e for e in by_lead[lead_id] if e.event_id in fresh)
        if not new and not state.created:
            continue
        state.apply_events(new, model)
        if new:
            state.causation_id = new[-1].event_id
            state.trace_context = causes.get(state.causation_id)
        changed.append(state)
    return changed


def _traces_by_event(
    messages: Sequence[events_pb2.EventsRecorded], traces: Sequence[Context | None]
) -> dict[str, Context | None]:
    """The trace of the message each event came in (empty outside a traced batch): a
    lead's events continue the trace of the message with its latest event."""
    if all(t is None for t in traces):
        return {}
    return {
        e.event_id: ctx
        for m, ctx in zip(messages, traces, strict=True)
        if ctx is not None
        for e in m.events
    }


async def _save_visitors(
    conn: asyncpg.Connection, tenant_id: str, visitors: Sequence[_Visitor]
) -> None:
    await repo.save_visitors(
        conn,
        tenant_id,
        [
            (v.anonymous_id, codec.features_to_json(v.features), v.first_seen_at, v.first_event_id)
            for v in visitors
        ],
    )
