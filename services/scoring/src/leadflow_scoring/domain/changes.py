"""Whether a recomputed score is news: scoring.score.changed and scoring.threshold.crossed.

Per events.proto: a score changed when its total (at 0.01 precision), grade or temperature
changed (a new model can move the grade without moving the total); a lead's first score is
compared with total 0, grade D, cold. A threshold crossing is one per dimension per
recomputation, also when several boundaries were jumped (B -> A+ is one crossing).
A change of the undecayed total, components, stage or model version alone is not a change.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from leadflow_scoring.domain.score import Grade, Temperature

START_TOTAL = 0.0
START_GRADE = Grade.D
START_TEMPERATURE = Temperature.COLD


class Scored(Protocol):
    """What a change is judged on: a LeadScore, or the ScoreSummary a store keeps of one."""

    @property
    def total(self) -> float: ...
    @property
    def grade(self) -> Grade: ...
    @property
    def temperature(self) -> Temperature: ...


@dataclass(frozen=True, slots=True)
class ScoreSummary:
    """The part of a stored score a change is judged on (no components needed)."""

    total: float
    grade: Grade
    temperature: Temperature


class ThresholdDimension(StrEnum):
    GRADE = "grade"
    TEMPERATURE = "temperature"


class CrossingDirection(StrEnum):
    UP = "up"
    """To a better grade or a hotter temperature."""
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class GradeCrossing:
    from_grade: Grade
    to_grade: Grade
    direction: CrossingDirection
    dimension: ThresholdDimension = ThresholdDimension.GRADE


@dataclass(frozen=True, slots=True)
class TemperatureCrossing:
    from_temperature: Temperature
    to_temperature: Temperature
    direction: CrossingDirection
    dimension: ThresholdDimension = ThresholdDimension.TEMPERATURE


Crossing = GradeCrossing | TemperatureCrossing


@dataclass(frozen=True, slots=True)
class ScoreChangeVerdict:
    """`changed`: publish scoring.score.changed and write a history row. `crossings`:
    publish one scoring.threshold.crossed each (grade first)."""

    changed: bool
    previous_total: float
    previous_grade: Grade
    previous_temperature: Temperature
    crossings: tuple[Crossing, ...]


def score_changes(previous: Scored | None, current: Scored) -> ScoreChangeVerdict:
    if previous is None:
        total, grade, temperature = START_TOTAL, START_GRADE, START_TEMPERATURE
    else:
        total, grade, temperature = previous.total, previous.grade, previous.temperature
    crossings: list[Crossing] = []
    if current.grade is not grade:
        up = current.grade.rank > grade.rank
        crossings.append(GradeCrossing(grade, current.grade, _direction(up)))
    if current.temperature is not temperature:
        up = current.temperature.rank > temperature.rank
        crossings.append(TemperatureCrossing(temperature, current.temperature, _direction(up)))
    changed = bool(crossings) or round(current.total, 2) != round(total, 2)
    return ScoreChangeVerdict(changed, total, grade, temperature, tuple(crossings))


def _direction(up: bool) -> CrossingDirection:
    return CrossingDirection.UP if up else CrossingDirection.DOWN
