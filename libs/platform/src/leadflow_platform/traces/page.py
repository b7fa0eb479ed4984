"""The trace viewer's page: the latest traces, each an indented span tree with service, name,
kind and duration beside a bar of where the span falls in its trace. One self-contained HTML
document (inline CSS, no scripts, no outside assets); every received string is escaped."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape

from leadflow_platform.traces.spans import SpanRecord
from leadflow_platform.traces.tree import TraceView

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1d2330; }
h1 { font-size: 1.3rem; margin: 0 0 .25rem; }
p.meta { color: #5b6475; margin: 0 0 1rem; }
details { border: 1px solid #d8dce4; border-radius: 6px; margin: 0 0 .6rem; }
summary { cursor: pointer; padding: .45rem .7rem; background: #f4f6f9; }
summary .id { font-family: ui-monospace, monospace; color: #5b6475; font-size: .8rem; }
table { border-collapse: collapse; width: 100%; font-size: .85rem; }
td, th { padding: .15rem .6rem; text-align: left; white-space: nowrap; }
th { color: #5b6475; font-weight: 600; border-bottom: 1px solid #d8dce4; }
td.name { font-family: ui-monospace, monospace; }
td.dur { text-align: right; font-variant-numeric: tabular-nums; }
td.bar { width: 30%; }
.track { position: relative; height: .7rem; background: #eef0f4; border-radius: 2px; }
.fill { position: absolute; top: 0; bottom: 0; min-width: 2px; background: #4a7bd0; }
tr.error td.name, tr.error .fill { color: #b3261e; background-color: #fbe9e7; }
tr.error .fill { background: #b3261e; }
.kind { color: #5b6475; font-size: .75rem; }
.svc { display: inline-block; padding: 0 .35rem; border-radius: 3px; background: #e3ecfa; }
.orphan { color: #8a5a00; font-size: .75rem; }
"""


def render_page(views: Sequence[TraceView], *, received: int, endpoint: str) -> str:
    """The page for `views` (newest first); `received`: spans received in all; `endpoint`:
    where the receiver listens (shown so a reader knows what to point exporters at)."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>leadflow traces</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>leadflow traces</h1>",
        f'<p class="meta">{len(views)} most recent traces of {received:,} spans received'
        f" on {escape(endpoint)} (OTLP/gRPC). Reload to refresh.</p>",
    ]
    if not views:
        parts.append(
            "<p>No spans yet. Services export when OTEL_EXPORTER_OTLP_ENDPOINT names this"
            " receiver; spans are sent in batches every few seconds.</p>"
        )
    for index, view in enumerate(views):
        parts.append(_trace(view, open_=index == 0))
    parts.append("</body></html>")
    return "\n".join(parts)


def _trace(view: TraceView, *, open_: bool) -> str:
    started = datetime.fromtimestamp(view.start_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    services = " ".join(f'<span class="svc">{escape(s)}</span>' for s in view.services)
    rows = "\n".join(_row(view, depth, span) for depth, span in view.walk())
    return (
        f"<details{' open' if open_ else ''}><summary>"
        f"<strong>{escape(view.title)}</strong> · {_ms(view.duration_ns)} ·"
        f" {view.span_count} spans · {services} · {started[:-3]} UTC"
        f' <span class="id">{escape(view.trace_id)}</span></summary>'
        "<table><thead><tr><th>span</th><th>service</th><th>kind</th>"
        '<th class="dur">duration</th><th>timeline</th></tr></thead>'
        f"<tbody>\n{rows}\n</tbody></table></details>"
    )


def _row(view: TraceView, depth: int, span: SpanRecord) -> str:
    total = max(view.duration_ns, 1)
    left = min(100.0 * (span.start_ns - view.start_ns) / total, 100.0)
    width = max(min(100.0 * span.duration_ns / total, 100.0 - left), 0.0)
    details = {"span_id": span.span_id, **span.attributes}
    if span.status_message:
        details["status"] = span.status_message
    if span.links:
        details["links"] = [f"{t}/{s}" for t, s in span.links]
    tip = json.dumps(details, default=str, ensure_ascii=False, indent=1)
    orphan = (
        ' <span class="orphan">(parent not received)</span>'
        if depth == 0 and span.parent_span_id
        else ""
    )
    css = ' class="error"' if span.status == "ERROR" else ""
    return (
        f'<tr{css} title="{escape(tip)}">'
        f'<td class="name" style="padding-left:{0.6 + 1.2 * depth:.1f}rem">'
        f"{escape(span.name)}{orphan}</td>"
        f'<td><span class="svc">{escape(span.service)}</span></td>'
        f'<td class="kind">{escape(span.kind.lower())}</td>'
        f'<td class="dur">{_ms(span.duration_ns)}</td>'
        f'<td class="bar"><div class="track"><div class="fill"'
        f' style="left:{left:.2f}%;width:{width:.2f}%">'
        "</div></div></td></tr>"
    )


def _ms(ns: int) -> str:
    ms = ns / 1e6
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    return f"{ms:.2f} ms" if ms < 10 else f"{ms:.1f} ms"
