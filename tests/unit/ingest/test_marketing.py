"""UTM parsing, click ids, referrer touchpoints and the channel grouping."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leadflow_ingest.domain.marketing import (
    derive_channel,
    parse_utm,
    referrer_marketing,
    resolve_marketing,
)
from leadflow_ingest.domain.model import Marketing

CHANNELS = {
    "email", "paid_search", "organic_search", "paid_social", "organic_social", "referral",
    "display", "affiliate", "sms", "direct", "other",
}  # fmt: skip


def test_parse_utm_reads_every_parameter() -> None:
    url = (
        "https://modumind.com/pricing?utm_source=Newsletter&utm_medium=email"
        "&utm_campaign=spring%20sale&utm_content=hero+button&utm_term=ai%2Bml#top"
    )
    assert parse_utm(url) == Marketing(
        source="Newsletter",
        medium="email",
        campaign="spring sale",
        content="hero button",
        term="ai+ml",
    )


def test_parse_utm_first_non_empty_value_wins_and_names_ignore_case() -> None:
    url = "https://m.com/?utm_source=&UTM_SOURCE=bing&utm_source=google&utm_medium=%20cpc%20"
    assert parse_utm(url) == Marketing(source="bing", medium="cpc")


def test_parse_utm_without_parameters_is_none() -> None:
    assert parse_utm("https://modumind.com/pricing") is None
    assert parse_utm("https://modumind.com/pricing?plan=pro") is None
    assert parse_utm("https://modumind.com/#?utm_source=google") is None
    assert parse_utm("") is None


def test_parse_utm_drops_control_characters() -> None:
    assert parse_utm("https://m.com/?utm_source=goo%00gle%0A") == Marketing(source="google")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("gclid=abc", Marketing(source="google", medium="cpc")),
        ("wbraid=abc", Marketing(source="google", medium="cpc")),
        ("msclkid=abc", Marketing(source="bing", medium="cpc")),
        ("fbclid=abc", Marketing(source="facebook", medium="paid_social")),
        ("li_fat_id=abc", Marketing(source="linkedin", medium="paid_social")),
        ("dclid=abc", Marketing(source="google", medium="display")),
        (
            "gclid=abc&utm_campaign=brand",
            Marketing(source="google", medium="cpc", campaign="brand"),
        ),
        ("gclid=abc&utm_source=partner", Marketing(source="partner", medium="cpc")),
    ],
)
def test_click_ids_fill_source_and_medium(query: str, expected: Marketing) -> None:
    assert parse_utm(f"https://modumind.com/?{query}") == expected


@pytest.mark.parametrize(
    ("source", "medium", "referrer", "page_url", "channel"),
    [
        ("google", "cpc", "", "", "paid_search"),
        ("GOOGLE", " CPC ", "", "", "paid_search"),
        ("bing", "ppc", "", "", "paid_search"),
        ("adwords", "paid", "", "", "paid_search"),
        ("facebook", "cpc", "", "", "paid_social"),
        ("m.facebook.com", "paid_social", "", "", "paid_social"),
        ("linkedin", "retargeting", "", "", "paid_social"),
        ("google", "display", "", "", "display"),
        ("dv360", "cpm", "", "", "display"),
        ("capterra", "cpc", "", "", "other"),
        ("capterra", "cpc", "", "https://m.com/?gclid=1", "paid_search"),
        ("linkedin", "social", "", "", "organic_social"),
        ("", "social-network", "", "", "organic_social"),
        ("twitter.com", "", "", "", "organic_social"),
        ("google", "organic", "", "", "organic_search"),
        ("duckduckgo", "", "", "", "organic_search"),
        ("", "organic", "", "", "organic_search"),
        ("blog", "referral", "", "", "referral"),
        ("newsletter", "email", "", "", "email"),
        ("e-mail", "", "", "", "email"),
        ("mailchimp", "newsletter", "", "", "email"),
        ("partnerstack", "affiliate", "", "", "affiliate"),
        ("twilio", "sms", "", "", "sms"),
        ("sms", "", "", "", "sms"),
        ("(direct)", "(none)", "", "", "direct"),
        ("newsletter", "", "", "", "other"),
        ("foo", "bar", "", "", "other"),
        ("", "", "", "", "direct"),
        ("", "", "https://www.google.com/", "https://m.com/", "organic_search"),
        ("", "", "https://news.ycombinator.com/item", "https://m.com/", "referral"),
        ("", "", "https://m.com/other", "https://m.com/", "direct"),
        ("", "", "", "https://m.com/?msclkid=1", "paid_search"),
        ("", "", "", "https://m.com/?fbclid=1", "paid_social"),
        ("", "", "", "https://m.com/?dclid=1", "display"),
    ],
)
def test_channel_grouping(
    source: str, medium: str, referrer: str, page_url: str, channel: str
) -> None:
    assert derive_channel(source, medium, referrer, page_url) == channel


@pytest.mark.parametrize(
    ("referrer", "expected"),
    [
        ("https://www.google.com/", Marketing("organic_search", "google", "organic")),
        ("https://www.google.co.uk/search?q=x", Marketing("organic_search", "google", "organic")),
        ("https://search.yahoo.com/", Marketing("organic_search", "yahoo", "organic")),
        ("https://duckduckgo.com/", Marketing("organic_search", "duckduckgo", "organic")),
        ("https://docs.google.com/doc", Marketing("referral", "docs.google.com", "referral")),
        ("https://l.facebook.com/l.php", Marketing("organic_social", "facebook", "social")),
        ("https://t.co/abc", Marketing("organic_social", "twitter", "social")),
        ("https://www.linkedin.com/feed", Marketing("organic_social", "linkedin", "social")),
        ("https://mail.google.com/mail/u/0", Marketing("email", "gmail", "email")),
        ("https://outlook.office.com/mail", Marketing("email", "outlook", "email")),
        ("android-app://com.google.android.gm/", Marketing("email", "gmail", "email")),
        ("https://www.g2.com/products/x", Marketing("referral", "g2.com", "referral")),
    ],
)
def test_referrer_touchpoints(referrer: str, expected: Marketing) -> None:
    assert referrer_marketing(referrer, "https://modumind.com/") == expected


@pytest.mark.parametrize(
    "referrer",
    [
        "",
        "not a url",
        "https://modumind.com/blog",
        "https://www.modumind.com/",
        "https://blog.modumind.com/post",
    ],
)
def test_internal_or_missing_referrers_make_no_touchpoint(referrer: str) -> None:
    assert referrer_marketing(referrer, "https://modumind.com/pricing") is None


def test_same_site_uses_the_registrable_domain() -> None:
    page = "https://shop.modumind.co.uk/"
    assert referrer_marketing("https://blog.modumind.co.uk/", page) is None
    other = referrer_marketing("https://blog.other.co.uk/", page)
    assert other is not None and other.channel == "referral"


def test_resolve_keeps_a_sent_context_with_its_channel() -> None:
    sent = Marketing(channel="partner_portal", source="google", medium="cpc")
    assert resolve_marketing(sent, "https://m.com/?utm_source=x", "") == (sent, False)


def test_resolve_derives_only_the_missing_channel() -> None:
    sent = Marketing(source="google", medium="cpc", campaign="brand")
    assert resolve_marketing(sent, "", "") == (
        Marketing(channel="paid_search", source="google", medium="cpc", campaign="brand"),
        False,
    )


def test_resolve_parses_the_page_url_when_nothing_was_sent() -> None:
    url = "https://modumind.com/?utm_source=newsletter&utm_medium=email&utm_campaign=may"
    expected = Marketing(channel="email", source="newsletter", medium="email", campaign="may")
    assert resolve_marketing(None, url, "https://mail.google.com/") == (expected, True)
    assert resolve_marketing(Marketing(), url, "") == (expected, True)


def test_resolve_falls_back_to_an_external_referrer() -> None:
    assert resolve_marketing(None, "https://modumind.com/", "https://www.bing.com/") == (
        Marketing("organic_search", "bing", "organic"),
        True,
    )
    assert resolve_marketing(
        None, "https://modumind.com/", "https://www.bing.com/", use_referrer=False
    ) == (None, False)


def test_resolve_without_any_context_is_no_touchpoint() -> None:
    assert resolve_marketing(None, "https://modumind.com/", "") == (None, False)
    assert resolve_marketing(None, "https://modumind.com/b", "https://modumind.com/a") == (
        None,
        False,
    )
    assert resolve_marketing(None, "", "") == (None, False)


@given(st.text(max_size=30), st.text(max_size=30), st.text(max_size=60), st.text(max_size=60))
def test_channel_is_always_one_of_the_known_values(
    source: str, medium: str, referrer: str, page_url: str
) -> None:
    assert derive_channel(source, medium, referrer, page_url) in CHANNELS


@given(st.text(max_size=80), st.text(max_size=80))
def test_resolve_never_raises_and_parsed_contexts_have_a_channel(
    page_url: str, referrer: str
) -> None:
    marketing, parsed = resolve_marketing(None, page_url, referrer)
    assert (marketing is None) == (not parsed)
    if marketing is not None:
        assert marketing.channel in CHANNELS
        assert "\x00" not in marketing.source + marketing.medium + marketing.campaign
