"""A lead's features: everything its score depends on, in a bounded form.

Maintained incrementally from events (`apply_event`, `apply_profile`, `apply_consent`,
`apply_stage`) and rebuildable from history (`rebuild`); the result does not depend on the
order events arrive in (up to float rounding of the decayed sums, ~1e-15 relative).

Activity is kept per event type: a lifetime count, the decayed sum
Σ 2^(-(anchor - t_i) / half_life) against the newest event time (`anchor`), and the most
recent RECENT_EVENTS_PER_TYPE (occurred_at, event_id) pairs; plus the latest event time of
each of the ACTIVE_DAYS_KEPT most recent active UTC days. Points are not stored: features do
not depend on the model's points, windows or thresholds (a new model version rescoring from
the same features), only on its decay half-life; when the half-life changes the features
must be rebuilt from history (`needs_rebuild`). Decayed sums against the newest event never
overflow (every term is at most 1) and the decayed points at time t are
points x sum x 2^(-(t - anchor) / half_life).

Duplicates: an event whose id is among the recent ones of its type is ignored, so
redelivered recent events do not count twice; older duplicates must be filtered by the
caller's inbox. Events flagged machine-generated or consent-missing are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType

from leadflow_scoring.domain.lifecycle import LifecycleStage
from leadflow_scoring.domain.model import (
    ACTIVE_DAYS_KEPT,
    RECENT_EVENTS_PER_TYPE,
    TRAIT_PREFIX,
    ScoringModel,
)

_EMPTY_TALLIES: Mapping[str, TypeTally] = MappingProxyType({})


# --- inputs -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActivityEvent:
    """One recorded event as scoring sees it.

    `type` is the event type's short name ("email_opened") or a custom event's name.
    `channel` is the marketing channel when the event is a touchpoint ("" when it has a
    marketing context without a channel), None when it is not a touchpoint. `occurred_at`
    must be timezone-aware.
    """

    event_id: str
    type: str
    occurred_at: datetime
    machine_generated: bool = False
    consent_missing: bool = False
    channel: str | None = None

    @property
    def counts(self) -> bool:
        """Whether scoring counts it (and lifecycle rules may fire on it)."""
        return not (self.machine_generated or self.consent_missing)


@dataclass(frozen=True, slots=True)
class Location:
    city: str = ""
    region: str = ""
    country: str = ""


@dataclass(frozen=True, slots=True)
class Profile:
    """What Identify wrote about a lead (ingest LeadProfile); "" means unknown.

    `segment` is the Segment enum name without its prefix, lower case ("" when unspecified).
    """

    email: str = ""
    first_name: str = ""
    last_name: str = ""
    phone: str = ""
    location: Location = Location()
    company: str = ""
    industry: str = ""
    customer_type: str = ""
    segment: str = ""
    interests: tuple[str, ...] = ()
    home_brand_id: str = ""
    lead_source: str = ""
    traits: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ConsentDecision:
    """granted: the subject agreed (withdrawn or no decision: False)."""

    granted: bool = False
    decided_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Consent:
    email: ConsentDecision = ConsentDecision()
    sms: ConsentDecision = ConsentDecision()


# --- features ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProfileFacts:
    """The part of the profile scoring uses; no email, phone or name is kept."""

    present_fields: frozenset[str] = frozenset()
    country: str = ""
    region: str = ""
    city: str = ""
    customer_type: str = ""
    lead_source: str = ""
    home_brand_id: str = ""
    as_of: datetime | None = None


@dataclass(frozen=True, slots=True)
class TypeTally:
    """Events of one type: lifetime count, decayed sum against the activity anchor, and the
    most recent (occurred_at, event_id), oldest first."""

    count: int
    decayed: float
    recent: tuple[tuple[datetime, str], ...]


@dataclass(frozen=True, slots=True)
class Activity:
    half_life: timedelta = timedelta(days=30)
    anchor: datetime | None = None
    """Newest counted event: the lead's last activity and the decay reference."""
    tallies: Mapping[str, TypeTally] = field(default_factory=lambda: _EMPTY_TALLIES)
    active_days: tuple[tuple[date, datetime], ...] = ()
    """(UTC day, latest event time that day), oldest first, the most recent days only."""
    first_touch: tuple[datetime, str, str] | None = None
    """(occurred_at, event_id, channel) of the earliest touchpoint."""

    @property
    def is_empty(self) -> bool:
        return self.anchor is None


@dataclass(frozen=True, slots=True)
class LeadFeatures:
    profile: ProfileFacts = ProfileFacts()
    consent: Consent = Consent()
    stage: LifecycleStage = LifecycleStage.NEW
    activity: Activity = Activity()

    @property
    def last_activity_at(self) -> datetime | None:
        return self.activity.anchor


def empty_features(model: ScoringModel) -> LeadFeatures:
    return LeadFeatures(activity=Activity(half_life=model.decay_half_life))


class HalfLifeMismatch(ValueError):
    """Features were accumulated with another half-life: rebuild them from history."""


def needs_rebuild(features: LeadFeatures, model: ScoringModel) -> bool:
    activity = features.activity
    return not activity.is_empty and activity.half_life != model.decay_half_life


# --- incremental updates ----------------------------------------------------------------


def apply_event(features: LeadFeatures, event: ActivityEvent, model: ScoringModel) -> LeadFeatures:
    """Counts one event; returns `features` itself when the event is ignored."""
    if not event.counts:
        return features
    activity = _add_event(features.activity, event, model.decay_half_life)
    if activity is features.activity:
        return features
    return LeadFeatures(features.profile, features.consent, features.stage, activity)


def apply_profile(features: LeadFeatures, profile: Profile, as_of: datetime) -> LeadFeatures:
    """Takes the full profile of a SubjectIdentified; an older one than held is ignored."""
    held = features.profile.as_of
    if held is not None and as_of < held:
        return features
    return LeadFeatures(
        profile_facts(profile, as_of), features.consent, features.stage, features.activity
    )


def apply_consent(features: LeadFeatures, consent: Consent) -> LeadFeatures:
    """Takes a full consent state; per purpose the newer decision wins (redeliveries and
    reordered messages cannot resurrect an old decision)."""
    merged = _merge_consent(features.consent, consent)
    if merged == features.consent:
        return features
    return LeadFeatures(features.profile, merged, features.stage, features.activity)


def apply_stage(features: LeadFeatures, stage: LifecycleStage) -> LeadFeatures:
    if stage is features.stage:
        return features
    return LeadFeatures(features.profile, features.consent, stage, features.activity)


def rebuild(
    events: Iterable[ActivityEvent],
    model: ScoringModel,
    *,
    profile: Profile | None = None,
    profile_as_of: datetime | None = None,
    consent: Consent | None = None,
    stage: LifecycleStage = LifecycleStage.NEW,
) -> LeadFeatures:
    """Features from history, as applying everything one by one would give."""
    features = empty_features(model)
    if profile is not None:
        features = apply_profile(
            features, profile, profile_as_of or datetime.min.replace(tzinfo=UTC)
        )
    if consent is not None:
        features = apply_consent(features, consent)
    features = apply_stage(features, stage)
    ordered = sorted(events, key=lambda e: (e.occurred_at, e.event_id))
    for event in ordered:
        features = apply_event(features, event, model)
    return features


def merge_features(lead: LeadFeatures, anonymous: LeadFeatures) -> LeadFeatures:
    """An anonymous visitor's features merged into its lead's (SubjectAliased): activity
    adds up, consent keeps the newer decision per purpose, profile and stage stay the
    lead's. Both must have been kept with the same half-life."""
    return LeadFeatures(
        lead.profile,
        _merge_consent(lead.consent, anonymous.consent),
        lead.stage,
        merge_activity(lead.activity, anonymous.activity),
    )


def merge_activity(a: Activity, b: Activity) -> Activity:
    if b.is_empty:
        return a
    if a.is_empty:
        return b
    if a.half_life != b.half_life:
        raise HalfLifeMismatch(f"cannot merge activity kept with {a.half_life} and {b.half_life}")
    assert a.anchor is not None and b.anchor is not None
    anchor = max(a.anchor, b.anchor)
    h = a.half_life.total_seconds()
    scale_a = _decay(anchor - a.anchor, h)
    scale_b = _decay(anchor - b.anchor, h)
    tallies: dict[str, TypeTally] = {k: _scaled(t, scale_a) for k, t in a.tallies.items()}
    for name, tb in b.tallies.items():
        tb = _scaled(tb, scale_b)
        ta = tallies.get(name)
        if ta is None:
            tallies[name] = tb
            continue
        recent = tuple(sorted(set(ta.recent) | set(tb.recent)))[-RECENT_EVENTS_PER_TYPE:]
        tallies[name] = TypeTally(ta.count + tb.count, ta.decayed + tb.decayed, recent)
    days = dict(a.active_days)
    for day, latest in b.active_days:
        if day not in days or latest > days[day]:
            days[day] = latest
    active_days = tuple(sorted(days.items()))[-ACTIVE_DAYS_KEPT:]
    touches = [t for t in (a.first_touch, b.first_touch) if t is not None]
    return Activity(
        a.half_life,
        anchor,
        MappingProxyType(tallies),
        active_days,
        min(touches) if touches else None,
    )


# --- profile facts ----------------------------------------------------------------------


def profile_facts(profile: Profile, as_of: datetime | None) -> ProfileFacts:
    location = profile.location
    city, region, country = location.city.strip(), location.region.strip(), location.country.strip()
    customer_type = profile.customer_type.strip()
    lead_source = profile.lead_source.strip()
    home_brand_id = profile.home_brand_id.strip()
    present: set[str] = set()
    for name, value in (
        ("email", profile.email),
        ("first_name", profile.first_name),
        ("last_name", profile.last_name),
        ("phone", profile.phone),
        ("company", profile.company),
        ("industry", profile.industry),
        ("customer_type", customer_type),
        ("segment", profile.segment),
        ("home_brand_id", home_brand_id),
        ("lead_source", lead_source),
    ):
        if value.strip():
            present.add(name)
    if city or region or country:
        present.add("location")
    if any(i.strip() for i in profile.interests):
        present.add("interests")
    for key, trait in profile.traits.items():
        if _trait_present(trait):
            present.add(TRAIT_PREFIX + key)
    return ProfileFacts(
        frozenset(present), country, region, city, customer_type, lead_source, home_brand_id, as_of
    )


def _trait_present(value: object) -> bool:
    # Struct values: null, bool, number, string, list, struct. false and 0 are values.
    if value is None:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, (list, tuple, dict)):
        return bool(value)
    return True


def _merge_consent(held: Consent, new: Consent) -> Consent:
    email = _newer_decision(held.email, new.email)
    sms = _newer_decision(held.sms, new.sms)
    if email is held.email and sms is held.sms:
        return held
    return Consent(email, sms)


def _newer_decision(held: ConsentDecision, new: ConsentDecision) -> ConsentDecision:
    if new.decided_at is None:  # no decision recorded: never replaces a dated one
        return held if held.decided_at is not None else new
    if held.decided_at is None or new.decided_at > held.decided_at:
        return new
    if new.decided_at == held.decided_at and held.granted and not new.granted:
        return new  # same instant: the withdrawal wins, whatever the order
    return held


# --- activity ---------------------------------------------------------------------------


def _decay(age: timedelta, half_life_s: float) -> float:
    return 2.0 ** (-age.total_seconds() / half_life_s)


def _scaled(tally: TypeTally, factor: float) -> TypeTally:
    if factor == 1.0:
        return tally
    return TypeTally(tally.count, tally.decayed * factor, tally.recent)


def _add_event(activity: Activity, event: ActivityEvent, half_life: timedelta) -> Activity:
    if activity.is_empty:
        activity = Activity(half_life=half_life)
    elif activity.half_life != half_life:
        raise HalfLifeMismatch(
            f"features were kept with half-life {activity.half_life}, the model has {half_life}"
        )
    t = event.occurred_at
    entry = (t, event.event_id)
    tally = activity.tallies.get(event.type)
    recent: tuple[tuple[datetime, str], ...] = ()
    if tally is not None:
        recent = tally.recent
        for _, known in recent:
            if known == event.event_id:
                return activity  # a redelivered recent event
    if len(recent) < RECENT_EVENTS_PER_TYPE or entry > recent[0]:
        recent = _insert_sorted(recent, entry)[-RECENT_EVENTS_PER_TYPE:]

    h = half_life.total_seconds()
    anchor = activity.anchor
    tallies = dict(activity.tallies)
    if anchor is None or t > anchor:
        # The newest event becomes the reference: every other sum decays to it.
        if anchor is not None:
            factor = _decay(t - anchor, h)
            for name, other in tallies.items():
                tallies[name] = _scaled(other, factor)
            tally = tallies.get(event.type)
        anchor = t
        weight = 1.0
    else:
        weight = _decay(anchor - t, h)
    if tally is None:
        tallies[event.type] = TypeTally(1, weight, recent)
    else:
        tallies[event.type] = TypeTally(tally.count + 1, tally.decayed + weight, recent)

    return Activity(
        half_life,
        anchor,
        MappingProxyType(tallies),
        _add_active_day(activity.active_days, t),
        _earlier_touch(activity.first_touch, event),
    )


def _add_active_day(
    days: tuple[tuple[date, datetime], ...], t: datetime
) -> tuple[tuple[date, datetime], ...]:
    day = t.astimezone(UTC).date()
    i = len(days)
    while i > 0 and days[i - 1][0] > day:
        i -= 1
    if i > 0 and days[i - 1][0] == day:
        if days[i - 1][1] >= t:
            return days
        return (*days[: i - 1], (day, t), *days[i:])
    if i == 0 and len(days) >= ACTIVE_DAYS_KEPT:
        return days  # older than every day kept
    return (*days[:i], (day, t), *days[i:])[-ACTIVE_DAYS_KEPT:]


def _earlier_touch(
    held: tuple[datetime, str, str] | None, event: ActivityEvent
) -> tuple[datetime, str, str] | None:
    if event.channel is None:
        return held
    touch = (event.occurred_at, event.event_id, event.channel)
    if held is None or touch[:2] < held[:2]:
        return touch
    return held


def _insert_sorted(
    items: tuple[tuple[datetime, str], ...], entry: tuple[datetime, str]
) -> tuple[tuple[datetime, str], ...]:
    i = len(items)
    while i > 0 and items[i - 1] > entry:
        i -= 1
    return (*items[:i], entry, *items[i:])
