"""One conversion's shares under a data-driven model (MARKOV, SHAPLEY).

A fit yields one weight per channel. As the proto documents (AttributionModel.SHAPLEY), a
conversion's credit goes to its touchpoints in proportion to their channel's weight, split
evenly among touchpoints of the same channel; a journey whose channels all weigh 0 (or are
unknown to the fit) is credited linearly.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from fractions import Fraction

from leadflow_attribution.domain.heuristics import Shares, linear


def shares_from_channel_weights(channels: Sequence[str], weights: Mapping[str, float]) -> Shares:
    """Exact shares per position for a journey whose channels are `channels` (channel_path).

    Negative, NaN and missing weights count as 0 (removal effects can come out a hair below
    zero in floating point).
    """
    if not channels:
        return ()
    counts = Counter(channels)
    per_touch: dict[str, Fraction] = {}
    total = Fraction(0)
    for channel, count in counts.items():
        weight = weights.get(channel, 0.0)
        exact = Fraction(weight) if math.isfinite(weight) and weight > 0 else Fraction(0)
        per_touch[channel] = exact / count
        total += exact
    if not total:
        return linear(len(channels))
    return tuple(per_touch[channel] / total for channel in channels)


def channel_weight_numerators(channels: Sequence[str], weights: Mapping[str, float]) -> list[int]:
    """Integers proportional to shares_from_channel_weights(channels, weights), position by
    position (1 each when it would credit linearly): the same exact credit through
    credit.allocate_numerators, without rational arithmetic on the hot path.

    A float weight is n / 2^k; over the common denominator 2^K x lcm(touch counts), a touch
    of channel c weighs n_c x 2^(K - k_c) x lcm / count_c.
    """
    if not channels:
        return []
    counts = Counter(channels)
    ratios: dict[str, tuple[int, int]] = {}
    for channel in counts:
        weight = weights.get(channel, 0.0)
        ratios[channel] = (
            weight.as_integer_ratio() if math.isfinite(weight) and weight > 0 else (0, 1)
        )
    if not any(n for n, _ in ratios.values()):
        return [1] * len(channels)
    scale = max(d for _, d in ratios.values())  # denominators are powers of two
    common = math.lcm(*counts.values())
    per_touch = {c: n * (scale // d) * (common // counts[c]) for c, (n, d) in ratios.items()}
    return [per_touch[c] for c in channels]
