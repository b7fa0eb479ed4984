"""Charts as inline SVG for the weekly report: grouped bars and lines over categories, each
with a title, axis labels, a legend when there are several series, and "no data this week"
instead of a plot when there is nothing to draw. Pure: data in, markup out, every text
escaped. Bar and point heights are proportional to the values, scaled to an axis of round
gridlines."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 720, 320
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 48, 64
PLOT_W = WIDTH - LEFT - RIGHT
PLOT_H = HEIGHT - TOP - BOTTOM
BASELINE = TOP + PLOT_H
PALETTE = ("#2563eb", "#f97316", "#16a34a", "#9333ea", "#dc2626", "#0891b2")
NO_DATA = "no data this week"
TICKS = 4
LABEL_CHARS = 14
# Value labels above the bars only while they fit.
MAX_LABELLED_BARS = 24


@dataclass(frozen=True)
class Series:
    name: str
    values: tuple[float, ...]  # one per category; missing ones count 0


@dataclass(frozen=True)
class Chart:
    title: str
    categories: tuple[str, ...]
    series: tuple[Series, ...]
    x_label: str
    y_label: str


def plain_number(value: float) -> str:
    """12 -> "12", 1234.5 -> "1,234.5", 0.25 -> "0.25"."""
    if value == int(value):
        return f"{int(value):,}"
    text = f"{value:,.2f}".rstrip("0").rstrip(".")
    return text


@dataclass(frozen=True)
class Axis:
    top: float  # the axis maximum, a whole number of steps
    step: float  # between gridlines


def axis(peak: float, whole: bool = False) -> Axis:
    """Round gridlines: a step of 1, 2, 2.5 or 5 x 10^k (whole numbers only for whole data)
    making about TICKS steps up to the peak; the top is the first step at or above it. No
    positive value: an axis from 0 to 1."""
    if not math.isfinite(peak) or peak <= 0:
        return Axis(1.0, 1.0)
    raw = peak / TICKS
    exponent = math.floor(math.log10(raw))
    step = 10.0 ** (exponent + 1)
    for m in (1.0, 2.0, 2.5, 5.0):
        candidate = m * 10.0**exponent
        if whole and candidate != int(candidate):
            continue
        if candidate >= raw * (1 - 1e-12):
            step = candidate
            break
    if whole:
        step = max(step, 1.0)
    return Axis(math.ceil(peak / step - 1e-9) * step, step)


def height(value: float, top: float) -> float:
    """Pixels of a bar of `value` on an axis whose maximum is `top` (top > 0)."""
    return max(value, 0.0) / top * PLOT_H


def _f(v: float) -> str:
    return f"{v:.2f}".rstrip("0").rstrip(".")


def _short(label: str, limit: int = LABEL_CHARS) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "\u2026"


def _value(series: Series, i: int) -> float:
    v = series.values[i] if i < len(series.values) else 0.0
    return float(v) if math.isfinite(v) else 0.0


def _has_data(chart: Chart) -> bool:
    return bool(chart.categories) and any(
        _value(s, i) > 0 for s in chart.series for i in range(len(chart.categories))
    )


def _open(chart: Chart, kind: str) -> list[str]:
    title = escape(chart.title)
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart {kind}"'
        f' viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}"'
        f' role="img" aria-label="{title}">',
        f"<title>{title}</title>",
        f'<text class="chart-title" x="{LEFT}" y="22" font-size="15"'
        f' font-weight="600" fill="#111827">{title}</text>',
    ]


def _axis_labels(chart: Chart) -> list[str]:
    middle = TOP + PLOT_H / 2
    return [
        f'<text class="axis-label" x="{_f(LEFT + PLOT_W / 2)}" y="{HEIGHT - 10}"'
        f' text-anchor="middle" font-size="12" fill="#374151">{escape(chart.x_label)}</text>',
        f'<text class="axis-label" transform="translate(16 {_f(middle)}) rotate(-90)"'
        f' text-anchor="middle" font-size="12" fill="#374151">{escape(chart.y_label)}</text>',
    ]


def _frame() -> str:
    return (
        f'<line class="axis" x1="{LEFT}" y1="{BASELINE}" x2="{LEFT + PLOT_W}" y2="{BASELINE}"'
        ' stroke="#6b7280"/>'
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{BASELINE}" stroke="#6b7280"/>'
    )


def _grid(scale: Axis, fmt: Callable[[float], str]) -> list[str]:
    out = []
    for k in range(round(scale.top / scale.step) + 1):
        value = k * scale.step
        y = BASELINE - height(value, scale.top)
        if k:
            out.append(
                f'<line class="grid" x1="{LEFT}" y1="{_f(y)}" x2="{LEFT + PLOT_W}" y2="{_f(y)}"'
                ' stroke="#e5e7eb"/>'
            )
        out.append(
            f'<text class="tick" x="{LEFT - 6}" y="{_f(y + 4)}" text-anchor="end"'
            f' font-size="11" fill="#4b5563">{escape(fmt(value))}</text>'
        )
    return out


def _categories(chart: Chart, slot: float) -> list[str]:
    return [
        f'<text class="category" x="{_f(LEFT + (i + 0.5) * slot)}" y="{BASELINE + 18}"'
        f' text-anchor="middle" font-size="11" fill="#374151">{escape(_short(c))}'
        f"<title>{escape(c)}</title></text>"
        for i, c in enumerate(chart.categories)
    ]


def _legend(series: Sequence[Series]) -> list[str]:
    if len(series) < 2:
        return []
    out = []
    x = WIDTH - RIGHT
    for j in reversed(range(len(series))):
        name = _short(series[j].name, 24)
        x -= 7 * len(name) + 26
        out.append(
            f'<rect class="legend-key" x="{x}" y="12" width="12" height="12"'
            f' fill="{PALETTE[j % len(PALETTE)]}"/>'
            f'<text class="legend" x="{x + 16}" y="22" font-size="12" fill="#374151">'
            f"{escape(name)}</text>"
        )
    return out


def _empty(chart: Chart, kind: str) -> str:
    parts = _open(chart, kind)
    parts.append(_frame())
    parts += _axis_labels(chart)
    parts.append(
        f'<text class="no-data" x="{_f(LEFT + PLOT_W / 2)}" y="{_f(TOP + PLOT_H / 2)}"'
        f' text-anchor="middle" font-size="14" fill="#6b7280">{NO_DATA}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(chart: Chart, fmt: Callable[[float], str] = plain_number) -> str:
    """Grouped vertical bars: one group per category, one bar per series."""
    if not _has_data(chart) or not chart.series:
        return _empty(chart, "bars")
    n = len(chart.categories)
    values = [_value(s, i) for s in chart.series for i in range(n)]
    scale = axis(max(values), all(v == int(v) for v in values))
    top = scale.top
    slot = PLOT_W / n
    group = slot * 0.8
    width = group / len(chart.series)
    labelled = n * len(chart.series) <= MAX_LABELLED_BARS
    parts = _open(chart, "bars") + _grid(scale, fmt)
    for i, category in enumerate(chart.categories):
        x0 = LEFT + i * slot + (slot - group) / 2
        for j, s in enumerate(chart.series):
            v = _value(s, i)
            h = height(v, top)
            x = x0 + j * width
            tip = f"{s.name}, {category}: {fmt(v)}"
            parts.append(
                f'<rect class="bar" x="{_f(x)}" y="{_f(BASELINE - h)}" width="{_f(width)}"'
                f' height="{_f(h)}" fill="{PALETTE[j % len(PALETTE)]}" data-value="{v!r}">'
                f"<title>{escape(tip)}</title></rect>"
            )
            if labelled and v > 0:
                parts.append(
                    f'<text class="value" x="{_f(x + width / 2)}" y="{_f(BASELINE - h - 4)}"'
                    f' text-anchor="middle" font-size="10" fill="#111827">{escape(fmt(v))}</text>'
                )
    parts.append(_frame())
    parts += _categories(chart, slot) + _axis_labels(chart) + _legend(chart.series)
    parts.append("</svg>")
    return "".join(parts)


def line_chart(chart: Chart, fmt: Callable[[float], str] = plain_number) -> str:
    """One line per series through the categories, a marked point at each."""
    if not _has_data(chart) or not chart.series:
        return _empty(chart, "lines")
    n = len(chart.categories)
    values = [_value(s, i) for s in chart.series for i in range(n)]
    scale = axis(max(values), all(v == int(v) for v in values))
    top = scale.top
    slot = PLOT_W / n
    parts = _open(chart, "lines") + _grid(scale, fmt)
    for j, s in enumerate(chart.series):
        colour = PALETTE[j % len(PALETTE)]
        points = [(LEFT + (i + 0.5) * slot, BASELINE - height(_value(s, i), top)) for i in range(n)]
        d = " ".join(f"{'M' if i == 0 else 'L'}{_f(x)},{_f(y)}" for i, (x, y) in enumerate(points))
        parts.append(
            f'<path class="line" d="{d}" fill="none" stroke="{colour}" stroke-width="2.5"/>'
        )
        for i, (x, y) in enumerate(points):
            v = _value(s, i)
            tip = f"{s.name}, {chart.categories[i]}: {fmt(v)}"
            parts.append(
                f'<circle class="point" cx="{_f(x)}" cy="{_f(y)}" r="4" fill="{colour}"'
                f' data-value="{v!r}"><title>{escape(tip)}</title></circle>'
            )
            parts.append(
                f'<text class="value" x="{_f(x)}" y="{_f(y - 8)}" text-anchor="middle"'
                f' font-size="10" fill="{colour}">{escape(fmt(v))}</text>'
            )
    parts.append(_frame())
    parts += _categories(chart, slot) + _axis_labels(chart) + _legend(chart.series)
    parts.append("</svg>")
    return "".join(parts)
