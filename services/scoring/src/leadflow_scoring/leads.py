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
from datetime import UTC, datetime, timedelta

import asyncpg
from opentelemetry.context import Context

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
    EventKey,
    LifecycleRules,
    LifecycleStage,
    StageVisit,
    Transition,
    TransitionTrigger,
    auto_transition,
    enter_initial,
    entry_key,
    fits_in_order,
    record_touchpoint,
    replay,
    rule_reason,
    shapes_lifecycle,
    transition,
    visit_after,
)
from leadflow_scoring.domain.model import ScoringModel
from leadflow_scoring.domain.score import Grade, LeadScore, Temperature, compute_score
from leadflow_scoring.events import published
from leadflow_scoring.model_store import ModelStore

_ONE_MICROSECOND = timedelta(microseconds=1)
_ONE_SECOND = timedelta(seconds=1)
FROM_FIRST_SIGHTING: EventKey = (datetime.min.replace(tzinfo=UTC), "")
"""A replay point before every event: the lifecycle is replayed from the lead's entry."""


@dataclass(slots=True)
class LeadState:
    """A locked lead in memory. `previous` is its stored score (None for a new lead);
    `first_seen` the (time, event id) it was first seen at (the earliest of its events,
    profile, consent and alias messages). `transitions` are to be recorded, of which the
    ids in `quiet` were announced before (a replay recording them again), replacing the
    stored ones in `dropped`. `replay_from`: the lifecycle is to be replayed from the
    events at and after this key (an event arrived after events it precedes).
    `revision` counts the row's changes (the check of a change computed before locking);
    `computed_at` is when its stored score was computed (None for a new lead)."""

    lead_id: str
    features: LeadFeatures
    visit: StageVisit
    previous: ScoreSummary | None
    created: bool
    first_seen: EventKey
    transitions: list[tuple[str, Transition]] = field(default_factory=list)
    causation_id: str = ""
    replay_from: EventKey | None = None
    dropped: list[str] = field(default_factory=list)
    quiet: set[str] = field(default_factory=set)
    revision: int | None = None  # the row's, as read (None: no row yet)
    computed_at: datetime | None = None
    trace_context: Context | None = None  # the trace its events continue (None: current)

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

    def seen(self, key: EventKey) -> None:
        """Something of the lead happened at `key`: before its first sighting, the lead
        entered `new` earlier than recorded and its lifecycle is replayed."""
        if key < self.first_seen:
            self.first_seen = key
            self.replay_after(FROM_FIRST_SIGHTING)

    def replay_after(self, key: EventKey) -> None:
        self.replay_from = key if self.replay_from is None else min(self.replay_from, key)

    def apply_events(self, events: Iterable[ActivityEvent], model: ScoringModel) -> None:
        """Count events (oldest first): each touchpoint in the current stage and the
        lifecycle rule it triggers, then its activity. An event that arrived after events
        it precedes and would change what they did schedules a replay instead (done by
        Leads.save, from the stored events, which must include these)."""
        rules = model.lifecycle
        for event in events:
            key = (event.occurred_at, event.event_id)
            self.seen(key)
            if self.replay_from is None and shapes_lifecycle(event.type, event.channel, rules):
                last = self.features.activity.anchor
                if not fits_in_order(self.visit, key, event.type, rules, last):
                    self.replay_from = key
                else:
                    if event.channel is not None:
                        self.visit = record_touchpoint(
                            self.visit, event.event_id, event.occurred_at
                        )
                    target = auto_transition(self.visit.stage, event.type, rules)
                    if target is not None:
                        self.move(
                            target,
                            event.occurred_at,
                            reason=rule_reason(event.type, target),
                            trigger=TransitionTrigger.RULE,
                            triggering_event_id=event.event_id,
                        )
            self.features = apply_event(self.features, event, model)


@dataclass(frozen=True, slots=True)
class Scored:
    """A lead after save: its new score (as stored) and whether it changed."""

    state: LeadState
    score: LeadScore
    message: lead_score_pb2.LeadScore
    verdict: ScoreChangeVerdict


@dataclass(frozen=True, slots=True)
class Prepared:
    """What saving one lead writes."""

    row: repo.LeadRow
    history: repo.HistoryRow | None
    transitions: list[repo.TransitionRow]
    dropped: list[str]
    outbox: list[OutboxMessage]
    scored: Scored


async def write(conn: asyncpg.Connection, tenant_id: str, prepared: Iterable[Prepared]) -> None:
    """Store prepared leads, set-based: one statement per table."""
    items = list(prepared)
    await repo.save_leads(conn, tenant_id, [p.row for p in items])
    await repo.delete_transitions(conn, tenant_id, [i for p in items for i in p.dropped])
    await repo.insert_transitions(conn, tenant_id, [t for p in items for t in p.transitions])
    await repo.insert_history(conn, tenant_id, [p.history for p in items if p.history])
    await add_to_outbox(conn, *[m for p in items for m in p.outbox])


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
        ids = sorted(set(lead_ids))
        rows, created = await repo.lock_leads(conn, tenant_id, ids, create=create)
        if model is None:
            model = await self.models.active(conn, tenant_id)
        found = {r["lead_id"] for r in rows}
        states = await self._states(
            conn, tenant_id, [i for i in ids if i in found], rows, created, model, now, first_seen
        )
        return states, model

    async def _states(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        lead_ids: Sequence[str],
        rows: Sequence[asyncpg.Record],
        created: set[str],
        model: ScoringModel,
        now: datetime,
        first_seen: Mapping[str, tuple[datetime, str]] | None,
    ) -> dict[str, LeadState]:
        """States from lead rows; ids without a row (or `created` ones) as new leads that
        enter `new` at their `first_seen` time and event (else now). Features kept with
        another half-life are rebuilt."""
        by_id = {r["lead_id"]: r for r in rows}
        states: dict[str, LeadState] = {}
        for lead_id in lead_ids:
            row = by_id.get(lead_id)
            if row is None or lead_id in created or row["features"] is None:
                at, first_event = (first_seen or {}).get(lead_id, (now, ""))
                initial, visit = enter_initial(at, first_event)
                state = LeadState(
                    lead_id, empty_features(model), visit, None, True, (at, first_event)
                )
                state.transitions.append((str(uuid.uuid4()), initial))
            else:
                seen_at = row["first_seen_at"]
                state = LeadState(
                    lead_id,
                    codec.features_from_json(row["features"]),
                    codec.visit_from_row(
                        row["stage"],
                        row["stage_entered_at"],
                        row["visit_touchpoints"],
                        row["visit_touchpoint_count"],
                        row["stage_entered_by"],
                    ),
                    ScoreSummary(
                        row["total"], Grade(row["grade"]), Temperature(row["temperature"])
                    ),
                    False,
                    (row["stage_entered_at"], "")
                    if seen_at is None
                    else (seen_at, row["first_seen_event_id"]),
                    revision=row["revision"],
                    computed_at=row["computed_at"],
                )
            states[lead_id] = state
        stale = [s for s in states.values() if needs_rebuild(s.features, model)]
        if stale:
            history = await repo.lead_events(conn, tenant_id, [s.lead_id for s in stale])
            for s in stale:
                s.features = rebuilt(s.features, history.get(s.lead_id, ()), model)
        return states

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
        """Replay the lifecycles that need it, rescore the leads as of `now` and store
        everything; returns the new scores. The leads must be locked."""
        prepared = await self.prepare(
            conn, tenant_id, states, model, now=now, cause=cause, causation_id=causation_id
        )
        await write(conn, tenant_id, prepared.values())
        return [p.scored for p in prepared.values()]

    async def prepare(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        states: Sequence[LeadState],
        model: ScoringModel,
        *,
        now: datetime,
        cause: str,
        causation_id: str = "",
    ) -> dict[str, Prepared]:
        """Everything `save` writes, per lead, computed without writing (the replays read
        the leads' stored transitions and events)."""
        await self._replay(conn, tenant_id, states, model)
        out: dict[str, Prepared] = {}
        for s in states:
            at = _after_stored(s, now)
            score = compute_score(s.features, model, at)
            verdict = score_changes(s.previous, score)
            message, components = mapping.lead_score_with_components(s.lead_id, score)
            score_bytes = message.SerializeToString()
            cause_id = s.causation_id or causation_id
            transitions = []
            outbox: list[OutboxMessage] = []
            for transition_id, t in s.transitions:
                transitions.append(_transition_row(transition_id, s.lead_id, t))
                if transition_id not in s.quiet:
                    outbox.append(
                        published.stage_changed(
                            tenant_id,
                            s.lead_id,
                            transition_id,
                            t,
                            score.home_brand_id,
                            trace_context=s.trace_context,
                        )
                    )
            history = None
            if verdict.changed:
                history = repo.HistoryRow(
                    s.lead_id,
                    at,
                    score.total,
                    score.undecayed_total,
                    components,
                    score.grade.value,
                    score.temperature.value,
                    score.stage.value,
                    model.version,
                    cause,
                    cause_id,
                )
                outbox.extend(
                    published.score_events(
                        tenant_id,
                        message,
                        verdict,
                        cause=cause,
                        causation_id=cause_id,
                        at=at,
                        score_bytes=score_bytes,
                        trace_context=s.trace_context,
                    )
                )
            visit = s.visit
            row = repo.LeadRow(
                s.lead_id,
                codec.features_to_json(s.features),
                visit.stage.value,
                visit.entered_at,
                visit.entered_by,
                codec.touchpoints_to_json(visit),
                visit.touchpoint_count,
                s.first_seen[0],
                s.first_seen[1],
                score.total,
                score.undecayed_total,
                score.grade.value,
                score.temperature.value,
                model.version,
                at,
                score.home_brand_id,
                score.last_activity_at,
                score_bytes,
                _next_check(s.features, model, at, score.total),
            )
            out[s.lead_id] = Prepared(
                row, history, transitions, s.dropped, outbox, Scored(s, score, message, verdict)
            )
            s.previous = ScoreSummary(score.total, score.grade, score.temperature)
            s.computed_at = at
            s.transitions, s.dropped, s.quiet = [], [], set()
        return out

    async def read(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        lead_ids: Iterable[str],
        *,
        now: datetime,
        first_seen: Mapping[str, tuple[datetime, str]],
    ) -> tuple[dict[str, LeadState], ScoringModel]:
        """The leads as last committed, without locking them (missing ones as they would
        be created), for computing a change before locking; `Leads.stale` then says which
        changed in between."""
        ids = sorted(set(lead_ids))
        rows = await repo.read_leads(conn, tenant_id, ids)
        model = await self.models.active(conn, tenant_id)
        return await self._states(conn, tenant_id, ids, rows, set(), model, now, first_seen), model

    async def stale(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        read: Mapping[str, LeadState],
        model: ScoringModel,
    ) -> tuple[list[str], bool]:
        """Lock the leads read (creating the missing ones) and say which changed since they
        were read: (lead ids, whether the active model changed, which makes them all)."""
        rows, created = await repo.lock_revisions(conn, tenant_id, list(read))
        if (await self.models.active(conn, tenant_id)).version != model.version:
            return sorted(read), True
        changed = [
            lead_id
            for lead_id, revision in rows
            if (lead_id in created) != (read[lead_id].revision is None)
            or (lead_id not in created and revision != read[lead_id].revision)
        ]
        return changed, False

    async def _replay(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        states: Sequence[LeadState],
        model: ScoringModel,
    ) -> None:
        """Replay the lifecycle of each lead with `replay_from` set: keep its transitions
        before that point (and up to its latest manual one), fold its stored events after
        them, and record the result in place of the transitions it replaces. A transition
        made again (same stage, trigger and event) keeps its id and is not announced again;
        new ones are announced; ones the replay no longer makes are deleted."""
        todo = [s for s in states if s.replay_from is not None]
        if not todo:
            return
        rules = model.lifecycle
        stored = await repo.transitions_of_leads(conn, tenant_id, [s.lead_id for s in todo])
        plans = [(s, plan_replay(s, stored.get(s.lead_id, []))) for s in todo]
        events = await repo.lifecycle_events(
            conn,
            tenant_id,
            [(s.lead_id, p.visit.entered_at) for s, p in plans],
            types=sorted(rules.by_event_type),
        )
        for s, p in plans:
            apply_replay(s, p, events.get(s.lead_id, ()), rules)


@dataclass(frozen=True, slots=True)
class ReplayPlan:
    visit: StageVisit  # where the fold starts
    head: list[tuple[str, Transition]]  # a new entry into `new` (replay from the start)
    replaced: list[tuple[str, Transition]]  # recorded or pending transitions replaced
    pending: list[tuple[str, Transition]]  # pending transitions kept (before the point)
    stored_ids: set[str]


def plan_replay(state: LeadState, stored: list[tuple[str, Transition]]) -> ReplayPlan:
    """Where the replay of `state` starts, given its recorded transitions (oldest first):
    after the last transition before `replay_from`, and never before the latest manual
    one; from a new entry into `new` at `first_seen` when none is before it."""
    point = state.replay_from
    assert point is not None
    history = stored + state.transitions
    stored_ids = {i for i, _ in stored}
    base = -1
    for i, (_, t) in enumerate(history):
        if t.trigger is TransitionTrigger.API or entry_key(t) < point:
            base = i
    pending = [entry for entry in history[: base + 1] if entry[0] not in stored_ids]
    if base >= 0:
        visit = visit_after(history[base][1])
        return ReplayPlan(visit, [], history[base + 1 :], pending, stored_ids)
    initial, visit = enter_initial(*state.first_seen)
    first = history[0] if history and history[0][1].trigger is TransitionTrigger.INITIAL else None
    head = [(first[0] if first else str(uuid.uuid4()), initial)]
    return ReplayPlan(visit, head, history, pending, stored_ids)


def apply_replay(
    state: LeadState,
    plan: ReplayPlan,
    events: Iterable[tuple[EventKey, str, str | None]],
    rules: LifecycleRules,
) -> None:
    """Fold the lead's lifecycle events from the plan's start (`events`: at least those
    after it) and put the result in place of what it replaces."""
    made, visit = replay(plan.visit, events, rules)
    ids = {_identity(t): transition_id for transition_id, t in plan.replaced}
    fresh = plan.head + [(ids.get(_identity(t)) or str(uuid.uuid4()), t) for t in made]
    state.dropped.extend(i for i, _ in plan.replaced if i in plan.stored_ids)
    state.quiet.update(i for i, _ in fresh if i in plan.stored_ids)
    state.transitions = plan.pending + fresh
    state.visit = visit
    state.features = apply_stage(state.features, visit.stage)
    state.replay_from = None


def _identity(t: Transition) -> tuple[str, str, str]:
    return (t.trigger.value, t.to_stage.value, t.triggering_event_id)


def rebuilt(
    features: LeadFeatures, events: Iterable[ActivityEvent], model: ScoringModel
) -> LeadFeatures:
    """The features with their activity rebuilt from history under the model's half-life
    (profile, consent and stage are not history: they stay)."""
    activity = rebuild(events, model).activity
    return LeadFeatures(features.profile, features.consent, features.stage, activity)


def _after_stored(state: LeadState, now: datetime) -> datetime:
    """When to compute the lead's score: `now`, or just after its stored score when that was
    computed later (by another replica, after this one read its clock). A lead's scores are
    then timed in the order they are stored, which is how readers of scoring.score.changed
    tell the newest (computed_at) whatever order two replicas' messages reach them in."""
    if state.computed_at is None or state.computed_at < now:
        return now
    return state.computed_at + _ONE_MICROSECOND


def _next_check(
    features: LeadFeatures, model: ScoringModel, now: datetime, total: float
) -> datetime | None:
    # Strictly after now, so a decay run never picks the lead it just rescored again.
    at = next_decay_crossing(features, model, now, total)
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
