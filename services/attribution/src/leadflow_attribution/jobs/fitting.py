"""The data-driven fit job: computes requested MARKOV and SHAPLEY fits per tenant and range,
and recomputes cached ones when the tenant's data changed (at most every refresh interval)
or, for the rolling window, when they grew old. Replicas share the work through leases
(db/fits.py): a replica claims a fit, reads its data in one short read-only snapshot, computes
with no transaction open and no connection held, renewing the lease meanwhile, and stores the
result only if the lease is still its own."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

import asyncpg

from leadflow_attribution.db import fits
from leadflow_attribution.db import repository as repo
from leadflow_attribution.domain.columns import TouchColumns, encode_conversions
from leadflow_attribution.domain.journey import Conversion
from leadflow_attribution.domain.markov import fit_markov_columns
from leadflow_attribution.domain.models import AttributionModel
from leadflow_attribution.domain.policy import TenantPolicy
from leadflow_attribution.domain.shapley import fit_shapley_columns
from leadflow_attribution.domain.training import training_columns
from leadflow_platform.logging import get_logger

log = get_logger(__name__)


def compute_fit(
    key: fits.FitKey,
    touches: TouchColumns,
    conversions: Sequence[Conversion],
    start: datetime,
    end: datetime,
    generation: int,
) -> fits.FitResult:
    """Pure: the fit of `key` over the conversions in [start, end) and the subjects'
    non-converting journeys (`touches`: the subjects' touchpoints as columns)."""
    lookback = timedelta(seconds=key.lookback_seconds)
    training = training_columns(
        touches, encode_conversions(conversions, touches.subject_index()), start, end, lookback
    )
    if key.model is AttributionModel.MARKOV:
        markov = fit_markov_columns(training.paths, key.markov_order)
        stats, weights = markov.stats, markov.weights()
        exact, samples, bound, confidence, converged = True, 0, 0.0, 0.0, markov.converged
    else:
        shapley = fit_shapley_columns(training.paths)
        stats, weights = shapley.stats, shapley.weights()
        exact, samples = shapley.exact, shapley.sample_count
        bound, confidence, converged = shapley.error_bound, shapley.error_confidence, True
    return fits.FitResult(
        generation=generation,
        training_start=start,
        training_end=end,
        data_through=training.data_through,
        journey_count=stats.journey_count,
        converting_journey_count=stats.converting_journey_count,
        channel_count=stats.channel_count,
        exact=exact,
        sample_count=samples,
        error_bound=bound,
        error_confidence=confidence,
        converged=converged,
        weights=weights,
    )


class FitJob:
    def __init__(
        self,
        pool: Callable[[], asyncpg.Pool],
        policies: Callable[[str], Awaitable[TenantPolicy]],
        *,
        interval_seconds: float,
        refresh_seconds: float,
        max_age_seconds: float,
        lease_seconds: float,
    ) -> None:
        self._pool = pool
        self._policies = policies
        self._interval = interval_seconds
        self._refresh = timedelta(seconds=refresh_seconds)
        self._max_age = timedelta(seconds=max_age_seconds)
        self._lease = lease_seconds
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """A fit was requested: look at once instead of at the next interval."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._wake.clear()
            try:
                worked = await self.run_once(datetime.now(UTC))
            except Exception:
                log.exception("fit_failed")
                worked = False
            if worked:
                continue
            stopping = asyncio.ensure_future(stop.wait())
            woken = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({stopping, woken}, timeout=self._interval,
                                   return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
            finally:
                for waiter in (stopping, woken):
                    waiter.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await waiter

    async def run_once(self, now: datetime) -> bool:
        """Claim, compute and store one due fit; False when none is due. A fit that fails
        keeps its lease until it runs out, so the job moves on to other fits meanwhile."""
        lease = await self.claim(now)
        if lease is None:
            return False
        keeper = asyncio.create_task(self.hold(lease))
        try:
            result = await self.compute(lease, now)
            await self.store(lease, result, now)
        except asyncio.CancelledError:
            # Stopping: hand the fit to another replica now rather than when the lease ends.
            with contextlib.suppress(Exception):
                async with self._pool().acquire() as conn:
                    await fits.release_lease(conn, lease)
            raise
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        return True

    async def claim(self, now: datetime) -> fits.Lease | None:
        async with self._pool().acquire() as conn:
            return await fits.claim_due(conn, now, self._refresh, self._max_age, self._lease)

    async def compute(self, lease: fits.Lease, now: datetime) -> fits.FitResult:
        """Read the fit's data in one read-only snapshot (the generation with it, so the
        result is never labelled newer than its data), then compute with the connection
        back in the pool."""
        key = lease.key
        if key.range_start is not None and key.range_end is not None:
            start, end = key.range_start, key.range_end
        else:
            policy = await self._policies(lease.tenant_id)
            start, end = now - policy.training_window, now
        lookback = timedelta(seconds=key.lookback_seconds)
        async with (
            self._pool().acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            generation = await repo.generation(conn, lease.tenant_id)
            touchpoints = await fits.touchpoints_between(
                conn, lease.tenant_id, start - lookback, end
            )
            rows = await repo.conversions_in(
                conn, repo.ConversionFilter(lease.tenant_id, start, end)
            )
        return await asyncio.to_thread(
            compute_fit, key, touchpoints, [r.conversion for r in rows], start, end, generation
        )

    async def store(self, lease: fits.Lease, result: fits.FitResult, now: datetime) -> bool:
        """Write the result back if the lease still holds; False: it was discarded."""
        async with self._pool().acquire() as conn:
            saved = await fits.save_fit(conn, lease, result, now)
        if saved:
            log.info(
                "fit_computed",
                tenant_id=lease.tenant_id,
                fit=lease.key.text,
                journeys=result.journey_count,
                converting=result.converting_journey_count,
            )
        else:
            log.warning("fit_discarded", tenant_id=lease.tenant_id, fit=lease.key.text,
                        reason="lease lost")  # fmt: skip
        return saved

    async def hold(self, lease: fits.Lease) -> None:
        """Renew the lease every third of its length until cancelled or lost, so a fit that
        takes longer than one lease is not taken over while its replica is alive."""
        while True:
            await asyncio.sleep(self._lease / 3)
            try:
                async with self._pool().acquire() as conn:
                    held = await fits.renew_lease(conn, lease, self._lease)
            except (asyncpg.PostgresError, OSError) as exc:
                log.warning("fit_lease_renewal_failed", fit=lease.key.text, error=repr(exc))
                continue
            if not held:
                log.warning("fit_lease_lost", tenant_id=lease.tenant_id, fit=lease.key.text)
                return
