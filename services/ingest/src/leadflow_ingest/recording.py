"""Recording a batch of events: every event accepted, a duplicate, or rejected with its
reasons; the accepted ones stored and, in the same transaction, put in the outbox.

The order of the work matters for throughput. Everything that depends only on the event
(validation, clock correction, marketing context, IP and geo, the stored record) is done
before the transaction. Inside it, cheap lookups come first; the subjects' rows are locked
last, only for what needs their state (sessions, machine signals) and the writes, because
concurrent batches of the same visitors wait for each other there.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg

from leadflow.ingest.v1 import event_pb2
from leadflow_ingest.api import mapping
from leadflow_ingest.db import repository as repo
from leadflow_ingest.domain.batch import dedupe_within_batch
from leadflow_ingest.domain.clock import correct_occurred_at, outside_retention
from leadflow_ingest.domain.consent import tracking_verdict
from leadflow_ingest.domain.ip import parse_ip, stored_ip
from leadflow_ingest.domain.machine import (
    EMAIL_CLICKED,
    EMAIL_OPENED,
    classify_machine,
    delivery_for,
)
from leadflow_ingest.domain.marketing import resolve_marketing
from leadflow_ingest.domain.model import IncomingEvent, TenantPolicy, Violation, ViolationCode
from leadflow_ingest.domain.sessions import SessionEvent, SessionState, assign_sessions
from leadflow_ingest.domain.validation import validate_event
from leadflow_ingest.events import recorded
from leadflow_ingest.geo import locate
from leadflow_ingest.tenant_state import TenantState, erased_keys
from leadflow_platform.lifecycle import ServiceContext
from leadflow_platform.nats import add_to_outbox

ACCEPTED, DUPLICATE, REJECTED = "accepted", "duplicate", "rejected"
EMAIL_SENT = "email_sent"
_ENGAGEMENT = (EMAIL_OPENED, EMAIL_CLICKED)


@dataclass
class EventOutcome:
    index: int
    status: str
    event_id: str = ""
    violations: list[Violation] = field(default_factory=list)
    flags: recorded.Flags | None = None


@dataclass
class BatchOutcome:
    results: list[EventOutcome]

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)


@dataclass
class _Candidate:
    """An event that passed the stateless checks, with its record built but for what needs
    state: the lead (aliases), the session, and some flags."""

    index: int
    event_id: str
    event: IncomingEvent
    occurred_at: datetime
    flags: recorded.Flags
    record: event_pb2.RecordedEvent
    channel: str | None
    lead_id: str = ""

    @property
    def subject_key(self) -> str:
        return f"lead:{self.lead_id}" if self.lead_id else f"anon:{self.event.anonymous_id}"


class _ConcurrentDuplicate(Exception):
    """Another transaction stored one of our event ids between our check and our insert."""


class EventRecorder:
    def __init__(
        self, context: ServiceContext, tenants: TenantState, *, bus_message_bytes: int
    ) -> None:
        self._context = context
        self._tenants = tenants
        self._bus_message_bytes = bus_message_bytes

    async def record(
        self,
        tenant_id: str,
        sources: Sequence[event_pb2.TrackEvent],
        *,
        received_at: datetime,
        batch_sent_at: datetime | None = None,
    ) -> BatchOutcome:
        policy = await self._tenants.policy(tenant_id)
        outcomes: dict[int, EventOutcome] = {}
        candidates = []
        for index, source in enumerate(sources):
            checked = _check(index, source, policy, received_at, batch_sent_at)
            if isinstance(checked, EventOutcome):
                outcomes[index] = checked
            else:
                candidates.append(checked)
        unique, repeated = dedupe_within_batch(candidates)
        for index in repeated:
            outcomes[index] = EventOutcome(index, DUPLICATE, sources[index].event_id)
        for attempt in range(3):
            try:
                outcomes.update(await self._store(tenant_id, unique, policy, received_at))
                break
            except _ConcurrentDuplicate:
                if attempt == 2:
                    raise
        return BatchOutcome([outcomes[i] for i in range(len(sources))])

    async def _store(
        self,
        tenant_id: str,
        candidates: list[_Candidate],
        policy: TenantPolicy,
        received_at: datetime,
    ) -> dict[int, EventOutcome]:
        outcomes: dict[int, EventOutcome] = {}
        if not candidates:
            return outcomes
        async with self._context.pool.acquire() as conn, conn.transaction():
            secret = await self._tenants.secret(conn, tenant_id)
            fresh = await _without_stored(conn, tenant_id, candidates, outcomes)
            await _resolve_leads(conn, tenant_id, fresh)
            fresh = await _without_erased(conn, tenant_id, secret, fresh, outcomes)
            fresh = await _apply_consent(conn, tenant_id, policy, fresh, outcomes)
            if not fresh:
                return outcomes
            await _sessionise(conn, tenant_id, policy, fresh)  # locks the subjects
            rows = [_row(c, received_at) for c in fresh]
            inserted = await repo.insert_events(conn, tenant_id, rows)
            if len(inserted) < len(rows):
                raise _ConcurrentDuplicate  # roll back; the retry sees them as duplicates
            await add_to_outbox(
                conn,
                *recorded.recorded_messages(
                    tenant_id, [row.record for row in rows], received_at, self._bus_message_bytes
                ),
            )
        for c in fresh:
            outcomes[c.index] = EventOutcome(c.index, ACCEPTED, c.event_id, flags=c.flags)
        return outcomes


def _check(
    index: int,
    source: event_pb2.TrackEvent,
    policy: TenantPolicy,
    received_at: datetime,
    batch_sent_at: datetime | None,
) -> _Candidate | EventOutcome:
    """Everything that needs only the event itself: a rejection, or a candidate with its
    stored record built."""
    event = mapping.incoming_event(index, source)
    violations = validate_event(event, policy.limits)
    if violations:
        return EventOutcome(index, REJECTED, event.event_id, violations)
    time = correct_occurred_at(event.occurred_at, event.sent_at or batch_sent_at, received_at)
    if outside_retention(time.occurred_at, received_at, policy.retention_days):
        reason = f"the event is older than the tenant's {policy.retention_days}-day retention"
        violation = Violation("occurred_at", ViolationCode.OUTSIDE_RETENTION, reason)
        return EventOutcome(index, REJECTED, event.event_id, [violation])
    flags = recorded.Flags(
        clock_skew_clamped=time.clamped,
        backfill=time.backfill,
        event_id_generated=not event.event_id,
    )
    event_id = event.event_id or str(uuid.uuid4())
    marketing, flags.marketing_parsed = resolve_marketing(
        event.marketing, event.page_url, event.referrer, use_referrer=event.type == "page_view"
    )
    address = parse_ip(event.ip) if event.ip else None
    record = recorded.recorded_event(
        source,
        event_id=event_id,
        event_type=event.type,
        occurred_at=time.occurred_at,
        received_at=received_at,
        batch_sent_at=batch_sent_at,
        marketing=marketing,
        ip=stored_ip(address, policy.ip_mode, policy.ip_hash_key) if address else None,
        geo=locate(event.ip.strip()) if address else None,  # before the address is dropped
    )
    channel = marketing.channel if marketing else None
    return _Candidate(index, event_id, event, time.occurred_at, flags, record, channel)


async def _without_stored(
    conn: asyncpg.Connection,
    tenant_id: str,
    candidates: list[_Candidate],
    outcomes: dict[int, EventOutcome],
) -> list[_Candidate]:
    client_ids = [c.event_id for c in candidates if not c.flags.event_id_generated]
    existing = await repo.existing_event_ids(conn, tenant_id, client_ids)
    fresh = []
    for c in candidates:
        if c.event_id in existing:
            outcomes[c.index] = EventOutcome(c.index, DUPLICATE, c.event_id)
        else:
            fresh.append(c)
    return fresh


async def _resolve_leads(conn: asyncpg.Connection, tenant_id: str, fresh: list[_Candidate]) -> None:
    """An anonymous visitor merged into a lead: its events belong to the lead."""
    anonymous = {
        c.event.anonymous_id for c in fresh if c.event.anonymous_id and not c.event.lead_id
    }
    leads = await repo.leads_of(conn, tenant_id, sorted(anonymous))
    for c in fresh:
        c.lead_id = c.event.lead_id or leads.get(c.event.anonymous_id, "")
        c.flags.lead_resolved_by_alias = bool(c.lead_id) and not c.event.lead_id
        c.record.subject.lead_id = c.lead_id


async def _without_erased(
    conn: asyncpg.Connection,
    tenant_id: str,
    secret: bytes,
    fresh: list[_Candidate],
    outcomes: dict[int, EventOutcome],
) -> list[_Candidate]:
    keys = {k for c in fresh for k in _subject_keys(c)}
    erased = await erased_keys(conn, tenant_id, secret, keys)
    if not erased:
        return fresh
    kept = []
    for c in fresh:
        if erased.intersection(_subject_keys(c)):
            reason = "the subject was erased; its events are refused"
            violation = Violation("subject", ViolationCode.SUBJECT_ERASED, reason)
            outcomes[c.index] = EventOutcome(c.index, REJECTED, c.event_id, [violation])
        else:
            kept.append(c)
    return kept


def _subject_keys(c: _Candidate) -> list[str]:
    keys = [f"lead:{c.lead_id}"] if c.lead_id else []
    if c.event.anonymous_id:
        keys.append(f"anon:{c.event.anonymous_id}")
    return keys


async def _apply_consent(
    conn: asyncpg.Connection,
    tenant_id: str,
    policy: TenantPolicy,
    fresh: list[_Candidate],
    outcomes: dict[int, EventOutcome],
) -> list[_Candidate]:
    states = await repo.consent_states(
        conn, tenant_id, sorted({k for c in fresh for k in _subject_keys(c)})
    )
    kept = []
    for c in fresh:
        # The lead's decision when there is one, else the visitor's.
        raw = states.get(f"lead:{c.lead_id}") if c.lead_id else None
        if raw is None and c.event.anonymous_id:
            raw = states.get(f"anon:{c.event.anonymous_id}")
        state = mapping.consent_from_json(raw) if raw else None
        verdict = tracking_verdict(state, policy.require_consent)
        if verdict == "withdrawn":
            reason = "the subject withdrew tracking consent"
            violation = Violation("subject", ViolationCode.CONSENT_WITHDRAWN, reason)
            outcomes[c.index] = EventOutcome(c.index, REJECTED, c.event_id, [violation])
            continue
        c.flags.consent_missing = verdict == "missing"
        kept.append(c)
    return kept


async def _sessionise(
    conn: asyncpg.Connection, tenant_id: str, policy: TenantPolicy, fresh: list[_Candidate]
) -> None:
    """Sessions and machine signals, which need each subject's state: lock the subjects (in
    key order), work subject by subject in time order, write the state back."""
    by_subject: dict[str, list[_Candidate]] = defaultdict(list)
    for c in fresh:
        by_subject[c.subject_key].append(c)
    states = await repo.lock_subjects(conn, tenant_id, list(by_subject))
    client_ids = sorted({c.event.session_id for c in fresh if c.event.session_id})
    client_sessions = await repo.sessions_by_id(conn, tenant_id, client_ids)
    closed: list[tuple[SessionState, str]] = []
    subjects: list[repo.SubjectRow] = []
    for key, events in by_subject.items():
        events.sort(key=lambda c: (c.occurred_at, c.event_id))
        state = states[key]
        earlier = await _earlier_deliveries(conn, tenant_id, key, events, state, policy)
        last_email = _mark_machine_events(events, state.last_email_sent_at, policy, earlier)
        previous = _open_session(state)
        assignment = assign_sessions(
            key,
            [SessionEvent(c.event_id, c.occurred_at, c.event.type, c.event.session_id)
             for c in events],
            open_session=previous,
            client_sessions={c.event.session_id: client_sessions[c.event.session_id]
                             for c in events if c.event.session_id in client_sessions},
            timeout=policy.session_timeout,
        )  # fmt: skip
        for c, session_id in zip(events, assignment.session_ids, strict=True):
            c.record.session_id = session_id
            c.flags.session_generated = not c.event.session_id
        current = assignment.open_session
        # The open session stays on the subject row; the sessions table gets the others,
        # including the previous open session once a newer one replaced it.
        kept_open = current.session_id if current else None
        closed.extend((s, key) for s in assignment.sessions if s.session_id != kept_open)
        touched = {s.session_id for s in assignment.sessions}
        if previous is not None and previous.session_id not in touched | {kept_open}:
            closed.append((previous, key))
        subjects.append(_subject_row(key, current, last_email))
    await repo.save_sessions(conn, tenant_id, closed)
    await repo.save_subjects(conn, tenant_id, subjects)


async def _earlier_deliveries(
    conn: asyncpg.Connection,
    tenant_id: str,
    key: str,
    events: list[_Candidate],
    state: repo.SubjectRow,
    policy: TenantPolicy,
) -> list[datetime]:
    """The subject's stored deliveries an open or click of the batch may answer, read only
    when one is older than the subject's last delivery (it arrived out of order): the
    subject row keeps the last one alone."""
    last = state.last_email_sent_at
    window = timedelta(seconds=policy.machine_click_window_seconds)
    late = [
        c.occurred_at + window
        for c in events
        if c.event.type in _ENGAGEMENT and last is not None and c.occurred_at + window < last
    ]
    if not late:
        return []
    return await repo.email_deliveries(conn, tenant_id, key, max(late))


def _mark_machine_events(
    events: list[_Candidate],
    last_email: datetime | None,
    policy: TenantPolicy,
    earlier: Sequence[datetime] = (),
) -> datetime | None:
    """Flag opens and clicks by image proxies, link scanners and bots; an open or click
    seconds after its email's delivery is a machine's. The delivery is found among the
    batch's, the subject's last one and `earlier` ones (`delivery_for`), whatever order they
    arrived in. Returns the subject's last delivery."""
    window = policy.machine_click_window_seconds
    sent = [c.occurred_at for c in events if c.event.type == EMAIL_SENT]
    deliveries = sorted({*earlier, *sent, *([last_email] if last_email else [])})
    for c in events:
        since = None
        if c.event.type in _ENGAGEMENT:
            delivery = delivery_for(deliveries, c.occurred_at, window)
            since = (c.occurred_at - delivery).total_seconds() if delivery else None
        c.flags.machine_signal = classify_machine(c.event.type, c.event.user_agent, since, window)
    return deliveries[-1] if deliveries else None


def _open_session(state: repo.SubjectRow) -> SessionState | None:
    """The subject's open server-assigned session, as its row stores it."""
    if not (state.session_id and state.session_started_at and state.session_last_seen_at):
        return None
    return SessionState(
        state.session_id,
        state.session_started_at,
        state.session_last_seen_at,
        state.session_event_count,
        state.session_page_views,
        generated=True,
    )


def _subject_row(
    key: str, current: SessionState | None, last_email: datetime | None
) -> repo.SubjectRow:
    return repo.SubjectRow(
        subject_key=key,
        session_id=current.session_id if current else None,
        session_started_at=current.started_at if current else None,
        session_last_seen_at=current.last_seen_at if current else None,
        session_event_count=current.event_count if current else 0,
        session_page_views=current.page_views if current else 0,
        last_email_sent_at=last_email,
    )


def _row(c: _Candidate, received_at: datetime) -> repo.EventRow:
    c.flags.write_to(c.record.flags)
    event = c.event
    return repo.EventRow(
        event_id=c.event_id,
        brand_id=event.brand_id,
        event_type=event.type if event.type != "custom" else f"custom:{event.custom_name}",
        lead_id=c.lead_id or None,
        anonymous_id=event.anonymous_id or None,
        session_id=c.record.session_id,
        occurred_at=c.occurred_at,
        received_at=received_at,
        channel=c.channel,
        flags=",".join(c.flags.names()),
        record=c.record.SerializeToString(),
    )
