"""The vectorised batch gives exactly the credits of the scalar rule (credit.allocate over
each model's exact shares), for any journeys, values, currencies and options."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from leadflow_attribution.domain.batch import credit_batch, journeys_batch, journeys_from_columns
from leadflow_attribution.domain.channel_weights import shares_from_channel_weights
from leadflow_attribution.domain.columns import encode_conversions, encode_touchpoints
from leadflow_attribution.domain.credit import allocate
from leadflow_attribution.domain.currency import currency_exponent
from leadflow_attribution.domain.heuristics import heuristic_shares
from leadflow_attribution.domain.journey import Conversion, Touchpoint, build_journey, channel_path
from leadflow_attribution.domain.models import AttributionModel, AttributionOptions

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CHANNELS = ["email", "direct", "Direct", "paid_search", "organic_social", "", "(none)"]
ALL = tuple(AttributionModel)


def expected(journey, conversion, options, weights):
    exponent = currency_exponent(conversion.currency) if conversion.currency else 0
    out = {}
    for model in ALL:
        if model.data_driven:
            shares = shares_from_channel_weights(channel_path(journey), weights[model])
        else:
            shares = heuristic_shares(model, journey, conversion, options)
        out[model] = tuple(allocate(shares, conversion.value, exponent))
    return out


moments = st.one_of(
    st.integers(min_value=-48 * 3600, max_value=100 * 24 * 3600).map(
        lambda s: AT - timedelta(seconds=s)
    ),
    st.integers(min_value=0, max_value=20).map(lambda k: AT - timedelta(days=7 * k)),
    st.integers(min_value=0, max_value=10**6).map(lambda us: AT - timedelta(microseconds=us)),
)


@st.composite
def cases(draw: st.DrawFn):
    subjects = draw(st.integers(min_value=1, max_value=4))
    history = {
        f"s{s}": [
            Touchpoint(f"e{s}-{i:02d}", draw(moments), draw(st.sampled_from(CHANNELS)))
            for i in range(draw(st.integers(min_value=0, max_value=12)))
        ]
        for s in range(subjects)
    }
    conversions = []
    for c in range(draw(st.integers(min_value=1, max_value=5))):
        units = draw(st.one_of(st.integers(0, 10**6), st.integers(0, 10**20), st.just(1)))
        digits = draw(st.integers(min_value=0, max_value=9))
        currency = draw(st.sampled_from(["USD", "JPY", "KWD", "XAU", ""]))
        value = Decimal(units).scaleb(-digits) if currency else Decimal(0)
        opportunity = draw(st.none() | moments)
        conversions.append(
            Conversion(
                f"c{c}",
                f"s{draw(st.integers(0, subjects))}",
                "purchase",
                AT - timedelta(hours=draw(st.integers(0, 48))),
                value,
                currency,
                opportunity,
            )
        )
    weight = st.one_of(
        st.floats(min_value=0, max_value=1, allow_subnormal=True),
        st.just(0.0),
        st.just(float("nan")),
        st.just(-0.1),
        st.sampled_from([0.5, 0.25, 1.0, 1 / 3]),
    )
    weights = {
        model: draw(st.dictionaries(st.sampled_from([*CHANNELS[:5], "(none)"]), weight))
        for model in (AttributionModel.MARKOV, AttributionModel.SHAPLEY)
    }
    options = AttributionOptions(
        lookback_window=timedelta(days=draw(st.sampled_from([1, 30, 90]))),
        last_touch_ignore_direct=draw(st.booleans()),
        time_decay_half_life=draw(
            st.sampled_from([timedelta(days=7), timedelta(minutes=1), timedelta(hours=5)])
        ),
    )
    return history, conversions, weights, options


@settings(max_examples=300, deadline=None)
@given(cases())
def test_batch_credits_equal_the_scalar_rule(case):
    history, conversions, weights, options = case
    journeys = [
        build_journey(history.get(c.subject, ()), c, options.lookback_window) for c in conversions
    ]
    credited = credit_batch(journeys_batch(journeys, conversions), options, ALL, weights)
    touches = encode_touchpoints(history)
    batch, rows = journeys_from_columns(
        touches, encode_conversions(conversions, touches.subject_index()), options.lookback_window
    )
    from_columns = credit_batch(batch, options, ALL, weights)
    for i, (journey, conversion) in enumerate(zip(journeys, conversions, strict=True)):
        start, end = batch.offsets[i], batch.offsets[i + 1]
        assert tuple(touches.touchpoints[r] for r in rows[start:end]) == journey
        want = expected(journey, conversion, options, weights)
        for model in ALL:
            assert credited.credits(i, model) == want[model], model
            assert from_columns.credits(i, model) == want[model], model


def test_long_decayed_journeys_with_many_values_match_the_scalar_rule():
    rng = np.random.default_rng(7)
    conversions, journeys = [], []
    options = AttributionOptions()
    weights = {m: {c: float(rng.random()) for c in CHANNELS} for m in ALL if m.data_driven}
    for i in range(400):
        n = int(rng.integers(1, 40))
        seconds = np.sort(rng.integers(0, 90 * 86400, n))[::-1]
        journey = tuple(
            Touchpoint(f"e{i}-{k:03d}", AT - timedelta(seconds=int(s)),
                       CHANNELS[int(rng.integers(0, len(CHANNELS)))])
            for k, s in enumerate(seconds)
        )  # fmt: skip
        value = Decimal(int(rng.integers(0, 10**7))).scaleb(-2)
        conversions.append(Conversion(f"c{i}", "s", "purchase", AT, value, "USD"))
        journeys.append(journey)
    credited = credit_batch(journeys_batch(journeys, conversions), options, ALL, weights)
    for i, (journey, conversion) in enumerate(zip(journeys, conversions, strict=True)):
        want = expected(journey, conversion, options, weights)
        for model in ALL:
            assert credited.credits(i, model) == want[model]
