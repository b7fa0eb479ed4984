"""The weekly report rendered from its summary: a self-contained HTML5 document (inline CSS,
inline SVG charts, no scripts, no external assets, every text escaped) and a plain-text
version with the same content in the same order. Pure functions."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from leadflow_reporting.domain import kpis
from leadflow_reporting.domain.charts import Chart, Series, bar_chart, line_chart
from leadflow_reporting.domain.quality import GRADES
from leadflow_reporting.domain.stats import percent
from leadflow_reporting.domain.weekly import (
    MODEL_NAMES,
    BrandWeek,
    WeeklySummary,
    change_text,
    kpi_label,
    kpi_value,
    money,
    number,
)

GRADE_NAMES = {1: "A+", 2: "A", 3: "B+", 4: "B", 5: "C+", 6: "C", 7: "D"}
TEMPERATURE_NAMES = {3: "hot", 2: "warm", 1: "cold"}
ARROWS = {kpis.UP: "\u25b2", kpis.DOWN: "\u25bc", kpis.FLAT: "="}
# Channels shown in the attribution chart (the most credited over the three models).
ATTRIBUTION_CHANNELS = 8
NUM = ' class="n"'

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
color:#111827;background:#ffffff;margin:0;padding:24px;line-height:1.45}
main{max-width:960px;margin:0 auto}
h1{font-size:26px;margin:0 0 4px}
h2{font-size:19px;margin:28px 0 8px;border-bottom:1px solid #e5e7eb;padding-bottom:4px}
p.period{color:#4b5563;margin:0 0 12px}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #f3f4f6}
th{background:#f9fafb;font-weight:600}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.good{color:#15803d}.bad{color:#b91c1c}.flat{color:#6b7280}
svg.chart{display:block;width:100%;max-width:900px;height:auto;margin:8px 0}
ol li{margin:4px 0}.rationale{color:#4b5563}
p.none{color:#6b7280}
"""


def _tone(change: kpis.KpiChange) -> str:
    if change.direction == kpis.FLAT:
        return "flat"
    return "good" if change.favourable else "bad"


def _brand_revenue(b: BrandWeek) -> str:
    return "; ".join(money(v, c) for c, v in sorted(b.revenue.items()) if c) or "-"


def _day_label(s: WeeklySummary, i: int) -> str:
    d = s.days[i].day
    return f"{d.strftime('%a')} {d.day} {d.strftime('%b')}"


def _attribution_channels(s: WeeklySummary) -> list[str]:
    totals: dict[str, float] = {}
    for m in s.attribution:
        for r in m.rows:
            totals[r.key] = totals.get(r.key, 0.0) + r.conversions
    ranked = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))
    return [k for k, _ in ranked[:ATTRIBUTION_CHANNELS]]


def charts(s: WeeklySummary) -> list[tuple[str, str]]:
    """(heading, svg) of each chart, in report order."""
    brands = tuple(b.brand_id for b in s.brands)
    by_brand = Chart(
        "New leads and conversions by brand",
        brands,
        (
            Series("New leads", tuple(float(b.new_leads) for b in s.brands)),
            Series("Conversions", tuple(float(b.conversions) for b in s.brands)),
        ),
        "Brand",
        "Count",
    )
    per_day = Chart(
        "Events and conversions per day",
        tuple(_day_label(s, i) for i in range(len(s.days))),
        (
            Series("Events", tuple(float(d.events) for d in s.days)),
            Series("Conversions", tuple(float(d.conversions) for d in s.days)),
        ),
        f"Day ({s.week.time_zone})",
        "Count",
    )
    channels = _attribution_channels(s)
    attribution = Chart(
        "Conversions credited by channel",
        tuple(channels),
        tuple(
            Series(
                MODEL_NAMES.get(m.model, str(m.model)),
                tuple(
                    sum(r.conversions for r in m.rows if r.key == channel) for channel in channels
                ),
            )
            for m in s.attribution
        ),
        "Channel",
        "Conversions credited",
    )
    counts = dict((g, c) for g, c, _ in s.lead_quality.grades)
    grades = Chart(
        "Leads by grade",
        tuple(GRADE_NAMES[g] for g in GRADES),
        (Series("Leads", tuple(float(counts.get(g, 0)) for g in GRADES)),),
        "Grade",
        "Leads",
    )
    return [
        ("Leads and conversions by brand", bar_chart(by_brand)),
        ("Activity per day", line_chart(per_day)),
        ("Attribution by channel", bar_chart(attribution)),
        ("Lead quality", bar_chart(grades)),
    ]


def _period(s: WeeklySummary) -> str:
    return (
        f"Week {s.week.label} ({s.week.time_zone}), compared with the week {s.previous_week.label}"
    )


def _quality_line(s: WeeklySummary) -> str:
    q = s.lead_quality
    temps = ", ".join(f"{c:,} {TEMPERATURE_NAMES.get(t, '?')}" for t, c, _ in q.temperatures)
    return (
        f"{q.lead_count:,} leads, {q.scored_count:,} scored (latest scores); average score"
        f" {q.average_score:.1f}, median {q.median_score:.1f}; {temps}"
    )


BRAND_COLUMNS = (
    "Brand",
    "New leads",
    "Active",
    "Conversions",
    "Conv. rate",
    "Revenue",
    "Routed in",
    "SLA breaches",
    "Hot now",
)


def _brand_cells(b: BrandWeek) -> list[str]:
    return [
        b.brand_id or "all brands",
        number(b.new_leads),
        number(b.active),
        number(b.conversions),
        percent(b.conversion_rate),
        _brand_revenue(b),
        number(b.routed_in),
        number(b.sla_breaches),
        number(b.hot_leads),
    ]


# ---------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------


def _list(items: Sequence[str], empty: str) -> str:
    if not items:
        return f'<p class="none">{escape(empty)}</p>'
    return "<ol>" + "".join(f"<li>{i}</li>" for i in items) + "</ol>"


def html(s: WeeklySummary) -> str:
    out = [
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
        f"<title>{escape(s.title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n",
        f"<h1>{escape(s.title)}</h1>\n",
        f'<p class="period">{escape(_period(s))}</p>\n',
        "<section>\n<h2>Key figures, week over week</h2>\n",
    ]
    if s.kpis:
        out.append(
            '<table class="kpis"><thead><tr><th>Scope</th><th>KPI</th>'
            '<th class="n">This week</th><th class="n">Previous week</th>'
            '<th class="n">Change</th></tr></thead><tbody>'
        )
        for c in s.kpis:
            tone = _tone(c)
            out.append(
                f"<tr><td>{escape(c.brand_id or 'portfolio')}</td>"
                f"<td>{escape(kpi_label(c))}</td>"
                f'<td class="n">{escape(kpi_value(c, c.current))}</td>'
                f'<td class="n">{escape(kpi_value(c, c.previous))}</td>'
                f'<td class="n {tone}"><span class="arrow">{ARROWS[c.direction]}</span> '
                f"{escape(change_text(c))}</td></tr>"
            )
        out.append("</tbody></table>\n")
    else:
        out.append('<p class="none">No figures.</p>\n')
    out.append("</section>\n")
    rendered = charts(s)
    heading, svg = rendered[0]
    out.append(f"<section>\n<h2>{escape(heading)}</h2>\n{svg}\n")
    out.append(
        '<table class="brands"><thead><tr>'
        + "".join(
            f"<th{'' if i == 0 else NUM}>{escape(c)}</th>" for i, c in enumerate(BRAND_COLUMNS)
        )
        + "</tr></thead><tbody>"
    )
    for b in [*s.brands, s.total]:
        cells = _brand_cells(b)
        out.append(
            "<tr>"
            + "".join(f"<td{'' if i == 0 else NUM}>{escape(v)}</td>" for i, v in enumerate(cells))
            + "</tr>"
        )
    out.append("</tbody></table>\n</section>\n")
    for heading, svg in rendered[1:3]:
        out.append(f"<section>\n<h2>{escape(heading)}</h2>\n{svg}\n</section>\n")
    heading, svg = rendered[3]
    out.append(
        f"<section>\n<h2>{escape(heading)}</h2>\n{svg}\n"
        f'<p class="quality">{escape(_quality_line(s))}</p>\n</section>\n'
    )
    out.append("<section>\n<h2>Top insights</h2>\n")
    out.append(_list([escape(f.text) for f in s.top_insights], "No findings this week."))
    out.append("\n</section>\n<section>\n<h2>Recommended actions</h2>\n")
    out.append(
        _list(
            [
                f"<strong>{escape(a.text)}</strong><br>"
                f'<span class="rationale">{escape(a.rationale)}</span>'
                for a in s.actions
            ],
            "Nothing stands out this week.",
        )
    )
    out.append("\n</section>\n<section>\n<h2>Alerts</h2>\n")
    out.append(_list([escape(a.message) for a in s.alerts], "No alerts were raised this week."))
    out.append("\n</section>\n</main>\n</body>\n</html>\n")
    return "".join(out)


# ---------------------------------------------------------------------------------------
# Plain text
# ---------------------------------------------------------------------------------------


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> list[str]:
    """Columns padded to their widest cell; the first `left` left-aligned, the others
    right."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < left else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def _heading(title: str) -> list[str]:
    return ["", title, "=" * len(title)]


def text(s: WeeklySummary) -> str:
    out = [s.title, "#" * len(s.title), _period(s)]
    out += _heading("Key figures, week over week")
    out += _table(
        ["Scope", "KPI", "This week", "Previous week", "Change"],
        [
            [
                c.brand_id or "portfolio",
                kpi_label(c),
                kpi_value(c, c.current),
                kpi_value(c, c.previous),
                f"{ARROWS[c.direction]} {change_text(c)}",
            ]
            for c in s.kpis
        ],
        left=2,
    )
    out += _heading("Leads and conversions by brand")
    out += _table(list(BRAND_COLUMNS), [_brand_cells(b) for b in [*s.brands, s.total]])
    out += _heading("Activity per day")
    if any(d.events or d.conversions for d in s.days):
        for d in s.days:
            out.append(
                f"  {d.day.strftime('%a')} {d.day.isoformat()}  events {d.events:>9,}"
                f"  conversions {d.conversions:>7,}"
            )
    else:
        out.append("  no data this week")
    out += _heading("Attribution by channel")
    channels = _attribution_channels(s)
    if channels:
        out += _table(
            ["Channel", *(MODEL_NAMES.get(m.model, str(m.model)) for m in s.attribution)],
            [
                [
                    channel,
                    *(
                        number(sum(r.conversions for r in m.rows if r.key == channel))
                        for m in s.attribution
                    ),
                ]
                for channel in channels
            ],
        )
    else:
        out.append("  no data this week")
    out += _heading("Lead quality")
    out.append(_quality_line(s))
    out.append(
        "Grades: "
        + ", ".join(f"{GRADE_NAMES.get(g, '?')} {c:,}" for g, c, _ in s.lead_quality.grades)
    )
    out += _heading("Top insights")
    out += [f"{i}. {f.text}" for i, f in enumerate(s.top_insights, 1)] or ["No findings this week."]
    out += _heading("Recommended actions")
    for i, a in enumerate(s.actions, 1):
        out += [f"{i}. {a.text}", f"   {a.rationale}"]
    if not s.actions:
        out.append("Nothing stands out this week.")
    out += _heading("Alerts")
    out += [f"- {a.message}" for a in s.alerts] or ["No alerts were raised this week."]
    return "\n".join(out) + "\n"
