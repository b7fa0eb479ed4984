"""SQL of KPI alerts: configuration versions (a locked head row assigns them one at a
time), evaluation watermarks, raised alerts (stored once per tenant and alert id) and their
lists. `alerts_in_range` is what other reports read alerts with."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from leadflow_reporting.domain.alerts import Alert, Amount

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Alerts a range read returns at most (GetPortfolioMetrics, the weekly report).
RANGE_LIMIT = 100

_COLUMNS = (
    "alert_id, rule_id, config_version, kpi, brand_id, period_kind, period_start, period_end,"
    " direction, currency_code, value, threshold, previous_value, message, raised_at"
)


def at(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def us(t: datetime) -> int:
    delta = t - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


# Configuration versions -------------------------------------------------------------------


async def lock_head(conn: asyncpg.Connection, tenant_id: str) -> int:
    """The tenant's current version (0: none), locked until the transaction ends."""
    await conn.execute(
        "INSERT INTO alert_config_heads (tenant_id, version) VALUES ($1, 0)"
        " ON CONFLICT (tenant_id) DO NOTHING",
        tenant_id,
    )
    version: int = await conn.fetchval(
        "SELECT version FROM alert_config_heads WHERE tenant_id = $1 FOR UPDATE", tenant_id
    )
    return version


async def insert_config(
    conn: asyncpg.Connection, tenant_id: str, version: int, payload: bytes, saved_at: datetime
) -> None:
    """Store a version and make it current (the head must be locked by lock_head)."""
    await conn.execute(
        "INSERT INTO alert_configs (tenant_id, version, config, saved_at) VALUES ($1, $2, $3, $4)",
        tenant_id,
        version,
        payload,
        saved_at,
    )
    await conn.execute(
        "UPDATE alert_config_heads SET version = $2 WHERE tenant_id = $1", tenant_id, version
    )


async def current_version(conn: asyncpg.Connection, tenant_id: str, *, share: bool = False) -> int:
    """The current version (0: none); `share` holds it (no new version) until commit."""
    lock = " FOR SHARE" if share else ""
    version = await conn.fetchval(
        f"SELECT version FROM alert_config_heads WHERE tenant_id = $1{lock}", tenant_id
    )
    return int(version or 0)


async def config_payload(conn: asyncpg.Connection, tenant_id: str, version: int) -> bytes | None:
    payload: bytes | None = await conn.fetchval(
        "SELECT config FROM alert_configs WHERE tenant_id = $1 AND version = $2",
        tenant_id,
        version,
    )
    return payload


async def configured_tenants(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        "SELECT tenant_id FROM alert_config_heads WHERE version > 0 ORDER BY tenant_id"
    )
    return [r["tenant_id"] for r in rows]


# Evaluation -------------------------------------------------------------------------------


async def watermarks(conn: asyncpg.Connection, tenant_id: str) -> dict[int, int]:
    """Per period kind: every period ending at or before this instant was evaluated."""
    rows = await conn.fetch(
        "SELECT period_kind, evaluated_until FROM alert_watermarks WHERE tenant_id = $1",
        tenant_id,
    )
    return {r["period_kind"]: us(r["evaluated_until"]) for r in rows}


async def claim_period(
    conn: asyncpg.Connection, tenant_id: str, kind: int, since_us: int, end_us: int
) -> bool:
    """In the transaction that stores a period's alerts: lock the kind's watermark (made at
    `since_us` when missing) and move it to the period's end. False when the period was
    evaluated already (by another replica): nothing is to be stored then."""
    await conn.execute(
        "INSERT INTO alert_watermarks (tenant_id, period_kind, evaluated_until)"
        " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        tenant_id,
        kind,
        at(since_us),
    )
    until = await conn.fetchval(
        "SELECT evaluated_until FROM alert_watermarks WHERE tenant_id = $1 AND period_kind = $2"
        " FOR UPDATE",
        tenant_id,
        kind,
    )
    if us(until) >= end_us:
        return False
    await conn.execute(
        "UPDATE alert_watermarks SET evaluated_until = $3 WHERE tenant_id = $1"
        " AND period_kind = $2",
        tenant_id,
        kind,
        at(end_us),
    )
    return True


def _number(value: Amount) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(repr(float(value)))


async def insert_alerts(
    conn: asyncpg.Connection, tenant_id: str, alerts: Sequence[Alert]
) -> list[Alert]:
    """Store alerts once per (tenant, alert id); returns those actually inserted."""
    if not alerts:
        return []
    rows = [
        (
            a.alert_id,
            a.rule_id,
            a.config_version,
            a.kpi,
            a.brand_id,
            a.period_kind,
            at(a.start_us),
            at(a.end_us),
            a.direction,
            a.currency,
            _number(a.value),
            _number(a.threshold),
            None if a.previous is None else _number(a.previous),
            a.message,
            at(a.raised_at_us),
        )
        for a in alerts
    ]
    inserted = await conn.fetch(
        f"INSERT INTO alerts (tenant_id, {_COLUMNS})"
        " SELECT $1, * FROM unnest($2::text[], $3::text[], $4::int8[], $5::int2[], $6::text[],"
        " $7::int2[], $8::timestamptz[], $9::timestamptz[], $10::int2[], $11::text[],"
        " $12::numeric[], $13::numeric[], $14::numeric[], $15::text[], $16::timestamptz[])"
        " ON CONFLICT (tenant_id, alert_id) DO NOTHING RETURNING alert_id",
        tenant_id,
        *[list(column) for column in zip(*rows, strict=True)],
    )
    done = {r["alert_id"] for r in inserted}
    return [a for a in alerts if a.alert_id in done]


# Reading ----------------------------------------------------------------------------------


def _amount(value: Decimal | None, currency: str) -> Amount | None:
    if value is None:
        return None
    return value if currency else float(value)


def _alert(r: asyncpg.Record) -> Alert:
    currency = r["currency_code"]
    value = _amount(r["value"], currency)
    threshold = _amount(r["threshold"], currency)
    assert value is not None and threshold is not None
    return Alert(
        alert_id=r["alert_id"],
        rule_id=r["rule_id"],
        config_version=r["config_version"],
        kpi=r["kpi"],
        brand_id=r["brand_id"],
        value=value,
        threshold=threshold,
        currency=currency,
        direction=r["direction"],
        period_kind=r["period_kind"],
        start_us=us(r["period_start"]),
        end_us=us(r["period_end"]),
        previous=_amount(r["previous_value"], currency),
        message=r["message"],
        raised_at_us=us(r["raised_at"]),
    )


async def list_alerts(
    conn: asyncpg.Connection,
    tenant_id: str,
    *,
    start_us: int | None = None,
    end_us: int | None = None,
    kpis: Sequence[int] = (),
    brand_ids: Sequence[str] | None = None,
    after: tuple[int, str] | None = None,
    limit: int,
) -> list[Alert]:
    """Alerts newest first (raised_at, then alert_id, both descending): those whose period
    overlaps [start, end) when given, of the KPIs and brands ('' the portfolio) when given,
    after the (raised_at, alert_id) of a previous page's last alert."""
    where = ["tenant_id = $1"]
    args: list[Any] = [tenant_id]

    def add(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if start_us is not None and end_us is not None:
        where.append(f"period_start < {add(at(end_us))} AND period_end > {add(at(start_us))}")
    if kpis:
        where.append(f"kpi = ANY({add(list(kpis))}::int2[])")
    if brand_ids is not None:
        where.append(f"brand_id = ANY({add(list(brand_ids))}::text[])")
    if after is not None:
        where.append(f"(raised_at, alert_id) < ({add(at(after[0]))}, {add(after[1])})")
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM alerts WHERE {' AND '.join(where)}"
        f" ORDER BY raised_at DESC, alert_id DESC LIMIT {add(limit)}",
        *args,
    )
    return [_alert(r) for r in rows]


async def alerts_in_range(
    conn: asyncpg.Connection,
    tenant_id: str,
    start_us: int,
    end_us: int,
    brand_ids: Sequence[str] = (),
    limit: int = RANGE_LIMIT,
) -> list[Alert]:
    """The alerts whose period overlaps [start, end), newest first, at most `limit`; with
    brand ids, only the alerts about those brands. (api.alert_mapping.kpi_alert makes each a
    leadflow.reporting.v1.KpiAlert.)"""
    return await list_alerts(
        conn,
        tenant_id,
        start_us=start_us,
        end_us=end_us,
        brand_ids=list(brand_ids) if brand_ids else None,
        limit=limit,
    )


# Retention --------------------------------------------------------------------------------

RETENTION_DELETES = {
    "alerts": "DELETE FROM alerts WHERE ctid = ANY(ARRAY("
    "SELECT ctid FROM alerts WHERE tenant_id = $1 AND raised_at < $2 LIMIT $3))",
}
"""Statements ($1 tenant, $2 cutoff, $3 slice size) deleting one slice of expired alerts."""
