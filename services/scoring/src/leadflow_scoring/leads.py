"""The leads one transaction changes: locked, changed in memory, rescored and stored, with
the events announcing the changes written to the outbox in the same transaction.

Every change of a lead goes through here (events, profiles, consent, aliases, stage moves,
decay, rescoring), so the rules hold everywhere: rows are locked in lead id order before the
model version is read; features kept with another half-life are rebuilt from the lead's
events first; a recomputation that changes the total (at 0.01), grade or temperature writes
a history row and publishes scoring.score.changed, plus one scoring.threshold.crossed per
dimension crossed; each transition is recorded and published as scoring.stage.changed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg

from leadflow.scoring.v1 import lead_score_pb2
from leadflow_platform.nats import OutboxMessage, add_to_outbox
from leadflow_scoring.api import mapping
from leadflow_scoring.db import codec
from leadflow_scoring.db import repository as repo
from leadflow_scoring.domain.changes import ScoreChangeVerdict, ScoreSummary, score_changes
from leadflow_scoring.domain.decay import next_decay_crossing
from leadflow_scoring.domain.features import (
    ActivityEvent,
    LeadFeatures,
    apply_event,
    apply_stage,
    empty_features,
    needs_rebuild,
    rebuild,
)
from leadflow_scoring.domain.lifecycle import (
    LifecycleStage,
    StageVisit,
    Transition,
    TransitionTrigger,
    auto_transition,
    enter_initial,
    record_touchpoint,
    rule_reason,
    transition,
)
from leadflow_scoring.domain.model import ScoringModel
from leadflow_scoring.domain.score import Grade, LeadScore, Temperature, compute_score
from leadflow_scoring.events import published
from leadflow_scoring.model_store import ModelStore

_ONE_SECOND = timedelta(seconds=1)


@dataclass(slots=True)
class LeadState:
    """A locked lead in memory. `previous` is its stored score (None for a new lead)."""

    lead_id: str
    features: LeadFeatures
    visit: StageVisit
    previous: ScoreSummary | None
    created: bool
    transitions: list[tuple[str, Transition]] = field(default_factory=list)
    causation_id: str = ""

    def move(
        self,
        to_stage: LifecycleStage,
        at: datetime,
        *,
        reason: str,
        trigger: TransitionTrigger,
        triggering_event_id: str = "",
        actor: str = "",
    ) -> tuple[str, Transition]:
        """Leave the current stage (raises TransitionRefused when illegal)."""
        record, self.visit = transition(
            self.visit,
            to_stage,
            at,
            reason=reason,
            trigger=trigger,
            triggering_event_id=triggering_event_id,
            actor=actor,
        )
        self.features = apply_stage(self.features, to_stage)
        entry = (str(uuid.uuid4()), record)
        self.transitions.append(entry)
        return entry

    def apply_events(
        self, events: Iterable[ActivityEvent], model: ScoringModel, *, count_activity: bool = True
    ) -> None:
        """Count events (oldest first): each touchpoint in the current stage, then its
        activity, then the lifecycle rule it triggers. Without `count_activity`, only the
        lifecycle part (for a merged visitor's events, whose activity came with its
        features)."""
        rules = model.lifecycle
        for event in events:
            if event.channel is not None:
                self.visit = record_touchpoint(self.visit, event.event_id, event.occurred_at)
            if count_activity:
                self.features = apply_event(self.features, event, model)
            target = auto_transition(self.visit.stage, event.type, rules)
            if target is not None:
                self.move(
                    target,
                    event.occurred_at,
                    reason=rule_reason(event.type, target),
                    trigger=TransitionTrigger.RULE,
                    triggering_event_id=event.event_id,
                )


@dataclass(frozen=True, slots=True)
class Scored:
    """A lead after save: its new score (as stored) and whether it changed."""

    state: LeadState
    score: LeadScore
    message: lead_score_pb2.LeadScore
    verdict: ScoreChangeVerdict


def sorted_events(events: Iterable[ActivityEvent]) -> list[ActivityEvent]:
    return sorted(events, key=lambda e: (e.occurred_at, e.event_id))


class Leads:
    """Loads and saves leads for the use cases; one instance per service."""

    def __init__(self, models: ModelStore) -> None:
        self.models = models

    async def lock(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        lead_ids: Iterable[str],
        *,
        now: datetime,
        create: bool,
        first_seen: Mapping[str, tuple[datetime, str]] | None = None,
        model: ScoringModel | None = None,
    ) -> tuple[dict[str, LeadState], ScoringModel]:
        """Lock the leads (creating missing ones when `create`: they enter `new` at their
        `first_seen` time and event, else now) and read the tenant's active model (or use
        `model`). Features kept with another half-life are rebuilt."""
        rows, created = await repo.lock_leads(conn, tenant_id, list(lead_ids), create=create)
        if model is None:
            model = await self.models.active(conn, tenant_id)
        states: dict[str, LeadState] = {}
        for row in rows:
            lead_id = row["lead_id"]
            if lead_id in created:
                at, first_event = (first_seen or {}).get(lead_id, (now, ""))
                initial, visit = enter_initial(at, first_event)
                state = LeadState(lead_id, empty_features(model), visit, None, True)
                state.transitions.append((str(uuid.uuid4()), initial))
            else:
                state = LeadState(
                    lead_id,
                    codec.features_from_json(row["features"]),
                    codec.visit_from_row(
                        row["stage"],
                        row["stage_entered_at"],
                        row["visit_touchpoints"],
                        row["visit_touchpoint_count"],
                    ),
                    ScoreSummary(
                        row["total"], Grade(row["grade"]), Temperature(row["temperature"])
                    ),
                    False,
                )
            states[lead_id] = state
        stale = [s for s in states.values() if needs_rebuild(s.features, model)]
        if stale:
            history = await repo.lead_events(conn, tenant_id, [s.lead_id for s in stale])
            for s in stale:
                s.features = rebuilt(s.features, history.get(s.lead_id, ()), model)
        return states, model

    async def save(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        states: Sequence[LeadState],
        model: ScoringModel,
        *,
        now: datetime,
        cause: str,
        causation_id: str = "",
    ) -> list[Scored]:
        """Rescore the leads as of `now` and store everything; returns the new scores."""
        rows: list[repo.LeadRow] = []
        history: list[repo.HistoryRow] = []
        transitions: list[repo.TransitionRow] = []
        outbox: list[OutboxMessage] = []
        out: list[Scored] = []
        for s in states:
            score = compute_score(s.features, model, now)
            verdict = score_changes(s.previous, score)
            message = mapping.lead_score_message(s.lead_id, score)
            cause_id = s.causation_id or causation_id
            for transition_id, t in s.transitions:
                transitions.append(_transition_row(transition_id, s.lead_id, t))
                outbox.append(
                    published.stage_changed(
                        tenant_id, s.lead_id, transition_id, t, score.home_brand_id
                    )
                )
            if verdict.changed:
                history.append(
                    repo.HistoryRow(
                        s.lead_id,
                        now,
                        score.total,
                        score.undecayed_total,
                        mapping.components_bytes(score),
                        score.grade.value,
                        score.temperature.value,
                        score.stage.value,
                        model.version,
                        cause,
                        cause_id,
                    )
                )
                outbox.extend(
                    published.score_events(
                        tenant_id, message, verdict, cause=cause, causation_id=cause_id, at=now
                    )
                )
            visit = s.visit
            rows.append(
                repo.LeadRow(
                    s.lead_id,
                    codec.features_to_json(s.features),
                    visit.stage.value,
                    visit.entered_at,
                    codec.touchpoints_to_json(visit),
                    visit.touchpoint_count,
                    score.total,
                    score.undecayed_total,
                    score.grade.value,
                    score.temperature.value,
                    model.version,
                    now,
                    score.home_brand_id,
                    score.last_activity_at,
                    message.SerializeToString(),
                    _next_check(s.features, model, now),
                )
            )
            out.append(Scored(s, score, message, verdict))
            s.previous = ScoreSummary(score.total, score.grade, score.temperature)
            s.transitions = []
        await repo.save_leads(conn, tenant_id, rows)
        await repo.insert_transitions(conn, tenant_id, transitions)
        await repo.insert_history(conn, tenant_id, history)
        await add_to_outbox(conn, *outbox)
        return out


def rebuilt(
    features: LeadFeatures, events: Iterable[ActivityEvent], model: ScoringModel
) -> LeadFeatures:
    """The features with their activity rebuilt from history under the model's half-life
    (profile, consent and stage are not history: they stay)."""
    activity = rebuild(events, model).activity
    return LeadFeatures(features.profile, features.consent, features.stage, activity)


def _next_check(features: LeadFeatures, model: ScoringModel, now: datetime) -> datetime | None:
    # Strictly after now, so a decay run never picks the lead it just rescored again.
    at = next_decay_crossing(features, model, now)
    return None if at is None else max(at, now + _ONE_SECOND)


def _transition_row(transition_id: str, lead_id: str, t: Transition) -> repo.TransitionRow:
    return repo.TransitionRow(
        transition_id,
        lead_id,
        t.from_stage.value if t.from_stage is not None else None,
        t.to_stage.value,
        t.at,
        t.reason,
        t.trigger.value,
        t.triggering_event_id,
        t.actor,
        t.time_in_previous_stage,
        list(t.touchpoint_event_ids),
        t.touchpoint_count,
    )
