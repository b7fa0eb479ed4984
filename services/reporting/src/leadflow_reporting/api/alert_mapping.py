"""KPI alert configurations and alerts as protos (and back, for stored configurations), and
the `reporting.alert.raised` event of an alert."""

from __future__ import annotations

from decimal import Decimal

from leadflow.reporting.v1 import alerts_pb2, events_pb2
from leadflow.reporting.v1 import report_types_pb2 as rt
from leadflow_platform.nats import OutboxMessage
from leadflow_reporting.api.business_mapping import KPI_SHORT
from leadflow_reporting.api.mapping import money, timestamp
from leadflow_reporting.domain.alerts import Alert, AlertConfig, Amount, Rule

PRODUCER = "reporting"


def kpi_value(amount: Amount, currency: str) -> rt.KpiValue:
    if currency:
        return rt.KpiValue(money=money(currency, Decimal(amount)))
    return rt.KpiValue(number=float(amount))


def _rule(r: Rule) -> alerts_pb2.KpiAlertRule:
    return alerts_pb2.KpiAlertRule(
        rule_id=r.rule_id,
        kpi=rt.Kpi.ValueType(r.kpi),
        brand_id=r.brand_id,
        period=alerts_pb2.AlertPeriod.ValueType(r.period),
        threshold=kpi_value(r.threshold, r.currency),
        direction=alerts_pb2.ThresholdDirection.ValueType(r.direction),
        disabled=r.disabled,
        description=r.description,
    )


def config_to_proto(c: AlertConfig) -> alerts_pb2.AlertConfig:
    out = alerts_pb2.AlertConfig(
        version=c.version, rules=[_rule(r) for r in c.rules], time_zone=c.time_zone
    )
    if c.version:
        out.updated_at.CopyFrom(timestamp(c.saved_at_us))
    return out


def _amount(v: rt.KpiValue) -> tuple[Amount, str]:
    if v.WhichOneof("value") == "money":
        m = v.money
        return Decimal(m.units) + Decimal(m.nanos) / Decimal(1_000_000_000), m.currency_code
    return v.number, ""


def config_from_proto(c: alerts_pb2.AlertConfig) -> AlertConfig:
    """A stored configuration (saved with its defaults filled in) back as domain values."""
    rules = []
    for r in c.rules:
        threshold, currency = _amount(r.threshold)
        rules.append(
            Rule(
                rule_id=r.rule_id,
                kpi=int(r.kpi),
                threshold=threshold,
                brand_id=r.brand_id,
                period=int(r.period),
                currency=currency,
                direction=int(r.direction),
                disabled=r.disabled,
                description=r.description,
            )
        )
    saved = c.updated_at.seconds * 1_000_000 + c.updated_at.nanos // 1000
    return AlertConfig(c.version, tuple(rules), c.time_zone or "UTC", saved)


def kpi_alert(a: Alert) -> alerts_pb2.KpiAlert:
    out = alerts_pb2.KpiAlert(
        alert_id=a.alert_id,
        rule_id=a.rule_id,
        config_version=a.config_version,
        kpi=rt.Kpi.ValueType(a.kpi),
        kpi_name=KPI_SHORT.get(a.kpi, ""),
        brand_id=a.brand_id,
        value=kpi_value(a.value, a.currency),
        threshold=kpi_value(a.threshold, a.currency),
        direction=alerts_pb2.ThresholdDirection.ValueType(a.direction),
        period_kind=alerts_pb2.AlertPeriod.ValueType(a.period_kind),
        message=a.message,
        raised_at=timestamp(a.raised_at_us),
    )
    out.period.start_time.CopyFrom(timestamp(a.start_us))
    out.period.end_time.CopyFrom(timestamp(a.end_us))
    if a.previous is not None:
        out.previous_value.CopyFrom(kpi_value(a.previous, a.currency))
    return out


def alert_raised(tenant_id: str, a: Alert) -> OutboxMessage:
    """The event of a raised alert; its event id (and Nats-Msg-Id) is the alert id."""
    message = events_pb2.AlertRaised(alert=kpi_alert(a))
    message.metadata.event_id = a.alert_id
    message.metadata.tenant_id = tenant_id
    message.metadata.producer = PRODUCER
    message.metadata.occurred_at.CopyFrom(timestamp(a.raised_at_us))
    return OutboxMessage(message, message_id=a.alert_id, tenant_id=tenant_id)
