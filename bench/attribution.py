"""`make bench-attribution`: all eight attribution models against ChannelAttribution's Markov.

BENCH_ATTRIBUTION_JOURNEYS (100,000) journeys of subjects over 8 channels, a mean of 5
touchpoints each, about 10% converting (the channels raise the odds unequally, so the
data-driven models have something to find). leadflow's time covers what the service does
for a tenant with that data: build the training paths from the touchpoints (converting and
non-converting journeys), fit the Markov chain (order 1) and the Shapley values, then credit
every conversion exactly under all eight models (six heuristics and the two fitted models).
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

from _common import bench_line

from leadflow_attribution.domain.attribution import attribute
from leadflow_attribution.domain.journey import Conversion, Touchpoint
from leadflow_attribution.domain.markov import fit_markov
from leadflow_attribution.domain.models import AttributionModel, AttributionOptions
from leadflow_attribution.domain.shapley import fit_shapley
from leadflow_attribution.domain.training import training_paths

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


def generate() -> tuple[dict[str, list[Touchpoint]], list[Conversion]]:
    rng = random.Random(SEED)
    names = list(CHANNELS)
    weights = [CHANNELS[c][0] for c in names]
    touchpoints: dict[str, list[Touchpoint]] = {}
    conversions: list[Conversion] = []
    for i in range(JOURNEYS):
        subject = f"lead:{i}"
        length = max(1, round(rng.expovariate(1 / 5)))
        channels = rng.choices(names, weights, k=length)
        at = START + timedelta(minutes=rng.randrange(60 * 24 * 60))
        journey = []
        for n, channel in enumerate(channels):
            journey.append(Touchpoint(f"e{i}-{n}", at, channel, f"{channel}-src"))
            at += timedelta(minutes=rng.randrange(1, 60 * 24 * 3))
        touchpoints[subject] = journey
        logit = BASE_LOGIT + sum(CHANNELS[c][1] for c in set(channels))
        if rng.random() < 1 / (1 + pow(2.718281828459045, -logit)):
            value = rng.choice(["49.00", "99.00", "249.99"])
            conversions.append(Conversion(f"c{i}", subject, "purchase", at, Decimal(value), "USD"))
    return touchpoints, conversions


def leadflow_all_models(
    touchpoints: dict[str, list[Touchpoint]], conversions: list[Conversion]
) -> tuple[float, dict[str, float]]:
    options = AttributionOptions()
    end = START + timedelta(days=365)
    started = time.perf_counter()
    training = training_paths(touchpoints, conversions, START, end, options.lookback_window)
    paths_at = time.perf_counter()
    markov = fit_markov(training.paths, 1)
    markov_at = time.perf_counter()
    shapley = fit_shapley(training.paths)
    shapley_at = time.perf_counter()
    fitted = {
        AttributionModel.MARKOV: markov.weights(),
        AttributionModel.SHAPLEY: shapley.weights(),
    }
    models = tuple(AttributionModel)
    credited = 0
    for conversion in conversions:
        result = attribute(touchpoints[conversion.subject], conversion, options, models, fitted)
        credited += len(result.credits)
    done = time.perf_counter()
    assert credited == 8 * len(conversions)
    log(
        f"leadflow: training paths {paths_at - started:.2f} s,"
        f" Markov fit {markov_at - paths_at:.2f} s"
        f" ({markov.state_count} states, {markov.sweeps} sweeps), Shapley fit"
        f" {shapley_at - markov_at:.2f} s, credits under 8 models for {len(conversions):,}"
        f" conversions {done - shapley_at:.2f} s"
    )
    return done - started, {c.channel: c.conversions for c in markov.credits}


def channelattribution_markov(
    touchpoints: dict[str, list[Touchpoint]], conversions: list[Conversion]
) -> tuple[float, dict[str, float]]:
    import ChannelAttribution
    import pandas as pd

    # The same paths leadflow trains on: converting journeys and non-converting ones.
    training = training_paths(
        touchpoints, conversions, START, START + timedelta(days=365), timedelta(days=90)
    )
    frame = pd.DataFrame(
        {
            "path": [" > ".join(p.channels) for p in training.paths if p.channels],
            "conversions": [p.conversions for p in training.paths if p.channels],
            "nulls": [p.non_conversions for p in training.paths if p.channels],
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
    touchpoints, conversions = generate()
    count = sum(len(j) for j in touchpoints.values())
    log(
        f"{count:,} touchpoints (mean {count / JOURNEYS:.2f} per journey),"
        f" {len(conversions):,} converting ({len(conversions) / JOURNEYS:.1%}), 8 channels"
    )
    log("running ChannelAttribution's Markov model")
    theirs_s, theirs = channelattribution_markov(touchpoints, conversions)
    log(f"ChannelAttribution Markov: {theirs_s:.2f} s")
    log("running leadflow's eight models")
    ours_s, ours = leadflow_all_models(touchpoints, conversions)
    log(f"leadflow all eight models: {ours_s:.2f} s")
    log("Markov conversions per channel (leadflow / ChannelAttribution):")
    for channel in sorted(ours):
        log(f"  {channel:>15}: {ours[channel]:9.1f} / {theirs.get(channel, 0.0):9.1f}")
    bench_line("attribution_all_models", ours_s, "s", theirs_s, ours_s / theirs_s)


if __name__ == "__main__":
    main()
