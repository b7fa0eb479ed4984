"""When an idle lead will cool below a threshold, so the decay job can re-evaluate it then.

With no new events a score changes in two ways: behavioural event points decay
continuously, and steps happen when an event leaves an intent window, a day leaves the
frequency window, or the last activity ages into the next recency tier. Between those
breakpoints only the decay moves, and it has a closed form, so the first downward crossing
is found by walking the breakpoints in order and solving inside each segment: a few dozen
evaluations at most, no search over time.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from leadflow_scoring.domain.features import LeadFeatures
from leadflow_scoring.domain.model import ScoringModel
from leadflow_scoring.domain.score import (
    MAX_COMPONENT,
    RawScore,
    grade_floor,
    grade_for,
    raw_score,
    temperature_floor,
    temperature_for,
)

_ROUNDING_MARGIN = 0.005 + 1e-9
"""A total below floor - 0.005 rounds (2 decimals) below the floor."""
_NUDGES = 3


def next_decay_crossing(
    features: LeadFeatures, model: ScoringModel, now: datetime, total: float | None = None
) -> datetime | None:
    """The first time after `now` at which, with no new events, the lead's grade or
    temperature is lower than at `now` (within a second after the exact instant, so that
    compute_score at the returned time shows the lower value); None when it never is.
    `total`: the lead's total at `now` when the caller has it (compute_score's).
    """
    if total is None:
        total = raw_score(features, model, now).total(model)
    floors = [
        f
        for f in (
            grade_floor(grade_for(total, model.grade_thresholds), model.grade_thresholds),
            temperature_floor(
                temperature_for(total, model.temperature_thresholds), model.temperature_thresholds
            ),
        )
        if f is not None
    ]
    if not floors:
        return None  # already D and cold
    floor = max(floors)

    def below(t: datetime) -> tuple[bool, RawScore]:
        raw = raw_score(features, model, t)
        return raw.total(model) < floor, raw

    start, raw = now, raw_score(features, model, now)
    for end in (*_breakpoints(features, model, now), None):
        crossing = _solve_decay(features, model, start, raw, floor)
        if crossing is not None and (end is None or crossing < end):
            for _ in range(_NUDGES):  # guard against float error at the boundary
                if end is not None and crossing >= end:
                    break
                if below(crossing)[0]:
                    return crossing
                crossing += timedelta(seconds=1)
        if end is None:
            return None
        dropped, raw = below(end)
        if dropped:
            return end
        start = end
    return None  # pragma: no cover - the loop returns at the last segment


def _breakpoints(features: LeadFeatures, model: ScoringModel, now: datetime) -> list[datetime]:
    """Times after `now` at which a step happens (or decay starts)."""
    activity = features.activity
    anchor = activity.anchor
    if anchor is None:
        return []
    points: set[datetime] = {anchor}
    intent = model.intent
    for types, window in (
        (intent.high_intent_event_types, intent.high_intent_window),
        (intent.reply_event_types, intent.reply_window),
    ):
        for name in types:
            tally = activity.tallies.get(name)
            if tally is not None:
                points.update(t + window for t, _ in tally.recent)
    window = model.behavioural.frequency_window
    points.update(latest + window for _, latest in activity.active_days)
    points.update(anchor + tier.max_age for tier in model.engagement.recency_tiers)
    return sorted(t for t in points if t > now)


def _solve_decay(
    features: LeadFeatures, model: ScoringModel, start: datetime, raw: RawScore, floor: float
) -> datetime | None:
    """Inside a segment from `start` with no steps: when the decaying event points bring
    the total below `floor` (rounded), or None."""
    anchor = features.activity.anchor
    weight = model.weights.behavioural
    if anchor is None or start < anchor or weight <= 0 or raw.event_points <= 0:
        return None  # nothing decays here (before the anchor decay has not started)
    parts = raw.weighted_parts(model)
    fixed = math.fsum(parts[:1] + parts[2:])
    # Behavioural value needed: fixed + weight * min(100, D(t) + F) < floor - margin.
    needed = (floor - _ROUNDING_MARGIN - fixed) / weight
    room = min(needed, MAX_COMPONENT) - raw.frequency
    if room <= 0:
        return None  # even with every event point gone the total stays up
    if raw.event_points <= room:
        return start  # already there (only through rounding at the boundary)
    half_life = features.activity.half_life.total_seconds()
    seconds = half_life * math.log2(raw.event_points / room)
    return start + timedelta(seconds=math.ceil(seconds))
