"""A lead's score from its features: five components, each explained by factors.

Evaluated at `now` (passed in). Choices where DESIGN.md and the protos are silent:
- Windows (intent, frequency) count an event when its age is < the window; recency tiers
  apply when the age is < max_age. Events dated after `now` (ingest accepts up to 24 h
  ahead) have age 0: they are in every window and never weigh more than their points
  (decay is measured from max(now, last activity)).
- Only behavioural event points decay; frequency, intent and recency are windowed or
  tiered, so their undecayed points equal their points.
- total and undecayed_total are rounded to 2 decimals (the precision at which a change is
  recorded), and grade and temperature are those of the rounded total, so a stored 90.00
  is always A+. Component values and factor points are kept unrounded.
- Component sums use math.fsum, so the result does not depend on iteration order: the
  same features and model give the same bits in every process.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from leadflow_scoring.domain.features import (
    Activity,
    HalfLifeMismatch,
    LeadFeatures,
    needs_rebuild,
)
from leadflow_scoring.domain.lifecycle import LifecycleStage
from leadflow_scoring.domain.model import GradeThresholds, ScoringModel, TemperatureThresholds

MAX_COMPONENT = 100.0


class Grade(StrEnum):
    """Values are the proto enum names without GRADE_, lower case."""

    A_PLUS = "a_plus"
    A = "a"
    B_PLUS = "b_plus"
    B = "b"
    C_PLUS = "c_plus"
    C = "c"
    D = "d"

    @property
    def label(self) -> str:
        return _GRADE_LABELS[self]

    @property
    def rank(self) -> int:
        """0 for D up to 6 for A+: higher is better."""
        return _GRADE_RANKS[self]


_GRADE_LABELS = {
    Grade.A_PLUS: "A+",
    Grade.A: "A",
    Grade.B_PLUS: "B+",
    Grade.B: "B",
    Grade.C_PLUS: "C+",
    Grade.C: "C",
    Grade.D: "D",
}
_GRADE_RANKS = {grade: 6 - i for i, grade in enumerate(Grade)}


class Temperature(StrEnum):
    COLD = "cold"
    WARM = "warm"
    HOT = "hot"

    @property
    def rank(self) -> int:
        """0 cold, 1 warm, 2 hot."""
        return _TEMPERATURE_RANKS[self]


_TEMPERATURE_RANKS = {Temperature.COLD: 0, Temperature.WARM: 1, Temperature.HOT: 2}


class ScoreComponent(StrEnum):
    DEMOGRAPHIC = "demographic"
    BEHAVIOURAL = "behavioural"
    FIRMOGRAPHIC = "firmographic"
    ENGAGEMENT = "engagement"
    INTENT = "intent"


@dataclass(frozen=True, slots=True)
class Factor:
    """One contribution to a component (proto ScoreFactor).

    `points` after decay, `undecayed_points` without; `rule` is the path of the model rule
    that produced it; `count` the occurrences it sums (1 for profile facts).
    """

    component: ScoreComponent
    label: str
    rule: str
    count: int
    points: float
    undecayed_points: float

    def describe(self) -> str:
        """E.g. "meeting_scheduled x2: +27.72 behavioural (+40 before decay)"."""
        text = f"{self.label}: {_signed(self.points)} {self.component.value}"
        if _round2(self.points) != _round2(self.undecayed_points):
            text += f" ({_signed(self.undecayed_points)} before decay)"
        return text


@dataclass(frozen=True, slots=True)
class ComponentScore:
    value: float
    undecayed_value: float
    weight: float
    capped: bool
    factors: tuple[Factor, ...]


@dataclass(frozen=True, slots=True)
class ComponentScores:
    demographic: ComponentScore
    behavioural: ComponentScore
    firmographic: ComponentScore
    engagement: ComponentScore
    intent: ComponentScore

    def by_component(self) -> tuple[tuple[ScoreComponent, ComponentScore], ...]:
        return (
            (ScoreComponent.DEMOGRAPHIC, self.demographic),
            (ScoreComponent.BEHAVIOURAL, self.behavioural),
            (ScoreComponent.FIRMOGRAPHIC, self.firmographic),
            (ScoreComponent.ENGAGEMENT, self.engagement),
            (ScoreComponent.INTENT, self.intent),
        )


@dataclass(frozen=True, slots=True)
class LeadScore:
    """A lead's score as of `computed_at` (proto LeadScore without the lead id)."""

    total: float
    undecayed_total: float
    components: ComponentScores
    grade: Grade
    temperature: Temperature
    stage: LifecycleStage
    model_version: int
    computed_at: datetime
    home_brand_id: str
    last_activity_at: datetime | None


def grade_for(total: float, thresholds: GradeThresholds) -> Grade:
    """Each threshold is the inclusive minimum: 90.0 is A+, 89.99 is A."""
    if total >= thresholds.a_plus:
        return Grade.A_PLUS
    if total >= thresholds.a:
        return Grade.A
    if total >= thresholds.b_plus:
        return Grade.B_PLUS
    if total >= thresholds.b:
        return Grade.B
    if total >= thresholds.c_plus:
        return Grade.C_PLUS
    if total >= thresholds.c:
        return Grade.C
    return Grade.D


def temperature_for(total: float, thresholds: TemperatureThresholds) -> Temperature:
    """Inclusive minimums: 75.0 is hot, 74.99 warm."""
    if total >= thresholds.hot:
        return Temperature.HOT
    if total >= thresholds.warm:
        return Temperature.WARM
    return Temperature.COLD


def grade_floor(grade: Grade, thresholds: GradeThresholds) -> float | None:
    """Lowest total that keeps `grade`; None for D."""
    return {
        Grade.A_PLUS: thresholds.a_plus,
        Grade.A: thresholds.a,
        Grade.B_PLUS: thresholds.b_plus,
        Grade.B: thresholds.b,
        Grade.C_PLUS: thresholds.c_plus,
        Grade.C: thresholds.c,
    }.get(grade)


def temperature_floor(temperature: Temperature, thresholds: TemperatureThresholds) -> float | None:
    """Lowest total that keeps `temperature`; None for cold."""
    if temperature is Temperature.HOT:
        return thresholds.hot
    if temperature is Temperature.WARM:
        return thresholds.warm
    return None


# --- computing --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RawScore:
    """Component sums before the caps, with behavioural split into its decaying event
    points and its frequency points (the decay scheduler needs the split)."""

    demographic: float
    event_points: float
    event_points_undecayed: float
    frequency: float
    firmographic: float
    engagement: float
    intent: float

    def weighted_parts(self, model: ScoringModel) -> tuple[float, float, float, float, float]:
        """Weighted capped values: demographic, behavioural, firmographic, engagement,
        intent (decayed)."""
        w = model.weights
        return (
            w.demographic * _cap(self.demographic),
            w.behavioural * _cap(self.event_points + self.frequency),
            w.firmographic * _cap(self.firmographic),
            w.engagement * _cap(self.engagement),
            w.intent * _cap(self.intent),
        )

    def total(self, model: ScoringModel) -> float:
        """The total as compute_score rounds it."""
        return _round2(_clamp_total(math.fsum(self.weighted_parts(model))))


def raw_score(features: LeadFeatures, model: ScoringModel, now: datetime) -> RawScore:
    """The numbers of compute_score without factors (for the decay scheduler)."""
    _check_half_life(features, model)
    events, events_undecayed = _event_points(features.activity, model, now, None)
    return RawScore(
        demographic=_demographic(features, model, None),
        event_points=events,
        event_points_undecayed=events_undecayed,
        frequency=_frequency(features.activity, model, now, None),
        firmographic=_firmographic(features, model, None),
        engagement=_engagement(features, model, now, None),
        intent=_intent(features, model, now, None),
    )


def compute_score(features: LeadFeatures, model: ScoringModel, now: datetime) -> LeadScore:
    """The lead's score as of `now`, with every factor. Raises HalfLifeMismatch when the
    features were kept with another half-life than the model's (rebuild them first)."""
    _check_half_life(features, model)
    activity = features.activity
    w = model.weights

    demographic_factors: list[Factor] = []
    demographic = _component(
        _demographic(features, model, demographic_factors), w.demographic, demographic_factors
    )

    behavioural_factors: list[Factor] = []
    events, events_undecayed = _event_points(activity, model, now, behavioural_factors)
    frequency = _frequency(activity, model, now, behavioural_factors)
    behavioural = _component(
        events + frequency,
        w.behavioural,
        behavioural_factors,
        undecayed_sum=events_undecayed + frequency,
    )

    firmographic_factors: list[Factor] = []
    firmographic = _component(
        _firmographic(features, model, firmographic_factors), w.firmographic, firmographic_factors
    )

    engagement_factors: list[Factor] = []
    engagement = _component(
        _engagement(features, model, now, engagement_factors), w.engagement, engagement_factors
    )

    intent_factors: list[Factor] = []
    intent = _component(_intent(features, model, now, intent_factors), w.intent, intent_factors)

    components = ComponentScores(demographic, behavioural, firmographic, engagement, intent)
    parts = [(c.weight, c.value, c.undecayed_value) for _, c in components.by_component()]
    total = _round2(_clamp_total(math.fsum(wt * v for wt, v, _ in parts)))
    undecayed_total = _round2(_clamp_total(math.fsum(wt * u for wt, _, u in parts)))
    return LeadScore(
        total=total,
        undecayed_total=undecayed_total,
        components=components,
        grade=grade_for(total, model.grade_thresholds),
        temperature=temperature_for(total, model.temperature_thresholds),
        stage=features.stage,
        model_version=model.version,
        computed_at=now,
        home_brand_id=features.profile.home_brand_id,
        last_activity_at=activity.anchor,
    )


# --- components -------------------------------------------------------------------------
# Each returns its sum before the cap and, when `out` is a list, appends its factors.


def _demographic(features: LeadFeatures, model: ScoringModel, out: list[Factor] | None) -> float:
    present = features.profile.present_fields
    if not present:
        return 0.0
    points: list[float] = []
    for name, value in model.demographic.field_points.items():
        if name in present and value:
            points.append(value)
            if out is not None:
                out.append(
                    Factor(
                        ScoreComponent.DEMOGRAPHIC,
                        f"{name} present",
                        f"demographic.field_points.{name}",
                        1,
                        value,
                        value,
                    )
                )
    return math.fsum(points)


def _decay_factor(activity: Activity, now: datetime) -> float:
    assert activity.anchor is not None
    age = (now - activity.anchor).total_seconds()
    if age <= 0:
        return 1.0
    return 2.0 ** (-age / activity.half_life.total_seconds())


def _event_points(
    activity: Activity, model: ScoringModel, now: datetime, out: list[Factor] | None
) -> tuple[float, float]:
    """(decayed, undecayed) behavioural event points."""
    if activity.anchor is None:
        return 0.0, 0.0
    factor = _decay_factor(activity, now)
    event_points = model.behavioural.event_points
    decayed: list[float] = []
    undecayed: list[float] = []
    for name, tally in activity.tallies.items():
        per_event = event_points.get(name)
        if not per_event:
            continue
        d = per_event * tally.decayed * factor
        u = per_event * tally.count
        decayed.append(d)
        undecayed.append(u)
        if out is not None:
            out.append(
                Factor(
                    ScoreComponent.BEHAVIOURAL,
                    f"{name} x{tally.count}",
                    f"behavioural.event_points.{name}",
                    tally.count,
                    d,
                    u,
                )
            )
    return math.fsum(decayed), math.fsum(undecayed)


def _frequency(
    activity: Activity, model: ScoringModel, now: datetime, out: list[Factor] | None
) -> float:
    rules = model.behavioural
    if not rules.frequency_points_per_day or not activity.active_days:
        return 0.0
    window = rules.frequency_window
    days = 0
    for _, latest in reversed(activity.active_days):  # newest day first
        if now - latest >= window:
            break
        days += 1
    if not days:
        return 0.0
    points = min(rules.frequency_max_points, days * rules.frequency_points_per_day)
    if out is not None and points:
        out.append(
            Factor(
                ScoreComponent.BEHAVIOURAL,
                f"active on {days} {'day' if days == 1 else 'days'} in the last {_span(window)}",
                "behavioural.frequency_points_per_day",
                days,
                points,
                points,
            )
        )
    return points


def _firmographic(features: LeadFeatures, model: ScoringModel, out: list[Factor] | None) -> float:
    rules = model.firmographic
    profile = features.profile
    points = [rules.base_points]
    if out is not None and rules.base_points:
        out.append(
            Factor(
                ScoreComponent.FIRMOGRAPHIC,
                "base points",
                "firmographic.base_points",
                1,
                rules.base_points,
                rules.base_points,
            )
        )
    if rules.target_keys and rules.target_location_points and "location" in profile.present_fields:
        country = profile.country.casefold()
        region = profile.region.casefold()
        city = profile.city.casefold()
        for t_country, t_region, t_city, target in rules.target_keys:
            if (
                (not t_country or t_country == country)
                and (not t_region or t_region == region)
                and (not t_city or t_city == city)
            ):
                points.append(rules.target_location_points)
                if out is not None:
                    out.append(
                        Factor(
                            ScoreComponent.FIRMOGRAPHIC,
                            f"target location {target.label}",
                            "firmographic.target_location_points",
                            1,
                            rules.target_location_points,
                            rules.target_location_points,
                        )
                    )
                break
    if profile.customer_type:
        tier = rules.customer_type_lookup.get(profile.customer_type.casefold())
        if tier is not None and tier.points:
            points.append(tier.points)
            if out is not None:
                out.append(
                    Factor(
                        ScoreComponent.FIRMOGRAPHIC,
                        f"customer type {profile.customer_type} ({tier.name})",
                        f"firmographic.customer_type_tiers.{tier.name}",
                        1,
                        tier.points,
                        tier.points,
                    )
                )
    source, what = profile.lead_source, "lead source"
    if not source and features.activity.first_touch is not None:
        source, what = features.activity.first_touch[2].strip(), "first-touch channel"
    if source:
        tier = rules.source_lookup.get(source.casefold())
        if tier is not None and tier.points:
            points.append(tier.points)
            if out is not None:
                out.append(
                    Factor(
                        ScoreComponent.FIRMOGRAPHIC,
                        f"{what} {source} ({tier.name})",
                        f"firmographic.source_tiers.{tier.name}",
                        1,
                        tier.points,
                        tier.points,
                    )
                )
    return math.fsum(points)


def _engagement(
    features: LeadFeatures, model: ScoringModel, now: datetime, out: list[Factor] | None
) -> float:
    rules = model.engagement
    last = features.activity.anchor
    recency = rules.recency_default_points
    label, rule = "no activity yet", "engagement.recency_default_points"
    if last is not None:
        age = now - last
        label = "last activity"
        if rules.recency_tiers:
            label = f"last activity {_span(rules.recency_tiers[-1].max_age)} ago or more"
        for i, tier in enumerate(rules.recency_tiers):
            if age < tier.max_age:
                recency = tier.points
                label, rule = (
                    f"last activity < {_span(tier.max_age)}",
                    f"engagement.recency_tiers[{i}]",
                )
                break
    points = [recency]
    factors: list[tuple[str, str, float]] = [(label, rule, recency)]
    consent = features.consent
    if consent.email.granted and rules.email_consent_points:
        points.append(rules.email_consent_points)
        factors.append(
            ("email consent", "engagement.email_consent_points", rules.email_consent_points)
        )
    if consent.sms.granted and rules.sms_consent_points:
        points.append(rules.sms_consent_points)
        factors.append(("sms consent", "engagement.sms_consent_points", rules.sms_consent_points))
    bonus = rules.stage_points.get(features.stage)
    if bonus:
        points.append(bonus)
        factors.append((f"stage {features.stage.value}", "engagement.stage_bonuses", bonus))
    if out is not None:
        out.extend(
            Factor(ScoreComponent.ENGAGEMENT, label, rule, 1, value, value)
            for label, rule, value in factors
            if value
        )
    return math.fsum(points)


def _count_in_window(
    activity: Activity, types: tuple[str, ...], window: timedelta, now: datetime
) -> tuple[int, list[str]]:
    """Events of `types` younger than `window`, and "type xN" parts for the label."""
    total = 0
    parts: list[str] = []
    seen: set[str] = set()
    for name in types:
        if name in seen:
            continue
        seen.add(name)
        tally = activity.tallies.get(name)
        if tally is None:
            continue
        n = 0
        for occurred_at, _ in reversed(tally.recent):  # newest first
            if now - occurred_at >= window:
                break
            n += 1
        if n:
            total += n
            parts.append(f"{name} x{n}")
    return total, parts


def _intent(
    features: LeadFeatures, model: ScoringModel, now: datetime, out: list[Factor] | None
) -> float:
    rules = model.intent
    activity = features.activity
    points: list[float] = []
    if activity.anchor is not None:
        if rules.high_intent_event_points:
            n, parts = _count_in_window(
                activity, rules.high_intent_event_types, rules.high_intent_window, now
            )
            value = min(rules.high_intent_max_points, n * rules.high_intent_event_points)
            if value:
                points.append(value)
                if out is not None:
                    out.append(
                        Factor(
                            ScoreComponent.INTENT,
                            f"high-intent events x{n} in the last "
                            f"{_span(rules.high_intent_window)} ({', '.join(parts)})",
                            "intent.high_intent_event_points",
                            n,
                            value,
                            value,
                        )
                    )
        if rules.reply_points:
            n, _ = _count_in_window(activity, rules.reply_event_types, rules.reply_window, now)
            value = min(rules.reply_max_points, n * rules.reply_points)
            if value:
                points.append(value)
                if out is not None:
                    out.append(
                        Factor(
                            ScoreComponent.INTENT,
                            f"{'reply' if n == 1 else 'replies'} x{n} in the last "
                            f"{_span(rules.reply_window)}",
                            "intent.reply_points",
                            n,
                            value,
                            value,
                        )
                    )
    bonus = rules.stage_points.get(features.stage)
    if bonus:
        points.append(bonus)
        if out is not None:
            out.append(
                Factor(
                    ScoreComponent.INTENT,
                    f"stage {features.stage.value}",
                    "intent.stage_bonuses",
                    1,
                    bonus,
                    bonus,
                )
            )
    return math.fsum(points)


# --- helpers ----------------------------------------------------------------------------


def _component(
    total: float, weight: float, factors: list[Factor], *, undecayed_sum: float | None = None
) -> ComponentScore:
    factors.sort(key=_factor_order)
    undecayed = total if undecayed_sum is None else undecayed_sum
    return ComponentScore(
        value=_cap(total),
        undecayed_value=_cap(undecayed),
        weight=weight,
        capped=total > MAX_COMPONENT,
        factors=tuple(factors),
    )


def _factor_order(factor: Factor) -> tuple[float, float, str]:
    return (-factor.points, -factor.undecayed_points, factor.label)


def _cap(value: float) -> float:
    return value if value < MAX_COMPONENT else MAX_COMPONENT


def _clamp_total(value: float) -> float:
    # Weights sum to 1 within 1e-9, so a full score may land a hair above 100.
    return 0.0 if value < 0.0 else min(value, MAX_COMPONENT)


def _round2(value: float) -> float:
    return round(value, 2)


def _signed(points: float) -> str:
    return f"{_round2(points):+.2f}".rstrip("0").rstrip(".")


def _check_half_life(features: LeadFeatures, model: ScoringModel) -> None:
    if needs_rebuild(features, model):
        raise HalfLifeMismatch(
            f"features were kept with half-life {features.activity.half_life}, "
            f"the model has {model.decay_half_life}: rebuild them from history"
        )


_UNITS = ((timedelta(days=1), "d"), (timedelta(hours=1), "h"), (timedelta(minutes=1), "min"))


@functools.lru_cache(maxsize=256)
def _span(duration: timedelta) -> str:
    """30 days -> "30 d", 12 hours -> "12 h"; in the largest whole unit."""
    for unit, name in _UNITS:
        if duration >= unit and duration % unit == timedelta(0):
            return f"{duration // unit} {name}"
    return f"{duration.total_seconds():g} s"
