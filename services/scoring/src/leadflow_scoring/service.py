"""Scoring's use cases behind the gRPC API: each call is one transaction; changes write the
events announcing them to the outbox in it. What ingest publishes is applied by
ingestion.py; both change leads only through leads.py."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc

from leadflow.common.v1 import lead_pb2
from leadflow.scoring.v1 import lead_score_pb2, lifecycle_pb2, scoring_service_pb2
from leadflow_platform.errors import FailedPrecondition, InvalidArgument, NotFound, ServiceError
from leadflow_platform.lifecycle import ServiceContext
from leadflow_platform.logging import get_logger
from leadflow_scoring import paging
from leadflow_scoring.api import mapping
from leadflow_scoring.db import repository as repo
from leadflow_scoring.domain.lifecycle import (
    LifecycleStage,
    TransitionRefused,
    TransitionTrigger,
)
from leadflow_scoring.domain.model import ScoringModel
from leadflow_scoring.domain.score import Grade, Temperature
from leadflow_scoring.erasure import ErasedSubjects
from leadflow_scoring.ingestion import Ingestion
from leadflow_scoring.jobs.rescoring import JobRunner
from leadflow_scoring.leads import Leads
from leadflow_scoring.model_store import ModelStore

log = get_logger(__name__)


class Aborted(ServiceError):
    """A concurrency check failed (PutScoringModel's base_version): read again, retry."""

    code = grpc.StatusCode.ABORTED


@dataclass(frozen=True)
class LeadQuery:
    filter: repo.LeadFilter
    sort: str  # a key of repo.SORT_COLUMNS
    descending: bool
    include_factors: bool
    page_size: int
    page_token: str


class ScoringService:
    def __init__(self, context: ServiceContext) -> None:
        self._context = context
        self.models = ModelStore()
        self.leads = Leads(self.models)
        self.erased = ErasedSubjects()
        self.ingestion = Ingestion(self.leads, self.erased)
        self.jobs: JobRunner | None = None  # set by the app: woken when a job is created

    @property
    def _pool(self) -> Any:
        return self._context.pool

    # Reads --------------------------------------------------------------------------------

    async def get_score(self, tenant_id: str, lead_id: str) -> lead_score_pb2.LeadScore:
        async with self._pool.acquire() as conn:
            blob = await repo.score_row(conn, tenant_id, lead_id)
        if blob is None:
            raise NotFound(f"lead {lead_id!r} is not known to scoring")
        return lead_score_pb2.LeadScore.FromString(blob)

    async def list_leads(
        self, tenant_id: str, query: LeadQuery
    ) -> tuple[list[lead_score_pb2.LeadScore], int, str]:
        fp = paging.fingerprint(
            [
                sorted(query.filter.grades),
                sorted(query.filter.temperatures),
                sorted(query.filter.stages),
                query.filter.brand_id,
                query.filter.min_score,
                query.sort,
                query.descending,
            ]
        )
        after: tuple[Any, str] | None = None
        if query.page_token:
            try:
                value, last_id = paging.decode(query.page_token, fp)
            except (paging.BadToken, ValueError) as exc:
                raise InvalidArgument.field("page.page_token", str(exc)) from None
            if query.sort in ("computed_at", "last_activity_at") and value is not None:
                value = _from_micros(int(value))
            after = (value, str(last_id))
        async with self._pool.acquire() as conn:
            rows, count = await repo.list_leads(
                conn,
                tenant_id,
                query.filter,
                sort=query.sort,
                descending=query.descending,
                after=after,
                limit=query.page_size + 1,
            )
        more = len(rows) > query.page_size
        rows = rows[: query.page_size]
        scores = []
        for row in rows:
            score = lead_score_pb2.LeadScore.FromString(row["score"])
            scores.append(score if query.include_factors else mapping.without_factors(score))
        token = ""
        if more:
            last = rows[-1]
            value = last["sort_value"]
            if isinstance(value, datetime):
                value = _micros(value)
            token = paging.encode(fp, [value, last["lead_id"]])
        return scores, count, token

    async def score_history(
        self,
        tenant_id: str,
        lead_id: str,
        *,
        start: datetime | None,
        end: datetime | None,
        page_size: int,
        page_token: str,
    ) -> tuple[list[scoring_service_pb2.ScoreHistoryEntry], str]:
        fp = paging.fingerprint(["history", lead_id, start, end])
        before: tuple[datetime, int] | None = None
        if page_token:
            try:
                at, row_id = paging.decode(page_token, fp)
                before = (_from_micros(int(at)), int(row_id))
            except (paging.BadToken, ValueError, TypeError) as exc:
                raise InvalidArgument.field("page.page_token", str(exc)) from None
        async with self._pool.acquire() as conn:
            if not await repo.existing_leads(conn, tenant_id, [lead_id]):
                raise NotFound(f"lead {lead_id!r} is not known to scoring")
            rows = await repo.history_page(
                conn, tenant_id, lead_id, start=start, end=end, before=before, limit=page_size + 1
            )
        more = len(rows) > page_size
        rows = rows[:page_size]
        entries = [_history_entry(r) for r in rows]
        token = ""
        if more:
            token = paging.encode(fp, [_micros(rows[-1]["computed_at"]), rows[-1]["id"]])
        return entries, token

    async def lifecycle(
        self, tenant_id: str, lead_id: str, now: datetime
    ) -> scoring_service_pb2.GetLifecycleResponse:
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            current = await repo.stage_of(conn, tenant_id, lead_id)
            if current is None:
                raise NotFound(f"lead {lead_id!r} is not known to scoring")
            rows = await repo.transitions_of(conn, tenant_id, lead_id)
        response = scoring_service_pb2.GetLifecycleResponse(
            lead_id=lead_id,
            current_stage=mapping.STAGE_VALUES[LifecycleStage(current["stage"])],
            history=[_transition_from_row(r) for r in rows],
        )
        entered: datetime = current["stage_entered_at"]
        mapping.set_timestamp(response.entered_at, entered)
        mapping.set_duration(response.time_in_current_stage, max(timedelta(0), now - entered))
        return response

    async def job(self, tenant_id: str, job_id: str) -> scoring_service_pb2.ScoringJob:
        async with self._pool.acquire() as conn:
            row = await repo.job(conn, tenant_id, job_id)
        if row is None:
            raise NotFound(f"job {job_id!r} does not exist")
        return mapping.job_message(row)

    async def scoring_model(
        self, tenant_id: str, version: int | None
    ) -> tuple[ScoringModel, int, scoring_service_pb2.ScoringJob | None]:
        async with self._pool.acquire() as conn:
            active = await repo.active_version(conn, tenant_id)
            wanted = active if version is None else version
            model = await self.models.version(conn, tenant_id, wanted)
            if model is None:
                raise NotFound(f"version: scoring model version {wanted} does not exist")
            job = await repo.model_job(conn, tenant_id, wanted) if wanted else None
        return model, active, mapping.job_message(job) if job is not None else None

    # Changes ------------------------------------------------------------------------------

    async def transition_stage(
        self,
        tenant_id: str,
        lead_id: str,
        to_stage: LifecycleStage,
        reason: str,
        *,
        actor: str,
        now: datetime,
    ) -> tuple[lifecycle_pb2.LifecycleTransition, lead_score_pb2.LeadScore]:
        async with self._pool.acquire() as conn, conn.transaction():
            states, model = await self.leads.lock(conn, tenant_id, [lead_id], now=now, create=False)
            state = states.get(lead_id)
            if state is None:
                raise NotFound(f"lead {lead_id!r} is not known to scoring")
            try:
                transition_id, record = state.move(
                    to_stage, now, reason=reason, trigger=TransitionTrigger.API, actor=actor
                )
            except TransitionRefused as exc:
                raise FailedPrecondition(str(exc.violation)) from None
            state.causation_id = transition_id
            (scored,) = await self.leads.save(
                conn, tenant_id, [state], model, now=now, cause="stage"
            )
        log.info("stage_transitioned", lead_id=lead_id, to_stage=to_stage.value)
        return mapping.transition_message(transition_id, record), scored.message

    async def score_listed(
        self, tenant_id: str, lead_ids: Sequence[str], now: datetime
    ) -> tuple[scoring_service_pb2.ScoringJob, list[lead_score_pb2.LeadScore], list[str]]:
        """ScoreLeads for listed leads: recomputed in the call, recorded as a finished job."""
        job_id = str(uuid.uuid4())
        wanted = list(dict.fromkeys(lead_ids))
        async with self._pool.acquire() as conn, conn.transaction():
            states, model = await self.leads.lock(conn, tenant_id, wanted, now=now, create=False)
            scored = await self.leads.save(
                conn,
                tenant_id,
                [states[i] for i in wanted if i in states],
                model,
                now=now,
                cause="rescore",
                causation_id=job_id,
            )
            await repo.insert_job(
                conn,
                job_id=job_id,
                tenant_id=tenant_id,
                kind="score_leads",
                state="succeeded",
                model_version=model.version,
                created_at=now,
                leads_total=len(scored),
                leads_done=len(scored),
                leads_changed=sum(1 for s in scored if s.verdict.changed),
                finished=True,
            )
            job = await repo.job(conn, tenant_id, job_id)
        assert job is not None
        scores = [mapping.without_factors(s.message) for s in scored]
        return mapping.job_message(job), scores, [i for i in wanted if i not in states]

    async def score_all(self, tenant_id: str, now: datetime) -> scoring_service_pb2.ScoringJob:
        """ScoreLeads for all leads: a background job (the open one, if there is one)."""
        async with self._pool.acquire() as conn, conn.transaction():
            await repo.lock_models(conn, tenant_id)
            job = await repo.open_job(conn, tenant_id, "score_leads")
            if job is None:
                job_id = str(uuid.uuid4())
                await repo.insert_job(
                    conn,
                    job_id=job_id,
                    tenant_id=tenant_id,
                    kind="score_leads",
                    state="queued",
                    model_version=await repo.active_version(conn, tenant_id),
                    created_at=now,
                )
                job = await repo.job(conn, tenant_id, job_id)
        assert job is not None
        self._wake_jobs()
        return mapping.job_message(job)

    async def put_model(
        self, tenant_id: str, model: ScoringModel, base_version: int | None, now: datetime
    ) -> tuple[ScoringModel, scoring_service_pb2.ScoringJob]:
        """Store a new version (already validated), make it active and start rescoring every
        lead with it, cancelling the rescoring of an older version."""
        async with self._pool.acquire() as conn, conn.transaction():
            await repo.lock_models(conn, tenant_id)
            active = await repo.active_version(conn, tenant_id)
            if base_version is not None and base_version != active:
                raise Aborted(f"base_version: the active version is {active}, not {base_version}")
            version = active + 1
            stored = replace(model, version=version, created_at=now)
            await repo.insert_model(conn, tenant_id, version, mapping.model_to_json(stored), now)
            job_id = str(uuid.uuid4())
            await repo.cancel_jobs(conn, tenant_id, "model_rescore", job_id, now)
            await repo.insert_job(
                conn,
                job_id=job_id,
                tenant_id=tenant_id,
                kind="model_rescore",
                state="queued",
                model_version=version,
                created_at=now,
            )
            job = await repo.job(conn, tenant_id, job_id)
        assert job is not None
        log.info("scoring_model_stored", version=version, job_id=job_id)
        self._wake_jobs()
        return stored, mapping.job_message(job)

    def _wake_jobs(self) -> None:
        if self.jobs is not None:
            self.jobs.wake()


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def _micros(value: datetime) -> int:
    return (value - _EPOCH) // _MICRO


def _from_micros(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def _history_entry(row: Any) -> scoring_service_pb2.ScoreHistoryEntry:
    entry = scoring_service_pb2.ScoreHistoryEntry(
        total=row["total"],
        undecayed_total=row["undecayed_total"],
        components=lead_score_pb2.ComponentScores.FromString(row["components"]),
        grade=mapping.GRADE_VALUES[Grade(row["grade"])],
        temperature=mapping.TEMPERATURE_VALUES[Temperature(row["temperature"])],
        stage=mapping.STAGE_VALUES[LifecycleStage(row["stage"])],
        model_version=row["model_version"],
        cause=mapping.CAUSE_VALUES[row["cause"]],
        causation_id=row["causation_id"],
    )
    mapping.set_timestamp(entry.computed_at, row["computed_at"])
    return entry


def _transition_from_row(row: Any) -> lifecycle_pb2.LifecycleTransition:
    message = lifecycle_pb2.LifecycleTransition(
        transition_id=row["transition_id"],
        from_stage=mapping.STAGE_VALUES[LifecycleStage(row["from_stage"])]
        if row["from_stage"]
        else lead_pb2.LIFECYCLE_STAGE_UNSPECIFIED,
        to_stage=mapping.STAGE_VALUES[LifecycleStage(row["to_stage"])],
        reason=row["reason"],
        trigger=mapping.TRIGGER_VALUES[TransitionTrigger(row["trigger"])],
        triggering_event_id=row["triggering_event_id"],
        actor=row["actor"],
        touchpoint_event_ids=list(row["touchpoint_event_ids"]),
        touchpoint_count=row["touchpoint_count"],
    )
    mapping.set_timestamp(message.transitioned_at, row["transitioned_at"])
    mapping.set_duration(message.time_in_previous_stage, row["time_in_previous_stage"])
    return message
