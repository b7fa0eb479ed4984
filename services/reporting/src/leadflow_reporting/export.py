"""Export: raw events or a report streamed as CSV or JSON lines, in chunks of bounded size.

Raw events (and a journey's full timeline) are read through a server-side cursor inside one
read-only REPEATABLE READ transaction, a batch of rows at a time, and each batch is encoded
and cut into chunks before the next is fetched; gRPC sends a chunk before the generator
resumes. So the process holds one batch and one chunk whatever the range's size. Reports are
computed by their own use case (their answers are small) and flattened into rows.
A progress line is logged every PROGRESS_ROWS rows; a stream ends with ExportFinished.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from typing import Any

import asyncpg

from leadflow.reporting.v1 import report_types_pb2 as rt
from leadflow.reporting.v1 import reporting_service_pb2 as pb
from leadflow_platform.errors import InvalidArgument, NotFound
from leadflow_platform.lifecycle import ServiceContext
from leadflow_platform.logging import get_logger
from leadflow_reporting.api import export_mapping as em
from leadflow_reporting.api import mapping, weekly_mapping
from leadflow_reporting.db import export_events
from leadflow_reporting.db.export_events import EventsQuery
from leadflow_reporting.domain.export_format import Chunker, Json, Row, encoder, file_name, header
from leadflow_reporting.funnels import Funnels
from leadflow_reporting.paths import Paths
from leadflow_reporting.realtime import RealTime
from leadflow_reporting.report_exports import ReportExports
from leadflow_reporting.retention import Retention
from leadflow_reporting.weekly import WeeklyReports

log = get_logger(__name__)

# Rows fetched from the cursor at a time (and so the most rows the process holds).
BATCH_ROWS = 2_000
# A progress line every this many rows.
PROGRESS_ROWS = 50_000

_TYPE = 3  # position of event_type in export_events.COLUMNS
_PROPERTIES = len(export_events.COLUMNS) - 1


def event_rows(records: Iterable[Sequence[Any]], omit_properties: bool) -> Iterator[Row]:
    """Database rows of export_events as export rows (type names, properties as JSON)."""
    names = em.TYPE_NAMES
    for r in records:
        row = list(r)
        row[_TYPE] = names.get(row[_TYPE], "")
        if omit_properties:
            del row[_PROPERTIES]
        elif row[_PROPERTIES] is not None:
            row[_PROPERTIES] = Json(row[_PROPERTIES])
        yield row


class Exports:
    def __init__(
        self,
        context: ServiceContext,
        funnels: Funnels,
        real_time: RealTime,
        paths: Paths,
        retention: Retention,
        weekly: WeeklyReports | None = None,
        report_exports: ReportExports | None = None,
    ) -> None:
        self._context = context
        self._report_exports = report_exports
        self._weekly = weekly
        self._funnels = funnels
        self._real_time = real_time
        self._paths = paths
        self._retention = retention

    @classmethod
    def of(cls, reports: Any) -> Exports:
        """From the servicer's report use cases, which share the runtime (and its pool)."""
        return cls(
            reports.funnels._context,
            reports.funnels,
            reports.real_time,
            reports.paths,
            reports.retention,
            WeeklyReports.of(reports),
            report_exports=ReportExports.of(reports),
        )

    async def stream(
        self, tenant_id: str, plan: em.ExportPlan, now_us: int
    ) -> AsyncIterator[pb.ExportResponse]:
        columns, batches = await self._source(tenant_id, plan, now_us)
        encode = encoder(plan.format, columns)
        chunker = Chunker(plan.chunk_bytes)
        rows = size = chunks = 0
        started = time.monotonic()
        next_progress = PROGRESS_ROWS

        def message(chunk: bytes) -> pb.ExportResponse:
            nonlocal size, chunks
            size += len(chunk)
            chunks += 1
            return pb.ExportResponse(sequence=chunks - 1, chunk=chunk)

        first = header(plan.format, columns)
        if first:
            ready = chunker.add(first)
            if ready is not None:
                yield message(ready)
        async for batch in batches:
            for row in batch:
                ready = chunker.add(encode(row))
                rows += 1
                if ready is not None:
                    yield message(ready)
            if rows >= next_progress:
                next_progress = (rows // PROGRESS_ROWS + 1) * PROGRESS_ROWS
                elapsed = time.monotonic() - started
                log.info(
                    "export_progress",
                    export=plan.kind,
                    rows=rows,
                    bytes=size,
                    chunks=chunks,
                    elapsed_s=round(elapsed, 3),
                    rows_per_s=round(rows / elapsed) if elapsed > 0 else None,
                )
        rest = chunker.flush()
        if rest is not None:
            yield message(rest)
        log.info(
            "export_finished",
            export=plan.kind,
            rows=rows,
            bytes=size,
            chunks=chunks,
            elapsed_s=round(time.monotonic() - started, 3),
        )
        yield pb.ExportResponse(
            sequence=chunks,
            finished=pb.ExportFinished(
                row_count=rows,
                byte_count=size,
                chunk_count=chunks,
                content_type=plan.format.content_type,
                suggested_file_name=file_name(plan.kind, plan.format, plan.start_us, plan.end_us),
            ),
        )

    async def _source(
        self, tenant_id: str, plan: em.ExportPlan, now_us: int
    ) -> tuple[Sequence[str], AsyncIterator[Iterable[Row]]]:
        """The columns and the rows (in batches) of what the plan exports. Validation and
        NOT_FOUND happen here, before the first message is sent."""
        if plan.kind == "events":
            query: EventsQuery = plan.query
            return query.columns, self._events(tenant_id, query)
        if plan.kind == "journey":
            j = plan.query
            query = EventsQuery(
                start_us=j.start_us,
                end_us=j.end_us,
                lead_id=j.lead_id,
                anonymous_id=j.anonymous_id,
                include_machine=not j.hide_machine,
                newest_first=True,  # as GetJourney's timeline
            )
            async with self._context.pool.acquire() as conn:
                subject = await export_events.subject_id(conn, tenant_id, j.lead_id, j.anonymous_id)
            if subject is None:
                raise NotFound("no such subject")
            return query.columns, self._events(tenant_id, query)
        if plan.kind in em.export_reports.KINDS and self._report_exports is not None:
            return await self._report_exports.source(tenant_id, plan)
        columns, rows = await self._report(tenant_id, plan, now_us)
        return columns, _once(rows)

    async def _events(self, tenant_id: str, query: EventsQuery) -> AsyncIterator[Iterable[Row]]:
        async with (
            self._context.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            subject: int | None = None
            if query.lead_id or query.anonymous_id:
                subject = await export_events.subject_id(
                    conn, tenant_id, query.lead_id, query.anonymous_id
                )
                if subject is None:
                    return  # an unknown (or erased) subject has no events
            sql, args = export_events.events_sql(tenant_id, query, subject)
            try:
                async for records in export_events.stream_events(conn, sql, args, BATCH_ROWS):
                    yield event_rows(records, query.omit_properties)
            except asyncpg.InvalidRegularExpressionError as exc:
                raise InvalidArgument.field(
                    "events.events", f"a regex filter is not valid: {exc}"
                ) from None

    async def _report(
        self, tenant_id: str, plan: em.ExportPlan, now_us: int
    ) -> tuple[Sequence[str], Iterable[Row]]:
        q = plan.query
        if plan.kind == "real_time":
            answer = mapping.real_time_response(await self._real_time.view(tenant_id, q))
            return em.REAL_TIME_COLUMNS, list(em.real_time_rows(answer))
        if plan.kind == "funnel":
            funnel = mapping.funnel_response(await self._funnels.run(tenant_id, q))
            return em.FUNNEL_COLUMNS, list(em.funnel_rows(funnel))
        if plan.kind == "paths":
            paths = mapping.paths_response(await self._paths.run(tenant_id, q))
            return em.PATHS_COLUMNS, list(em.paths_rows(paths))
        if plan.kind == "retention":
            table = await self._retention.run(tenant_id, q, now_us)
            period = plan.request.period or rt.COHORT_PERIOD_WEEK
            return em.RETENTION_COLUMNS, list(
                em.retention_rows(mapping.retention_response(table, period))
            )
        if plan.kind == "weekly_report" and self._weekly is not None:
            weekly = weekly_mapping.weekly_response(await self._weekly.run(tenant_id, q, now_us))
            return weekly_mapping.WEEKLY_COLUMNS, list(weekly_mapping.weekly_rows(weekly))
        raise AssertionError(f"no export for {plan.kind}")


async def _once(rows: Iterable[Row]) -> AsyncIterator[Iterable[Row]]:
    yield rows
