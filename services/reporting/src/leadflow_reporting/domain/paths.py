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
import numpy.typing as npt

from leadflow_reporting.domain.funnel import I64, Bools
from leadflow_reporting.domain.keys import distinct_counts
from leadflow_reporting.domain.ordering import group_order, lex_order, stable_order
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
    both (see ordering.group_order), and a subject change inside a group still starts a
    new session."""
    mixed = session_key.view(np.uint64) ^ (subject.astype(np.uint64) * _MIX)
    if len(time) < 2 or bool((time[1:] >= time[:-1]).all()):
        idx = group_order(mixed)  # rows came in time order (the index's)
    else:
        by_time = stable_order(time)
        idx = by_time[group_order(mixed[by_time])]
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
    if keep_session.all():
        return rows
    sizes = np.diff(np.append(first, len(rows.session)))
    keep = np.flatnonzero(np.repeat(keep_session, sizes))
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
    at = np.flatnonzero(views_mask)
    pages, page_index, views = distinct_counts(rows.item[at])
    if not len(pages):
        return []
    chosen = np.lexsort((pages, -views))[:top]
    # Distinct (page, viewer) pairs, by a value sort of the pairs as one integer.
    viewer = rows.subject[at]
    lo = int(viewer.min())
    span = int(viewer.max()) - lo + 1
    pairs = page_index * span + (viewer - lo)
    pairs.sort()
    first_of_pair = np.ones(len(pairs), dtype=bool)
    first_of_pair[1:] = pairs[1:] != pairs[:-1]
    unique = np.bincount(pairs[first_of_pair] // span, minlength=len(pages))
    pv = np.flatnonzero((sessions.flags & PAGE_VIEW) > 0)
    view_session, view_item = sessions.session[pv], sessions.item[pv]
    entrances: dict[int, int] = {}
    exits: dict[int, int] = {}
    bounces: dict[int, int] = {}
    if len(view_session):
        first = _starts(view_session)
        last = np.append(first[1:], len(view_session)) - 1
        single = first == last
        for target, idx in ((entrances, first), (exits, last), (bounces, first[single])):
            found, _, n = distinct_counts(view_item[idx])
            target.update(zip(found.tolist(), n.tolist(), strict=True))
    return [
        PageFigures(
            page,
            int(views[i]),
            int(unique[i]),
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
    if not len(rows.session):
        return PathGraph([], [], 0)
    step_ok = ((rows.flags & INCLUDED) > 0) & ((rows.flags & EXCLUDED) == 0)
    # Without an anchor a path starts at the session's first step event (NEXT) or ends at
    # its last (PREVIOUS): every step event is on it.
    on_path = _from_anchor(rows, step_ok, previous) if anchored else step_ok
    session, item, t = rows.session, rows.item, rows.time
    if not on_path.all():
        picked = np.flatnonzero(on_path)
        session, item, t = session[picked], item[picked], t[picked]
    if previous:
        session, item, t = session[::-1], item[::-1], t[::-1]
    # Collapse consecutive repeats of an item within a path (keeping the first, nearest
    # the anchor).
    keep = np.ones(len(session), dtype=bool)
    keep[1:] = (session[1:] != session[:-1]) | (item[1:] != item[:-1])
    if not keep.all():
        kept = np.flatnonzero(keep)
        session, item, t = session[kept], item[kept], t[kept]
    m = len(session)
    if not m:
        return PathGraph([], [], 0)
    new = np.ones(m, dtype=bool)
    new[1:] = session[1:] != session[:-1]
    paths = int(np.count_nonzero(new))
    last = np.ones(m, dtype=bool)  # the path ends here (a drop-off)
    last[:-1] = new[1:]
    starts = np.flatnonzero(new)
    step = np.arange(m) - np.repeat(starts, np.diff(np.append(starts, m)))
    within = step <= depth
    if not within.all():
        inside = np.flatnonzero(within)
        session, item, t, step, last = (a[inside] for a in (session, item, t, step, last))
    # Items numbered densely; each step keeps its top items and merges the rest into code
    # `other` (OTHER in the answer).
    items, code, _ = distinct_counts(item)
    other = len(items)
    per_step = np.bincount(step * other + code, minlength=(depth + 1) * other)
    per_step = per_step.reshape(depth + 1, other)
    kept = np.tile(np.arange(other + 1), (depth + 1, 1))
    for k in range(depth + 1):
        present = np.flatnonzero(per_step[k])
        if len(present) > top_n:
            ties = rank(items[present]) if rank is not None else items[present]
            top = present[np.lexsort((ties, -per_step[k, present]))[:top_n]]
            kept[k, :other] = other
            kept[k, top] = top
    width = other + 1
    node = step * width + kept[step, code]
    counts = np.bincount(node, minlength=(depth + 1) * width)
    ends = np.bincount(node, weights=last, minlength=len(counts))
    sign = -1 if previous else 1

    def item_of(c: int) -> int:
        return OTHER if c == other else int(items[c])

    nodes = [
        Node(sign * (j // width), item_of(j % width), int(counts[j]), int(ends[j]))
        for j in np.flatnonzero(counts).tolist()
    ]
    nodes.sort(key=lambda x: (abs(x.step), -x.count, x.item))
    # Edges: consecutive steps of one path.
    a = np.flatnonzero(session[1:] == session[:-1])
    edges: list[Edge] = []
    if len(a):
        b = a + 1
        keys, edge, edge_counts = distinct_counts(node[a] * width + node[b] % width)
        medians = _group_medians(edge, edge_counts, np.abs(t[b] - t[a]))
        for j, key in enumerate(keys.tolist()):
            near_node, far_code = divmod(key, width)
            near = (sign * (near_node // width), item_of(near_node % width))
            far = (sign * (near_node // width + 1), item_of(far_code))
            source, target = (far, near) if previous else (near, far)
            edges.append(Edge(source, target, int(edge_counts[j]), float(medians[j])))
    edges.sort(key=lambda e: (-e.count, abs(e.source[0]), e.source[1], e.target[1]))
    return PathGraph(nodes, edges, paths)


def _from_anchor(rows: SessionRows, step_ok: Bools, previous: bool) -> Bools:
    """Rows on an anchored path: each session's first anchor event, then its step events
    after it (NEXT) or before it (PREVIOUS)."""
    n = len(rows.session)
    first = _starts(rows.session)
    index = np.arange(n)
    big = n + 1
    anchor = np.minimum.reduceat(np.where((rows.flags & ANCHOR) > 0, index, big), first)
    at = np.repeat(anchor, np.diff(np.append(first, n)))
    on_path = (index == at) | (step_ok & ((index < at) if previous else (index > at)))
    return on_path & (at != big)


def _group_medians(group: I64, sizes: I64, values: I64) -> npt.NDArray[np.float64]:
    """The median of the values of each group (groups numbered 0..len(sizes) - 1, the mean
    of the two middle values for an even count, as np.median)."""
    ordered = values[lex_order(group, values)]
    starts = np.cumsum(sizes) - sizes
    low = ordered[starts + (sizes - 1) // 2].astype(np.float64)
    high = ordered[starts + sizes // 2].astype(np.float64)
    return (low + high) / 2
