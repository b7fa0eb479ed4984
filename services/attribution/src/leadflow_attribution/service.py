"""Attribution's read use cases (GetAttribution, Summarize, CompareModels, GetJourney). The
writes happen in ingestion.py, driven by the events attribution consumes."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from leadflow.attribution.v1 import attribution_service_pb2 as pb
from leadflow.common.v1 import pagination_pb2, subject_pb2
from leadflow_attribution import crediting
from leadflow_attribution.api import mapping
from leadflow_attribution.db import fits
from leadflow_attribution.db import repository as repo
from leadflow_attribution.domain.currency import currency_exponent
from leadflow_attribution.domain.models import AttributionModel, AttributionOptions
from leadflow_attribution.domain.policy import TenantPolicy, tenant_policy
from leadflow_attribution.domain.summary import (
    AttributedConversion,
    Dimension,
    Summary,
    compare_summaries,
    merge_summaries,
    summarize,
    summarize_channel_weights,
    summary_from_totals,
)
from leadflow_attribution.erasure import Erasure
from leadflow_attribution.ingestion import Ingestion
from leadflow_attribution.jobs.fitting import FitJob
from leadflow_platform.errors import InvalidArgument, NotFound
from leadflow_platform.lifecycle import ServiceContext
from leadflow_platform.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class RangeQuery:
    """What Summarize and CompareModels share: which conversions, which options, which page."""

    where: repo.ConversionFilter
    dimension: Dimension
    options: AttributionOptions
    page_size: int
    page_token: str
    fingerprint: str  # of the request without its page, so a token fits only its query


@dataclass(frozen=True)
class _ModelSummary:
    summary: Summary | None  # None: a data-driven model not fitted yet
    fit: fits.FitRow | None


def _now() -> datetime:
    return datetime.now(UTC)


def page_token(offset: int, fingerprint: str) -> str:
    raw = json.dumps({"o": offset, "f": fingerprint}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def page_offset(token: str, fingerprint: str) -> int:
    if not token:
        return 0
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        offset = int(data["o"])
        if data["f"] != fingerprint or offset < 0:
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise InvalidArgument.field("page.page_token", "not a token this query returned") from None
    return offset


def fingerprint(message: Any) -> str:
    copy = type(message)()
    copy.CopyFrom(message)
    copy.ClearField("page")
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).hexdigest()[:24]


class AttributionService:
    def __init__(self, context: ServiceContext) -> None:
        self._context = context
        self.erasure = Erasure()
        self.ingestion = Ingestion(self.policy, self.erasure)
        self.fitter: FitJob | None = None  # set by the app: woken when a fit is requested

    @property
    def pool(self) -> asyncpg.Pool:
        return self._context.pool

    async def policy(self, tenant_id: str) -> TenantPolicy:
        policy, ignored = tenant_policy(await self._context.tenants.settings(tenant_id))
        if ignored:
            log.warning("tenant_settings_ignored", tenant_id=tenant_id, keys=list(ignored))
        return policy

    def _wake_fitter(self) -> None:
        if self.fitter is not None:
            self.fitter.wake()

    # GetAttribution -----------------------------------------------------------------------

    async def get_attribution(
        self,
        tenant_id: str,
        conversion_id: str,
        models: Sequence[AttributionModel],
        options: AttributionOptions,
    ) -> pb.GetAttributionResponse:
        now = _now()
        async with self.pool.acquire() as conn:
            row = await repo.conversion(conn, tenant_id, conversion_id)
            if row is None:
                raise NotFound(f"conversion {conversion_id!r} is not known to attribution")
            weights: dict[AttributionModel, dict[str, float]] = {}
            fitted: dict[AttributionModel, fits.FitRow] = {}
            pending: list[AttributionModel] = []
            for model in models:
                if not model.data_driven:
                    continue
                fit = await fits.request_fit(conn, tenant_id, self._rolling_key(model, options))
                if fit.computed_at is None:
                    pending.append(model)
                else:
                    fitted[model], weights[model] = fit, dict(fit.weights)
            generation = await repo.generation(conn, tenant_id) if fitted else 0
            touchpoints, entries = await crediting.journeys(conn, tenant_id, [row], options)
            answered = [m for m in models if m not in pending]
            (result,) = crediting.attribute_rows(
                [row], touchpoints, entries, options, answered, weights
            )
            stored = (
                await repo.stored_credits(conn, tenant_id, conversion_id)
                if row.options == crediting.heuristic_options(options)
                else {}
            )
            details = await repo.touchpoint_rows(
                conn, tenant_id, [t.event_id for t in result.journey]
            )
        if pending:
            self._wake_fitter()
        response = pb.GetAttributionResponse(pending_models=[int(m) for m in pending])  # type: ignore[misc]
        mapping.set_conversion(response.conversion, row)
        mapping.add_journey(
            response.touchpoints, [details[t.event_id] for t in result.journey], result.roles()
        )
        event_ids = [t.event_id for t in result.journey]
        for model in answered:
            credits = result.credits[model]
            computed_at = now
            kept = stored.get(model)
            if kept is not None and [e for e, _ in kept] == event_ids and row.attributed_at:
                credits, computed_at = tuple(c for _, c in kept), row.attributed_at
            entry = response.attributions.add(model=int(model))
            mapping.set_options(entry.options, options)
            mapping.set_timestamp(entry.computed_at, computed_at)
            mapping.set_credits(entry, event_ids, credits, row.conversion.currency)
            if model in fitted:
                mapping.set_fit(entry.fit, fitted[model], generation)
        return response

    @staticmethod
    def _rolling_key(model: AttributionModel, options: AttributionOptions) -> fits.FitKey:
        return fits.FitKey(
            model,
            options.markov_order if model is AttributionModel.MARKOV else 0,
            int(options.lookback_window.total_seconds()),
        )

    # Summaries ------------------------------------------------------------------------------

    async def _model_summary(
        self,
        conn: asyncpg.Connection,
        query: RangeQuery,
        model: AttributionModel,
    ) -> _ModelSummary:
        where, options, dimension = query.where, query.options, query.dimension
        if not model.data_driven:
            options = crediting.heuristic_options(options)
            stored = await repo.summarize_stored(conn, where, model, dimension, options)
            parts = [
                summary_from_totals(
                    dimension, stored.labels, stored.conversion_count, stored.total_values
                )
            ]
            others = await repo.conversions_not_matching(conn, where, model, options)
            if others:
                parts.append(
                    summarize(
                        await self._attributed(conn, where, others, model, options), dimension
                    )
                )
            return _ModelSummary(merge_summaries(dimension, parts), None)
        key = fits.FitKey(
            model,
            options.markov_order if model is AttributionModel.MARKOV else 0,
            int(options.lookback_window.total_seconds()),
            where.start,
            where.end,
        )
        fit = await fits.request_fit(conn, where.tenant_id, key)
        if fit.computed_at is None:
            return _ModelSummary(None, fit)
        rows = await repo.conversions_in(conn, where)
        items = await self._attributed(conn, where, rows, model, options, dict(fit.weights))
        if dimension is Dimension.CHANNEL:
            exponents = {
                r.conversion.currency: currency_exponent(r.conversion.currency)
                for r in rows
                if r.conversion.currency
            }
            return _ModelSummary(summarize_channel_weights(items, fit.weights, exponents), fit)
        return _ModelSummary(summarize(items, dimension), fit)

    async def _attributed(
        self,
        conn: asyncpg.Connection,
        where: repo.ConversionFilter,
        rows: Sequence[repo.ConversionRow],
        model: AttributionModel,
        options: AttributionOptions,
        weights: dict[str, float] | None = None,
    ) -> list[AttributedConversion]:
        touchpoints, entries = await crediting.journeys(conn, where.tenant_id, rows, options)
        results = crediting.attribute_rows(
            rows, touchpoints, entries, options, [model],
            {model: weights} if weights is not None else None,
        )  # fmt: skip
        out = [AttributedConversion(r.conversion, r.journey, r.credits[model]) for r in results]
        return out

    async def summarize(self, query: RangeQuery, model: AttributionModel) -> pb.SummarizeResponse:
        async with self.pool.acquire() as conn:
            found = await self._model_summary(conn, query, model)
            generation = await repo.generation(conn, query.where.tenant_id)
        response = pb.SummarizeResponse(dimension=int(query.dimension), model=int(model))  # type: ignore[arg-type]
        mapping.set_options(response.options, query.options)
        if found.fit is not None and found.fit.computed_at is not None:
            mapping.set_fit(response.fit, found.fit, generation)
        if found.summary is None:
            self._wake_fitter()
            response.pending = True
            return response
        summary = found.summary
        response.conversion_count = summary.conversion_count
        response.total_values.extend(
            mapping.money(a.value, a.currency) for a in summary.total_values
        )
        offset = page_offset(query.page_token, query.fingerprint)
        rows = summary.rows[offset : offset + query.page_size]
        for row in rows:
            response.rows.add(
                dimension_value=row.dimension_value,
                credited_conversions=float(row.credited_conversions),
                credited_values=[mapping.money(a.value, a.currency) for a in row.credited_values],
                share_of_conversions=row.share_of_conversions,
                conversion_count=row.conversion_count,
                touchpoint_count=row.touchpoint_count,
            )
        response.page.CopyFrom(self._next_page(offset, len(summary.rows), query))
        return response

    @staticmethod
    def _next_page(offset: int, total: int, query: RangeQuery) -> pagination_pb2.PageResponse:
        end = offset + query.page_size
        return pagination_pb2.PageResponse(
            next_page_token=page_token(end, query.fingerprint) if end < total else ""
        )

    async def compare(
        self, query: RangeQuery, models: Sequence[AttributionModel]
    ) -> pb.CompareModelsResponse:
        summaries: dict[AttributionModel, Summary] = {}
        used: dict[AttributionModel, fits.FitRow] = {}
        pending: list[AttributionModel] = []
        async with self.pool.acquire() as conn:
            for model in models:
                found = await self._model_summary(conn, query, model)
                if found.summary is None:
                    pending.append(model)
                    continue
                summaries[model] = found.summary
                if found.fit is not None:
                    used[model] = found.fit
            generation = await repo.generation(conn, query.where.tenant_id)
        if pending:
            self._wake_fitter()
        response = pb.CompareModelsResponse(
            dimension=int(query.dimension),  # type: ignore[arg-type]
            models=[int(m) for m in summaries],  # type: ignore[misc]
            pending_models=[int(m) for m in pending],  # type: ignore[misc]
        )
        for model, fit in used.items():
            mapping.set_fit(response.fits.add(model=int(model)).fit, fit, generation)
        if not summaries:
            return response
        comparison = compare_summaries(summaries)
        response.conversion_count = comparison.conversion_count
        response.total_values.extend(
            mapping.money(a.value, a.currency) for a in comparison.total_values
        )
        offset = page_offset(query.page_token, query.fingerprint)
        for row in comparison.rows[offset : offset + query.page_size]:
            out = response.rows.add(dimension_value=row.dimension_value)
            for credit in row.credits:
                out.credits.add(
                    model=int(credit.model),
                    credited_conversions=float(credit.credited_conversions),
                    credited_values=[
                        mapping.money(a.value, a.currency) for a in credit.credited_values
                    ],
                    share_of_conversions=credit.share_of_conversions,
                )
        response.page.CopyFrom(self._next_page(offset, len(comparison.rows), query))
        return response

    # GetJourney -------------------------------------------------------------------------------

    async def journey(
        self,
        tenant_id: str,
        lead_id: str,
        anonymous_id: str,
        since: datetime | None,
        until: datetime | None,
        page_size: int,
        token: str,
    ) -> pb.GetJourneyResponse:
        cursor = _journey_cursor(token)
        async with self.pool.acquire() as conn:
            if not lead_id:
                lead_id = (await repo.leads_of(conn, tenant_id, [anonymous_id])).get(
                    anonymous_id, ""
                )
            anons = await repo.anonymous_ids_of(conn, tenant_id, lead_id) if lead_id else []
            keys = [repo.lead_key(lead_id)] if lead_id else []
            keys += [repo.anon_key(a) for a in sorted({*anons, anonymous_id} - {""})]
            if not await repo.subject_known(conn, tenant_id, keys, lead_id):
                raise NotFound("attribution knows no event of this subject")
            entries = await repo.journey_page(
                conn, tenant_id, keys, lead_id, since, until, cursor, page_size + 1
            )
        response = pb.GetJourneyResponse(
            subject=subject_pb2.SubjectRef(lead_id=lead_id, anonymous_id=anonymous_id),
            anonymous_ids=anons,
        )
        for _, entry in entries[:page_size]:
            out = response.entries.add()
            if isinstance(entry, repo.TouchpointRow):
                mapping.set_touchpoint(out.touchpoint, entry)
            elif isinstance(entry, repo.ConversionRow):
                mapping.set_conversion(out.conversion, entry)
            else:
                mapping.set_stage_change(out.stage_change, entry)
        if len(entries) > page_size:
            last = entries[page_size - 1][0]
            raw = json.dumps([last.occurred_at.isoformat(), last.entry_id, last.kind]).encode()
            response.page.next_page_token = base64.urlsafe_b64encode(raw).decode()
        return response


def _journey_cursor(token: str) -> repo.JourneyCursor | None:
    if not token:
        return None
    try:
        at, entry_id, kind = json.loads(base64.urlsafe_b64decode(token.encode()))
        moment = datetime.fromisoformat(at)
        if moment.tzinfo is None or kind not in (0, 1, 2) or not isinstance(entry_id, str):
            raise ValueError
    except (ValueError, TypeError):
        raise InvalidArgument.field("page.page_token", "not a token GetJourney returned") from None
    return repo.JourneyCursor(moment, entry_id, kind)
