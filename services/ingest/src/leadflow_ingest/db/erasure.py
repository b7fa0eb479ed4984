"""SQL of erasure: find the whole person, delete every row that names them, scrub the outbox.

A person is every lead id and anonymous id connected by aliases to what the request names,
plus every lead whose profile has the requested email. After erasure the only trace left in
the ingest schema is a keyed hash per identifier (so later input for them is refused) and an
erasure record without identifiers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import asyncpg


@dataclass
class Person:
    lead_ids: set[str] = field(default_factory=set)
    anonymous_ids: set[str] = field(default_factory=set)
    emails: set[str] = field(default_factory=set)
    phones: set[str] = field(default_factory=set)

    @property
    def subject_keys(self) -> list[str]:
        """As ingest keys subjects: "lead:<id>", "anon:<id>"."""
        return sorted(
            {f"lead:{i}" for i in self.lead_ids} | {f"anon:{i}" for i in self.anonymous_ids}
        )

    def identifiers(self) -> list[str]:
        return sorted(self.lead_ids | self.anonymous_ids | self.emails | self.phones)


async def find_person(
    conn: asyncpg.Connection,
    tenant_id: str,
    *,
    lead_id: str = "",
    anonymous_id: str = "",
    email: str = "",
) -> Person:
    person = Person()
    if lead_id:
        person.lead_ids.add(lead_id)
    if anonymous_id:
        person.anonymous_ids.add(anonymous_id)
    if email:
        person.emails.add(email.lower())
        rows = await conn.fetch(
            "SELECT lead_id FROM profiles WHERE tenant_id = $1 AND lower(profile ->> 'email') = $2",
            tenant_id,
            email.lower(),
        )
        person.lead_ids.update(r["lead_id"] for r in rows)
    # Follow aliases both ways until nothing new turns up (a lead's anonymous ids, an
    # anonymous id's lead).
    while True:
        rows = await conn.fetch(
            "SELECT anonymous_id, lead_id FROM aliases WHERE tenant_id = $1"
            " AND (lead_id = ANY($2::text[]) OR anonymous_id = ANY($3::text[]))",
            tenant_id,
            sorted(person.lead_ids),
            sorted(person.anonymous_ids),
        )
        before = (len(person.lead_ids), len(person.anonymous_ids))
        person.lead_ids.update(r["lead_id"] for r in rows)
        person.anonymous_ids.update(r["anonymous_id"] for r in rows)
        if (len(person.lead_ids), len(person.anonymous_ids)) == before:
            break
    profiles = await conn.fetch(
        "SELECT profile FROM profiles WHERE tenant_id = $1 AND lead_id = ANY($2::text[])",
        tenant_id,
        sorted(person.lead_ids),
    )
    for row in profiles:
        if row["profile"].get("email"):
            person.emails.add(row["profile"]["email"].lower())
        if row["profile"].get("phone"):
            person.phones.add(row["profile"]["phone"])
    return person


async def delete_person(conn: asyncpg.Connection, tenant_id: str, person: Person) -> dict[str, int]:
    leads, anons, keys = sorted(person.lead_ids), sorted(person.anonymous_ids), person.subject_keys

    async def count(sql: str, *args: object) -> int:
        return int((await conn.execute(sql, tenant_id, *args)).split()[-1])

    return {
        "events": await count(
            "DELETE FROM events WHERE tenant_id = $1"
            " AND (lead_id = ANY($2::text[]) OR anonymous_id = ANY($3::text[]))",
            leads,
            anons,
        ),
        "profiles": await count(
            "DELETE FROM profiles WHERE tenant_id = $1 AND lead_id = ANY($2::text[])", leads
        ),
        "aliases": await count(
            "DELETE FROM aliases WHERE tenant_id = $1"
            " AND (lead_id = ANY($2::text[]) OR anonymous_id = ANY($3::text[]))",
            leads,
            anons,
        ),
        "consents": await count(
            "DELETE FROM consents WHERE tenant_id = $1 AND subject_key = ANY($2::text[])", keys
        ),
        "sessions": await count(
            "DELETE FROM sessions WHERE tenant_id = $1 AND subject_key = ANY($2::text[])", keys
        ),
        "subjects": await count(
            "DELETE FROM subjects WHERE tenant_id = $1 AND subject_key = ANY($2::text[])", keys
        ),
    }


async def block_identifiers(
    conn: asyncpg.Connection, tenant_id: str, hashes: Sequence[bytes], erasure_id: str
) -> None:
    await conn.execute(
        "INSERT INTO erased_identifiers (tenant_id, identifier_hash, erasure_id)"
        " SELECT $1, h, $3::uuid FROM unnest($2::bytea[]) AS h ON CONFLICT DO NOTHING",
        tenant_id,
        list(hashes),
        erasure_id,
    )


async def record_erasure(
    conn: asyncpg.Connection, tenant_id: str, erasure_id: str, reason: str, counts: dict[str, int]
) -> None:
    await conn.execute(
        "INSERT INTO erasures (erasure_id, tenant_id, reason, counts)"
        " VALUES ($1::uuid, $2, $3, $4)",
        erasure_id,
        tenant_id,
        reason,
        counts,
    )


Rewrite = Callable[[str, bytes], bytes | None]


async def scrub_outbox(
    conn: asyncpg.Connection, tenant_id: str, person: Person, rewrite: Rewrite
) -> int:
    """Remove the person from outbox payloads that mention any of their identifiers.

    `rewrite(subject, payload)` returns the payload without the person, or None when nothing
    is left of it; such a row is deleted (unpublished, it never goes out; published, the
    erasure event tells every consumer to forget the person anyway).
    """
    needles = [i.encode() for i in person.identifiers()]
    if not needles:
        return 0
    rows = await conn.fetch(
        "SELECT id, subject, payload FROM outbox WHERE tenant_id = $1"
        " AND EXISTS (SELECT 1 FROM unnest($2::bytea[]) AS n WHERE position(n IN payload) > 0)"
        " FOR UPDATE",
        tenant_id,
        needles,
    )
    changed = 0
    for row in rows:
        cleaned = rewrite(row["subject"], bytes(row["payload"]))
        if cleaned is None:
            await conn.execute("DELETE FROM outbox WHERE id = $1", row["id"])
        else:
            await conn.execute("UPDATE outbox SET payload = $2 WHERE id = $1", row["id"], cleaned)
        changed += 1
    return changed
