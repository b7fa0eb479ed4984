"""Machine or human: image-proxy opens, link-scanner clicks and bots, so scoring can ignore them.

Rules, first match wins:

1. email_opened by a mail provider's image proxy (Gmail "GoogleImageProxy"/ggpht.com,
   "YahooMailProxy", Yandex, Mail.ru...) or by Apple Mail Privacy Protection (its prefetches
   send the bare user agent "Mozilla/5.0") -> IMAGE_PROXY_PREFETCH;
2. email_clicked (or email_opened) by a security gateway's link scanner (Microsoft Safe
   Links / BingPreview, Office link discovery, Mimecast, Proofpoint, Barracuda, Cisco
   IronPort, Trend Micro, Sophos, Forcepoint, Symantec/MessageLabs, ...) -> LINK_SCANNER;
3. a bot, crawler, headless browser or HTTP library user agent on an event a browser
   reports (BROWSER_EVENT_TYPES below) -> BOT_USER_AGENT. Events that platforms report
   server-side (email_sent, purchase, signup, call_made, sms_*, ...) carry the reporting
   system's user agent at best, so a library user agent there says nothing about the subject;
4. email_opened / email_clicked at most `window` seconds after delivery (negative included:
   before delivery by the sender's clock) -> IMAGE_PROXY_PREFETCH for an open, LINK_SCANNER
   for a click: no person opens or clicks that fast.

The delivery an open or click answers is the subject's latest email_sent at most `window`
seconds after it (`delivery_for`), among every delivery known when it is recorded, so the
verdict does not depend on the order events arrive in (an open recorded after a later
email's delivery is still measured from its own). A delivery recorded after the open cannot
change the open's verdict any more.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import lru_cache

from leadflow_ingest.domain.model import MachineSignal

EMAIL_OPENED = "email_opened"
EMAIL_CLICKED = "email_clicked"

# Events that browsers (or the subject's own client) report, with the subject's user agent.
BROWSER_EVENT_TYPES = frozenset(
    {
        "page_view", "click", "scroll", "search", "form_submitted", "content_downloaded",
        "heatmap_click", "performance_sample", "ad_clicked", EMAIL_OPENED, EMAIL_CLICKED,
    }
)  # fmt: skip

_IMAGE_PROXY = re.compile(
    r"googleimageproxy|ggpht\.com|yahoomailproxy|yandex.*imageresizer"
    r"|mail\.ru.*(?:img|image)|imageproxy",
    re.IGNORECASE,
)
_APPLE_MPP = "Mozilla/5.0"
_LINK_SCANNER = re.compile(
    r"safelinks|safe links|bingpreview|microsoft office existence discovery"
    r"|microsoft office protocol discovery|ms-office.*discovery|mimecast|proofpoint|urldefense"
    r"|barracuda|ironport|cisco.*(?:esa|email security)|trend ?micro|sophos|forcepoint"
    r"|symantec|messagelabs|fireeye|trellix|zscaler|cloudmark|spamtitan|mailguard|appriver"
    r"|hornetsecurity|avanan|checkpoint|check point|libraesva|vade ?secure|abnormal ?security"
    r"|urlscan|virustotal",
    re.IGNORECASE,
)
# "bot" as a word ending (Googlebot, bingbot, AdsBot-Google), not inside "Cubot" (a phone).
_BOT = re.compile(
    r"(?<!cu)bot\b|crawl|spider|slurp|archiver|headless|phantomjs|puppeteer|playwright"
    r"|selenium|webdriver|lighthouse|pagespeed|pingdom|uptimerobot|gtmetrix|facebookexternalhit"
    r"|embedly|preview|python-requests|python-urllib|python-httpx|aiohttp|go-http-client"
    r"|okhttp|java/|apache-httpclient|libwww|lwp::|wget/|curl/|httpie|scrapy|axios/"
    r"|node-fetch|undici|guzzlehttp|postmanruntime|insomnia",
    re.IGNORECASE,
)

_HUMAN = 0
_PROXY = 1
_SCANNER = 2
_BOTLIKE = 3


@lru_cache(maxsize=8192)
def _user_agent_kind(user_agent: str) -> int:
    """What the user agent alone says (cached: user agents repeat a lot)."""
    if _IMAGE_PROXY.search(user_agent) or user_agent == _APPLE_MPP:
        return _PROXY
    if _LINK_SCANNER.search(user_agent):
        return _SCANNER
    if _BOT.search(user_agent):
        return _BOTLIKE
    return _HUMAN


def is_bot_user_agent(user_agent: str) -> bool:
    """True for a user agent of a bot, crawler, proxy, scanner or HTTP library."""
    return bool(user_agent.strip()) and _user_agent_kind(user_agent.strip()) != _HUMAN


def classify_machine(
    event_type: str,
    user_agent: str,
    seconds_since_delivery: float | None,
    window: float = 10.0,
) -> MachineSignal | None:
    """Why the event is a machine's (rules in the module docstring), or None for a human's.

    `seconds_since_delivery` is the time from the email's delivery (its email_sent) to this
    open or click; None when unknown. An empty user agent says nothing.
    """
    agent = user_agent.strip()
    kind = _user_agent_kind(agent) if agent else _HUMAN
    is_email = event_type in (EMAIL_OPENED, EMAIL_CLICKED)
    if is_email:
        if kind == _PROXY:
            return (
                MachineSignal.IMAGE_PROXY_PREFETCH
                if event_type == EMAIL_OPENED
                else MachineSignal.LINK_SCANNER
            )
        if kind == _SCANNER:
            return MachineSignal.LINK_SCANNER
    if kind != _HUMAN and event_type in BROWSER_EVENT_TYPES:
        return MachineSignal.BOT_USER_AGENT
    if is_email and seconds_since_delivery is not None and seconds_since_delivery <= window:
        if event_type == EMAIL_OPENED:
            return MachineSignal.IMAGE_PROXY_PREFETCH
        return MachineSignal.LINK_SCANNER
    return None


def delivery_for(
    deliveries: Sequence[datetime], at: datetime, window: float = 10.0
) -> datetime | None:
    """The delivery (email_sent time) an open or click at `at` answers: the latest one at
    most `window` seconds after `at` (the sender's clock may run ahead), None when there is
    none. `deliveries` is sorted, oldest first."""
    i = bisect_right(deliveries, at + timedelta(seconds=window))
    return deliveries[i - 1] if i else None
