"""Encodings on the hot path: times in the features column, and events whose score is
appended as bytes serialized once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from leadflow.scoring.v1 import events_pb2, lead_score_pb2
from leadflow_scoring.db import codec
from leadflow_scoring.domain.changes import ScoreSummary, score_changes
from leadflow_scoring.domain.score import Grade, Temperature
from leadflow_scoring.events import published

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# Every microsecond from year 1 to year 9999 (what datetime can hold).
@given(st.integers(-62_135_596_800_000_000, 253_402_300_799_999_999))
def test_times_round_trip_to_the_microsecond(us):
    at = EPOCH + timedelta(microseconds=us)
    assert codec.micros(at) == us
    assert codec.from_micros(us) == at


def test_times_far_from_the_epoch_round_trip():
    for at in (datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, 999999, UTC)):
        assert codec.from_micros(codec.micros(at)) == at


def _score() -> lead_score_pb2.LeadScore:
    score = lead_score_pb2.LeadScore(lead_id="lead-1", total=91.5, undecayed_total=95.25)
    factor = score.components.behavioural.factors.add()
    factor.label, factor.points = "meeting_scheduled x2: +40 behavioural", 40.0
    score.computed_at.FromDatetime(datetime(2025, 3, 1, 12, 0))
    return score


def test_score_events_carry_the_score_given_as_bytes():
    score = _score()
    previous = ScoreSummary(75.0, Grade.B_PLUS, Temperature.HOT)
    current = ScoreSummary(91.5, Grade.A_PLUS, Temperature.HOT)
    verdict = score_changes(previous, current)
    at = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    out = published.score_events(
        "t1",
        score,
        verdict,
        cause="event",
        causation_id="e1",
        at=at,
        score_bytes=score.SerializeToString(),
    )
    changed = events_pb2.ScoreChanged.FromString(out[0].payload or b"")
    crossed = events_pb2.ThresholdCrossed.FromString(out[1].payload or b"")
    assert changed.score == score and crossed.score == score
    assert changed.lead_id == "lead-1" and changed.previous_total == 75.0
    assert changed.metadata.event_id == out[0].message_id
    assert crossed.grade.to_grade and crossed.metadata.causation_id == "e1"
    assert len(out) == 2  # one crossing: grade (temperature stayed hot)
