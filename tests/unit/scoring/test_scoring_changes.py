"""score_changes: when scoring.score.changed and scoring.threshold.crossed are due."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from leadflow_scoring.domain.changes import (
    CrossingDirection,
    GradeCrossing,
    TemperatureCrossing,
    ThresholdDimension,
    score_changes,
)
from leadflow_scoring.domain.features import empty_features
from leadflow_scoring.domain.model import DEFAULT_MODEL, GradeThresholds
from leadflow_scoring.domain.score import (
    Grade,
    LeadScore,
    Temperature,
    compute_score,
    grade_for,
    temperature_for,
)

NOW = datetime(2025, 3, 1, tzinfo=UTC)
BASE = compute_score(empty_features(DEFAULT_MODEL), DEFAULT_MODEL, NOW)
UP, DOWN = CrossingDirection.UP, CrossingDirection.DOWN


def score(total: float, grades: GradeThresholds | None = None) -> LeadScore:
    grades = grades or DEFAULT_MODEL.grade_thresholds
    return replace(
        BASE,
        total=total,
        grade=grade_for(total, grades),
        temperature=temperature_for(total, DEFAULT_MODEL.temperature_thresholds),
    )


def test_first_score_is_compared_with_zero_d_cold():
    verdict = score_changes(None, score(55.0))
    assert verdict.changed
    assert (verdict.previous_total, verdict.previous_grade, verdict.previous_temperature) == (
        0.0,
        Grade.D,
        Temperature.COLD,
    )
    assert verdict.crossings == (
        GradeCrossing(Grade.D, Grade.C_PLUS, UP),
        TemperatureCrossing(Temperature.COLD, Temperature.WARM, UP),
    )


def test_a_first_score_that_stays_d_and_cold_has_no_crossing():
    verdict = score_changes(None, score(10.0))
    assert verdict.changed  # 0 -> 10
    assert verdict.crossings == ()


def test_a_first_score_of_zero_is_no_change():
    assert not score_changes(None, score(0.0)).changed


def test_same_total_at_two_decimals_is_no_change():
    verdict = score_changes(score(61.23), score(61.23))
    assert not verdict.changed
    assert verdict.crossings == ()


def test_a_change_of_one_hundredth_is_a_change():
    verdict = score_changes(score(61.23), score(61.24))
    assert verdict.changed
    assert verdict.crossings == ()


def test_crossing_up():
    verdict = score_changes(score(69.99), score(70.0))
    assert verdict.crossings == (GradeCrossing(Grade.B, Grade.B_PLUS, UP),)


def test_crossing_down_in_both_dimensions():
    verdict = score_changes(score(76.0), score(48.0))
    assert verdict.changed
    assert verdict.crossings == (
        GradeCrossing(Grade.B_PLUS, Grade.C, DOWN),
        TemperatureCrossing(Temperature.HOT, Temperature.COLD, DOWN),
    )
    assert [c.dimension for c in verdict.crossings] == [
        ThresholdDimension.GRADE,
        ThresholdDimension.TEMPERATURE,
    ]


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        (61.0, 95.0, GradeCrossing(Grade.B, Grade.A_PLUS, UP)),  # B -> A+: one crossing
        (95.0, 10.0, GradeCrossing(Grade.A_PLUS, Grade.D, DOWN)),
    ],
)
def test_a_multi_boundary_jump_is_one_crossing_per_dimension(before, after, expected):
    crossings = score_changes(score(before), score(after)).crossings
    grade_crossings = [c for c in crossings if c.dimension is ThresholdDimension.GRADE]
    assert grade_crossings == [expected]
    assert len([c for c in crossings if c.dimension is ThresholdDimension.TEMPERATURE]) == 1


def test_a_new_model_can_change_the_grade_without_changing_the_total():
    previous = score(75.0)
    current = score(75.0, GradeThresholds(a=75.0, a_plus=90.0))
    verdict = score_changes(previous, current)
    assert verdict.changed
    assert verdict.crossings == (GradeCrossing(Grade.B_PLUS, Grade.A, UP),)


def test_undecayed_total_alone_is_no_change():
    previous = score(50.0)
    assert not score_changes(previous, replace(previous, undecayed_total=80.0)).changed
