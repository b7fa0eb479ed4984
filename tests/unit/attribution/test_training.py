"""Training paths over columns equal the per-subject definition (channel_paths docstring),
written out here with bisect as the reference."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from leadflow_attribution.domain.journey import NONE_VALUE, Conversion, Touchpoint
from leadflow_attribution.domain.training import training_paths

AT = datetime(2026, 3, 1, tzinfo=UTC)
START, END = AT - timedelta(days=20), AT


def reference(by_subject, conversions, start, end, lookback):
    counts: dict[tuple[str, ...], list[int]] = {}
    newest = None
    last_conversion: dict[str, datetime] = {}

    def times(subject):
        return [t.occurred_at for t in by_subject.get(subject, ())]

    for conversion in conversions:
        at = conversion.occurred_at
        if not start <= at < end:
            continue
        newest = at if newest is None or at > newest else newest
        seen = last_conversion.get(conversion.subject)
        if seen is None or at > seen:
            last_conversion[conversion.subject] = at
        journey, moments = by_subject.get(conversion.subject, ()), times(conversion.subject)
        window = journey[bisect_left(moments, at - lookback) : bisect_right(moments, at)]
        counts.setdefault(tuple(t.channel or NONE_VALUE for t in window), [0, 0])[0] += 1
    for subject, journey in by_subject.items():
        if not journey:
            continue
        moments = times(subject)
        after = last_conversion.get(subject)
        first = bisect_right(moments, after) if after is not None else 0
        first = max(first, bisect_left(moments, start))
        last = bisect_left(moments, end)
        if first >= last:
            continue
        first = max(first, bisect_left(moments, moments[last - 1] - lookback))
        counts.setdefault(tuple(t.channel or NONE_VALUE for t in journey[first:last]), [0, 0])[
            1
        ] += 1
        newest = moments[last - 1] if newest is None else max(newest, moments[last - 1])
    return {k: tuple(v) for k, v in counts.items()}, newest


moments = st.integers(min_value=-30 * 24, max_value=24).map(lambda h: AT + timedelta(hours=h))


@st.composite
def data(draw: st.DrawFn):
    by_subject = {}
    for s in range(draw(st.integers(min_value=0, max_value=5))):
        when = sorted(draw(st.lists(moments, max_size=10)))
        by_subject[f"s{s}"] = [
            Touchpoint(f"e{s}-{i:02d}", w, draw(st.sampled_from(["email", "direct", ""])))
            for i, w in enumerate(when)
        ]
    conversions = [
        Conversion(f"c{i}", f"s{draw(st.integers(0, 6))}", "purchase", draw(moments))
        for i in range(draw(st.integers(min_value=0, max_value=6)))
    ]
    lookback = timedelta(days=draw(st.sampled_from([1, 3, 10, 90])))
    return by_subject, conversions, lookback


@settings(max_examples=300, deadline=None)
@given(data())
def test_columnar_training_paths_equal_the_definition(case):
    by_subject, conversions, lookback = case
    got = training_paths(by_subject, conversions, START, END, lookback)
    want, newest = reference(by_subject, conversions, START, END, lookback)
    assert {p.channels: (p.conversions, p.non_conversions) for p in got.paths} == want
    assert len(got.paths) == len(want)
    assert got.data_through == newest
