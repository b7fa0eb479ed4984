"""The facts a routing decision is made on (routing_types.proto LeadSnapshot) and their CEL
form.

CEL conventions (routing_config.proto, RoutingRule.condition): the `lead` variable holds the
snapshot's fields by their proto names; enums are short lower-case strings ("a_plus", "hot",
"opportunity", "smb", "unspecified" when unknown); an unset score reads as zeros;
`recent_event_counts` holds every event type short name (0 when none) plus the custom names
seen. Two choices the proto leaves open: an unset consent reads as `false` (what a proto field
access would give), and an unset timestamp is absent (`has(lead.first_seen_at)` is false).

Converting Python values into CEL values costs ~2 µs per map entry and selecting a nested map
out of `lead` copies it, so the hot path does not build the whole `lead`: a `ContextPlan`
(derived from the compiled conditions) names the scalar fields and the container keys the
conditions read, and containers are passed as their own variables (`_lead_<field>`, see
conditions.py, which rewrites `lead.<container>` accordingly). `FULL_CONTEXT` builds everything.

This module and conditions.py are the only ones that import `cel`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Self

import cel


class ShortNamedEnum(Enum):
    """An enum whose CEL / YAML spelling is its name in lower case ("a_plus")."""

    @property
    def short_name(self) -> str:
        return self.name.lower()

    @classmethod
    def from_short_name(cls, name: str) -> Self | None:
        """The member spelled `name` (case-insensitive), or None."""
        return cls.__members__.get(name.upper())


class Segment(ShortNamedEnum):
    UNSPECIFIED = 0
    ENTERPRISE = 1
    SMB = 2
    STARTUP = 3


class Grade(ShortNamedEnum):
    UNSPECIFIED = 0
    A_PLUS = 1
    A = 2
    B_PLUS = 3
    B = 4
    C_PLUS = 5
    C = 6
    D = 7


class Temperature(ShortNamedEnum):
    UNSPECIFIED = 0
    COLD = 1
    WARM = 2
    HOT = 3


class LifecycleStage(ShortNamedEnum):
    UNSPECIFIED = 0
    NEW = 1
    CONTACTED = 2
    QUALIFIED = 3
    ENGAGED = 4
    OPPORTUNITY = 5
    CUSTOMER = 6
    CHURNED = 7
    LOST = 8


EVENT_TYPES: tuple[str, ...] = (
    "page_view",
    "click",
    "scroll",
    "search",
    "form_submitted",
    "email_sent",
    "email_opened",
    "email_clicked",
    "email_replied",
    "email_bounced",
    "sms_sent",
    "sms_replied",
    "call_made",
    "meeting_scheduled",
    "content_downloaded",
    "social_interaction",
    "ad_clicked",
    "purchase",
    "signup",
    "tool_usage",
    "export",
    "performance_sample",
    "heatmap_click",
    "custom",
)
"""Short names of common.v1.EventType (UNSPECIFIED left out): always present in
`lead.recent_event_counts`."""

_EVENT_TYPE_SET = frozenset(EVENT_TYPES)
_ZERO_COUNTS: Mapping[str, int] = dict.fromkeys(EVENT_TYPES, 0)

RECENT_EVENTS_WINDOW = timedelta(days=30)

SCORE_FIELDS: tuple[str, ...] = (
    "total",
    "demographic",
    "behavioural",
    "firmographic",
    "engagement",
    "intent",
    "model_version",
    "scored_at",
)
CONSENT_FIELDS: tuple[str, ...] = ("tracking", "email", "sms", "portfolio_sharing")
SCALAR_FIELDS: tuple[str, ...] = (
    "lead_id",
    "home_brand_id",
    "segment",
    "grade",
    "temperature",
    "stage",
    "first_seen_at",
    "last_activity_at",
    "as_of",
)
CONTAINER_FIELDS: tuple[str, ...] = ("traits", "score", "consents", "recent_event_counts")
LEAD_FIELDS = frozenset(SCALAR_FIELDS + CONTAINER_FIELDS)
ENUM_FIELDS: Mapping[str, frozenset[str]] = {
    "segment": frozenset(m.short_name for m in Segment),
    "grade": frozenset(m.short_name for m in Grade),
    "temperature": frozenset(m.short_name for m in Temperature),
    "stage": frozenset(m.short_name for m in LifecycleStage),
}
"""Enum-valued `lead` fields and their CEL spellings (conditions compare them to literals)."""

CONTAINER_VARIABLE_PREFIX = "_lead_"


def container_variable(field_name: str) -> str:
    """The CEL variable a container field of `lead` is passed as on the hot path."""
    return CONTAINER_VARIABLE_PREFIX + field_name


@dataclass(frozen=True, slots=True, kw_only=True)
class LeadScore:
    total: float = 0.0
    demographic: float = 0.0
    behavioural: float = 0.0
    firmographic: float = 0.0
    engagement: float = 0.0
    intent: float = 0.0
    model_version: int = 0
    scored_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LeadConsents:
    """None: no consent state recorded."""

    tracking: bool | None = None
    email: bool | None = None
    sms: bool | None = None
    portfolio_sharing: bool | None = None


_NO_SCORE = LeadScore()


@dataclass(frozen=True, slots=True, kw_only=True)
class LeadSnapshot:
    """Traits are JSON-like (str, int, float, bool, None, lists, maps; depth <= 3) and hold
    personal data: never log them. Datetimes are timezone-aware."""

    lead_id: str = ""
    home_brand_id: str = ""
    traits: Mapping[str, Any] = field(default_factory=dict)
    segment: Segment = Segment.UNSPECIFIED
    score: LeadScore | None = None
    grade: Grade = Grade.UNSPECIFIED
    temperature: Temperature = Temperature.UNSPECIFIED
    stage: LifecycleStage = LifecycleStage.UNSPECIFIED
    consents: LeadConsents = field(default_factory=LeadConsents)
    recent_event_counts: Mapping[str, int] = field(default_factory=dict)
    first_seen_at: datetime | None = None
    last_activity_at: datetime | None = None
    as_of: datetime | None = None


def _scalar(snapshot: LeadSnapshot, name: str) -> Any:
    """A scalar field in its CEL form; None when unset (the key is then left out)."""
    value = getattr(snapshot, name)
    if isinstance(value, Enum):
        return value.name.lower()
    return value


def _score_map(score: LeadScore | None, keys: Iterable[str] = SCORE_FIELDS) -> dict[str, Any]:
    score = score or _NO_SCORE
    out: dict[str, Any] = {}
    for key in keys:
        value = getattr(score, key, None)
        if value is not None:
            out[key] = value
    return out


def _consents_map(consents: LeadConsents, keys: Iterable[str] = CONSENT_FIELDS) -> dict[str, Any]:
    return {key: getattr(consents, key) is True for key in keys if key in CONSENT_FIELDS}


def _counts_map(counts: Mapping[str, int], keys: Iterable[str] | None = None) -> dict[str, int]:
    if keys is None:
        out = dict(_ZERO_COUNTS)
        out.update(counts)
        return out
    out = {}
    for key in keys:
        value = counts.get(key)
        if value is not None:
            out[key] = value
        elif key in _EVENT_TYPE_SET:
            out[key] = 0
    return out


def _traits_map(traits: Mapping[str, Any], keys: Iterable[str] | None = None) -> dict[str, Any]:
    if keys is None:
        return dict(traits)
    return {key: traits[key] for key in keys if key in traits}


def container_value(
    snapshot: LeadSnapshot, name: str, keys: Iterable[str] | None = None
) -> dict[str, Any]:
    """A container field in its CEL form; with `keys`, only those keys (those absent from the
    full form stay absent, so an index reads the same value or fails the same way)."""
    if name == "recent_event_counts":
        return _counts_map(snapshot.recent_event_counts, keys)
    if name == "traits":
        return _traits_map(snapshot.traits, keys)
    if name == "score":
        return _score_map(snapshot.score, SCORE_FIELDS if keys is None else keys)
    if name == "consents":
        return _consents_map(snapshot.consents, CONSENT_FIELDS if keys is None else keys)
    raise ValueError(f"not a container field of the lead: {name!r}")


def lead_variables(snapshot: LeadSnapshot) -> dict[str, Any]:
    """The whole `lead` variable as CEL sees it (unset timestamps left out)."""
    lead: dict[str, Any] = {}
    for name in SCALAR_FIELDS:
        value = _scalar(snapshot, name)
        if value is not None:
            lead[name] = value
    for name in CONTAINER_FIELDS:
        lead[name] = container_value(snapshot, name)
    return lead


@dataclass(frozen=True, slots=True, kw_only=True)
class ContextPlan:
    """What to put in a CEL context. `containers` maps a container field to the keys read
    (None: the whole container), passed as `container_variable(field)`; `placeholders` are
    container fields that only appear as `has(lead.<field>)` (an empty map answers that);
    `full_lead` puts the whole snapshot in `lead` (for conditions that use `lead` itself)."""

    full_lead: bool = False
    scalars: frozenset[str] = frozenset()
    placeholders: frozenset[str] = frozenset()
    containers: Mapping[str, frozenset[str] | None] = field(default_factory=dict)
    trigger: bool = False
    trigger_detail: bool = False

    def merge(self, other: ContextPlan) -> ContextPlan:
        containers = dict(self.containers)
        for name, keys in other.containers.items():
            if name not in containers:
                containers[name] = keys
            else:
                mine = containers[name]
                containers[name] = None if mine is None or keys is None else mine | keys
        return ContextPlan(
            full_lead=self.full_lead or other.full_lead,
            scalars=self.scalars | other.scalars,
            placeholders=self.placeholders | other.placeholders,
            containers=containers,
            trigger=self.trigger or other.trigger,
            trigger_detail=self.trigger_detail or other.trigger_detail,
        )


FULL_CONTEXT = ContextPlan(
    full_lead=True,
    containers=dict.fromkeys(CONTAINER_FIELDS),
    trigger=True,
    trigger_detail=True,
)
"""Every variable, whole: for validation, explanations and conditions that use `lead` itself."""


def cel_context(
    snapshot: LeadSnapshot,
    trigger: str = "manual",
    trigger_detail: str = "",
    plan: ContextPlan = FULL_CONTEXT,
) -> cel.Context:
    """A CEL context for one lead and trigger: build it once, run every rule against it."""
    ctx = cel.Context()
    if plan.full_lead:
        lead = lead_variables(snapshot)
    else:
        lead = {}
        for name in plan.scalars:
            value = _scalar(snapshot, name)
            if value is not None:
                lead[name] = value
        for name in plan.placeholders:
            lead[name] = {}
    ctx.add_variable("lead", lead)
    for name, keys in plan.containers.items():
        ctx.add_variable(container_variable(name), container_value(snapshot, name, keys))
    if plan.trigger:
        ctx.add_variable("trigger", trigger)
    if plan.trigger_detail:
        ctx.add_variable("trigger_detail", trigger_detail)
    return ctx


def count_recent_events(
    events: Iterable[tuple[str, datetime, bool]],
    now: datetime,
    window: timedelta = RECENT_EVENTS_WINDOW,
) -> dict[str, int]:
    """`recent_event_counts` from (type short name or custom name, occurred_at, is_machine):
    human events in (now - window, now]; every event type present."""
    counts = dict(_ZERO_COUNTS)
    since = now - window
    for name, occurred_at, is_machine in events:
        if not is_machine and since < occurred_at <= now:
            counts[name] = counts.get(name, 0) + 1
    return counts
