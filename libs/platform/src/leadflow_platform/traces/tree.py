"""A trace's spans as a tree: each span under its parent, children in start order. A span
whose parent was not received (not exported yet, or by a process outside the suite) is shown
as a root of its own."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from leadflow_platform.traces.spans import SpanRecord


@dataclass
class SpanNode:
    span: SpanRecord
    children: list[SpanNode] = field(default_factory=list)


@dataclass(frozen=True)
class TraceView:
    trace_id: str
    roots: list[SpanNode]
    span_count: int
    start_ns: int
    end_ns: int
    services: tuple[str, ...]  # in order of first appearance

    @property
    def duration_ns(self) -> int:
        return max(self.end_ns - self.start_ns, 0)

    @property
    def title(self) -> str:
        """The first root's name (a true root before an orphan)."""
        return self.roots[0].span.name if self.roots else ""

    def walk(self) -> Iterator[tuple[int, SpanRecord]]:
        """(depth, span) depth first, children in start order."""
        stack = [(0, node) for node in reversed(self.roots)]
        while stack:
            depth, node = stack.pop()
            yield depth, node.span
            stack.extend((depth + 1, child) for child in reversed(node.children))


def _order(span: SpanRecord) -> tuple[int, str, str]:
    return span.start_ns, span.name, span.span_id


def build_trace(spans: Sequence[SpanRecord]) -> TraceView:
    """The tree of one trace's spans (all of the same trace id)."""
    ordered = sorted(spans, key=_order)
    nodes = {s.span_id: SpanNode(s) for s in ordered}
    roots: list[SpanNode] = []
    orphans: list[SpanNode] = []
    for span in ordered:
        node = nodes[span.span_id]
        parent = nodes.get(span.parent_span_id) if span.parent_span_id else None
        if parent is not None and parent is not node:
            parent.children.append(node)
        elif span.parent_span_id:
            orphans.append(node)
        else:
            roots.append(node)
    _break_cycles(ordered, nodes, roots + orphans, orphans)
    services: dict[str, None] = {}
    for span in ordered:
        services.setdefault(span.service, None)
    return TraceView(
        trace_id=ordered[0].trace_id if ordered else "",
        roots=roots + orphans,
        span_count=len(ordered),
        start_ns=min((s.start_ns for s in ordered), default=0),
        end_ns=max((s.end_ns for s in ordered), default=0),
        services=tuple(services),
    )


def _break_cycles(
    ordered: Sequence[SpanRecord],
    nodes: Mapping[str, SpanNode],
    tops: list[SpanNode],
    orphans: list[SpanNode],
) -> None:
    """Spans whose parents form a cycle (bad input) hang from no root: the earliest of
    each cycle becomes an orphan root, so every span is shown once."""
    reached: set[str] = set()

    def reach(node: SpanNode) -> None:
        stack = [node]
        while stack:
            current = stack.pop()
            if current.span.span_id not in reached:
                reached.add(current.span.span_id)
                stack.extend(current.children)

    for top in tops:
        reach(top)
    for span in ordered:
        if span.span_id in reached:
            continue
        node = nodes[span.span_id]
        nodes[span.parent_span_id].children.remove(node)
        orphans.append(node)
        reach(node)


def ancestry(span: SpanRecord, by_id: Mapping[str, SpanRecord]) -> list[SpanRecord]:
    """The span, its parent, the parent's parent... as far as the received spans go."""
    chain = [span]
    seen = {span.span_id}
    while chain[-1].parent_span_id in by_id and chain[-1].parent_span_id not in seen:
        chain.append(by_id[chain[-1].parent_span_id])
        seen.add(chain[-1].span_id)
    return chain
