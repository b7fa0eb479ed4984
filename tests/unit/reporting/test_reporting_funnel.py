"""The funnel engine on hand-computed cases, and against a plain-Python reference of the
proto's semantics on random small data sets."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reporting_support import RefEvent, reference_funnel

from leadflow_reporting.domain.funnel import (
    EXCLUSION_BIT,
    Entries,
    ExclusionSpan,
    FunnelShape,
    Order,
    Rows,
    enter,
)
from leadflow_reporting.domain.funnel_stats import attribution_rows, dropped, groups, series

A, B, C, X, OTHER = 1, 2, 4, 1 << EXCLUSION_BIT, 0


def run(
    events: list[tuple[int, int, int]],
    steps: int = 3,
    window: int = 100,
    order: Order = Order.SEQUENTIAL,
    exclusions: tuple[ExclusionSpan, ...] = (),
) -> Entries:
    subject, time, mask = zip(*events, strict=True) if events else ((), (), ())
    return enter(Rows.of(subject, time, mask), FunnelShape(steps, window, order, exclusions))


def reached(entries: Entries) -> dict[int, int]:
    return dict(zip(entries.subject.tolist(), entries.reached.tolist(), strict=True))


def times(entries: Entries, subject: int) -> list[int]:
    i = entries.subject.tolist().index(subject)
    return [t for t in entries.step_time[i].tolist() if t >= 0]


# Sequential -------------------------------------------------------------------------------


def test_sequential_counts_steps_in_order_with_others_between():
    e = run(
        [
            (1, 0, A),
            (1, 5, OTHER),
            (1, 10, B),
            (1, 20, C),
            (2, 0, A),
            (2, 5, C),
            (2, 10, B),
            (3, 0, B),
            (3, 1, C),
        ]
    )
    assert reached(e) == {1: 3, 2: 2}  # subject 3 never did step 1
    assert times(e, 1) == [0, 10, 20]
    assert times(e, 2) == [0, 10]


def test_ties_in_time_do_not_follow_each_other():
    e = run([(1, 10, A), (1, 10, B), (2, 10, A), (2, 10, B), (2, 11, B)], steps=2)
    assert reached(e) == {1: 1, 2: 2}
    assert times(e, 2) == [10, 11]


def test_same_event_type_in_two_steps_needs_two_events_at_two_times():
    both = A | B
    e = run([(1, 0, both), (2, 0, both), (2, 7, both), (3, 5, both), (3, 5, both)], steps=2)
    assert reached(e) == {1: 1, 2: 2, 3: 1}


def test_window_edge_exactly_at_window_is_inside():
    e = run([(1, 0, A), (1, 100, B), (2, 0, A), (2, 101, B)], steps=2, window=100)
    assert reached(e) == {1: 2, 2: 1}


def test_window_counts_from_step_one_not_from_the_previous_step():
    e = run([(1, 0, A), (1, 60, B), (1, 120, C)], window=100)
    assert reached(e) == {1: 2}


def test_best_attempt_wins_then_the_earliest():
    # The attempt at 0 misses B (120 > 0 + 100); the one at 50 reaches it.
    e = run([(1, 0, A), (1, 50, A), (1, 120, B)], steps=2, window=100)
    assert times(e, 1) == [50, 120]
    # Two attempts reach the same step: the earliest is kept.
    e = run([(1, 0, A), (1, 30, A), (1, 60, B)], steps=2, window=100)
    assert times(e, 1) == [0, 60]


def test_step_rows_point_at_the_input_rows():
    e = run([(1, 20, C), (1, 10, B), (1, 0, A)])
    assert e.step_row.tolist() == [[2, 1, 0]]


# Exclusions -------------------------------------------------------------------------------


def test_exclusion_between_its_steps_removes_the_subject():
    span = (ExclusionSpan(0, 0, 1),)
    e = run(
        [
            (1, 0, A),
            (1, 5, X),
            (1, 10, B),  # excluded: X between A and B
            (2, 0, A),
            (2, 10, B),
            (2, 15, X),
            (2, 20, C),  # X after B: not between steps 0 and 1
            (3, 0, A | X),
            (3, 10, B),  # X at the same time as A: not strictly after it
            (4, 0, A),
            (4, 10, B | X),  # X at B's time: not strictly before it
        ],
        exclusions=span,
    )
    assert reached(e) == {2: 3, 3: 2, 4: 2}
    assert e.excluded_subjects == 1


def test_exclusion_when_to_step_not_reached_counts_until_window_end():
    span = (ExclusionSpan(0, 0, 1),)
    e = run([(1, 0, A), (1, 100, X), (2, 0, A), (2, 101, X)], exclusions=span, window=100)
    assert reached(e) == {2: 1}
    assert e.excluded_subjects == 1


def test_exclusion_before_from_step_is_ignored():
    span = (ExclusionSpan(0, 1, 2),)
    e = run([(1, 0, A), (1, 5, X), (1, 10, B), (1, 20, C)], exclusions=span)
    assert reached(e) == {1: 3}


# Strict and any -----------------------------------------------------------------------------


def test_strict_breaks_on_any_event_between_steps():
    e = run(
        [
            (1, 0, A),
            (1, 5, OTHER),
            (1, 10, B),
            (2, 0, A),
            (2, 10, B),
            (3, 0, A),
            (3, 10, OTHER),
            (3, 10, B),  # B at the next point in time, tied with another event
            (4, 0, A),
            (4, 0, OTHER),
            (4, 10, B),  # an event tied with step 1 does not break the chain
        ],
        steps=2,
        order=Order.STRICT,
    )
    assert reached(e) == {1: 1, 2: 2, 3: 2, 4: 2}


def test_any_order_counts_distinct_steps_in_the_window():
    e = run(
        [(1, 0, C), (1, 10, A), (2, 0, C), (2, 50, A), (2, 60, B), (3, 0, B)],
        order=Order.ANY,
        window=20,
    )
    assert reached(e) == {1: 2, 2: 2, 3: 1}
    assert times(e, 1) == [0, 10]
    assert times(e, 2) == [50, 60]  # the attempt at 50 reaches two steps; at 0 only one


def test_any_order_event_matching_two_steps_counts_for_both():
    e = run([(1, 0, A | B)], steps=2, order=Order.ANY)
    assert reached(e) == {1: 2}


def test_no_rows_and_no_step_one():
    assert len(run([])) == 0
    assert len(run([(1, 0, B)])) == 0


def test_large_subject_ids_sort_without_overflow():
    big = 2**40
    e = run([(big, 0, A), (big, 10**12, B), (1, 0, A)], steps=2, window=10**13)
    assert reached(e) == {1: 1, big: 2}


# Figures ----------------------------------------------------------------------------------


def test_series_counts_rates_and_times():
    e = run(
        [
            (1, 0, A),
            (1, 10, B),
            (1, 40, C),
            (2, 0, A),
            (2, 30, B),
            (3, 0, A),
            (4, 0, A),
            (4, 20, B),
            (4, 30, C),
        ]
    )
    s = series(e)
    assert [x.count for x in s.steps] == [4, 3, 2]
    assert [x.dropped_from_previous for x in s.steps] == [0, 1, 1]
    assert s.steps[1].conversion_from_first == pytest.approx(0.75)
    assert s.steps[2].conversion_from_previous == pytest.approx(2 / 3)
    assert s.steps[2].conversion_from_first == pytest.approx(0.5)
    assert s.steps[0].median_from_previous_us is None
    assert s.steps[1].median_from_previous_us == 20  # gaps 10, 30, 20
    assert s.steps[1].average_from_previous_us == 20
    assert s.steps[2].median_from_previous_us == 20  # gaps 30, 10
    assert s.median_to_convert_us == 35  # 40, 30


def test_series_of_nobody():
    s = series(run([]))
    assert [x.count for x in s.steps] == [0, 0, 0]
    assert s.steps[0].conversion_from_first == 0.0
    assert s.steps[1].conversion_from_previous == 0.0
    assert s.median_to_convert_us is None


def test_groups_rank_by_size_then_value_and_merge_the_rest():
    values = ["b", "a", "b", "", "c", "a", "b"]
    g = groups(values, limit=2)
    assert [(x.value, x.other, x.members.tolist()) for x in g] == [
        ("b", False, [0, 2, 6]),
        ("a", False, [1, 5]),
        ("", True, [3, 4]),
    ]
    assert [x.value for x in groups(values, limit=10)] == ["b", "a", "", "c"]


def test_attribution_rows_and_drop_offs():
    e = run([(1, 0, A), (1, 10, B), (2, 5, A), (3, 0, A), (3, 3, B), (3, 4, C)])
    # input rows: 0 1 | 2 | 3 4 5
    assert attribution_rows(e, "first").tolist() == [0, 2, 3]
    assert attribution_rows(e, "last").tolist() == [1, 2, 5]
    assert attribution_rows(e, "specific", 2).tolist() == [0, 2, 5]
    hit, when = dropped(e, 1)
    assert e.subject[hit].tolist() == [2] and when.tolist() == [5]
    hit, when = dropped(e, 2)
    assert e.subject[hit].tolist() == [1] and when.tolist() == [10]


# Against the reference ----------------------------------------------------------------------


@st.composite
def datasets(draw):
    steps = draw(st.integers(2, 4))
    order = draw(st.sampled_from(list(Order)))
    exclusions: list[tuple[int, int, int]] = []
    if order is not Order.ANY:
        for j in range(draw(st.integers(0, 2))):
            lo = draw(st.integers(0, steps - 2))
            hi = draw(st.integers(lo + 1, steps - 1))
            exclusions.append((j, lo, hi))
    n = draw(st.integers(0, 40))
    events = []
    for row in range(n):
        subject = draw(st.integers(1, 5))
        time = draw(st.integers(0, 30))
        step_set = draw(st.frozensets(st.integers(0, steps - 1), max_size=2))
        excl = draw(st.frozensets(st.integers(0, max(len(exclusions) - 1, 0)), max_size=1))
        events.append(RefEvent(subject, time, step_set, excl if exclusions else frozenset(), row))
    window = draw(st.integers(1, 20))
    return steps, order, exclusions, events, window


@settings(max_examples=400, deadline=None)
@given(datasets())
def test_engine_matches_the_reference(data):
    check_against_reference(*data)


@settings(max_examples=150, deadline=None)
@given(datasets())
def test_engine_matches_the_reference_with_ids_and_times_too_wide_to_pack(data):
    # Subject ids times 2**40 and times in units of 10**9: (subject, time) no longer packs
    # into one integer, and the engine keys rows by ranks instead.
    steps, order, exclusions, events, window = data
    wide = [RefEvent(e.subject << 40, e.time * 10**9, e.steps, e.exclusions, e.row) for e in events]
    check_against_reference(steps, order, exclusions, wide, window * 10**9)


def check_against_reference(steps, order, exclusions, events, window):
    mask = [
        sum(1 << k for k in e.steps) + sum(1 << (EXCLUSION_BIT + j) for j in e.exclusions)
        for e in events
    ]
    rows = Rows.of([e.subject for e in events], [e.time for e in events], mask)
    shape = FunnelShape(
        steps, window, order, tuple(ExclusionSpan(j, lo, hi) for j, lo, hi in exclusions)
    )
    got = enter(rows, shape)
    want = reference_funnel(
        events, steps=steps, window=window, order=order.value, exclusions=exclusions
    )
    assert got.excluded_subjects == len(want.excluded)
    assert sorted(got.subject.tolist()) == sorted(want.entries)
    for i, subject in enumerate(got.subject.tolist()):
        ref = want.entries[subject]
        assert got.reached[i] == ref.reached, subject
        assert got.step_time[i, : ref.reached].tolist() == ref.times, subject
        assert got.step_row[i, : ref.reached].tolist() == ref.rows, subject
        assert (got.step_row[i, ref.reached :] == -1).all()
    s = series(got)
    assert [x.count for x in s.steps] == want.counts(steps)
    for k in range(1, steps):
        gaps = want.gaps(k)
        if gaps:
            assert s.steps[k].median_from_previous_us == pytest.approx(float(np.median(gaps)))
            assert s.steps[k].average_from_previous_us == pytest.approx(sum(gaps) / len(gaps))
        else:
            assert s.steps[k].median_from_previous_us is None
