"""The weekly report's renderings: SVG chart geometry (bar and point heights proportional to
the values, empty data), a self-contained HTML document with every text escaped (hostile
brand, channel and title names), the empty week, number formats, and the plain text with
the same content."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from weekly_support import Figures, RaisedAlert

from leadflow_reporting.domain import charts, kpis, weekly
from leadflow_reporting.domain.insights import Finding, Kind
from leadflow_reporting.domain.quality import LeadScoreRow, quality
from leadflow_reporting.domain.weekly_render import html, text

HOSTILE = '<script>alert("x")</script>'


@dataclass
class Row:
    key: str
    conversions: float


@dataclass
class Model:
    model: int
    rows: list[Row]
    total: float


class Elements(HTMLParser):
    """Every start tag with its attributes, and the text outside tags."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.texts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.texts.append(data)

    def of(self, tag: str, cls: str = "") -> list[dict[str, str]]:
        return [
            a for t, a in self.tags if t == tag and (not cls or cls in a.get("class", "").split())
        ]


def parse(markup: str) -> Elements:
    p = Elements()
    p.feed(markup)
    p.close()
    return p


def summary(brand: str = "modumind", empty: bool = False) -> weekly.WeeklySummary:
    week = weekly.week_at(date(2025, 3, 3), "Europe/Paris")
    brands = (
        []
        if empty
        else [
            Figures(brand, 40, 90, 300, 30, 24, {"USD": Decimal("1234.5")}, 3, 1, 9),
            Figures("stacksense", 20, 50, 200, 12, 10, {}, 0, 0, 1),
        ]
    )
    total = Figures("") if empty else Figures("", 60, 140, 500, 42, 34, {"USD": Decimal("1234.5")})
    changes = (
        []
        if empty
        else [
            kpis.KpiChange(kpis.CONVERSIONS, "", 42, 60),
            kpis.KpiChange(kpis.LEADS, "", 60, 50),
            kpis.KpiChange(kpis.REVENUE, "", Decimal("1250"), Decimal("1000"), "USD"),
            kpis.KpiChange(kpis.CONVERSIONS, brand, 30, 30),
        ]
    )
    findings = (
        []
        if empty
        else [
            Finding(
                f"{HOSTILE} converts at 25% (12/48), Twitter at 0% (0/40): the difference is"
                " significant (p = 0.001)",
                Kind.CONVERSION_RATE_GAP,
                12.0,
                (HOSTILE, "twitter"),
                None,
                weekly.DIMENSION_SOURCE,
            )
        ]
    )
    models = (
        []
        if empty
        else [
            Model(1, [Row("email", 12), Row(HOSTILE, 3.5)], 15.5),
            Model(2, [Row("email", 10), Row(HOSTILE, 5.5)], 15.5),
            Model(3, [Row("email", 11), Row(HOSTILE, 4.5)], 15.5),
        ]
    )
    leads = (
        []
        if empty
        else [
            LeadScoreRow(brand, 91, 1, 3),
            LeadScoreRow(brand, 50, 4, 2),
            LeadScoreRow(brand, 20, 7, 1),
        ]
    )
    days = [
        weekly.DayCount(d.day, 0 if empty else 100 + 10 * i, 0 if empty else i)
        for i, d in enumerate(week.days())
    ]
    alerts = (
        [] if empty else [RaisedAlert(kpis.CONVERSIONS, brand, f"{HOSTILE} conversions were 3")]
    )
    return weekly.summary(
        title=f"{brand} weekly report, {week.label}",
        week=week,
        previous_week=weekly.week_before(week),
        kpi_changes=changes,
        total=total,
        brands=brands,
        findings=findings,
        attribution=models,
        lead_quality=quality("", leads),
        days=days,
        alerts=alerts,
    )


# Charts --------------------------------------------------------------------------------


def test_bar_heights_are_proportional_to_the_values_on_one_baseline() -> None:
    chart = charts.Chart(
        "Leads",
        ("a", "b", "c"),
        (charts.Series("new", (10.0, 25.0, 40.0)), charts.Series("won", (5.0, 0.0, 20.0))),
        "Brand",
        "Count",
    )
    svg = parse(charts.bar_chart(chart))
    bars = svg.of("rect", "bar")
    assert len(bars) == 6
    values = [float(b["data-value"]) for b in bars]
    assert values == [10.0, 5.0, 25.0, 0.0, 40.0, 20.0]
    heights = [float(b["height"]) for b in bars]
    scale = charts.axis(40.0, whole=True)
    assert scale.top >= 40
    for v, h, b in zip(values, heights, bars, strict=True):
        assert h == pytest.approx(v / scale.top * charts.PLOT_H, abs=0.01)
        assert float(b["y"]) + h == pytest.approx(charts.BASELINE, abs=0.01)
    assert heights[4] == pytest.approx(4 * heights[0], abs=0.02)
    assert heights[0] == pytest.approx(2 * heights[1], abs=0.02)
    # Bars never overlap and stay inside the plot.
    spans = sorted((float(b["x"]), float(b["x"]) + float(b["width"])) for b in bars)
    assert all(a[1] <= b[0] + 1e-6 for a, b in itertools.pairwise(spans))
    assert spans[0][0] >= charts.LEFT and spans[-1][1] <= charts.LEFT + charts.PLOT_W


def test_line_points_are_proportional_and_the_path_goes_through_them() -> None:
    chart = charts.Chart(
        "Per day", ("Mon", "Tue", "Wed"), (charts.Series("events", (0.0, 50.0, 100.0)),), "Day", "N"
    )
    svg = parse(charts.line_chart(chart))
    points = svg.of("circle", "point")
    lows = [charts.BASELINE - float(p["cy"]) for p in points]
    assert lows[0] == pytest.approx(0.0)
    assert lows[2] == pytest.approx(2 * lows[1], abs=0.02)
    (path,) = svg.of("path", "line")
    xy = re.findall(r"[ML]([\d.]+),([\d.]+)", path["d"])
    assert [(float(x), float(y)) for x, y in xy] == [
        (pytest.approx(float(p["cx"])), pytest.approx(float(p["cy"]))) for p in points
    ]


@pytest.mark.parametrize(
    "chart",
    [
        charts.Chart("Nothing", (), (), "x", "y"),
        charts.Chart("Zeros", ("a", "b"), (charts.Series("s", (0.0, 0.0)),), "x", "y"),
        charts.Chart("No series", ("a",), (), "x", "y"),
        charts.Chart("Not a number", ("a",), (charts.Series("s", (float("nan"),)),), "x", "y"),
    ],
)
def test_empty_data_draws_a_message_not_a_plot(chart: charts.Chart) -> None:
    for draw in (charts.bar_chart, charts.line_chart):
        markup = draw(chart)
        svg = parse(markup)
        assert svg.of("rect", "bar") == [] and svg.of("circle", "point") == []
        assert charts.NO_DATA in markup
        assert "nan" not in markup.lower().replace("no data", "") and "inf" not in markup
        (root,) = svg.of("svg")
        assert root["viewbox"] == f"0 0 {charts.WIDTH} {charts.HEIGHT}"
        assert root["aria-label"] == chart.title


def test_a_chart_has_a_title_axis_labels_ticks_and_a_legend() -> None:
    chart = charts.Chart(
        HOSTILE, ("x" * 30,), (charts.Series("a", (3.0,)), charts.Series("b", (1.0,))), "X", "Y"
    )
    markup = charts.bar_chart(chart)
    svg = parse(markup)
    assert "<script" not in markup
    assert svg.of("svg")[0]["aria-label"] == HOSTILE  # escaped in the markup, intact parsed
    assert [a for a in svg.texts if a in ("X", "Y")] == ["X", "Y"]
    ticks = [t for t, a in svg.tags if t == "text" and a.get("class") == "tick"]
    assert len(ticks) >= 2
    assert len(svg.of("text", "legend")) == 2
    assert "x" * 13 + "\u2026" in markup  # long category labels are shortened


@pytest.mark.parametrize(
    ("peak", "whole", "top"),
    [(1, True, 1), (3, True, 3), (7, True, 8), (40, True, 40), (50, True, 60), (160, True, 200),
     (16.5, False, 20), (0.3, False, 0.3), (0, True, 1)],
)  # fmt: skip
def test_axis_tops_are_round(peak: float, whole: bool, top: float) -> None:
    scale = charts.axis(peak, whole)
    assert scale.top == pytest.approx(top)
    assert scale.top >= peak
    if whole:
        assert scale.step == int(scale.step)


# The HTML document ---------------------------------------------------------------------


def test_hostile_names_are_escaped_everywhere() -> None:
    s = summary(brand=HOSTILE)
    doc = html(s)
    assert "<script" not in doc.lower()
    assert "&lt;script&gt;" in doc
    page = parse(doc)
    assert page.of("script") == []
    # The parsed text holds the names intact: in the title, the KPI and brand tables, the
    # attribution chart, the insights, the actions and the alerts.
    texts = "".join(page.texts)
    assert texts.count(HOSTILE) >= 6
    assert f"{HOSTILE} weekly report" in texts


def test_the_document_is_self_contained_with_four_charts() -> None:
    doc = html(summary())
    page = parse(doc)
    assert doc.startswith("<!DOCTYPE html>")
    assert page.of("link") == [] and page.of("script") == [] and page.of("img") == []
    assert not [a for _, a in page.tags if "src" in a or "href" in a]
    assert re.findall(r"https?://[^\s\"']+", doc) == ["http://www.w3.org/2000/svg"] * 4
    svgs = page.of("svg")
    assert len(svgs) == 4
    assert all(a["role"] == "img" and a["aria-label"] and a["viewbox"] for a in svgs)
    # Brands x 2, channels x 3 models, the seven grades (zero bars included).
    assert len(page.of("rect", "bar")) == 4 + 6 + 7
    assert len(page.of("path", "line")) == 2  # events and conversions per day
    assert len(page.of("circle", "point")) == 14


def test_kpi_table_arrows_and_number_formats() -> None:
    doc = html(summary())
    assert "\u25bc</span> -30%" in doc  # conversions 42 vs 60
    assert "\u25b2</span> +20%" in doc  # leads 60 vs 50
    assert "=</span> no change" in doc
    assert (
        "1,234.50 USD" in doc and "1,000.00 USD" in doc and "1,250.00 USD" in doc and "+25%" in doc
    )
    assert '<td class="n bad">' in doc and '<td class="n good">' in doc
    assert "8%" in doc  # modumind's conversion rate, 24 of 300


def test_an_empty_week_renders_every_section_with_no_data() -> None:
    s = summary(empty=True)
    doc = html(s)
    page = parse(doc)
    assert len(page.of("svg")) == 4
    assert doc.count(charts.NO_DATA) == 4
    assert page.of("rect", "bar") == []
    for line in ("No findings this week.", "Nothing stands out this week.", "No alerts"):
        assert line in doc
    plain = text(s)
    assert plain.count("no data this week") == 2  # per day, attribution
    assert "nan" not in (doc + plain).lower().replace("no data", "")


def test_the_text_version_has_the_same_content() -> None:
    s = summary()
    plain = text(s)
    assert "<" not in plain.replace(HOSTILE, "")
    for needle in [
        s.title,
        *(f.text for f in s.top_insights),
        *(a.text for a in s.actions),
        *(a.rationale for a in s.actions),
        *(a.message for a in s.alerts),
        "1,234.50 USD",
        "\u25bc -30%",
        "Mon 2025-03-03  events       100  conversions       0",
        "Sun 2025-03-09  events       160  conversions       6",
        "Grades: A+ 1, A 0, B+ 0, B 1, C+ 0, C 0, D 1",
    ]:
        assert needle in plain, needle
    assert plain.index("Key figures") < plain.index("Activity per day") < plain.index("Alerts")
