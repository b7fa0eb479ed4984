"""A believable five-week history of the 371Minds portfolio, the same for the same seed.

Each lead arrives through one source (newsletter, paid search, LinkedIn, Twitter, organic
search or a partner referral), browses its home brand's site, is identified by a form,
receives the brand's emails (opened by people and, for some, prefetched by image proxies that
ingest flags as machine opens), may come back, book a meeting and buy. Each source converts
at its own rate, so the reports have real differences to find. Each brand's social account
posts through the day with engagement that peaks at certain hours.

Nothing here does I/O: `generate` returns the requests to send, in the order to send them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from google.protobuf import struct_pb2

from leadflow.common.v1 import event_type_pb2, lead_pb2, money_pb2, subject_pb2
from leadflow.ingest.v1 import event_pb2, ingest_service_pb2, profile_pb2

TENANT = "371minds"
HISTORY_DAYS = 35


@dataclass(frozen=True)
class Brand:
    id: str
    name: str
    share: float  # of new leads
    deal_cents: tuple[int, int]  # a purchase's value range, USD
    monthly: bool  # purchases are subscriptions (MRR sent with them)


@dataclass(frozen=True)
class Source:
    label: str
    source: str
    medium: str
    campaign: str
    weight: float  # share of new leads
    conversion: float  # chance that an identified lead buys


BRANDS = (
    Brand("modumind", "ModuMind", 0.30, (4_900, 29_900), True),
    Brand("stacksense", "StackSense", 0.25, (19_900, 99_900), True),
    Brand("epicquest", "EpicQuest", 0.20, (1_999, 5_999), False),
    Brand("ikid", "iKid", 0.15, (999, 2_999), False),
    Brand("vision2results", "Vision2Results", 0.10, (49_900, 249_900), False),
)
SOURCES = (
    Source("Newsletter", "newsletter", "email", "monthly-digest", 0.18, 0.26),
    Source("Google Ads", "google", "cpc", "brand-search", 0.22, 0.13),
    Source("LinkedIn", "linkedin", "social", "thought-leadership", 0.15, 0.09),
    Source("Twitter", "twitter", "social", "launch-thread", 0.15, 0.02),
    Source("Organic search", "google", "organic", "", 0.15, 0.10),
    Source("Partner referral", "partner", "referral", "partner-program", 0.15, 0.20),
)
ORGANIC = SOURCES[4]
RETURNS: tuple[Source | None, ...] = (
    Source("Email click", "newsletter", "email", "follow-up", 0, 0),
    Source("Retargeting", "google", "cpc", "retargeting", 0, 0),
    ORGANIC,
    None,  # direct
)
PAGES = ("/", "/features", "/pricing", "/blog/getting-started", "/customers", "/docs")
FIRST_NAMES = ("Ava", "Noah", "Mia", "Liam", "Zoe", "Omar", "Iris", "Kai", "Lena", "Raj")
LAST_NAMES = ("Stone", "Okafor", "Lindqvist", "Nair", "Gomez", "Park", "Adams", "Chen")
INDUSTRIES = ("software", "education", "retail", "finance", "health", "media")
COUNTRIES = ("US", "US", "US", "CA", "GB", "DE", "IN")
CUSTOMER_TYPES = ("high_value", "mid_value", "low_value")
HUMAN_AGENT = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1"
PROXY_AGENT = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)
# Mean engagement of a social post by hour of day (UTC): mornings and early evenings win.
POST_HOURS = (8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21)
HOUR_APPEAL = {9: 2.2, 10: 2.6, 11: 1.8, 19: 2.0, 20: 1.6}


@dataclass
class Dataset:
    """What to send, in order: consent and profile requests, then events in batches."""

    identifies: list[ingest_service_pb2.IdentifyRequest] = field(default_factory=list)
    consents: list[ingest_service_pb2.SetConsentRequest] = field(default_factory=list)
    events: list[event_pb2.TrackEvent] = field(default_factory=list)
    leads_by_brand: dict[str, int] = field(default_factory=dict)
    buyers_by_source: dict[str, int] = field(default_factory=dict)


def generate(seed: int, leads: int, now: datetime) -> Dataset:
    """`leads` visitors over the HISTORY_DAYS before `now` (tz-aware), ~15 events each."""
    rng = random.Random(seed)
    out = Dataset()
    start = now - timedelta(days=HISTORY_DAYS)
    for n in range(leads):
        _lead(rng, out, n, start, now)
    for brand in BRANDS:
        _posts(rng, out, brand, start, now)
    out.events.sort(key=lambda e: (e.occurred_at.seconds, e.occurred_at.nanos, e.event_id))
    return out


def _lead(rng: random.Random, out: Dataset, n: int, start: datetime, now: datetime) -> None:
    brand = rng.choices(BRANDS, weights=[b.share for b in BRANDS])[0]
    source = rng.choices(SOURCES, weights=[s.weight for s in SOURCES])[0]
    anonymous_id = f"anon-{n:05d}"
    lead_id = f"{brand.id}-lead-{n:05d}"
    # Most history lies in the past weeks; a lead needs time to be followed up.
    first = start + timedelta(seconds=rng.uniform(0, (now - start).total_seconds() - 7_200))
    events = _Events(out, brand, f"{n:05d}", now)
    session = f"s-{n:05d}-1"
    landing = _url(brand, "/", source)
    at = first
    events.add(
        "page_view", at, anonymous_id=anonymous_id, session=session, page_url=landing,
        referrer="https://www.google.com/" if source is ORGANIC else "",
    )  # fmt: skip
    for _ in range(rng.randint(1, 4)):
        at += timedelta(seconds=rng.randint(20, 240))
        page = _url(brand, rng.choice(PAGES[1:]), None)
        events.add("page_view", at, anonymous_id=anonymous_id, session=session, page_url=page)
    if rng.random() > 0.7:
        return  # an anonymous visitor who never came back
    at += timedelta(seconds=rng.randint(30, 300))
    events.add("form_submitted", at, anonymous_id=anonymous_id, session=session)
    out.identifies.append(_identify(rng, lead_id, anonymous_id, brand, source))
    out.consents.append(_consent(rng, lead_id))
    out.leads_by_brand[brand.id] = out.leads_by_brand.get(brand.id, 0) + 1
    # The brand's follow-up emails, a day or two apart.
    mail_at = at
    for campaign in ("welcome", "case-study", "offer"):
        mail_at += timedelta(hours=rng.uniform(18, 60))
        if mail_at >= now:
            break
        message_id = f"{campaign}-{n:05d}"
        events.add("email_sent", mail_at, lead_id=lead_id, message_id=message_id)
        if rng.random() < 0.25:  # the mailbox provider prefetches images on delivery
            events.add(
                "email_opened",
                mail_at + timedelta(seconds=rng.randint(5, 90)),
                lead_id=lead_id,
                message_id=message_id,
                user_agent=PROXY_AGENT,
            )
        if rng.random() < 0.45:
            opened = mail_at + timedelta(minutes=rng.randint(10, 600))
            events.add(
                "email_opened", opened, lead_id=lead_id, message_id=message_id,
                user_agent=HUMAN_AGENT,
            )  # fmt: skip
            if rng.random() < 0.35:
                events.add("email_clicked", opened + timedelta(seconds=30), lead_id=lead_id,
                           message_id=message_id, user_agent=HUMAN_AGENT)  # fmt: skip
            if rng.random() < 0.08:
                events.add("email_replied", opened + timedelta(hours=2), lead_id=lead_id,
                           message_id=message_id)  # fmt: skip
    # Return visits.
    visit_at = at
    for visit in range(rng.randint(0, 3)):
        visit_at += timedelta(days=rng.uniform(1, 6), minutes=rng.randint(0, 600))
        if visit_at >= now:
            break
        session = f"s-{n:05d}-{visit + 2}"
        # People come back through the brand's emails, retargeting ads, search or directly,
        # so the attribution models have several touchpoints to weigh.
        back = rng.choices(RETURNS, weights=[0.35, 0.2, 0.2, 0.25])[0]
        page = _url(brand, rng.choice(PAGES), back)
        referrer = "https://www.google.com/" if back is ORGANIC else ""
        events.add(
            "page_view", visit_at, lead_id=lead_id, session=session, page_url=page,
            referrer=referrer,
        )  # fmt: skip
        if rng.random() < 0.3:
            events.add("content_downloaded", visit_at + timedelta(minutes=2), lead_id=lead_id,
                       session=session)  # fmt: skip
    if rng.random() >= source.conversion:
        return
    meeting = max(at, visit_at) + timedelta(days=rng.uniform(1, 5))
    if meeting >= now:
        return
    events.add("meeting_scheduled", meeting, lead_id=lead_id)
    bought = meeting + timedelta(days=rng.uniform(0.5, 4))
    if bought >= now:
        return
    cents = rng.randrange(*brand.deal_cents)
    properties: dict[str, Any] = {"plan": rng.choice(("starter", "team", "business"))}
    if brand.monthly:
        properties["mrr"] = round(cents / 100, 2)
    events.add(
        "purchase", bought, lead_id=lead_id, session=f"s-{n:05d}-buy",
        page_url=_url(brand, "/checkout", None), value=cents, properties=properties,
    )  # fmt: skip
    out.buyers_by_source[source.label] = out.buyers_by_source.get(source.label, 0) + 1


def _posts(rng: random.Random, out: Dataset, brand: Brand, start: datetime, now: datetime) -> None:
    events = _Events(out, brand, f"{brand.id}-social", now)
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    while day < now:
        for hour in rng.sample(POST_HOURS, 4):
            at = day + timedelta(hours=hour, minutes=rng.randint(0, 59))
            if start <= at < now:
                engagement = round(rng.gauss(40, 12) * HOUR_APPEAL.get(hour, 1.0))
                events.add(
                    "social_interaction", at, anonymous_id=f"{brand.id}-social",
                    properties={"engagement": max(0, engagement), "network": "linkedin"},
                )  # fmt: skip
        day += timedelta(days=1)


class _Events:
    def __init__(self, out: Dataset, brand: Brand, prefix: str, now: datetime) -> None:
        self._out, self._brand, self._prefix, self._now = out, brand, prefix, now
        self._count = 0

    def add(
        self,
        kind: str,
        at: datetime,
        *,
        lead_id: str = "",
        anonymous_id: str = "",
        session: str = "",
        page_url: str = "",
        referrer: str = "",
        user_agent: str = "",
        message_id: str = "",
        value: int = 0,
        properties: dict[str, Any] | None = None,
    ) -> None:
        self._count += 1
        event = event_pb2.TrackEvent(
            event_id=f"demo-{self._prefix}-{self._count:03d}",
            brand_id=self._brand.id,
            type=event_type_pb2.EventType.Value(f"EVENT_TYPE_{kind.upper()}"),
            subject=subject_pb2.SubjectRef(lead_id=lead_id, anonymous_id=anonymous_id),
            session_id=session,
            page_url=page_url,
            referrer=referrer,
            user_agent=user_agent,
        )
        event.occurred_at.FromDatetime(min(at, self._now))
        if value:
            event.value.CopyFrom(
                money_pb2.Money(
                    units=value // 100, nanos=value % 100 * 10_000_000, currency_code="USD"
                )
            )
        fields = dict(properties or {})
        if message_id:
            fields["message_id"] = message_id
        if fields:
            event.properties.CopyFrom(_struct(fields))
        self._out.events.append(event)


def _struct(values: dict[str, Any]) -> struct_pb2.Struct:
    result = struct_pb2.Struct()
    result.update(values)
    return result


def _url(brand: Brand, path: str, source: Source | None) -> str:
    url = f"https://{brand.id}.example{path}"
    if source is None:
        return url
    if source.medium == "organic":
        return url  # organic search arrives with a referrer, not campaign tags
    tags = {"utm_source": source.source, "utm_medium": source.medium}
    if source.campaign:
        tags["utm_campaign"] = source.campaign
    return f"{url}?{urlencode(tags)}"


def _identify(
    rng: random.Random, lead_id: str, anonymous_id: str, brand: Brand, source: Source
) -> ingest_service_pb2.IdentifyRequest:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    company = f"{last.lower()}-{rng.choice(INDUSTRIES)}"
    profile = profile_pb2.LeadProfile(
        email=f"{first.lower()}.{lead_id}@{company}.example",
        first_name=first,
        last_name=last,
        company=company,
        industry=rng.choice(INDUSTRIES),
        customer_type=rng.choice(CUSTOMER_TYPES),
        segment=rng.choice(
            (lead_pb2.SEGMENT_ENTERPRISE, lead_pb2.SEGMENT_SMB, lead_pb2.SEGMENT_STARTUP)
        ),
        home_brand_id=brand.id,
        lead_source=source.medium,
    )
    if rng.random() < 0.6:
        profile.phone = f"+1555{rng.randrange(10**6, 10**7)}"
    profile.location.country = rng.choice(COUNTRIES)
    return ingest_service_pb2.IdentifyRequest(
        lead_id=lead_id, anonymous_id=anonymous_id, profile=profile
    )


def _consent(rng: random.Random, lead_id: str) -> ingest_service_pb2.SetConsentRequest:
    granted = profile_pb2.ConsentDecision(status=profile_pb2.CONSENT_STATUS_GRANTED, source="form")
    request = ingest_service_pb2.SetConsentRequest(
        subject=subject_pb2.SubjectRef(lead_id=lead_id), tracking=granted
    )
    if rng.random() < 0.8:
        request.email.CopyFrom(granted)
    if rng.random() < 0.45:
        request.portfolio_sharing.CopyFrom(granted)
    return request
