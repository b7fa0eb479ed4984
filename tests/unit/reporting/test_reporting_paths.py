"""Paths domain on small hand-made sessions: collapsing, anchors both ways, (other), drop-offs,
session and page figures."""

from __future__ import annotations

import numpy as np

from leadflow_reporting.domain.paths import (
    ANCHOR,
    EXCLUDED,
    INCLUDED,
    OTHER,
    PAGE_VIEW,
    SessionRows,
    in_range_sessions,
    order,
    page_figures,
    path_graph,
    session_figures,
)

S = 1_000_000
PV = INCLUDED | PAGE_VIEW


def rows(*sessions: list[tuple[int, int, int]]) -> SessionRows:
    """Each session: (seconds, item, flags); one subject per session."""
    subject, key, time, item, flags = [], [], [], [], []
    for n, events in enumerate(sessions):
        for t, i, f in events:
            subject.append(n)
            key.append(7)
            time.append(t * S)
            item.append(i)
            flags.append(f)
    arrays = [np.asarray(a, dtype=np.int64) for a in (subject, key, time, item, flags)]
    idx, session = order(arrays[0], arrays[1], arrays[2])
    return SessionRows(arrays[0][idx], session, arrays[2][idx], arrays[3][idx], arrays[4][idx])


def test_next_paths_collapse_repeats_and_count_drop_offs() -> None:
    r = rows(
        [(0, 1, PV), (5, 1, PV), (9, 2, PV), (20, -2, INCLUDED | EXCLUDED), (30, 3, PV)],
        [(0, 1, PV), (4, 2, PV)],
        [(0, 2, PV)],
    )
    g = path_graph(r, 5, 10, previous=False, anchored=False)
    nodes = {(n.step, n.item): (n.count, n.drop_off) for n in g.nodes}
    assert nodes == {(0, 1): (2, 0), (0, 2): (1, 1), (1, 2): (2, 1), (2, 3): (1, 1)}
    edges = {(e.source, e.target): (e.count, e.median_us) for e in g.edges}
    assert edges[((0, 1), (1, 2))] == (2, 6.5 * S)  # from the first /1 of the run: 9 s and 4 s
    assert g.path_count == 3


def test_previous_from_the_first_anchor_and_top_n() -> None:
    r = rows(
        [
            (0, 1, PV),
            (1, 2, PV),
            (2, -19, INCLUDED | ANCHOR),
            (3, 4, PV),
            (4, -19, INCLUDED | ANCHOR),
        ],
        [(0, 3, PV), (2, -19, INCLUDED | ANCHOR)],
        [(0, 5, PV)],
    )
    g = path_graph(r, 5, 1, previous=True, anchored=True)
    nodes = {(n.step, n.item): n.count for n in g.nodes}
    assert g.path_count == 2
    assert nodes[(0, -19)] == 2
    assert sum(c for (s, _), c in nodes.items() if s == -1) == 2
    assert (-1, OTHER) in nodes and nodes[(-2, 1)] == 1
    assert all(e.source[0] < e.target[0] for e in g.edges)


def test_sessions_pages_and_range() -> None:
    r = rows([(0, 1, PV), (60, 2, PV), (90, -2, INCLUDED)], [(10, 1, PV)], [(500, 3, PV)])
    started = in_range_sessions(r, 0, 100 * S)
    f = session_figures(started)
    assert (f.count, f.with_page_views, f.bounced) == (2, 2, 1)
    assert f.median_us == 45 * S and f.events_per_session == 2.0
    pages = page_figures(r, started, 0, 100 * S, 10)
    by = {p.page: p for p in pages}
    assert by[1].views == 2 and by[1].unique_subjects == 2 and by[1].entrances == 2
    assert by[1].bounces == 1 and by[2].exits == 1 and 3 not in by
