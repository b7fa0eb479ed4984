"""Machine-generated email engagement and bots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leadflow_ingest.domain.machine import (
    BROWSER_EVENT_TYPES,
    classify_machine,
    delivery_for,
    is_bot_user_agent,
)
from leadflow_ingest.domain.model import EVENT_TYPES, MachineSignal

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
IPHONE_MAIL = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"
CUBOT_PHONE = (
    "Mozilla/5.0 (Linux; Android 10; CUBOT_X30) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/96.0.4664.104 Mobile Safari/537.36"
)
GMAIL_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)
YAHOO_PROXY = "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html"
APPLE_MPP = "Mozilla/5.0"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"

PROXY = MachineSignal.IMAGE_PROXY_PREFETCH
SCANNER = MachineSignal.LINK_SCANNER
BOT = MachineSignal.BOT_USER_AGENT


@pytest.mark.parametrize(
    ("event_type", "agent", "seconds", "expected"),
    [
        ("email_opened", GMAIL_PROXY, None, PROXY),
        ("email_opened", YAHOO_PROXY, 3600.0, PROXY),
        ("email_opened", APPLE_MPP, 5000.0, PROXY),
        ("email_opened", IPHONE_MAIL, 3600.0, None),
        ("email_opened", IPHONE_MAIL, 3.0, PROXY),
        ("email_opened", "", 2.0, PROXY),
        ("email_opened", "", None, None),
        ("email_clicked", "Mozilla/5.0 (compatible; Mimecast URL Protect)", None, SCANNER),
        ("email_clicked", "Proofpoint URL Defense", 600.0, SCANNER),
        ("email_clicked", "Barracuda Sentinel (EE)", None, SCANNER),
        ("email_clicked", "Mozilla/5.0 (compatible; BingPreview/1.0b)", None, SCANNER),
        ("email_clicked", "Microsoft Office Existence Discovery", None, SCANNER),
        ("email_clicked", GMAIL_PROXY, None, SCANNER),
        ("email_clicked", CHROME, 2.0, SCANNER),
        ("email_clicked", CHROME, 10.0, SCANNER),
        ("email_clicked", CHROME, 10.5, None),
        ("email_clicked", CHROME, -4.0, SCANNER),
        ("email_clicked", CHROME, None, None),
        ("email_opened", GOOGLEBOT, 3600.0, BOT),
        ("email_clicked", "python-requests/2.31", 3600.0, BOT),
        ("page_view", GOOGLEBOT, None, BOT),
        ("page_view", "Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/120.0", None, BOT),
        ("form_submitted", "curl/8.4.0", None, BOT),
        ("page_view", GMAIL_PROXY, None, BOT),
        ("page_view", CHROME, 1.0, None),
        ("page_view", CUBOT_PHONE, None, None),
        ("purchase", "python-requests/2.31", None, None),
        ("email_sent", "Go-http-client/1.1", None, None),
        ("signup", GOOGLEBOT, None, None),
    ],
)
def test_classify_machine(
    event_type: str, agent: str, seconds: float | None, expected: MachineSignal | None
) -> None:
    assert classify_machine(event_type, agent, seconds) == expected


def test_the_window_is_a_parameter() -> None:
    assert classify_machine("email_clicked", CHROME, 25.0, window=30.0) == SCANNER
    assert classify_machine("email_clicked", CHROME, 5.0, window=0.0) is None


@pytest.mark.parametrize(
    ("agent", "bot"),
    [
        (GOOGLEBOT, True),
        ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", True),
        ("AdsBot-Google (+http://www.google.com/adsbot.html)", True),
        ("facebookexternalhit/1.1", True),
        ("Slackbot-LinkExpanding 1.0", True),
        ("Wget/1.21", True),
        (CHROME, False),
        (CUBOT_PHONE, False),
        (IPHONE_MAIL, False),
        ("", False),
    ],
)
def test_is_bot_user_agent(agent: str, bot: bool) -> None:
    assert is_bot_user_agent(agent) is bot


def test_browser_event_types_are_event_types() -> None:
    assert BROWSER_EVENT_TYPES <= EVENT_TYPES
    assert {"email_opened", "email_clicked", "page_view"} <= BROWSER_EVENT_TYPES
    assert "purchase" not in BROWSER_EVENT_TYPES


@given(st.sampled_from(sorted(EVENT_TYPES)), st.text(max_size=200))
def test_only_email_engagement_and_browser_events_are_flagged(event_type: str, agent: str) -> None:
    signal = classify_machine(event_type, agent, 1.0)
    if event_type not in BROWSER_EVENT_TYPES:
        assert signal is None
    elif event_type in ("email_opened", "email_clicked"):
        assert signal is not None  # within the window of delivery


T0 = datetime(2025, 3, 4, 9, tzinfo=UTC)
DELIVERIES = [T0, T0 + timedelta(days=1), T0 + timedelta(days=2)]


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (T0 - timedelta(seconds=11), None),  # before any delivery
        (T0 - timedelta(seconds=4), T0),  # the sender's clock runs ahead: still this one
        (T0 + timedelta(minutes=20), T0),  # a later delivery does not count for it
        (T0 + timedelta(days=1, seconds=3), T0 + timedelta(days=1)),
        (T0 + timedelta(days=2) - timedelta(seconds=10), T0 + timedelta(days=2)),
        (T0 + timedelta(days=9), T0 + timedelta(days=2)),
    ],
)
def test_an_open_answers_the_latest_delivery_at_most_the_window_after_it(at, expected) -> None:
    assert delivery_for(DELIVERIES, at, 10.0) == expected


@given(st.permutations(DELIVERIES), st.integers(min_value=-86_400, max_value=4 * 86_400))
def test_the_delivery_found_does_not_depend_on_what_else_is_known_later(order, offset) -> None:
    at = T0 + timedelta(seconds=offset)
    found = delivery_for(sorted(order), at, 10.0)
    # Deliveries beyond at + window never matter: knowing only the earlier ones gives the same.
    known = sorted(d for d in order if d <= at + timedelta(seconds=10))
    assert found == delivery_for(known, at, 10.0) == (known[-1] if known else None)
