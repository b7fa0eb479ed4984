"""The scoring model as data: every number that turns a lead's features into a score.

Mirrors leadflow.scoring.v1.ScoringModel field by field; the defaults of every dataclass are
the built-in model (DESIGN.md §3 Scoring, defaults written in scoring_model.proto), so
`ScoringModel()` == DEFAULT_MODEL. Event types are named by their short name
("email_opened") or a custom event's own name. Mappings are copied into read-only views;
lookups the score needs on every call (lower-cased tiers, stage bonuses) are derived once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType

from leadflow_scoring.domain.lifecycle import EXITS, LifecycleRules, LifecycleStage
from leadflow_scoring.domain.violations import Violation

RECENT_EVENTS_PER_TYPE = 10
"""Features keep the timestamps of this many most recent events of each type; an intent
cap must be reachable with that many events of one type (validated), so windows count
exactly."""

ACTIVE_DAYS_KEPT = 100
"""Features keep this many most recent active UTC days; the frequency cap must be reachable
with that many days (validated)."""

DESCRIPTION_MAX = 1000
EVENT_TYPE_NAME_MAX = 100
WEIGHT_SUM_TOLERANCE = 1e-9

PROFILE_FIELDS: frozenset[str] = frozenset(
    {
        "email",
        "first_name",
        "last_name",
        "phone",
        "location",
        "company",
        "industry",
        "customer_type",
        "segment",
        "interests",
        "home_brand_id",
        "lead_source",
    }
)
"""Keys of DemographicRules.field_points besides "traits.<key>"."""

TRAIT_PREFIX = "traits."


def _frozen_points(points: Mapping[str, float]) -> Mapping[str, float]:
    return MappingProxyType(dict(points))


@dataclass(frozen=True, slots=True, kw_only=True)
class ComponentWeights:
    demographic: float = 0.20
    behavioural: float = 0.25
    firmographic: float = 0.15
    engagement: float = 0.25
    intent: float = 0.15


@dataclass(frozen=True, slots=True, kw_only=True)
class DemographicRules:
    field_points: Mapping[str, float] = field(
        default_factory=lambda: {
            "email": 15.0,
            "first_name": 10.0,
            "last_name": 10.0,
            "phone": 15.0,
            "location": 10.0,
            "customer_type": 20.0,
            "industry": 10.0,
            "interests": 10.0,
        }
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "field_points", _frozen_points(self.field_points))


@dataclass(frozen=True, slots=True, kw_only=True)
class BehaviouralRules:
    event_points: Mapping[str, float] = field(
        default_factory=lambda: {
            "email_opened": 2.0,
            "email_clicked": 5.0,
            "email_replied": 10.0,
            "form_submitted": 15.0,
            "page_view": 1.0,
            "content_downloaded": 8.0,
            "meeting_scheduled": 20.0,
            "purchase": 50.0,
        }
    )
    frequency_points_per_day: float = 1.0
    frequency_max_points: float = 10.0
    frequency_window: timedelta = timedelta(days=30)

    def __post_init__(self) -> None:
        object.__setattr__(self, "event_points", _frozen_points(self.event_points))


@dataclass(frozen=True, slots=True)
class TargetLocation:
    """Matches when every non-empty field equals the lead's (case-insensitive)."""

    country: str = ""
    region: str = ""
    city: str = ""

    @property
    def label(self) -> str:
        return ", ".join(part for part in (self.country, self.region, self.city) if part)


@dataclass(frozen=True, slots=True)
class ValueTier:
    """The first tier (in list order) listing the lead's value (case-insensitive) applies."""

    name: str
    values: tuple[str, ...]
    points: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(self.values))


def _tier_lookup(tiers: tuple[ValueTier, ...]) -> dict[str, ValueTier]:
    lookup: dict[str, ValueTier] = {}
    for tier in tiers:
        for value in tier.values:
            lookup.setdefault(value.strip().casefold(), tier)
    return lookup


@dataclass(frozen=True, slots=True, kw_only=True)
class FirmographicRules:
    base_points: float = 50.0
    target_locations: tuple[TargetLocation, ...] = ()
    target_location_points: float = 20.0
    customer_type_tiers: tuple[ValueTier, ...] = (
        ValueTier("high", ("enterprise",), 15.0),
        ValueTier("mid", ("mid_market", "smb", "agency"), 10.0),
        ValueTier("low", ("startup", "individual"), 5.0),
    )
    source_tiers: tuple[ValueTier, ...] = (
        ValueTier("high", ("referral", "partner"), 15.0),
        ValueTier("medium", ("ads", "paid_search", "paid_social", "display", "form"), 10.0),
    )
    customer_type_lookup: dict[str, ValueTier] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )
    source_lookup: dict[str, ValueTier] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )
    # (country, region, city) case-folded, "" = any, with the location they came from.
    target_keys: tuple[tuple[str, str, str, TargetLocation], ...] = field(
        init=False, repr=False, compare=False, default=()
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "target_locations", tuple(self.target_locations))
        object.__setattr__(self, "customer_type_tiers", tuple(self.customer_type_tiers))
        object.__setattr__(self, "source_tiers", tuple(self.source_tiers))
        object.__setattr__(self, "customer_type_lookup", _tier_lookup(self.customer_type_tiers))
        object.__setattr__(self, "source_lookup", _tier_lookup(self.source_tiers))
        keys = tuple(
            (
                t.country.strip().casefold(),
                t.region.strip().casefold(),
                t.city.strip().casefold(),
                t,
            )
            for t in self.target_locations
        )
        object.__setattr__(self, "target_keys", keys)


@dataclass(frozen=True, slots=True)
class RecencyTier:
    """`points` when the last activity is younger than `max_age` (exclusive)."""

    max_age: timedelta
    points: float


@dataclass(frozen=True, slots=True)
class StageBonus:
    stage: LifecycleStage
    points: float


def _stage_lookup(bonuses: tuple[StageBonus, ...]) -> dict[LifecycleStage, float]:
    lookup: dict[LifecycleStage, float] = {}
    for bonus in bonuses:
        lookup.setdefault(bonus.stage, bonus.points)
    return lookup


@dataclass(frozen=True, slots=True, kw_only=True)
class EngagementRules:
    recency_tiers: tuple[RecencyTier, ...] = (
        RecencyTier(timedelta(days=7), 40.0),
        RecencyTier(timedelta(days=30), 30.0),
        RecencyTier(timedelta(days=90), 20.0),
    )
    recency_default_points: float = 10.0
    email_consent_points: float = 30.0
    sms_consent_points: float = 15.0
    stage_bonuses: tuple[StageBonus, ...] = (
        StageBonus(LifecycleStage.CONTACTED, 5.0),
        StageBonus(LifecycleStage.QUALIFIED, 10.0),
        StageBonus(LifecycleStage.ENGAGED, 15.0),
        StageBonus(LifecycleStage.OPPORTUNITY, 15.0),
        StageBonus(LifecycleStage.CUSTOMER, 15.0),
    )
    stage_points: dict[LifecycleStage, float] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "recency_tiers", tuple(self.recency_tiers))
        object.__setattr__(self, "stage_bonuses", tuple(self.stage_bonuses))
        object.__setattr__(self, "stage_points", _stage_lookup(self.stage_bonuses))


@dataclass(frozen=True, slots=True, kw_only=True)
class IntentRules:
    high_intent_event_types: tuple[str, ...] = (
        "form_submitted",
        "meeting_scheduled",
        "content_downloaded",
        "signup",
        "purchase",
    )
    high_intent_event_points: float = 15.0
    high_intent_max_points: float = 50.0
    high_intent_window: timedelta = timedelta(days=30)
    stage_bonuses: tuple[StageBonus, ...] = (
        StageBonus(LifecycleStage.OPPORTUNITY, 40.0),
        StageBonus(LifecycleStage.ENGAGED, 30.0),
        StageBonus(LifecycleStage.QUALIFIED, 20.0),
    )
    reply_event_types: tuple[str, ...] = ("email_replied", "sms_replied")
    reply_points: float = 10.0
    reply_max_points: float = 30.0
    reply_window: timedelta = timedelta(days=14)
    stage_points: dict[LifecycleStage, float] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "high_intent_event_types", tuple(self.high_intent_event_types))
        object.__setattr__(self, "reply_event_types", tuple(self.reply_event_types))
        object.__setattr__(self, "stage_bonuses", tuple(self.stage_bonuses))
        object.__setattr__(self, "stage_points", _stage_lookup(self.stage_bonuses))


@dataclass(frozen=True, slots=True, kw_only=True)
class GradeThresholds:
    """Minimum total (inclusive) of each grade; below `c` the grade is D."""

    a_plus: float = 90.0
    a: float = 80.0
    b_plus: float = 70.0
    b: float = 60.0
    c_plus: float = 50.0
    c: float = 40.0


@dataclass(frozen=True, slots=True, kw_only=True)
class TemperatureThresholds:
    """Minimum total (inclusive) of each temperature; below `warm` the lead is cold."""

    hot: float = 75.0
    warm: float = 50.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ScoringModel:
    version: int = 0
    created_at: datetime | None = None
    description: str = ""
    weights: ComponentWeights = field(default_factory=ComponentWeights)
    demographic: DemographicRules = field(default_factory=DemographicRules)
    behavioural: BehaviouralRules = field(default_factory=BehaviouralRules)
    firmographic: FirmographicRules = field(default_factory=FirmographicRules)
    engagement: EngagementRules = field(default_factory=EngagementRules)
    intent: IntentRules = field(default_factory=IntentRules)
    grade_thresholds: GradeThresholds = field(default_factory=GradeThresholds)
    temperature_thresholds: TemperatureThresholds = field(default_factory=TemperatureThresholds)
    decay_half_life: timedelta = timedelta(days=30)
    lifecycle: LifecycleRules = field(default_factory=LifecycleRules)


DEFAULT_MODEL = ScoringModel()
"""The built-in model, version 0."""


# --- validation -------------------------------------------------------------------------


def validate_model(model: ScoringModel, prefix: str = "model") -> list[Violation]:
    """Every problem of `model`, each naming its field as in PutScoringModelRequest.

    Unknown event type names are allowed (a custom event is named by its own name); they
    must be non-empty and at most 100 characters. Profile field keys are checked against
    LeadProfile. Version and created_at are assigned by the server and not checked.
    """
    out: list[Violation] = []
    p = prefix
    if len(model.description) > DESCRIPTION_MAX:
        out.append(
            Violation(f"{p}.description", "TOO_LONG", f"must be at most {DESCRIPTION_MAX} chars")
        )
    _check_weights(model.weights, f"{p}.weights", out)
    _check_demographic(model.demographic, f"{p}.demographic", out)
    _check_behavioural(model.behavioural, f"{p}.behavioural", out)
    _check_firmographic(model.firmographic, f"{p}.firmographic", out)
    _check_engagement(model.engagement, f"{p}.engagement", out)
    _check_intent(model.intent, f"{p}.intent", out)
    _check_grades(model.grade_thresholds, f"{p}.grade_thresholds", out)
    _check_temperatures(model.temperature_thresholds, f"{p}.temperature_thresholds", out)
    _check_positive_duration(model.decay_half_life, f"{p}.decay_half_life", out)
    _check_lifecycle(model.lifecycle, f"{p}.lifecycle", out)
    return out


def _check_points(value: float, path: str, out: list[Violation]) -> bool:
    if not math.isfinite(value):
        out.append(Violation(path, "NOT_FINITE", f"must be a finite number (got {value})"))
        return False
    if value < 0:
        out.append(Violation(path, "NEGATIVE", f"must not be negative (got {value:g})"))
        return False
    return True


def _check_positive_duration(value: timedelta, path: str, out: list[Violation]) -> None:
    if value <= timedelta(0):
        out.append(Violation(path, "NOT_POSITIVE", f"must be positive (got {value})"))


def _check_event_type(name: str, path: str, out: list[Violation]) -> None:
    if not name.strip():
        out.append(Violation(path, "REQUIRED", "event type name must not be empty"))
    elif len(name) > EVENT_TYPE_NAME_MAX:
        out.append(
            Violation(
                path, "TOO_LONG", f"event type name must be at most {EVENT_TYPE_NAME_MAX} chars"
            )
        )


def _check_cap_reachable(
    per_item: float, cap: float, items: int, what: str, path: str, out: list[Violation]
) -> None:
    # Features keep only `items` of them; the cap must be reached by then so counts are exact.
    if per_item > 0 and cap > items * per_item:
        out.append(
            Violation(
                path,
                "CAP_UNREACHABLE",
                f"must be at most {items} x the points per {what} ({items * per_item:g}): "
                f"scoring counts at most {items} {what}s",
            )
        )


def _check_weights(weights: ComponentWeights, path: str, out: list[Violation]) -> None:
    values = {
        "demographic": weights.demographic,
        "behavioural": weights.behavioural,
        "firmographic": weights.firmographic,
        "engagement": weights.engagement,
        "intent": weights.intent,
    }
    ok = True
    for name, value in values.items():
        if not math.isfinite(value) or not 0.0 <= value <= 1.0:
            out.append(
                Violation(f"{path}.{name}", "OUT_OF_RANGE", f"must be in 0..1 (got {value})")
            )
            ok = False
    if ok:
        total = math.fsum(values.values())
        if abs(total - 1.0) > WEIGHT_SUM_TOLERANCE:
            out.append(Violation(path, "SUM_NOT_ONE", f"must sum to 1 (got {total:.10g})"))


def _check_demographic(rules: DemographicRules, path: str, out: list[Violation]) -> None:
    for key, points in rules.field_points.items():
        key_path = f"{path}.field_points.{key}"
        if key not in PROFILE_FIELDS and not (
            key.startswith(TRAIT_PREFIX) and key[len(TRAIT_PREFIX) :].strip()
        ):
            out.append(
                Violation(
                    key_path,
                    "UNKNOWN_FIELD",
                    f"{key!r} is not a LeadProfile field nor 'traits.<key>'",
                )
            )
            continue
        _check_points(points, key_path, out)


def _check_behavioural(rules: BehaviouralRules, path: str, out: list[Violation]) -> None:
    for name, points in rules.event_points.items():
        key_path = f"{path}.event_points.{name}"
        _check_event_type(name, key_path, out)
        _check_points(points, key_path, out)
    per_day_ok = _check_points(
        rules.frequency_points_per_day, f"{path}.frequency_points_per_day", out
    )
    cap_ok = _check_points(rules.frequency_max_points, f"{path}.frequency_max_points", out)
    _check_positive_duration(rules.frequency_window, f"{path}.frequency_window", out)
    if per_day_ok and cap_ok:
        _check_cap_reachable(
            rules.frequency_points_per_day,
            rules.frequency_max_points,
            ACTIVE_DAYS_KEPT,
            "active day",
            f"{path}.frequency_max_points",
            out,
        )


def _check_tiers(tiers: tuple[ValueTier, ...], path: str, out: list[Violation]) -> None:
    for i, tier in enumerate(tiers):
        tier_path = f"{path}[{i}]"
        if not tier.name.strip():
            out.append(Violation(f"{tier_path}.name", "REQUIRED", "must not be empty"))
        if not tier.values:
            out.append(Violation(f"{tier_path}.values", "REQUIRED", "must list at least one value"))
        for j, value in enumerate(tier.values):
            if not value.strip():
                out.append(Violation(f"{tier_path}.values[{j}]", "REQUIRED", "must not be empty"))
        _check_points(tier.points, f"{tier_path}.points", out)


def _check_firmographic(rules: FirmographicRules, path: str, out: list[Violation]) -> None:
    _check_points(rules.base_points, f"{path}.base_points", out)
    for i, target in enumerate(rules.target_locations):
        target_path = f"{path}.target_locations[{i}]"
        if not (target.country.strip() or target.region.strip() or target.city.strip()):
            out.append(Violation(target_path, "REQUIRED", "at least one of country, region, city"))
        country = target.country.strip()
        if country and not (len(country) == 2 and country.isascii() and country.isalpha()):
            out.append(
                Violation(
                    f"{target_path}.country",
                    "INVALID_COUNTRY",
                    f"must be an ISO 3166-1 alpha-2 code (got {target.country!r})",
                )
            )
    _check_points(rules.target_location_points, f"{path}.target_location_points", out)
    _check_tiers(rules.customer_type_tiers, f"{path}.customer_type_tiers", out)
    _check_tiers(rules.source_tiers, f"{path}.source_tiers", out)


def _check_stage_bonuses(bonuses: tuple[StageBonus, ...], path: str, out: list[Violation]) -> None:
    seen: set[LifecycleStage] = set()
    for i, bonus in enumerate(bonuses):
        if bonus.stage in seen:
            out.append(
                Violation(
                    f"{path}[{i}].stage",
                    "DUPLICATE",
                    f"stage {bonus.stage.value} is listed more than once",
                )
            )
        seen.add(bonus.stage)
        _check_points(bonus.points, f"{path}[{i}].points", out)


def _check_engagement(rules: EngagementRules, path: str, out: list[Violation]) -> None:
    previous: timedelta | None = None
    for i, tier in enumerate(rules.recency_tiers):
        tier_path = f"{path}.recency_tiers[{i}]"
        if tier.max_age <= timedelta(0):
            out.append(Violation(f"{tier_path}.max_age", "NOT_POSITIVE", "must be positive"))
        elif previous is not None and tier.max_age <= previous:
            out.append(
                Violation(
                    f"{tier_path}.max_age",
                    "NOT_ORDERED",
                    f"must be greater than recency_tiers[{i - 1}].max_age ({previous})",
                )
            )
        previous = tier.max_age if previous is None else max(previous, tier.max_age)
        _check_points(tier.points, f"{tier_path}.points", out)
    _check_points(rules.recency_default_points, f"{path}.recency_default_points", out)
    _check_points(rules.email_consent_points, f"{path}.email_consent_points", out)
    _check_points(rules.sms_consent_points, f"{path}.sms_consent_points", out)
    _check_stage_bonuses(rules.stage_bonuses, f"{path}.stage_bonuses", out)


def _check_intent(rules: IntentRules, path: str, out: list[Violation]) -> None:
    for i, name in enumerate(rules.high_intent_event_types):
        _check_event_type(name, f"{path}.high_intent_event_types[{i}]", out)
    per_event_ok = _check_points(
        rules.high_intent_event_points, f"{path}.high_intent_event_points", out
    )
    cap_ok = _check_points(rules.high_intent_max_points, f"{path}.high_intent_max_points", out)
    if per_event_ok and cap_ok:
        _check_cap_reachable(
            rules.high_intent_event_points,
            rules.high_intent_max_points,
            RECENT_EVENTS_PER_TYPE,
            "high-intent event",
            f"{path}.high_intent_max_points",
            out,
        )
    _check_positive_duration(rules.high_intent_window, f"{path}.high_intent_window", out)
    _check_stage_bonuses(rules.stage_bonuses, f"{path}.stage_bonuses", out)
    for i, name in enumerate(rules.reply_event_types):
        _check_event_type(name, f"{path}.reply_event_types[{i}]", out)
    per_reply_ok = _check_points(rules.reply_points, f"{path}.reply_points", out)
    reply_cap_ok = _check_points(rules.reply_max_points, f"{path}.reply_max_points", out)
    if per_reply_ok and reply_cap_ok:
        _check_cap_reachable(
            rules.reply_points,
            rules.reply_max_points,
            RECENT_EVENTS_PER_TYPE,
            "reply",
            f"{path}.reply_max_points",
            out,
        )
    _check_positive_duration(rules.reply_window, f"{path}.reply_window", out)


def _check_ordered(values: tuple[tuple[str, float], ...], path: str, out: list[Violation]) -> None:
    """Each in 0..100 and strictly decreasing; names the first field out of order."""
    previous: tuple[str, float] | None = None
    for name, value in values:
        if not math.isfinite(value) or not 0.0 <= value <= 100.0:
            out.append(
                Violation(f"{path}.{name}", "OUT_OF_RANGE", f"must be in 0..100 (got {value})")
            )
            continue
        if previous is not None and value >= previous[1]:
            out.append(
                Violation(
                    f"{path}.{name}",
                    "NOT_ORDERED",
                    f"must be less than {previous[0]} ({previous[1]:g}), got {value:g}",
                )
            )
        previous = (name, value)


def _check_grades(t: GradeThresholds, path: str, out: list[Violation]) -> None:
    _check_ordered(
        (
            ("a_plus", t.a_plus),
            ("a", t.a),
            ("b_plus", t.b_plus),
            ("b", t.b),
            ("c_plus", t.c_plus),
            ("c", t.c),
        ),
        path,
        out,
    )


def _check_temperatures(t: TemperatureThresholds, path: str, out: list[Violation]) -> None:
    _check_ordered((("hot", t.hot), ("warm", t.warm)), path, out)


def _check_lifecycle(rules: LifecycleRules, path: str, out: list[Violation]) -> None:
    for i, rule in enumerate(rules.stage_rules):
        rule_path = f"{path}.stage_rules[{i}]"
        _check_event_type(rule.event_type, f"{rule_path}.event_type", out)
        if rule.stage in EXITS:
            out.append(
                Violation(
                    f"{rule_path}.stage",
                    "NOT_ALLOWED",
                    f"rules cannot move a lead to {rule.stage.value}",
                )
            )
