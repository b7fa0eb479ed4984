"""Applying ingest's events to the read model, each inside the consumer's transaction (which
also records the message in the inbox, so a redelivered message is never applied twice).

Events are stored once per event id. A subject is its lead when the event names one (ingest
resolves aliased anonymous ids), otherwise its anonymous id's subject; Alias moves an
anonymous subject's events to the lead. Erasure deletes the person's rows and remembers
only keyed hashes of their ids, so their events still in the stream are dropped.
Reporting counts every recorded event, machine-made ones flagged (reports leave them out).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import asyncpg
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from leadflow.ingest.v1 import event_pb2, events_pb2
from leadflow_platform.erased import ErasedIdentifiers
from leadflow_platform.logging import get_logger
from leadflow_platform.nats.registry import UnknownSubject, message_type
from leadflow_reporting.db import outcome_rows
from leadflow_reporting.db import repository as repo

log = get_logger(__name__)


def _datetime(ts: Any) -> datetime:
    return datetime.fromtimestamp(ts.seconds, UTC) + timedelta(microseconds=ts.nanos // 1000)


def page_path(url: str) -> str:
    """page_url without query and fragment."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.split("?", 1)[0].split("#", 1)[0]
    if parts.scheme or parts.netloc:
        return f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.scheme else parts.path
    return parts.path


def event_row(
    e: event_pb2.RecordedEvent, subject_id: int, page_id: int = 0, custom_id: int = 0
) -> repo.EventRow:
    m, geo, value = e.marketing, e.geo, e.value
    has_value = e.HasField("value")
    properties = (
        json_format.MessageToDict(e.properties)
        if e.HasField("properties") and len(e.properties.fields)
        else None
    )
    return repo.EventRow(
        event_id=e.event_id,
        subject_id=subject_id,
        occurred_at=_datetime(e.occurred_at),
        received_at=_datetime(e.received_at) if e.HasField("received_at") else None,
        event_type=e.type,
        custom_name=e.custom_name,
        machine=e.flags.machine_generated,
        brand_id=e.brand_id,
        session_id=e.session_id,
        page_url=e.page_url,
        page_path=page_path(e.page_url),
        referrer=e.referrer,
        channel=m.channel,
        source=m.source,
        medium=m.medium,
        campaign=m.campaign,
        content=m.content,
        term=m.term,
        country=geo.country,
        region=geo.region,
        city=geo.city,
        value_units=value.units if has_value else None,
        value_nanos=value.nanos if has_value else None,
        currency_code=value.currency_code if has_value else "",
        properties=properties,
        page_id=page_id,
        custom_id=custom_id,
    )


class Ingestion:
    def __init__(self) -> None:
        self._erased = ErasedIdentifiers()

    # ingest.event.recorded -----------------------------------------------------------------

    async def events_recorded(
        self, conn: asyncpg.Connection, tenant_id: str, message: events_pb2.EventsRecorded
    ) -> int:
        """Store the batch's events; returns how many were new."""
        events = [
            e
            for e in message.events
            if e.event_id and (e.subject.lead_id or e.subject.anonymous_id)
        ]
        blocked_leads, blocked_anons = await self._blocked(
            conn,
            tenant_id,
            {e.subject.lead_id for e in events},
            {e.subject.anonymous_id for e in events},
        )
        if blocked_leads or blocked_anons:
            events = [
                e
                for e in events
                if e.subject.lead_id not in blocked_leads
                and e.subject.anonymous_id not in blocked_anons
            ]
        leads = await repo.lead_subjects(
            conn, tenant_id, (e.subject.lead_id for e in events if e.subject.lead_id)
        )
        anons = await repo.anonymous_subjects(
            conn, tenant_id, (e.subject.anonymous_id for e in events if not e.subject.lead_id)
        )
        paths = {e.event_id: page_path(e.page_url) for e in events}
        pages = await repo.name_ids(conn, tenant_id, repo.PAGE, paths.values())
        customs = await repo.name_ids(
            conn, tenant_id, repo.CUSTOM_NAME, (e.custom_name for e in events)
        )
        rows = [
            event_row(
                e,
                leads[e.subject.lead_id] if e.subject.lead_id else anons[e.subject.anonymous_id],
                pages.get(paths[e.event_id], 0),
                customs.get(e.custom_name, 0),
            )
            for e in events
        ]
        return await repo.insert_events(conn, tenant_id, rows)

    # ingest.subject.identified -------------------------------------------------------------

    async def subject_identified(
        self, conn: asyncpg.Connection, tenant_id: str, message: events_pb2.SubjectIdentified
    ) -> None:
        lead_id = message.lead_id
        if not lead_id or (await self._blocked(conn, tenant_id, [lead_id], []))[0]:
            return
        await repo.set_home_brand(
            conn,
            tenant_id,
            lead_id,
            message.profile.home_brand_id,
            _datetime(message.metadata.occurred_at)
            if message.metadata.HasField("occurred_at")
            else None,
        )

    # ingest.subject.aliased ----------------------------------------------------------------

    async def subject_aliased(
        self, conn: asyncpg.Connection, tenant_id: str, message: events_pb2.SubjectAliased
    ) -> None:
        anonymous_id, lead_id = message.anonymous_id, message.lead_id
        if not anonymous_id or not lead_id:
            return
        leads, anons = await self._blocked(conn, tenant_id, [lead_id], [anonymous_id])
        if leads or anons:
            return
        moved = await repo.merge_anonymous(
            conn,
            tenant_id,
            anonymous_id,
            lead_id,
            _datetime(message.metadata.occurred_at)
            if message.metadata.HasField("occurred_at")
            else None,
        )
        log.info("subject_aliased", events_moved=moved)

    # ingest.subject.erased -----------------------------------------------------------------

    async def subject_erased(
        self, conn: asyncpg.Connection, tenant_id: str, message: events_pb2.SubjectErased
    ) -> None:
        subjects = await repo.subjects_of(
            conn, tenant_id, list(message.lead_ids), list(message.anonymous_ids)
        )
        lead_ids, anonymous_ids = await repo.ids_of_subjects(conn, subjects)
        leads = set(message.lead_ids) | set(lead_ids)
        anons = set(message.anonymous_ids) | set(anonymous_ids)
        await outcome_rows.lock_people(
            conn,
            tenant_id,
            [f"lead:{i}" for i in leads if i] + [f"anon:{i}" for i in anons if i],
            shared=False,
        )
        await self._erased.remember(
            conn,
            tenant_id,
            [f"lead:{i}" for i in sorted(leads) if i] + [f"anon:{i}" for i in sorted(anons) if i],
        )
        counts = await repo.delete_subjects(conn, subjects)
        counts |= await outcome_rows.delete_person(conn, tenant_id, sorted(leads), sorted(anons))
        counts["dead_letters"] = await _clean_dead_letters(conn, tenant_id, leads, anons)
        log.info("subject_erased", erasure_id=message.erasure_id, **counts)

    # erased identifiers ----------------------------------------------------------------------

    async def _blocked(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        lead_ids: Iterable[str],
        anonymous_ids: Iterable[str],
    ) -> tuple[set[str], set[str]]:
        """The given ids that were erased: (lead ids, anonymous ids)."""
        keys = [f"lead:{i}" for i in lead_ids if i] + [f"anon:{i}" for i in anonymous_ids if i]
        found = await self._erased.erased(conn, tenant_id, keys)
        return (
            {k.removeprefix("lead:") for k in found if k.startswith("lead:")},
            {k.removeprefix("anon:") for k in found if k.startswith("anon:")},
        )


async def _clean_dead_letters(
    conn: asyncpg.Connection, tenant_id: str, leads: set[str], anons: set[str]
) -> int:
    """Dead letters naming the person: event batches lose the person's events (the others
    stay for replay); any other message naming them goes."""
    needles = [i.encode() for i in sorted(leads | anons) if i]
    deleted: list[int] = []
    rewritten: list[tuple[int, bytes]] = []
    for row in await repo.dead_letters_naming(conn, tenant_id, needles):
        payload = bytes(row["payload"])
        kept = _without_person(row["subject"], payload, leads, anons)
        if kept is None:
            deleted.append(row["id"])
        elif kept != payload:
            rewritten.append((row["id"], kept))
    await repo.rewrite_dead_letters(conn, deleted, rewritten)
    return len(deleted) + len(rewritten)


def _without_person(subject: str, payload: bytes, leads: set[str], anons: set[str]) -> bytes | None:
    try:
        message: Message = message_type(subject).FromString(payload)
    except (UnknownSubject, DecodeError):
        return None
    if not isinstance(message, events_pb2.EventsRecorded):
        return None
    kept: Sequence[event_pb2.RecordedEvent] = [
        e
        for e in message.events
        if e.subject.lead_id not in leads and e.subject.anonymous_id not in anons
    ]
    if not kept:
        return None
    if len(kept) == len(message.events):
        return payload
    del message.events[:]
    message.events.extend(kept)
    return message.SerializeToString()
