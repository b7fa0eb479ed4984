"""`make bench-attribution`: all eight attribution models against ChannelAttribution's Markov.

BENCH_ATTRIBUTION_JOURNEYS (100,000) journeys of subjects over 8 channels, a mean of 5
touchpoints each, about 10% converting (the channels raise the odds unequally, so the
data-driven models have something to find). The data is generated as the columns the
repository reads (per subject, touchpoint times in microseconds and channel codes; the
conversions' subjects, times and values). leadflow's time covers what the service does
for a tenant with that data, with the service's own functions: build the training paths
(converting and non-converting journeys), fit the Markov chain (order 1) and the Shapley
values, then build every conversion's journey and credit it exactly under all eight models
(six heuristics and the two fitted models; shares in 1e-18 units and values in minor
units, each conversion's summing exactly to 1 and to its value).
The baseline, in the same run on the same journeys (identical paths merged with counts, as
its input expects), is `ChannelAttribution.markov_model` (order 1, its defaults, one core).
Target: all eight models in less time than the package's Markov alone. The two Markov
results are printed side by side (per-channel conversions) as a check that they agree.

BENCH line: `attribution_all_models` seconds, baseline = ChannelAttribution Markov seconds,
ratio = leadflow / baseline (below 1 is faster).
"""

from __future__ import annotations

import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
from _common import bench_line

from leadflow_attribution.domain.batch import credit_batch, journeys_from_columns
from leadflow_attribution.domain.columns import (
    NO_TIME,
    ConversionColumns,
    TouchColumns,
    micros,
)
from leadflow_attribution.domain.markov import fit_markov_columns
from leadflow_attribution.domain.models import AttributionModel, AttributionOptions
from leadflow_attribution.domain.shapley import fit_shapley_columns
from leadflow_attribution.domain.training import merged_paths, training_columns

JOURNEYS = int(os.environ.get("BENCH_ATTRIBUTION_JOURNEYS", "100000"))
SEED = 20261201
CHANNELS = {  # channel: (popularity, log-odds added when present)
    "email": (3, 0.9),
    "paid_search": (3, 0.7),
    "organic_search": (3, 0.4),
    "referral": (1, 0.6),
    "paid_social": (2, 0.2),
    "organic_social": (3, 0.0),
    "display": (2, -0.2),
    "direct": (2, 0.3),
}
BASE_LOGIT = -3.65  # with the effects above, about 10% of journeys convert
START = datetime(2026, 1, 1, tzinfo=UTC)


def log(message: str) -> None:
    print(f"[attribution] {message}", file=sys.stderr, flush=True)


def generate() -> tuple[TouchColumns, ConversionColumns]:
    rng = random.Random(SEED)
    names = list(CHANNELS)
    weights = [CHANNELS[c][0] for c in names]
    start = micros(START)
    minute = 60_000_000
    offsets, times, codes = [0], [], []
    segments, converted_at, values = [], [], []
    for i in range(JOURNEYS):
        length = max(1, round(rng.expovariate(1 / 5)))
        channels = rng.choices(range(len(names)), weights, k=length)
        at = start + minute * rng.randrange(60 * 24 * 60)
        for channel in channels:
            times.append(at)
            codes.append(channel)
            at += minute * rng.randrange(1, 60 * 24 * 3)
        offsets.append(len(times))
        logit = BASE_LOGIT + sum(CHANNELS[names[c]][1] for c in set(channels))
        if rng.random() < 1 / (1 + pow(2.718281828459045, -logit)):
            segments.append(i)
            converted_at.append(at)
            values.append(Decimal(rng.choice(["49.00", "99.00", "249.99"])))
    touches = TouchColumns(
        subjects=tuple(f"lead:{i}" for i in range(JOURNEYS)),
        offsets=np.asarray(offsets, dtype=np.int64),
        times=np.asarray(times, dtype=np.int64),
        channels=np.asarray(codes, dtype=np.int64),
        channel_names=tuple(names),
    )
    conversions = ConversionColumns(
        segments=np.asarray(segments, dtype=np.int64),
        times=np.asarray(converted_at, dtype=np.int64),
        opportunity=np.full(len(segments), NO_TIME, dtype=np.int64),
        values=values,
        currencies=["USD"] * len(values),
    )
    return touches, conversions


def leadflow_all_models(
    touches: TouchColumns, conversions: ConversionColumns
) -> tuple[float, dict[str, float]]:
    options = AttributionOptions()
    end = START + timedelta(days=365)
    started = time.perf_counter()
    training = training_columns(touches, conversions, START, end, options.lookback_window)
    paths_at = time.perf_counter()
    markov = fit_markov_columns(training.paths, 1)
    markov_at = time.perf_counter()
    shapley = fit_shapley_columns(training.paths)
    shapley_at = time.perf_counter()
    fitted = {
        AttributionModel.MARKOV: markov.weights(),
        AttributionModel.SHAPLEY: shapley.weights(),
    }
    batch, _ = journeys_from_columns(touches, conversions, options.lookback_window)
    journeys_at = time.perf_counter()
    credited = credit_batch(batch, options, tuple(AttributionModel), fitted)
    done = time.perf_counter()
    assert len(credited.shares) == 8 and credited.offsets.shape[0] == conversions.size + 1
    log(
        f"leadflow: training paths {paths_at - started:.3f} s,"
        f" Markov fit {markov_at - paths_at:.3f} s ({markov.state_count} states),"
        f" Shapley fit {shapley_at - markov_at:.3f} s, journeys of {conversions.size:,}"
        f" conversions {journeys_at - shapley_at:.3f} s, exact credits under 8 models"
        f" ({int(batch.offsets[-1]):,} touchpoints each) {done - journeys_at:.3f} s"
    )
    check_exact(credited, conversions)
    return done - started, {c.channel: c.conversions for c in markov.credits}


def check_exact(credited, conversions: ConversionColumns) -> None:  # type: ignore[no-untyped-def]
    """Outside the timing: every conversion's shares sum to 1e18 units and values to its
    value, under every model."""
    starts = credited.offsets[:-1]
    live = np.diff(credited.offsets) > 0
    units = np.array([int(v * 100) for v in conversions.values], dtype=np.int64)
    for model, shares in credited.shares.items():
        assert (np.add.reduceat(shares, starts[live]) == 10**18).all(), model
        values = np.add.reduceat(credited.values[model], starts[live])
        assert (values == units[live]).all(), model
    log("checked: every conversion's shares sum to exactly 1 and values to its value")


def channelattribution_markov(
    touches: TouchColumns, conversions: ConversionColumns
) -> tuple[float, dict[str, float]]:
    import ChannelAttribution
    import pandas as pd

    # The same paths leadflow trains on: converting journeys and non-converting ones.
    training = training_columns(
        touches, conversions, START, START + timedelta(days=365), timedelta(days=90)
    )
    paths = [p for p in merged_paths(training.paths) if p.channels]
    frame = pd.DataFrame(
        {
            "path": [" > ".join(p.channels) for p in paths],
            "conversions": [p.conversions for p in paths],
            "nulls": [p.non_conversions for p in paths],
        }
    )
    started = time.perf_counter()
    result = ChannelAttribution.markov_model(
        frame, "path", "conversions", var_null="nulls", order=1, ncore=1, verbose=False,
        flg_pro=False,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    table = result["result"] if isinstance(result, dict) else result
    return elapsed, dict(zip(table["channel_name"], table["total_conversions"], strict=True))


def main() -> None:
    log(f"generating {JOURNEYS:,} journeys")
    touches, conversions = generate()
    count = touches.size
    log(
        f"{count:,} touchpoints (mean {count / JOURNEYS:.2f} per journey),"
        f" {conversions.size:,} converting ({conversions.size / JOURNEYS:.1%}), 8 channels"
    )
    log("running ChannelAttribution's Markov model")
    theirs_s, theirs = channelattribution_markov(touches, conversions)
    log(f"ChannelAttribution Markov: {theirs_s:.2f} s")
    log("running leadflow's eight models")
    ours_s, ours = leadflow_all_models(touches, conversions)
    log(f"leadflow all eight models: {ours_s:.2f} s")
    log("Markov conversions per channel (leadflow / ChannelAttribution):")
    for channel in sorted(ours):
        log(f"  {channel:>15}: {ours[channel]:9.1f} / {theirs.get(channel, 0.0):9.1f}")
    bench_line("attribution_all_models", ours_s, "s", theirs_s, ours_s / theirs_s)


if __name__ == "__main__":
    main()
