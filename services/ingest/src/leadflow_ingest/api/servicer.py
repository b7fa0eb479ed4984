"""The IngestService gRPC adapter: check the request's shape, charge the key's rate limit,
call the use case, map the answer. Per-event problems are answers, not errors."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

from leadflow.ingest.v1 import event_pb2, ingest_service_pb2, ingest_service_pb2_grpc
from leadflow_ingest.api import mapping
from leadflow_ingest.domain.consent import ConsentDecision
from leadflow_ingest.domain.model import DEFAULT_LIMITS, Violation, ViolationCode
from leadflow_ingest.domain.profile import validate_mask, validate_profile
from leadflow_ingest.domain.ratelimit import KeyedBuckets, retry_after_seconds
from leadflow_ingest.domain.validation import validate_id, validate_subject
from leadflow_ingest.recording import ACCEPTED, DUPLICATE, REJECTED, BatchOutcome
from leadflow_ingest.service import IngestService
from leadflow_platform.errors import FieldViolation, InvalidArgument, ResourceExhausted
from leadflow_platform.grpc import current_principal
from leadflow_platform.lifecycle import ServiceContext

STATUS = {
    ACCEPTED: ingest_service_pb2.EVENT_STATUS_ACCEPTED,
    DUPLICATE: ingest_service_pb2.EVENT_STATUS_DUPLICATE,
    REJECTED: ingest_service_pb2.EVENT_STATUS_REJECTED,
}


class RateLimiter:
    """Events per second per API key (a token bucket with two seconds of burst); a tenant's
    `ingest_events_per_second` setting overrides the deployment default."""

    def __init__(self, context: ServiceContext, default_rate: float) -> None:
        self._context = context
        self._default = default_rate
        self._buckets: dict[float, KeyedBuckets] = {}

    async def charge(self, tenant_id: str, key_id: str, events: int) -> None:
        configured = (await self._context.tenants.settings(tenant_id)).get(
            "ingest_events_per_second"
        )
        rate = float(configured or self._default)
        buckets = self._buckets.get(rate)
        if buckets is None:
            burst = max(rate * 2, DEFAULT_LIMITS.max_batch_events)
            buckets = self._buckets[rate] = KeyedBuckets(rate, burst)
        wait = buckets.take(key_id, max(events, 1), time.monotonic())
        if wait > 0:
            raise ResourceExhausted(
                f"rate limit of {rate:g} events per second for this API key reached",
                retry_after=retry_after_seconds(wait),
            )


class IngestServicer(ingest_service_pb2_grpc.IngestServiceServicer):
    def __init__(self, service: IngestService, limiter: RateLimiter) -> None:
        self._service = service
        self._limiter = limiter

    async def Track(self, request, context):
        outcome = await self._record([request.event], None)
        return ingest_service_pb2.TrackResponse(result=_result(outcome, 0, "event"))

    async def TrackBatch(self, request, context):
        outcome = await self._record(request.events, _optional_time(request, "sent_at"))
        return ingest_service_pb2.TrackBatchResponse(
            results=[_result(outcome, i) for i in range(len(outcome.results))],
            received=len(outcome.results),
            accepted=outcome.count(ACCEPTED),
            duplicate=outcome.count(DUPLICATE),
            rejected=outcome.count(REJECTED),
        )

    async def TrackStream(
        self, request_iterator: AsyncIterator[ingest_service_pb2.TrackStreamRequest], context
    ) -> AsyncIterator[ingest_service_pb2.TrackStreamResponse]:
        # One batch at a time, in arrival order: each acknowledgement means committed.
        async for request in request_iterator:
            outcome = await self._record(request.events, _optional_time(request, "sent_at"))
            yield ingest_service_pb2.TrackStreamResponse(
                sequence=request.sequence,
                results=[_result(outcome, i) for i in range(len(outcome.results))],
                received=len(outcome.results),
                accepted=outcome.count(ACCEPTED),
                duplicate=outcome.count(DUPLICATE),
                rejected=outcome.count(REJECTED),
            )

    async def _record(
        self, events: Sequence[event_pb2.TrackEvent], sent_at: datetime | None
    ) -> BatchOutcome:
        if not events:
            raise InvalidArgument.field("events", "at least one event is required")
        if len(events) > DEFAULT_LIMITS.max_batch_events:
            raise InvalidArgument.field(
                "events",
                f"{len(events)} events; a batch holds at most {DEFAULT_LIMITS.max_batch_events}",
            )
        principal = current_principal()
        await self._limiter.charge(principal.tenant_id, principal.key_id, len(events))
        return await self._service.record(
            principal.tenant_id, events, received_at=_now(), batch_sent_at=sent_at
        )

    async def Identify(self, request, context):
        violations = validate_id(request.lead_id, "lead_id")
        violations += validate_id(request.anonymous_id, "anonymous_id", required=False)
        profile = mapping.profile_from_message(request.profile)
        violations += validate_profile(profile)
        mask = list(request.update_mask.paths)
        violations += validate_mask(mask)
        _refuse(violations)
        tenant = current_principal().tenant_id
        created, changed, stored = await self._service.identify(
            tenant, request.lead_id, request.anonymous_id, profile, mask or None, now=_now()
        )
        return ingest_service_pb2.IdentifyResponse(
            lead_id=request.lead_id,
            created=created,
            changed_fields=changed,
            profile=mapping.profile_message(stored),
        )

    async def Alias(self, request, context):
        _refuse(
            validate_id(request.anonymous_id, "anonymous_id")
            + validate_id(request.lead_id, "lead_id")
        )
        created, moved = await self._service.alias(
            current_principal().tenant_id, request.anonymous_id, request.lead_id, now=_now()
        )
        return ingest_service_pb2.AliasResponse(created=created, events_reassigned=moved)

    async def SetConsent(self, request, context):
        subject = request.subject
        violations = validate_subject(subject.lead_id, subject.anonymous_id)
        now = _now()
        decisions: dict[str, ConsentDecision] = {}
        for purpose in mapping.PURPOSE_VALUES:
            decision = getattr(request, purpose)
            status = mapping.CONSENT_STATUS_NAMES.get(decision.status)
            if status is None:
                continue
            if len(decision.source) > 100:
                violations.append(_violation(f"{purpose}.source", "at most 100 characters"))
                continue
            decided_at = (
                mapping.to_datetime(decision.decided_at) if decision.HasField("decided_at") else now
            )
            decisions[purpose] = ConsentDecision(status, decision.source, decided_at)
        if not decisions and not violations:
            violations.append(_violation("tracking", "at least one purpose needs a decision"))
        _refuse(violations)
        state, changed = await self._service.set_consent(
            current_principal().tenant_id,
            subject.lead_id,
            subject.anonymous_id,
            decisions,
            now=now,
        )
        return ingest_service_pb2.SetConsentResponse(
            consent=mapping.consent_message(state),
            changed=[mapping.PURPOSE_VALUES[p] for p in changed],
        )

    async def EraseSubject(self, request, context):
        violations = validate_id(request.lead_id, "lead_id", required=False)
        violations += validate_id(request.anonymous_id, "anonymous_id", required=False)
        if len(request.email) > 1000:
            violations.append(_violation("email", "at most 1,000 characters"))
        if len(request.reason) > 500:
            violations.append(_violation("reason", "at most 500 characters"))
        if not (request.lead_id or request.anonymous_id or request.email):
            violations.append(
                _violation("lead_id", "one of lead_id, anonymous_id or email is required")
            )
        _refuse(violations)
        now = _now()
        erasure_id, person, counts = await self._service.erase(
            current_principal().tenant_id,
            lead_id=request.lead_id,
            anonymous_id=request.anonymous_id,
            email=request.email,
            reason=request.reason,
            now=now,
        )
        return ingest_service_pb2.EraseSubjectResponse(
            erasure_id=erasure_id,
            lead_ids=sorted(person.lead_ids),
            anonymous_ids=sorted(person.anonymous_ids),
            counts=ingest_service_pb2.ErasureCounts(
                events=counts["events"],
                profiles=counts["profiles"],
                aliases=counts["aliases"],
                consents=counts["consents"],
                sessions=counts["sessions"],
            ),
            erased_at=mapping.from_datetime(now),
        )


def _result(outcome: BatchOutcome, index: int, prefix: str = "") -> ingest_service_pb2.EventResult:
    """One event's answer; violation paths start at the request ("events[3].ip")."""
    r = outcome.results[index]
    result = ingest_service_pb2.EventResult(
        index=index, event_id=r.event_id, status=STATUS[r.status]
    )
    if r.violations:
        path = prefix or f"events[{index}]"
        result.violations.extend(mapping.field_violations(v.under(path) for v in r.violations))
    if r.flags is not None:
        r.flags.write_to(result.flags)
    return result


def _refuse(violations: list[Violation]) -> None:
    if violations:
        raise InvalidArgument(*(FieldViolation(v.field, v.reason) for v in violations))


def _violation(field: str, reason: str) -> Violation:
    return Violation(field, ViolationCode.INVALID_VALUE, reason)


def _optional_time(message: object, name: str) -> datetime | None:
    if message.HasField(name):  # type: ignore[attr-defined]
        return mapping.to_datetime(getattr(message, name))
    return None


def _now() -> datetime:
    return datetime.now(UTC)
