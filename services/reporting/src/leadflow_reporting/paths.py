"""The paths report: one fetch of the range's events (with a day's margin each side), then
sessions, pages and the path graph computed in numpy."""

from __future__ import annotations

from dataclasses import dataclass

from leadflow_platform.lifecycle import ServiceContext
from leadflow_reporting.api.validation import EVENT_TYPE_NAMES
from leadflow_reporting.db import report_rows
from leadflow_reporting.db import repository as repo
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
            cols = await report_rows.paths_rows(conn, tenant_id, query)
            idx, session = order(cols["subject"], cols["session_key"], cols["time"])
            rows = SessionRows(
                cols["subject"][idx],
                session,
                cols["time"][idx],
                cols["item"][idx],
                cols["flags"][idx],
            )
            started = in_range_sessions(rows, query.start_us, query.end_us)
            graph = path_graph(
                started,
                query.depth,
                query.top_n,
                previous=query.previous,
                anchored=query.anchor is not None,
            )
            pages = page_figures(rows, started, query.start_us, query.end_us, query.top_pages)
            items = {n.item for n in graph.nodes} | {p.page for p in pages}
            names = await repo.names_of(conn, tenant_id, sorted(i for i in items if i > 0))
        for i in items:
            if i < 0 and i != OTHER:
                names[i] = EVENT_TYPE_NAMES.get(-i, "")
        return PathsAnswer(graph, pages, session_figures(started), names)
