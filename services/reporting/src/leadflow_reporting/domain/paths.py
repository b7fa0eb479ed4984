"""Paths through sessions, page traffic and session figures, vectorised over one fetch of a
range's events. Pure functions over numpy arrays; times are microseconds.

Rows are a session's events in time order (see `order`). A path follows one session from its
first anchor event (without anchor: its first step event for NEXT, its last for PREVIOUS)
through the step events (include/exclude applied), consecutive repeats of one item collapsed
into one step; a step's event is the first of its run in the direction followed (the one
nearest the anchor).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from leadflow_reporting.domain.funnel import I64
from leadflow_reporting.domain.keys import distinct, distinct_counts
from leadflow_reporting.domain.query import Selector

# Flags of a fetched row.
ANCHOR = 1
INCLUDED = 2  # matches an include selector (or there are none)
EXCLUDED = 4  # matches an exclude selector
PAGE_VIEW = 8
# The item code of the merged rarer items of a step (items are 32-bit: never equal to it).
OTHER = -(2**31)
_MIX = np.uint64(0x9E3779B97F4A7C15)


@dataclass(frozen=True)
class PathsQuery:
    start_us: int
    end_us: int
    anchor: Selector | None
    previous: bool
    depth: int
    top_n: int
    include: tuple[Selector, ...]
    exclude: tuple[Selector, ...]
    top_pages: int
    brand_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class SessionRows:
    """Events sorted by session then time. `item`: a page view's page id, a custom event's
    name id (both > 0), otherwise -event_type."""

    subject: I64
    session: I64  # a session id unique across subjects
    time: I64
    item: I64
    flags: I64


def order(subject: I64, session_key: I64, time: I64) -> tuple[I64, I64]:
    """(row order, session id per sorted row): rows by session, then time, then input
    order. A session is a (subject, session key) pair; rows are grouped by a 64-bit mix of
    both (two stable sorts instead of a three-key sort), and a subject change inside a group
    still starts a new session."""
    mixed = (session_key.view(np.uint64) ^ (subject.astype(np.uint64) * _MIX)).view(np.int64)
    if len(time) < 2 or bool((time[1:] >= time[:-1]).all()):
        idx = np.argsort(mixed, kind="stable")  # rows came in time order (the index's)
    else:
        by_time = np.argsort(time, kind="stable")
        idx = by_time[np.argsort(mixed[by_time], kind="stable")]
    m, s = mixed[idx], subject[idx]
    new = np.ones(len(idx), dtype=bool)
    new[1:] = (m[1:] != m[:-1]) | (s[1:] != s[:-1])
    return idx, np.cumsum(new) - 1


def _starts(session: I64) -> I64:
    """Index of each session's first row (rows grouped by session)."""
    if not len(session):
        return np.zeros(0, dtype=np.int64)
    new = np.ones(len(session), dtype=bool)
    new[1:] = session[1:] != session[:-1]
    return np.flatnonzero(new)


def in_range_sessions(rows: SessionRows, start_us: int, end_us: int) -> SessionRows:
    """Only the sessions whose first event lies in [start, end)."""
    first = _starts(rows.session)
    starts_at = rows.time[first]
    keep_session = (starts_at >= start_us) & (starts_at < end_us)
    sizes = np.diff(np.append(first, len(rows.session)))
    keep = np.repeat(keep_session, sizes)
    return SessionRows(
        *(a[keep] for a in (rows.subject, rows.session, rows.time, rows.item, rows.flags))
    )


@dataclass(frozen=True)
class SessionFigures:
    count: int
    median_us: float | None
    average_us: float | None
    p90_us: float | None
    events_per_session: float
    with_page_views: int
    bounced: int

    @property
    def bounce_rate(self) -> float:
        """Bounced sessions over sessions with a page view (0 without any)."""
        return self.bounced / self.with_page_views if self.with_page_views else 0.0


def session_figures(rows: SessionRows) -> SessionFigures:
    first = _starts(rows.session)
    if not len(first):
        return SessionFigures(0, None, None, None, 0.0, 0, 0)
    last = np.append(first[1:], len(rows.session)) - 1
    durations = (rows.time[last] - rows.time[first]).astype(np.float64)
    views = np.add.reduceat((rows.flags & PAGE_VIEW) > 0, first)
    return SessionFigures(
        count=len(first),
        median_us=float(np.median(durations)),
        average_us=float(durations.mean()),
        p90_us=float(np.percentile(durations, 90)),
        events_per_session=len(rows.session) / len(first),
        with_page_views=int((views > 0).sum()),
        bounced=int((views == 1).sum()),
    )


@dataclass(frozen=True)
class PageFigures:
    page: int  # page id
    views: int
    unique_subjects: int
    entrances: int
    exits: int
    bounces: int


def page_figures(
    rows: SessionRows, sessions: SessionRows, start_us: int, end_us: int, top: int
) -> list[PageFigures]:
    """The `top` pages by views in [start, end) (then page id): views and distinct viewers
    from `rows` (every fetched event), entrances, exits and bounces from `sessions` (those
    that started in the range)."""
    views_mask = ((rows.flags & PAGE_VIEW) > 0) & (rows.time >= start_us) & (rows.time < end_us)
    views_mask &= rows.item > 0
    pages, page_index, views = distinct_counts(rows.item[views_mask])
    if not len(pages):
        return []
    pairs = distinct(page_index * (int(rows.subject.max()) + 1) + rows.subject[views_mask])
    viewer_index, _, viewers = distinct_counts(pairs // (int(rows.subject.max()) + 1))
    viewer_pages = pages[viewer_index]
    unique = dict(zip(viewer_pages.tolist(), viewers.tolist(), strict=True))
    chosen = np.lexsort((pages, -views))[:top]
    pv = (sessions.flags & PAGE_VIEW) > 0
    view_session, view_item = sessions.session[pv], sessions.item[pv]
    entrances: dict[int, int] = {}
    exits: dict[int, int] = {}
    bounces: dict[int, int] = {}
    if len(view_session):
        first = _starts(view_session)
        last = np.append(first[1:], len(view_session)) - 1
        single = first == last
        for target, idx in ((entrances, first), (exits, last), (bounces, first[single])):
            found, n = np.unique(view_item[idx], return_counts=True)
            target.update(zip(found.tolist(), n.tolist(), strict=True))
    return [
        PageFigures(
            page,
            int(views[i]),
            unique[page],
            entrances.get(page, 0),
            exits.get(page, 0),
            bounces.get(page, 0),
        )
        for i in chosen.tolist()
        for page in [int(pages[i])]
    ]


@dataclass(frozen=True)
class Node:
    step: int
    item: int  # OTHER for the merged items
    count: int
    drop_off: int


@dataclass(frozen=True)
class Edge:
    source: tuple[int, int]  # (step, item) of the earlier node in time
    target: tuple[int, int]
    count: int
    median_us: float


@dataclass(frozen=True)
class PathGraph:
    nodes: list[Node]
    edges: list[Edge]
    path_count: int


def path_graph(
    rows: SessionRows,
    depth: int,
    top_n: int,
    *,
    previous: bool,
    anchored: bool,
    rank: Callable[[I64], I64] | None = None,
) -> PathGraph:
    """The path graph of sessions (rows of sessions that started in the range). `rank` gives
    items their order among equal counts when a step keeps its top items (by name, say);
    without it, item codes."""
    n = len(rows.session)
    if not n:
        return PathGraph([], [], 0)
    step_ok = ((rows.flags & INCLUDED) > 0) & ((rows.flags & EXCLUDED) == 0)
    first = _starts(rows.session)
    sizes = np.diff(np.append(first, n))
    group = np.repeat(np.arange(len(first)), sizes)
    index = np.arange(n)
    big = n + 1
    if anchored:
        candidates = np.where((rows.flags & ANCHOR) > 0, index, big)
        anchor = np.minimum.reduceat(candidates, first)
    elif previous:
        anchor = np.maximum.reduceat(np.where(step_ok, index, -1), first)
        anchor = np.where(anchor < 0, big, anchor)
    else:
        anchor = np.minimum.reduceat(np.where(step_ok, index, big), first)
    at = anchor[group]
    on_path = (index == at) | (step_ok & ((index < at) if previous else (index > at)))
    on_path &= at != big
    picked = np.flatnonzero(on_path)
    if previous:
        picked = picked[::-1]
    g, item, t = group[picked], rows.item[picked], rows.time[picked]
    # Collapse consecutive repeats of an item within a path.
    keep = np.ones(len(picked), dtype=bool)
    keep[1:] = (g[1:] != g[:-1]) | (item[1:] != item[:-1])
    g, item, t = g[keep], item[keep], t[keep]
    if not len(g):
        return PathGraph([], [], 0)
    path_first = _starts(g)
    lengths = np.diff(np.append(path_first, len(g)))
    step = np.arange(len(g)) - np.repeat(path_first, lengths)
    length = np.repeat(lengths, lengths)
    within = step <= depth
    g, item, t, step, length = g[within], item[within], t[within], step[within], length[within]
    # Keep each step's top items; merge the rest (as one code below every item, so that the
    # codes stay a small dense range; OTHER in the answer).
    merged = int(item.min()) - 1
    for k in range(depth + 1):
        at_k = step == k
        if not at_k.any():
            continue
        found, _, counts = distinct_counts(item[at_k])
        if len(found) > top_n:
            ties = rank(found) if rank is not None else found
            kept = found[np.lexsort((ties, -counts))[:top_n]]
            item[at_k & ~np.isin(item, kept)] = merged
    sign = -1 if previous else 1
    nodes: list[Node] = []
    # Nodes: (step, item) pairs, items numbered densely first.
    items, item_index, _ = distinct_counts(item)
    keys, inverse, counts = distinct_counts(step * len(items) + item_index)
    found_steps, found_items = keys // len(items), items[keys % len(items)]
    found_items = np.where(found_items == merged, OTHER, found_items)
    ends = np.bincount(inverse, weights=(length == step + 1), minlength=len(counts))
    for j in range(len(counts)):
        nodes.append(
            Node(sign * int(found_steps[j]), int(found_items[j]), int(counts[j]), int(ends[j]))
        )
    nodes.sort(key=lambda x: (abs(x.step), -x.count, x.item))
    # Edges: consecutive steps of one path.
    nxt = np.flatnonzero(g[1:] == g[:-1])
    edges: list[Edge] = []
    if len(nxt):
        a, b = nxt, nxt + 1
        gaps = np.abs(t[b] - t[a])
        width = len(counts)
        pairs, e_inv, e_counts = distinct_counts(inverse[a] * width + inverse[b])
        e_step = found_steps[pairs // width]
        e_from, e_to = found_items[pairs // width], found_items[pairs % width]
        by_edge = np.argsort(e_inv, kind="stable")
        splits = np.cumsum(e_counts)[:-1]
        for j, members in enumerate(np.split(by_edge, splits)):
            near = (sign * int(e_step[j]), int(e_from[j]))
            far = (sign * (int(e_step[j]) + 1), int(e_to[j]))
            source, target = (far, near) if previous else (near, far)
            edges.append(Edge(source, target, int(e_counts[j]), float(np.median(gaps[members]))))
    edges.sort(key=lambda e: (-e.count, abs(e.source[0]), e.source[1], e.target[1]))
    return PathGraph(nodes, edges, len(path_first))
