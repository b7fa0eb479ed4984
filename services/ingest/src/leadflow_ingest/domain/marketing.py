"""Marketing context: UTM parsing, click ids, referrers, and the channel grouping.

The channel follows GA4's default channel grouping, simplified to the values leadflow uses
("email", "paid_search", "organic_search", "paid_social", "organic_social", "referral",
"display", "affiliate", "sms", "direct", "other"), first matching rule wins:

1. no source and no medium: a click id on the page URL (gclid, msclkid... -> paid_search;
   fbclid, ttclid, li_fat_id, twclid -> paid_social; dclid -> display), else the referrer
   (see `referrer_marketing`: search engine -> organic_search, social network ->
   organic_social, webmail -> email, another site -> referral), else "direct";
2. source "(direct)" with medium "", "(none)" or "(not set)" -> direct;
3. paid medium (matches ^(.*cp.*|ppc|retargeting|paid.*)$) and a search source -> paid_search;
4. paid medium and a social source -> paid_social;
5. medium display, banner, expandable, interstitial, cpm -> display;
6. any other paid medium: a click id decides as in 1, else "other" (GA4's "Paid Other");
7. social source or medium social, social-network, social-media, sm -> organic_social;
8. search source or medium organic -> organic_search;
9. medium referral, app, link -> referral;
10. source or medium email, e-mail, e_mail, e mail (medium also newsletter) -> email;
11. medium affiliate(s) -> affiliate;
12. source or medium sms -> sms;
13. otherwise "other" (GA4's "Unassigned").
Source and medium are compared case-insensitively; a source that is a host name
("m.facebook.com") is compared by its site name ("facebook"). GA4's shopping, video, audio,
push and cross-network groups are not distinguished (video sites count as social).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

from leadflow_ingest.domain.model import Marketing

_PAID_MEDIUM = re.compile(r"^(?:.*cp.*|ppc|retargeting|paid.*)$")

SEARCH_SOURCES = frozenset(
    {
        "google", "bing", "yahoo", "duckduckgo", "baidu", "yandex", "ecosia", "ask", "aol",
        "naver", "seznam", "qwant", "brave", "startpage", "msn", "sogou", "daum",
        "adwords", "googleads", "google_ads", "google ads", "bingads", "bing_ads",
        "microsoft_ads", "microsoft ads",
    }
)  # fmt: skip
SOCIAL_SOURCES = frozenset(
    {
        "facebook", "fb", "instagram", "ig", "linkedin", "lnkd", "twitter", "x",
        "tiktok", "pinterest", "reddit", "youtube", "snapchat", "quora", "tumblr", "threads",
        "mastodon", "vk", "weibo", "wechat", "whatsapp", "telegram", "discord", "meta",
        "bsky", "bluesky", "vimeo",
    }
)  # fmt: skip
EMAIL_WORDS = frozenset({"email", "e-mail", "e_mail", "e mail"})
_EMAIL_MEDIA = EMAIL_WORDS | {"newsletter"}
_SOCIAL_MEDIA = frozenset(
    {"social", "social-network", "social-media", "sm", "social network", "social media"}
)
_DISPLAY_MEDIA = frozenset({"display", "banner", "expandable", "interstitial", "cpm"})
_REFERRAL_MEDIA = frozenset({"referral", "app", "link"})
_AFFILIATE_MEDIA = frozenset({"affiliate", "affiliates"})
_DIRECT_MEDIA = frozenset({"", "(none)", "(not set)"})

# Click ids the ad platforms append to landing URLs: (source, medium, channel).
CLICK_IDS: dict[str, tuple[str, str, str]] = {
    "gclid": ("google", "cpc", "paid_search"),
    "gbraid": ("google", "cpc", "paid_search"),
    "wbraid": ("google", "cpc", "paid_search"),
    "msclkid": ("bing", "cpc", "paid_search"),
    "dclid": ("google", "display", "display"),
    "fbclid": ("facebook", "paid_social", "paid_social"),
    "ttclid": ("tiktok", "paid_social", "paid_social"),
    "li_fat_id": ("linkedin", "paid_social", "paid_social"),
    "twclid": ("twitter", "paid_social", "paid_social"),
}
# Decoded values lose control characters (a "%00" would not fit a PostgreSQL text column).
_DROP_CONTROL = {code: None for code in (*range(0x20), *range(0x7F, 0xA0))}
_UTM_FIELDS = {
    "utm_source": "source",
    "utm_medium": "medium",
    "utm_campaign": "campaign",
    "utm_content": "content",
    "utm_term": "term",
}

# Hosts that are webmail (a click from an email read in the browser); checked before sites.
_WEBMAIL_HOSTS = {
    "mail.google.com": "gmail",
    "outlook.live.com": "outlook",
    "outlook.office.com": "outlook",
    "outlook.office365.com": "outlook",
    "mail.yahoo.com": "yahoo_mail",
    "mail.aol.com": "aol_mail",
    "mail.proton.me": "proton_mail",
    "com.google.android.gm": "gmail",  # android-app://com.google.android.gm
}
_APP_SEARCH_HOSTS = {"com.google.android.googlequicksearchbox": "google"}
# Subdomains under which a search engine's site is its search (not docs.google.com).
_SEARCH_SUBDOMAINS = frozenset({"", "www", "m", "search", "html", "lite", "cn"})
_SECOND_LEVEL = frozenset({"co", "com", "net", "org", "gov", "ac", "edu", "ne", "or", "go"})
_SOCIAL_HOSTS = {
    "t.co": "twitter",
    "x.com": "twitter",
    "lnkd.in": "linkedin",
    "youtu.be": "youtube",
}


# Any utm_* name or click id, in any case: a cheap test before the query string is parsed.
_MAY_HOLD_MARKETING = re.compile(
    "|".join(["utm_", *(re.escape(name) for name in CLICK_IDS)]), re.IGNORECASE
)


def parse_utm(page_url: str) -> Marketing | None:
    """The marketing context in the query string of `page_url`, or None when it has no
    utm_* parameter and no click id.

    Values are URL-decoded, stripped of control characters and trimmed, case kept; the first
    non-empty value of a parameter wins; parameter names are matched case-insensitively; the
    fragment is ignored. A click id fills source and medium when the utm_* parameters leave
    them empty (gclid -> google / cpc, fbclid -> facebook / paid_social...). The channel is
    left empty (`derive_channel` sets it).
    """
    query = _query(page_url)
    if not query or not _MAY_HOLD_MARKETING.search(query):
        return None  # most page URLs: no parsing at all
    values: dict[str, str] = {}
    click: tuple[str, str, str] | None = None
    try:
        pairs = parse_qsl(query, keep_blank_values=False)
    except ValueError:
        return None
    for raw_name, raw_value in pairs:
        name = raw_name.strip().lower()
        target = _UTM_FIELDS.get(name)
        if target is not None:
            value = raw_value.translate(_DROP_CONTROL).strip()
            if value and target not in values:
                values[target] = value
        elif click is None and name in CLICK_IDS:
            click = CLICK_IDS[name]
    if not values and click is None:
        return None
    if click is not None:
        if "source" not in values:
            values["source"] = click[0]
        if "medium" not in values:
            values["medium"] = click[1]
    return Marketing(**values)


def derive_channel(source: str, medium: str, referrer: str = "", page_url: str = "") -> str:
    """The channel of a touchpoint (rules in the module docstring)."""
    s = _site_name(source.strip().lower())
    m = medium.strip().lower()
    if not s and not m:
        click = _click_channel(page_url)
        if click:
            return click
        from_referrer = referrer_marketing(referrer, page_url)
        return from_referrer.channel if from_referrer is not None else "direct"
    if s == "(direct)" and m in _DIRECT_MEDIA:
        return "direct"
    paid = bool(m) and _PAID_MEDIUM.match(m) is not None
    if paid and s in SEARCH_SOURCES:
        return "paid_search"
    if paid and s in SOCIAL_SOURCES:
        return "paid_social"
    if m in _DISPLAY_MEDIA:
        return "display"
    if paid:
        return _click_channel(page_url) or "other"
    if s in SOCIAL_SOURCES or m in _SOCIAL_MEDIA:
        return "organic_social"
    if s in SEARCH_SOURCES or m == "organic":
        return "organic_search"
    if m in _REFERRAL_MEDIA:
        return "referral"
    if s in EMAIL_WORDS or m in _EMAIL_MEDIA:
        return "email"
    if m in _AFFILIATE_MEDIA:
        return "affiliate"
    if s == "sms" or m == "sms":
        return "sms"
    return "other"


def referrer_marketing(referrer: str, page_url: str = "") -> Marketing | None:
    """A touchpoint made from an external referrer, or None for no referrer or one on the
    same site as `page_url` (internal navigation).

    Same site: equal host names after dropping "www.", or the same registrable domain by a
    simple rule (the last two labels, three when the second-to-last is co/com/net/org/gov/
    ac/edu/ne/or/go under a two-letter top-level domain, as in "example.co.uk"; no public
    suffix list). Search engines give source = engine ("google"), medium "organic";
    social networks source = network, medium "social"; webmail source = provider
    ("gmail"), medium "email"; other sites source = host without "www.", medium "referral".
    """
    host = _host(referrer)
    if not host:
        return None
    page_host = _host(page_url)
    if page_host and (host == page_host or _registrable(host) == _registrable(page_host)):
        return None
    webmail = _WEBMAIL_HOSTS.get(host)
    if webmail is not None:
        return Marketing(channel="email", source=webmail, medium="email")
    app_search = _APP_SEARCH_HOSTS.get(host)
    if app_search is not None:
        return Marketing(channel="organic_search", source=app_search, medium="organic")
    social = _SOCIAL_HOSTS.get(host)
    if social is not None:
        return Marketing(channel="organic_social", source=social, medium="social")
    registrable = _registrable(host)
    name = registrable.split(".", 1)[0]
    if name in SEARCH_SOURCES:
        subdomain = host[: -len(registrable)].rstrip(".")
        if subdomain in _SEARCH_SUBDOMAINS:
            return Marketing(channel="organic_search", source=name, medium="organic")
    if name in SOCIAL_SOURCES:
        return Marketing(channel="organic_social", source=name, medium="social")
    return Marketing(channel="referral", source=host, medium="referral")


def resolve_marketing(
    sent: Marketing | None, page_url: str, referrer: str, *, use_referrer: bool = True
) -> tuple[Marketing | None, bool]:
    """The event's marketing context and whether the server made it (marketing_parsed).

    - sent by the client (and not all empty): kept as sent; only an empty channel is
      derived;
    - else utm_* parameters or a click id on page_url: parsed, channel derived;
    - else, with `use_referrer`, an external referrer: see `referrer_marketing`;
    - else None: the event is not a touchpoint. A direct visit (no referrer) or internal
      navigation does not make a touchpoint; clients that want direct touchpoints send
      marketing with channel "direct".
    Callers that only want landings to count can pass use_referrer=(type == "page_view").
    """
    if sent is not None and not sent.is_empty:
        if sent.channel:
            return sent, False
        channel = derive_channel(sent.source, sent.medium, referrer, page_url)
        return _with_channel(sent, channel), False
    parsed = parse_utm(page_url) if page_url else None
    if parsed is not None:
        channel = derive_channel(parsed.source, parsed.medium, referrer, page_url)
        return _with_channel(parsed, channel), True
    if use_referrer and referrer:
        from_referrer = referrer_marketing(referrer, page_url)
        if from_referrer is not None:
            return from_referrer, True
    return None, False


def _with_channel(marketing: Marketing, channel: str) -> Marketing:
    return Marketing(
        channel=channel,
        source=marketing.source,
        medium=marketing.medium,
        campaign=marketing.campaign,
        content=marketing.content,
        term=marketing.term,
    )


def _query(url: str) -> str:
    end = url.find("#")
    if end < 0:
        end = len(url)
    start = url.find("?", 0, end)
    return url[start + 1 : end] if start >= 0 else ""


def _click_channel(page_url: str) -> str:
    query = _query(page_url)
    if not query:
        return ""
    for pair in query.split("&"):
        name = pair.split("=", 1)[0].strip().lower()
        click = CLICK_IDS.get(name)
        if click is not None:
            return click[2]
    return ""


def _host(url: str) -> str:
    if not url:
        return ""
    try:
        host = urlsplit(url.strip()).hostname or ""
    except ValueError:
        return ""
    host = host.rstrip(".")
    return host[4:] if host.startswith("www.") else host


def _registrable(host: str) -> str:
    labels = host.split(".")
    if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _SECOND_LEVEL:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def _site_name(source: str) -> str:
    """ "m.facebook.com" -> "facebook"; a source that is no host name is kept."""
    if "." not in source or " " in source:
        return source
    host = source.rstrip(".")
    if host in _SOCIAL_HOSTS:
        return _SOCIAL_HOSTS[host]
    return _registrable(host).split(".", 1)[0]
