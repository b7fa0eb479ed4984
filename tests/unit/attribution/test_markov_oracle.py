"""The Markov model agrees with ChannelAttribution (PyPI `channelattribution`, the R/Python
package by Altomare & Loris) on the same journeys: per channel, within 1% of the total
conversions (and of the total value), for order 1 and 2.

ChannelAttribution estimates removal effects by simulating paths through the chain; we ask
for 10^6 simulated paths (seeded) and `max_step=1000`, so its simulation does not cut long
paths short (its default stops at the longest path in the data and counts the rest as
non-converting, which the exact absorbing chain does not).
"""

from __future__ import annotations

import math
import random

import ChannelAttribution
import pandas as pd
import pytest

from leadflow_attribution.domain.channel_paths import ChannelPath
from leadflow_attribution.domain.markov import fit_markov

# Known effects: each channel present in a journey adds this to the log-odds of converting.
EFFECTS = {
    "email": 1.2,
    "paid_search": 0.8,
    "referral": 0.5,
    "direct": 0.2,
    "organic_social": 0.0,
    "display": -0.3,
}
POPULARITY = {
    "email": 3,
    "paid_search": 2,
    "referral": 1,
    "direct": 2,
    "organic_social": 3,
    "display": 2,
}


def generate(count: int, seed: int) -> list[ChannelPath]:
    rng = random.Random(seed)
    names = list(POPULARITY)
    weights = [POPULARITY[name] for name in names]
    paths = []
    for _ in range(count):
        length = min(1 + int(rng.expovariate(1 / 2.5)), 10)
        channels = tuple(rng.choices(names, weights, k=length))
        logit = -2.5 + sum(EFFECTS[c] for c in set(channels))
        converted = rng.random() < 1 / (1 + math.exp(-logit))
        value = rng.choice([50.0, 100.0, 250.0]) if converted else 0.0
        paths.append(ChannelPath(channels, int(converted), int(not converted), value))
    return paths


def as_frame(paths: list[ChannelPath]) -> pd.DataFrame:
    rows: dict[str, list[float]] = {}
    for path in paths:
        row = rows.setdefault(" > ".join(path.channels), [0, 0, 0.0])
        row[0] += path.conversions
        row[1] += path.non_conversions
        row[2] += path.value
    return pd.DataFrame(
        {
            "path": list(rows),
            "conversions": [r[0] for r in rows.values()],
            "nulls": [r[1] for r in rows.values()],
            "value": [r[2] for r in rows.values()],
        }
    )


@pytest.fixture(scope="module")
def paths() -> list[ChannelPath]:
    return generate(3_000, seed=7)


@pytest.mark.parametrize("order", [1, 2])
def test_markov_agrees_with_channelattribution(paths, order):
    result = ChannelAttribution.markov_model(
        as_frame(paths),
        "path",
        "conversions",
        var_value="value",
        var_null="nulls",
        order=order,
        nsim_start=1e6,
        max_step=1000,
        seed=1,
        ncore=1,
        verbose=False,
        flg_pro=False,
    )
    table = result["result"] if isinstance(result, dict) else result
    theirs = dict(zip(table["channel_name"], table["total_conversions"], strict=True))
    their_value = dict(zip(table["channel_name"], table["total_conversion_value"], strict=True))

    fit = fit_markov(paths, order)
    ours = {c.channel: c.conversions for c in fit.credits}
    our_value = {c.channel: c.value for c in fit.credits}

    total = fit.stats.attributed_conversions
    total_value = fit.stats.attributed_value
    assert total == sum(p.conversions for p in paths) > 300
    assert set(ours) == set(theirs) == set(EFFECTS)
    for channel in EFFECTS:
        assert abs(ours[channel] - theirs[channel]) <= 0.01 * total, channel
        assert abs(our_value[channel] - their_value[channel]) <= 0.01 * total_value, channel
    # On these journeys order 1 and order 2 differ by ~0.7% of the conversions, less than
    # the 1% asked for; the simulation's own noise is ~0.05%. A 0.3% bound tells a wrong
    # state definition from sampling noise.
    worst = max(abs(ours[c] - theirs[c]) for c in EFFECTS)
    assert worst <= 0.003 * total
    assert sum(ours.values()) == pytest.approx(total)
    # The strongest, most common channel earns the most credit under both.
    assert max(ours, key=ours.__getitem__) == max(theirs, key=theirs.__getitem__) == "email"
