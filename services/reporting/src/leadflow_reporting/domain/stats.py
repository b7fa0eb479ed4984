"""Statistics of the insight and A/B reports: the two-proportion z-test (pooled standard
error, two-sided p from the normal distribution via math.erfc), Wilson score intervals and
the plain-language number formats the findings use."""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist


@dataclass(frozen=True)
class ZTest:
    z: float
    p_value: float
    significant: bool

    @property
    def confidence(self) -> float:
        return 1.0 - self.p_value


def two_sided_p(z: float) -> float:
    """P(|Z| >= |z|) for a standard normal Z: erfc(|z| / sqrt 2)."""
    return math.erfc(abs(z) / math.sqrt(2.0))


def two_proportion_z(x_a: int, n_a: int, x_b: int, n_b: int, alpha: float = 0.05) -> ZTest:
    """z = (p_a - p_b) / sqrt(p (1 - p) (1/n_a + 1/n_b)), p the pooled rate; positive when
    a converts better. No difference to test (an empty group, or a pooled rate of 0 or 1):
    z 0, p 1."""
    if n_a <= 0 or n_b <= 0:
        return ZTest(0.0, 1.0, False)
    pooled = (x_a + x_b) / (n_a + n_b)
    variance = pooled * (1.0 - pooled) * (1.0 / n_a + 1.0 / n_b)
    if variance <= 0.0:
        return ZTest(0.0, 1.0, False)
    z = (x_a / n_a - x_b / n_b) / math.sqrt(variance)
    p = two_sided_p(z)
    return ZTest(z, p, p < alpha)


def z_quantile(confidence: float) -> float:
    """The two-sided critical value: 1.959964 for 0.95."""
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion; (0, 0) for an empty sample."""
    if n <= 0:
        return 0.0, 0.0
    z = z_quantile(confidence)
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def rate(successes: int, n: int) -> float:
    return successes / n if n else 0.0


def percent(value: float) -> str:
    """0.25 -> "25%", 0.124 -> "12.4%": one decimal, dropped when it is 0."""
    text = f"{value * 100:.1f}"
    return (text[:-2] if text.endswith(".0") else text) + "%"


def p_text(p: float) -> str:
    """p to three decimals ("p = 0.003"); "p < 0.001" when that would read 0.000."""
    return "p < 0.001" if p < 0.0005 else f"p = {p:.3f}"


def display(value: str) -> str:
    """A dimension value as a sentence starts it: "email" -> "Email"."""
    return value[:1].upper() + value[1:] if value else value
