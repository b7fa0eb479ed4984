"""The paths report: one fetch of the range's events (with a day's margin each side), then
sessions, pages and the path graph computed in numpy."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
import numpy as np

from leadflow_platform.lifecycle import ServiceContext
from leadflow_reporting.api.validation import EVENT_TYPE_NAMES
from leadflow_reporting.db import report_rows
from leadflow_reporting.db import repository as repo
from leadflow_reporting.domain.funnel import I64
from leadflow_reporting.domain.keys import distinct
from leadflow_reporting.domain.paths import (
    OTHER,
    PageFigures,
    PathGraph,
    PathsQuery,
    SessionFigures,
    SessionRows,
    in_range_sessions,
    order,
    page_figures,
    path_graph,
    session_figures,
)

OTHER_NAME = "(other)"
# Custom events' path items are -(CUSTOM_ITEM + name id) (see migration 0003).
CUSTOM_ITEM = 100


@dataclass(frozen=True)
class PathsAnswer:
    graph: PathGraph
    pages: list[PageFigures]
    sessions: SessionFigures
    names: dict[int, str]  # item code -> display name

    def name(self, item: int) -> str:
        if item == OTHER:
            return OTHER_NAME
        return self.names.get(item, "")


class Paths:
    def __init__(self, context: ServiceContext) -> None:
        self._context = context

    async def run(self, tenant_id: str, query: PathsQuery) -> PathsAnswer:
        async with (
            self._context.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            await report_rows.prefer_covering_index(conn)
            fetched = await report_rows.paths_rows(conn, tenant_id, query, self._context.pool)
            idx, session = order(fetched.subject, fetched.session_key, fetched.time)
            subject, time, item, flags = fetched.unpacked(idx)
            rows = SessionRows(subject, session, time, item, flags)
            started = in_range_sessions(rows, query.start_us, query.end_us)
            items = distinct(started.item)
            names = await _names(conn, tenant_id, items.tolist())
        # Among equal counts, items rank by name.
        by_name = np.argsort(np.argsort(np.asarray([names[i] for i in items.tolist()])))

        def rank(found: I64) -> I64:
            return np.asarray(by_name[np.searchsorted(items, found)], dtype=np.int64)

        graph = path_graph(
            started,
            query.depth,
            query.top_n,
            previous=query.previous,
            anchored=query.anchor is not None,
            rank=rank,
        )
        pages = page_figures(rows, started, query.start_us, query.end_us, query.top_pages)
        missing = [p.page for p in pages if p.page not in names]
        if missing:
            async with self._context.pool.acquire() as conn:
                names.update(await _names(conn, tenant_id, missing))
        return PathsAnswer(graph, pages, session_figures(started), names)


async def _names(conn: asyncpg.Connection, tenant_id: str, items: list[int]) -> dict[int, str]:
    """Display names of path items: page paths and custom names from the dictionary, event
    types by their short name."""
    ids = {i: i if i > 0 else -i - CUSTOM_ITEM for i in items if i > 0 or i <= -CUSTOM_ITEM}
    found = await repo.names_of(conn, tenant_id, sorted(set(ids.values())))
    names = {i: found.get(name_id, "") for i, name_id in ids.items()}
    for i in items:
        if -CUSTOM_ITEM < i < 0:
            names[i] = EVENT_TYPE_NAMES.get(-i, "")
    return names
