"""The event attribution publishes (through its outbox): attribution.conversion.attributed."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from leadflow.attribution.v1 import events_pb2
from leadflow_attribution.api import mapping
from leadflow_attribution.db.repository import ConversionRow, TouchpointRow
from leadflow_attribution.domain.attribution import ConversionAttribution
from leadflow_attribution.domain.models import AttributionOptions
from leadflow_platform.nats import OutboxMessage

PRODUCER = "attribution"


def message_id(tenant_id: str, conversion_id: str, revision: int) -> str:
    """Stable per (conversion, revision): a re-relayed copy is recognised downstream."""
    return f"attribution:{tenant_id}:{conversion_id}:{revision}"


def conversion_attributed(
    tenant_id: str,
    row: ConversionRow,
    result: ConversionAttribution,
    revision: int,
    details: Mapping[str, TouchpointRow],
    options: AttributionOptions,
    at: datetime,
) -> OutboxMessage:
    event_id = message_id(tenant_id, row.conversion.conversion_id, revision)
    message = events_pb2.ConversionAttributed(revision=revision)
    meta = message.metadata
    meta.event_id = event_id
    meta.tenant_id = tenant_id
    meta.producer = PRODUCER
    meta.causation_id = row.source_event_id
    mapping.set_timestamp(meta.occurred_at, at)
    mapping.set_conversion(message.conversion, row)
    rows = [details[t.event_id] for t in result.journey]
    mapping.add_journey(message.touchpoints, rows, result.roles())
    event_ids = [t.event_id for t in result.journey]
    for model in sorted(result.credits):
        entry = message.attributions.add(model=int(model))
        mapping.set_options(entry.options, options)
        mapping.set_timestamp(entry.computed_at, at)
        mapping.set_credits(entry, event_ids, result.credits[model], row.conversion.currency)
    return OutboxMessage(message, message_id=event_id, tenant_id=tenant_id)
