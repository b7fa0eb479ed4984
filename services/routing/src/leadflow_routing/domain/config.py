"""The routing configuration as data (routing_config.proto RoutingConfig, field by field).

Defaults are the ones the proto documents; `validation.py` checks a configuration and fills
nothing in, `with_defaults` does. Durations are timedeltas, times timezone-aware datetimes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import Enum

from leadflow_routing.domain.snapshot import Segment, ShortNamedEnum


class Strategy(ShortNamedEnum):
    UNSPECIFIED = 0
    FIXED_OWNER = 1
    ROUND_ROBIN = 2
    WEIGHTED = 3
    LEAST_LOADED = 4


class Continuation(ShortNamedEnum):
    UNSPECIFIED = 0
    STOP = 1
    ALSO_ROUTE = 2


class BreachAction(ShortNamedEnum):
    UNSPECIFIED = 0
    REASSIGN = 1
    ESCALATE = 2


class NurtureChannel(ShortNamedEnum):
    UNSPECIFIED = 0
    EMAIL = 1
    SMS = 2
    CALL = 3


class SinkKind(Enum):
    LOG = "log"
    WEBHOOK = "webhook"
    MAUTIC = "mautic"


DEFAULT_TIME_ZONE = "UTC"
DEFAULT_SINK_TIMEOUT = timedelta(seconds=10)
MAX_SINK_TIMEOUT = timedelta(seconds=60)
DEFAULT_MAX_ATTEMPTS = 20
DEFAULT_INITIAL_BACKOFF = timedelta(seconds=1)
DEFAULT_MAX_BACKOFF = timedelta(minutes=10)


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeRange:
    """[start, end); an unset bound is open."""

    start: datetime | None = None
    end: datetime | None = None

    def contains(self, at: datetime) -> bool:
        return (self.start is None or self.start <= at) and (self.end is None or at < self.end)


@dataclass(frozen=True, slots=True, kw_only=True)
class Owner:
    id: str
    name: str = ""
    email: str = ""
    weight: int = 0
    daily_capacity: int = 0
    out_of_office: bool = False
    out_of_office_periods: tuple[TimeRange, ...] = ()

    @property
    def effective_weight(self) -> int:
        return self.weight or 1

    def away(self, at: datetime) -> bool:
        return self.out_of_office or any(p.contains(at) for p in self.out_of_office_periods)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Zero values mean "default" (SinkRetryPolicy)."""

    max_attempts: int = 0
    initial_backoff: timedelta = timedelta(0)
    max_backoff: timedelta = timedelta(0)

    def filled(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.max_attempts or DEFAULT_MAX_ATTEMPTS,
            initial_backoff=self.initial_backoff or DEFAULT_INITIAL_BACKOFF,
            max_backoff=self.max_backoff or DEFAULT_MAX_BACKOFF,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookSink:
    url: str
    secret_ref: str
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: timedelta = timedelta(0)


@dataclass(frozen=True, slots=True, kw_only=True)
class MauticSink:
    base_url: str
    credentials_ref: str
    segment_id: str = ""
    campaign_id: str = ""
    timeout: timedelta = timedelta(0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Sink:
    """Exactly one of webhook / mautic, or neither for the log sink."""

    webhook: WebhookSink | None = None
    mautic: MauticSink | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @property
    def kind(self) -> SinkKind:
        if self.webhook is not None:
            return SinkKind.WEBHOOK
        if self.mautic is not None:
            return SinkKind.MAUTIC
        return SinkKind.LOG

    @property
    def timeout(self) -> timedelta:
        target = self.webhook or self.mautic
        return (target.timeout if target else timedelta(0)) or DEFAULT_SINK_TIMEOUT


LOG_SINK = Sink()


@dataclass(frozen=True, slots=True, kw_only=True)
class Brand:
    id: str
    name: str = ""
    owners: tuple[Owner, ...] = ()
    fallback_owner_id: str = ""
    sink: Sink = LOG_SINK

    def owner(self, owner_id: str) -> Owner | None:
        for owner in self.owners:
            if owner.id == owner_id:
                return owner
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """`nurture_sequence_id` and `nurture_by_segment` are the proto oneof: at most one set."""

    id: str
    target_brand_id: str
    strategy: Strategy
    condition: str = ""
    description: str = ""
    fixed_owner_id: str = ""
    nurture_sequence_id: str = ""
    nurture_by_segment: bool = False
    continuation: Continuation = Continuation.STOP
    disabled: bool = False

    @property
    def stops(self) -> bool:
        return self.continuation is not Continuation.ALSO_ROUTE


@dataclass(frozen=True, slots=True, kw_only=True)
class NurtureStep:
    day_offset: int
    template: str
    channel: NurtureChannel = NurtureChannel.EMAIL


@dataclass(frozen=True, slots=True, kw_only=True)
class NurtureSequence:
    id: str
    name: str = ""
    segment: Segment = Segment.UNSPECIFIED
    steps: tuple[NurtureStep, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Sla:
    """`acknowledge_within` zero: no SLA."""

    acknowledge_within: timedelta = timedelta(0)
    breach_action: BreachAction = BreachAction.UNSPECIFIED
    escalation_owner_id: str = ""

    @property
    def enabled(self) -> bool:
        return self.acknowledge_within > timedelta(0)


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingConfig:
    """`version`, `created_at`, `created_by` are output only (0 / None / "" for a draft)."""

    brands: tuple[Brand, ...] = ()
    rules: tuple[Rule, ...] = ()
    nurture_sequences: tuple[NurtureSequence, ...] = ()
    sla: Sla = field(default_factory=Sla)
    description: str = ""
    time_zone: str = ""
    require_tracking_consent: bool = False
    version: int = 0
    created_at: datetime | None = None
    created_by: str = ""

    def brand(self, brand_id: str) -> Brand | None:
        for brand in self.brands:
            if brand.id == brand_id:
                return brand
        return None

    def sequence(self, sequence_id: str) -> NurtureSequence | None:
        for sequence in self.nurture_sequences:
            if sequence.id == sequence_id:
                return sequence
        return None

    def sequence_for_segment(self, segment: Segment) -> NurtureSequence | None:
        if segment is Segment.UNSPECIFIED:
            return None
        for sequence in self.nurture_sequences:
            if sequence.segment is segment:
                return sequence
        return None

    def rule(self, rule_id: str) -> Rule | None:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        return None

    @property
    def zone(self) -> str:
        return self.time_zone or DEFAULT_TIME_ZONE


DEFAULT_STEPS: tuple[NurtureStep, ...] = (
    NurtureStep(day_offset=1, template="welcome"),
    NurtureStep(day_offset=3, template="value-proposition"),
    NurtureStep(day_offset=6, template="case-study"),
    NurtureStep(day_offset=10, template="demo-offer"),
    NurtureStep(day_offset=15, template="final-reminder"),
)
"""DESIGN.md §3 Routing: day 1 welcome, 3 value, 6 case study, 10 demo offer, 15 reminder."""


def default_sequences() -> tuple[NurtureSequence, ...]:
    """The built-in sequences, one per segment ("enterprise-default", "smb-default",
    "startup-default") with DEFAULT_STEPS; step_due events carry the segment, so the sending
    system can pick a segment's version of a template."""
    names = {Segment.ENTERPRISE: "Enterprise", Segment.SMB: "SMB", Segment.STARTUP: "Startup"}
    return tuple(
        NurtureSequence(
            id=f"{segment.short_name}-default",
            name=f"{name} nurture",
            segment=segment,
            steps=DEFAULT_STEPS,
        )
        for segment, name in names.items()
    )


def with_defaults(config: RoutingConfig) -> RoutingConfig:
    """The configuration as stored: time zone, rule continuation, step channel, sink retry
    and timeouts filled in; the default sequences added for segments no sequence covers
    (only their ids are new, so a configuration can always name "smb-default")."""
    covered = {s.segment for s in config.nurture_sequences}
    ids = {s.id for s in config.nurture_sequences}
    sequences = [
        replace(
            s,
            steps=tuple(
                replace(step, channel=NurtureChannel.EMAIL)
                if step.channel is NurtureChannel.UNSPECIFIED
                else step
                for step in s.steps
            ),
        )
        for s in config.nurture_sequences
    ]
    sequences += [s for s in default_sequences() if s.segment not in covered and s.id not in ids]
    brands = []
    for brand in config.brands:
        sink = brand.sink
        webhook = sink.webhook
        if webhook is not None and not webhook.timeout:
            webhook = replace(webhook, timeout=DEFAULT_SINK_TIMEOUT)
        mautic = sink.mautic
        if mautic is not None and not mautic.timeout:
            mautic = replace(mautic, timeout=DEFAULT_SINK_TIMEOUT)
        brands.append(
            replace(
                brand,
                owners=tuple(replace(o, weight=o.effective_weight) for o in brand.owners),
                sink=replace(sink, webhook=webhook, mautic=mautic, retry=sink.retry.filled()),
            )
        )
    rules = tuple(
        replace(r, continuation=Continuation.STOP)
        if r.continuation is Continuation.UNSPECIFIED
        else r
        for r in config.rules
    )
    return replace(
        config,
        time_zone=config.zone,
        brands=tuple(brands),
        rules=rules,
        nurture_sequences=tuple(sequences),
    )
