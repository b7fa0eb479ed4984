"""Protobuf <-> domain: scores, transitions and models as the wire carries them, and back."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import duration_pb2, json_format, timestamp_pb2

from leadflow.common.v1 import lead_pb2
from leadflow.scoring.v1 import (
    lead_score_pb2,
    lifecycle_pb2,
    scoring_model_pb2,
    scoring_service_pb2,
)
from leadflow_scoring.domain import model as m
from leadflow_scoring.domain.lifecycle import (
    LifecycleRules,
    LifecycleStage,
    StageRule,
    Transition,
    TransitionTrigger,
)
from leadflow_scoring.domain.score import (
    ComponentScore,
    ComponentScores,
    Grade,
    LeadScore,
    ScoreComponent,
    Temperature,
)
from leadflow_scoring.domain.violations import Violation

# Enums ----------------------------------------------------------------------------------
# Domain enum values are the proto names without their prefix, lower case.

GRADE_VALUES: dict[Grade, lead_pb2.Grade.ValueType] = {
    g: lead_pb2.Grade.Value(f"GRADE_{g.value.upper()}") for g in Grade
}
GRADES = {v: k for k, v in GRADE_VALUES.items()}
TEMPERATURE_VALUES: dict[Temperature, lead_pb2.Temperature.ValueType] = {
    t: lead_pb2.Temperature.Value(f"TEMPERATURE_{t.value.upper()}") for t in Temperature
}
TEMPERATURES = {v: k for k, v in TEMPERATURE_VALUES.items()}
STAGE_VALUES: dict[LifecycleStage, lead_pb2.LifecycleStage.ValueType] = {
    s: lead_pb2.LifecycleStage.Value(f"LIFECYCLE_STAGE_{s.value.upper()}") for s in LifecycleStage
}
STAGES = {v: k for k, v in STAGE_VALUES.items()}
COMPONENT_VALUES: dict[ScoreComponent, lead_score_pb2.ScoreComponent.ValueType] = {
    c: lead_score_pb2.ScoreComponent.Value(f"SCORE_COMPONENT_{c.value.upper()}")
    for c in ScoreComponent
}
TRIGGER_VALUES: dict[TransitionTrigger, lifecycle_pb2.TransitionTrigger.ValueType] = {
    t: lifecycle_pb2.TransitionTrigger.Value(f"TRANSITION_TRIGGER_{t.value.upper()}")
    for t in TransitionTrigger
}
CAUSES = ("event", "profile", "consent", "alias", "stage", "decay", "model_change", "rescore")
"""What caused a recomputation (ScoreChangeCause without its prefix, lower case)."""
CAUSE_VALUES: dict[str, lead_score_pb2.ScoreChangeCause.ValueType] = {
    c: lead_score_pb2.ScoreChangeCause.Value(f"SCORE_CHANGE_CAUSE_{c.upper()}") for c in CAUSES
}


# Values ---------------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def to_datetime(ts: timestamp_pb2.Timestamp) -> datetime:
    return _EPOCH + timedelta(seconds=ts.seconds, microseconds=ts.nanos // 1000)


def set_timestamp(target: timestamp_pb2.Timestamp, value: datetime) -> None:
    """Field by field: Timestamp.FromDatetime is pure Python and costly on hot paths."""
    target.seconds, rest = divmod((value - _EPOCH) // _MICRO, 1_000_000)
    target.nanos = rest * 1000


def timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    set_timestamp(ts, value)
    return ts


def to_timedelta(d: duration_pb2.Duration) -> timedelta:
    return timedelta(seconds=d.seconds, microseconds=d.nanos // 1000)


def set_duration(target: duration_pb2.Duration, value: timedelta) -> None:
    total = value // _MICRO
    sign = -1 if total < 0 else 1
    seconds, rest = divmod(abs(total), 1_000_000)
    target.seconds = sign * seconds
    target.nanos = sign * rest * 1000


def duration(value: timedelta) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    set_duration(d, value)
    return d


# Scores ---------------------------------------------------------------------------------


def _component(
    target: lead_score_pb2.ComponentScore,
    kind: lead_score_pb2.ScoreComponent.ValueType,
    c: ComponentScore,
    factors: bool,
) -> None:
    target.value = c.value
    target.undecayed_value = c.undecayed_value
    target.weight = c.weight
    target.capped = c.capped
    if factors:
        _factors(target, kind, c)


def _factors(
    target: lead_score_pb2.ComponentScore,
    kind: lead_score_pb2.ScoreComponent.ValueType,
    c: ComponentScore,
) -> None:
    add = target.factors.add
    for f in c.factors:
        add(
            component=kind,
            label=f.label,
            rule=f.rule,
            count=f.count,
            points=f.points,
            undecayed_points=f.undecayed_points,
        )


_FIELDS = {kind: str(kind.value) for kind in ScoreComponent}


def write_components(
    target: lead_score_pb2.ComponentScores, components: ComponentScores, *, factors: bool
) -> None:
    for kind, component in components.by_component():
        _component(getattr(target, _FIELDS[kind]), COMPONENT_VALUES[kind], component, factors)


def lead_score_with_components(
    lead_id: str, score: LeadScore
) -> tuple[lead_score_pb2.LeadScore, bytes]:
    """The LeadScore with factors, and its ComponentScores without factors serialized (what
    a history row keeps): the components are written once, the factors added after."""
    message = _lead_score_head(lead_id, score)
    components = message.components
    write_components(components, score.components, factors=False)
    plain = components.SerializeToString()
    for kind, component in score.components.by_component():
        _factors(getattr(components, _FIELDS[kind]), COMPONENT_VALUES[kind], component)
    return message, plain


def _lead_score_head(lead_id: str, score: LeadScore) -> lead_score_pb2.LeadScore:
    message = lead_score_pb2.LeadScore(
        lead_id=lead_id,
        total=score.total,
        undecayed_total=score.undecayed_total,
        grade=GRADE_VALUES[score.grade],
        temperature=TEMPERATURE_VALUES[score.temperature],
        stage=STAGE_VALUES[score.stage],
        model_version=score.model_version,
        home_brand_id=score.home_brand_id,
    )
    set_timestamp(message.computed_at, score.computed_at)
    if score.last_activity_at is not None:
        set_timestamp(message.last_activity_at, score.last_activity_at)
    return message


def without_factors(score: lead_score_pb2.LeadScore) -> lead_score_pb2.LeadScore:
    for name in ("demographic", "behavioural", "firmographic", "engagement", "intent"):
        del getattr(score.components, name).factors[:]
    return score


# Lifecycle ------------------------------------------------------------------------------


def transition_message(transition_id: str, t: Transition) -> lifecycle_pb2.LifecycleTransition:
    message = lifecycle_pb2.LifecycleTransition(
        transition_id=transition_id,
        from_stage=STAGE_VALUES[t.from_stage]
        if t.from_stage is not None
        else lead_pb2.LIFECYCLE_STAGE_UNSPECIFIED,
        to_stage=STAGE_VALUES[t.to_stage],
        reason=t.reason,
        trigger=TRIGGER_VALUES[t.trigger],
        triggering_event_id=t.triggering_event_id,
        actor=t.actor,
        touchpoint_event_ids=list(t.touchpoint_event_ids),
        touchpoint_count=t.touchpoint_count,
    )
    set_timestamp(message.transitioned_at, t.at)
    set_duration(message.time_in_previous_stage, t.time_in_previous_stage)
    return message


# Scoring model --------------------------------------------------------------------------

REQUIRED_PARTS = (
    "weights",
    "demographic",
    "behavioural",
    "firmographic",
    "engagement",
    "intent",
    "grade_thresholds",
    "temperature_thresholds",
    "decay_half_life",
    "lifecycle",
)


def model_message(model: m.ScoringModel) -> scoring_model_pb2.ScoringModel:
    w = model.weights
    b = model.behavioural
    f = model.firmographic
    e = model.engagement
    i = model.intent
    g = model.grade_thresholds
    t = model.temperature_thresholds
    message = scoring_model_pb2.ScoringModel(
        version=model.version,
        description=model.description,
        weights=scoring_model_pb2.ComponentWeights(
            demographic=w.demographic,
            behavioural=w.behavioural,
            firmographic=w.firmographic,
            engagement=w.engagement,
            intent=w.intent,
        ),
        demographic=scoring_model_pb2.DemographicRules(
            field_points=dict(model.demographic.field_points)
        ),
        behavioural=scoring_model_pb2.BehaviouralRules(
            event_points=dict(b.event_points),
            frequency_points_per_day=b.frequency_points_per_day,
            frequency_max_points=b.frequency_max_points,
            frequency_window=duration(b.frequency_window),
        ),
        firmographic=scoring_model_pb2.FirmographicRules(
            base_points=f.base_points,
            target_locations=[
                scoring_model_pb2.TargetLocation(country=x.country, region=x.region, city=x.city)
                for x in f.target_locations
            ],
            target_location_points=f.target_location_points,
            customer_type_tiers=[_tier_message(x) for x in f.customer_type_tiers],
            source_tiers=[_tier_message(x) for x in f.source_tiers],
        ),
        engagement=scoring_model_pb2.EngagementRules(
            recency_tiers=[
                scoring_model_pb2.RecencyTier(max_age=duration(x.max_age), points=x.points)
                for x in e.recency_tiers
            ],
            recency_default_points=e.recency_default_points,
            email_consent_points=e.email_consent_points,
            sms_consent_points=e.sms_consent_points,
            stage_bonuses=_bonus_messages(e.stage_bonuses),
        ),
        intent=scoring_model_pb2.IntentRules(
            high_intent_event_types=list(i.high_intent_event_types),
            high_intent_event_points=i.high_intent_event_points,
            high_intent_max_points=i.high_intent_max_points,
            high_intent_window=duration(i.high_intent_window),
            stage_bonuses=_bonus_messages(i.stage_bonuses),
            reply_event_types=list(i.reply_event_types),
            reply_points=i.reply_points,
            reply_max_points=i.reply_max_points,
            reply_window=duration(i.reply_window),
        ),
        grade_thresholds=scoring_model_pb2.GradeThresholds(
            a_plus=g.a_plus, a=g.a, b_plus=g.b_plus, b=g.b, c_plus=g.c_plus, c=g.c
        ),
        temperature_thresholds=scoring_model_pb2.TemperatureThresholds(hot=t.hot, warm=t.warm),
        decay_half_life=duration(model.decay_half_life),
        lifecycle=scoring_model_pb2.LifecycleRules(
            stage_rules=[
                scoring_model_pb2.StageRule(event_type=r.event_type, stage=STAGE_VALUES[r.stage])
                for r in model.lifecycle.stage_rules
            ]
        ),
    )
    if model.created_at is not None:
        set_timestamp(message.created_at, model.created_at)
    return message


def _tier_message(tier: m.ValueTier) -> scoring_model_pb2.ValueTier:
    return scoring_model_pb2.ValueTier(name=tier.name, values=list(tier.values), points=tier.points)


def _bonus_messages(bonuses: Iterable[m.StageBonus]) -> list[scoring_model_pb2.StageBonus]:
    return [
        scoring_model_pb2.StageBonus(stage=STAGE_VALUES[b.stage], points=b.points) for b in bonuses
    ]


def model_from_message(
    message: scoring_model_pb2.ScoringModel,
    *,
    version: int = 0,
    created_at: datetime | None = None,
    prefix: str = "model",
) -> tuple[m.ScoringModel, list[Violation]]:
    """The domain model of a message, and what cannot be mapped (missing parts, unknown
    stages); the domain's validate_model checks the rest."""
    violations: list[Violation] = []
    for part in REQUIRED_PARTS:
        if not message.HasField(part):  # type: ignore[arg-type]
            violations.append(Violation(f"{prefix}.{part}", "REQUIRED", "must be set"))
    if violations:
        return m.DEFAULT_MODEL, violations

    def stage(value: int, path: str) -> LifecycleStage:
        found = STAGES.get(value)  # type: ignore[call-overload]
        if found is None:
            violations.append(Violation(path, "REQUIRED", "must be a lifecycle stage"))
            return LifecycleStage.NEW
        return found

    def bonuses(items: Iterable[scoring_model_pb2.StageBonus], path: str) -> list[m.StageBonus]:
        return [
            m.StageBonus(stage(b.stage, f"{path}[{k}].stage"), b.points)
            for k, b in enumerate(items)
        ]

    w, b, f = message.weights, message.behavioural, message.firmographic
    e, i = message.engagement, message.intent
    g, t = message.grade_thresholds, message.temperature_thresholds
    model = m.ScoringModel(
        version=version,
        created_at=created_at,
        description=message.description,
        weights=m.ComponentWeights(
            demographic=w.demographic,
            behavioural=w.behavioural,
            firmographic=w.firmographic,
            engagement=w.engagement,
            intent=w.intent,
        ),
        demographic=m.DemographicRules(field_points=dict(message.demographic.field_points)),
        behavioural=m.BehaviouralRules(
            event_points=dict(b.event_points),
            frequency_points_per_day=b.frequency_points_per_day,
            frequency_max_points=b.frequency_max_points,
            frequency_window=to_timedelta(b.frequency_window),
        ),
        firmographic=m.FirmographicRules(
            base_points=f.base_points,
            target_locations=tuple(
                m.TargetLocation(x.country, x.region, x.city) for x in f.target_locations
            ),
            target_location_points=f.target_location_points,
            customer_type_tiers=tuple(
                m.ValueTier(x.name, tuple(x.values), x.points) for x in f.customer_type_tiers
            ),
            source_tiers=tuple(
                m.ValueTier(x.name, tuple(x.values), x.points) for x in f.source_tiers
            ),
        ),
        engagement=m.EngagementRules(
            recency_tiers=tuple(
                m.RecencyTier(to_timedelta(x.max_age), x.points) for x in e.recency_tiers
            ),
            recency_default_points=e.recency_default_points,
            email_consent_points=e.email_consent_points,
            sms_consent_points=e.sms_consent_points,
            stage_bonuses=tuple(bonuses(e.stage_bonuses, f"{prefix}.engagement.stage_bonuses")),
        ),
        intent=m.IntentRules(
            high_intent_event_types=tuple(i.high_intent_event_types),
            high_intent_event_points=i.high_intent_event_points,
            high_intent_max_points=i.high_intent_max_points,
            high_intent_window=to_timedelta(i.high_intent_window),
            stage_bonuses=tuple(bonuses(i.stage_bonuses, f"{prefix}.intent.stage_bonuses")),
            reply_event_types=tuple(i.reply_event_types),
            reply_points=i.reply_points,
            reply_max_points=i.reply_max_points,
            reply_window=to_timedelta(i.reply_window),
        ),
        grade_thresholds=m.GradeThresholds(
            a_plus=g.a_plus, a=g.a, b_plus=g.b_plus, b=g.b, c_plus=g.c_plus, c=g.c
        ),
        temperature_thresholds=m.TemperatureThresholds(hot=t.hot, warm=t.warm),
        decay_half_life=to_timedelta(message.decay_half_life),
        lifecycle=LifecycleRules(
            stage_rules=tuple(
                StageRule(
                    r.event_type, stage(r.stage, f"{prefix}.lifecycle.stage_rules[{k}].stage")
                )
                for k, r in enumerate(message.lifecycle.stage_rules)
            )
        ),
    )
    return model, violations


def model_to_json(model: m.ScoringModel) -> dict[str, Any]:
    """The stored form of a model version (a jsonb column): the message as JSON."""
    return json_format.MessageToDict(model_message(model), preserving_proto_field_name=True)


def model_from_json(data: dict[str, Any], version: int, created_at: datetime) -> m.ScoringModel:
    message = json_format.ParseDict(data, scoring_model_pb2.ScoringModel())
    model, violations = model_from_message(message, version=version, created_at=created_at)
    if violations:
        raise ValueError(f"stored model version {version} is not readable: {violations}")
    return model


# Jobs -----------------------------------------------------------------------------------

JOB_KINDS = {
    "model_rescore": scoring_service_pb2.SCORING_JOB_KIND_MODEL_RESCORE,
    "score_leads": scoring_service_pb2.SCORING_JOB_KIND_SCORE_LEADS,
}
JOB_STATES = {
    "queued": scoring_service_pb2.SCORING_JOB_STATE_QUEUED,
    "running": scoring_service_pb2.SCORING_JOB_STATE_RUNNING,
    "succeeded": scoring_service_pb2.SCORING_JOB_STATE_SUCCEEDED,
    "failed": scoring_service_pb2.SCORING_JOB_STATE_FAILED,
    "cancelled": scoring_service_pb2.SCORING_JOB_STATE_CANCELLED,
}


def job_message(row: Mapping[str, Any]) -> scoring_service_pb2.ScoringJob:
    """A job row (db/repository.py columns) as the API shows it."""
    message = scoring_service_pb2.ScoringJob(
        job_id=row["job_id"],
        kind=JOB_KINDS[row["kind"]],
        state=JOB_STATES[row["state"]],
        model_version=row["model_version"],
        leads_total=row["leads_total"],
        leads_done=row["leads_done"],
        leads_changed=row["leads_changed"],
        error=row["error"],
        superseded_by_job_id=row["superseded_by_job_id"],
    )
    set_timestamp(message.created_at, row["created_at"])
    if row["started_at"] is not None:
        set_timestamp(message.started_at, row["started_at"])
    if row["finished_at"] is not None:
        set_timestamp(message.finished_at, row["finished_at"])
    return message
