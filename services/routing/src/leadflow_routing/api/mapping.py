"""Proto <-> domain. Domain enums carry the proto numbers, so enums map by value."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from google.protobuf import duration_pb2, json_format, struct_pb2, timestamp_pb2

from leadflow.routing.v1 import routing_config_pb2 as cpb
from leadflow.routing.v1 import routing_types_pb2 as tpb
from leadflow_routing.domain.config import (
    Brand,
    BreachAction,
    Continuation,
    MauticSink,
    NurtureChannel,
    NurtureSequence,
    NurtureStep,
    Owner,
    RetryPolicy,
    RoutingConfig,
    Rule,
    Sink,
    Sla,
    Strategy,
    TimeRange,
    WebhookSink,
)
from leadflow_routing.domain.decision import Decision, Route, RuleEvaluation
from leadflow_routing.domain.snapshot import (
    Grade,
    LeadConsents,
    LeadScore,
    LeadSnapshot,
    LifecycleStage,
    Segment,
    Temperature,
)
from leadflow_routing.domain.strategies import OwnerSelection


def pv(member: Enum) -> Any:
    """A domain enum as the proto enum value (same numbers; typed loosely for the stubs).
    `_value_` is what the `value` property reads, without the property's cost."""
    return member._value_


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def set_timestamp(target: timestamp_pb2.Timestamp, value: datetime | None) -> None:
    """What `target.FromDatetime(value.astimezone(UTC))` sets (a naive value read as local
    time), a few times cheaper: a decision writes several."""
    if value is not None:
        if value.tzinfo is None:
            value = value.astimezone(UTC)
        since = value - _EPOCH
        target.seconds = since.days * 86400 + since.seconds
        target.nanos = since.microseconds * 1000


def get_timestamp(message: Any, field_name: str) -> datetime | None:
    if not message.HasField(field_name):
        return None
    return getattr(message, field_name).ToDatetime(tzinfo=UTC)


def set_duration(target: duration_pb2.Duration, value: timedelta) -> None:
    if value:
        target.FromTimedelta(value)


def _duration(message: Any, field_name: str) -> timedelta:
    if not message.HasField(field_name):
        return timedelta(0)
    return getattr(message, field_name).ToTimedelta()


# --- configuration --------------------------------------------------------------------------


def config_from_proto(message: cpb.RoutingConfig) -> RoutingConfig:
    brands = []
    for b in message.brands:
        owners = tuple(
            Owner(
                id=o.id,
                name=o.name,
                email=o.email,
                weight=o.weight,
                daily_capacity=o.daily_capacity,
                out_of_office=o.out_of_office,
                out_of_office_periods=tuple(
                    TimeRange(
                        start=get_timestamp(p, "start_time"), end=get_timestamp(p, "end_time")
                    )
                    for p in o.out_of_office_periods
                ),
            )
            for o in b.owners
        )
        brands.append(
            Brand(
                id=b.id,
                name=b.name,
                owners=owners,
                fallback_owner_id=b.fallback_owner_id,
                sink=sink_from_proto(b.sink) if b.HasField("sink") else Sink(),
            )
        )
    rules = tuple(
        Rule(
            id=r.id,
            description=r.description,
            condition=r.condition,
            target_brand_id=r.target_brand_id,
            strategy=Strategy(r.strategy) if r.strategy in _STRATEGIES else Strategy.UNSPECIFIED,
            fixed_owner_id=r.fixed_owner_id,
            nurture_sequence_id=r.nurture_sequence_id,
            nurture_by_segment=r.nurture_by_segment,
            continuation=Continuation(r.continuation)
            if r.continuation in _CONTINUATIONS
            else Continuation.STOP,
            disabled=r.disabled,
        )
        for r in message.rules
    )
    sequences = tuple(
        NurtureSequence(
            id=s.id,
            name=s.name,
            segment=Segment(s.segment) if s.segment in _SEGMENTS else Segment.UNSPECIFIED,
            steps=tuple(
                NurtureStep(
                    day_offset=st.day_offset,
                    template=st.template,
                    channel=NurtureChannel(st.channel)
                    if st.channel in _CHANNELS
                    else NurtureChannel.EMAIL,
                )
                for st in s.steps
            ),
        )
        for s in message.nurture_sequences
    )
    sla = Sla(
        acknowledge_within=_duration(message.sla, "acknowledge_within"),
        breach_action=BreachAction(message.sla.breach_action)
        if message.sla.breach_action in _ACTIONS
        else BreachAction.UNSPECIFIED,
        escalation_owner_id=message.sla.escalation_owner_id,
    )
    return RoutingConfig(
        brands=tuple(brands),
        rules=rules,
        nurture_sequences=sequences,
        sla=sla,
        description=message.description,
        time_zone=message.time_zone,
        require_tracking_consent=message.require_tracking_consent,
        version=message.version,
        created_at=get_timestamp(message, "created_at"),
        created_by=message.created_by,
    )


_STRATEGIES = {m.value for m in Strategy}
_CONTINUATIONS = {m.value for m in Continuation}
_SEGMENTS = {m.value for m in Segment}
_CHANNELS = {m.value for m in NurtureChannel}
_ACTIONS = {m.value for m in BreachAction}


def sink_from_proto(s: cpb.Sink) -> Sink:
    retry = RetryPolicy(
        max_attempts=s.retry.max_attempts,
        initial_backoff=_duration(s.retry, "initial_backoff"),
        max_backoff=_duration(s.retry, "max_backoff"),
    )
    kind = s.WhichOneof("kind")
    if kind == "webhook":
        return Sink(
            webhook=WebhookSink(
                url=s.webhook.url,
                secret_ref=s.webhook.secret_ref,
                headers=dict(s.webhook.headers),
                timeout=_duration(s.webhook, "timeout"),
            ),
            retry=retry,
        )
    if kind == "mautic":
        return Sink(
            mautic=MauticSink(
                base_url=s.mautic.base_url,
                credentials_ref=s.mautic.credentials_ref,
                segment_id=s.mautic.segment_id,
                campaign_id=s.mautic.campaign_id,
                timeout=_duration(s.mautic, "timeout"),
            ),
            retry=retry,
        )
    return Sink(retry=retry)


def sink_to_proto(sink: Sink) -> cpb.Sink:
    out = cpb.Sink()
    if sink.webhook is not None:
        out.webhook.url = sink.webhook.url
        out.webhook.secret_ref = sink.webhook.secret_ref
        out.webhook.headers.update(sink.webhook.headers)
        set_duration(out.webhook.timeout, sink.webhook.timeout)
    elif sink.mautic is not None:
        out.mautic.base_url = sink.mautic.base_url
        out.mautic.credentials_ref = sink.mautic.credentials_ref
        out.mautic.segment_id = sink.mautic.segment_id
        out.mautic.campaign_id = sink.mautic.campaign_id
        set_duration(out.mautic.timeout, sink.mautic.timeout)
    else:
        out.log.SetInParent()
    if sink.retry.max_attempts:
        out.retry.max_attempts = sink.retry.max_attempts
    set_duration(out.retry.initial_backoff, sink.retry.initial_backoff)
    set_duration(out.retry.max_backoff, sink.retry.max_backoff)
    return out


def config_to_proto(config: RoutingConfig) -> cpb.RoutingConfig:
    out = cpb.RoutingConfig(
        version=config.version,
        created_by=config.created_by,
        description=config.description,
        time_zone=config.time_zone,
        require_tracking_consent=config.require_tracking_consent,
    )
    set_timestamp(out.created_at, config.created_at)
    for b in config.brands:
        brand = out.brands.add(id=b.id, name=b.name, fallback_owner_id=b.fallback_owner_id)
        for o in b.owners:
            owner = brand.owners.add(
                id=o.id,
                name=o.name,
                email=o.email,
                weight=o.weight,
                daily_capacity=o.daily_capacity,
                out_of_office=o.out_of_office,
            )
            for p in o.out_of_office_periods:
                period = owner.out_of_office_periods.add()
                set_timestamp(period.start_time, p.start)
                set_timestamp(period.end_time, p.end)
        brand.sink.CopyFrom(sink_to_proto(b.sink))
    for r in config.rules:
        rule = out.rules.add(
            id=r.id,
            description=r.description,
            condition=r.condition,
            target_brand_id=r.target_brand_id,
            strategy=pv(r.strategy),
            fixed_owner_id=r.fixed_owner_id,
            continuation=pv(r.continuation),
            disabled=r.disabled,
        )
        if r.nurture_sequence_id:
            rule.nurture_sequence_id = r.nurture_sequence_id
        elif r.nurture_by_segment:
            rule.nurture_by_segment = True
    for s in config.nurture_sequences:
        sequence = out.nurture_sequences.add(id=s.id, name=s.name, segment=pv(s.segment))
        for st in s.steps:
            sequence.steps.add(
                day_offset=st.day_offset, template=st.template, channel=pv(st.channel)
            )
    if config.sla.enabled or pv(config.sla.breach_action) or config.sla.escalation_owner_id:
        set_duration(out.sla.acknowledge_within, config.sla.acknowledge_within)
        out.sla.breach_action = pv(config.sla.breach_action)
        out.sla.escalation_owner_id = config.sla.escalation_owner_id
    return out


# --- lead snapshots -------------------------------------------------------------------------


def _enum(kind: Any, value: int) -> Any:
    try:
        return kind(value)
    except ValueError:
        return kind(0)


def snapshot_from_proto(message: tpb.LeadSnapshot) -> LeadSnapshot:
    score = None
    if message.HasField("score"):
        s = message.score
        score = LeadScore(
            total=s.total,
            demographic=s.demographic,
            behavioural=s.behavioural,
            firmographic=s.firmographic,
            engagement=s.engagement,
            intent=s.intent,
            model_version=s.model_version,
            scored_at=get_timestamp(s, "scored_at"),
        )
    c = message.consents
    consents = LeadConsents(
        tracking=c.tracking if c.HasField("tracking") else None,
        email=c.email if c.HasField("email") else None,
        sms=c.sms if c.HasField("sms") else None,
        portfolio_sharing=c.portfolio_sharing if c.HasField("portfolio_sharing") else None,
    )
    return LeadSnapshot(
        lead_id=message.lead_id,
        home_brand_id=message.home_brand_id,
        traits=json_format.MessageToDict(message.traits) if message.HasField("traits") else {},
        segment=_enum(Segment, message.segment),
        score=score,
        grade=_enum(Grade, message.grade),
        temperature=_enum(Temperature, message.temperature),
        stage=_enum(LifecycleStage, message.stage),
        consents=consents,
        recent_event_counts=dict(message.recent_event_counts),
        first_seen_at=get_timestamp(message, "first_seen_at"),
        last_activity_at=get_timestamp(message, "last_activity_at"),
        as_of=get_timestamp(message, "as_of"),
    )


def snapshot_to_proto(snapshot: LeadSnapshot, *, with_traits: bool = True) -> tpb.LeadSnapshot:
    out = tpb.LeadSnapshot(
        lead_id=snapshot.lead_id,
        home_brand_id=snapshot.home_brand_id,
        segment=pv(snapshot.segment),
        grade=pv(snapshot.grade),
        temperature=pv(snapshot.temperature),
        stage=pv(snapshot.stage),
    )
    if with_traits and snapshot.traits:
        out.traits.update(snapshot.traits)
    if snapshot.score is not None:
        s = snapshot.score
        out.score.total = s.total
        out.score.demographic = s.demographic
        out.score.behavioural = s.behavioural
        out.score.firmographic = s.firmographic
        out.score.engagement = s.engagement
        out.score.intent = s.intent
        out.score.model_version = s.model_version
        set_timestamp(out.score.scored_at, s.scored_at)
    for name in ("tracking", "email", "sms", "portfolio_sharing"):
        value = getattr(snapshot.consents, name)
        if value is not None:
            setattr(out.consents, name, value)
    out.recent_event_counts.update(snapshot.recent_event_counts)
    set_timestamp(out.first_seen_at, snapshot.first_seen_at)
    set_timestamp(out.last_activity_at, snapshot.last_activity_at)
    set_timestamp(out.as_of, snapshot.as_of)
    return out


# --- decisions ------------------------------------------------------------------------------


def owner_ref(brand_id: str, owner: Owner | None) -> tpb.OwnerRef | None:
    if owner is None:
        return None
    return tpb.OwnerRef(brand_id=brand_id, owner_id=owner.id, name=owner.name, email=owner.email)


def fill_selection(out: tpb.OwnerSelection, selection: OwnerSelection) -> None:
    """Writes the selection into `out` (an empty message, e.g. a field of the record)."""
    out.strategy = pv(selection.strategy)
    out.reason = pv(selection.reason)
    out.explanation = selection.explanation
    add = out.candidates.add
    for owner_id, skip, today, capacity, open_now, weight, chosen in selection.candidates:
        add(
            owner_id=owner_id,
            skip_reason=skip._value_,
            assigned_today=today,
            daily_capacity=capacity,
            open_assignments=open_now,
            weight=weight,
            chosen=chosen,
        )
    owner = selection.owner
    if owner is not None:
        ref = out.owner
        ref.brand_id = selection.brand_id
        ref.owner_id = owner.id
        ref.name = owner.name
        ref.email = owner.email


def evaluation_to_proto(e: RuleEvaluation) -> tpb.RuleEvaluation:
    out = tpb.RuleEvaluation(
        rule_index=e.rule_index,
        rule_id=e.rule_id,
        condition=e.condition,
        matched=e.matched,
        explanation=e.explanation,
        error=e.error,
        outcome=pv(e.outcome),
        target_brand_id=e.target_brand_id,
        continuation=pv(e.continuation),
    )
    if e.consent is not None:
        out.consent.outcome = pv(e.consent.outcome)
        out.consent.explanation = e.consent.explanation
    if e.dedup is not None:
        out.dedup.duplicate = e.dedup.duplicate
        out.dedup.key = e.dedup.key
        out.dedup.previous_decision_id = e.dedup.previous_decision_id
        set_timestamp(out.dedup.previous_routed_at, e.dedup.previous_routed_at)
    if e.owner_selection is not None:
        fill_selection(out.owner_selection, e.owner_selection)
    return out


def route_to_proto(route: Route) -> tpb.Route:
    out = tpb.Route(
        rule_id=route.rule_id,
        brand_id=route.brand_id,
        assignment_id=route.assignment_id,
        nurture_sequence_id=route.nurture_sequence_id,
        enrollment_id=route.enrollment_id,
    )
    if route.selection is not None:
        ref = owner_ref(route.brand_id, route.selection.owner)
        if ref is not None:
            out.owner.CopyFrom(ref)
    set_timestamp(out.acknowledge_by, route.acknowledge_by)
    return out


def decision_to_proto(decision: Decision) -> tpb.RouteDecision:
    out = decision_header(decision)
    out.lead.CopyFrom(snapshot_to_proto(decision.lead))
    out.evaluations.extend(evaluation_to_proto(e) for e in decision.evaluations)
    out.routes.extend(route_to_proto(r) for r in decision.routes)
    return out


def decision_header(decision: Decision) -> tpb.RouteDecision:
    """A decision's own fields (no lead, trace or routes)."""
    out = tpb.RouteDecision(
        decision_id=decision.decision_id,
        lead_id=decision.lead.lead_id,
        trigger=pv(decision.trigger),
        trigger_detail=decision.trigger_detail,
        trigger_event_id=decision.trigger_event_id,
        reason=decision.reason,
        config_version=decision.config_version,
        dry_run=decision.dry_run,
        summary=decision.summary,
    )
    set_timestamp(out.decided_at, decision.decided_at)
    return out


def traits_struct(traits: Mapping[str, Any]) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(dict(traits))
    return out
