"""validate_event and friends: every limit at its boundary, every rule, all violations."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadflow_ingest.domain.model import (
    IncomingEvent,
    Limits,
    Marketing,
    Money,
    Violation,
    ViolationCode,
)
from leadflow_ingest.domain.validation import (
    property_path,
    validate_event,
    validate_id,
    validate_properties,
    validate_subject,
)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
GOOD = IncomingEvent(
    index=0,
    event_id="evt-1",
    brand_id="modumind",
    type="page_view",
    anonymous_id="anon-1",
    occurred_at=NOW,
    page_url="https://modumind.com/pricing",
    size_bytes=400,
)


def patched(event: IncomingEvent, changes: dict[str, Any]) -> IncomingEvent:
    return replace(event, **changes)


def found(violations: list[Violation]) -> set[tuple[str, str]]:
    return {(v.field, v.code.value) for v in violations}


def test_a_good_event_has_no_violation() -> None:
    full = replace(
        GOOD,
        lead_id="lead-1",
        session_id="sess-1",
        sent_at=NOW,
        marketing=Marketing(source="google", medium="cpc"),
        value=Money(49, 990_000_000, "USD"),
        referrer="https://www.google.com/",
        user_agent="Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0",
        ip="203.0.113.7",
        properties={"plan": {"tier": "pro"}, "tags": ["a", "b"], "seats": 3.0, "ok": True},
    )
    assert validate_event(full) == []
    assert validate_event(GOOD) == []


# --- size ------------------------------------------------------------------------------


def test_32_kib_is_the_event_size_limit() -> None:
    assert validate_event(replace(GOOD, size_bytes=32 * 1024)) == []
    violations = validate_event(replace(GOOD, size_bytes=32 * 1024 + 1))
    assert found(violations) == {("", "EVENT_TOO_LARGE")}
    assert "32769" in violations[0].reason and "32768" in violations[0].reason


# --- ids -------------------------------------------------------------------------------

ID_FIELDS = [
    ("event_id", "event_id", {}),
    ("brand_id", "brand_id", {}),
    ("session_id", "session_id", {}),
    ("lead_id", "subject.lead_id", {}),
    ("anonymous_id", "subject.anonymous_id", {}),
    ("custom_name", "custom_name", {"type": "custom"}),
]


@pytest.mark.parametrize(("attribute", "path", "extra"), ID_FIELDS)
def test_ids_may_have_100_characters_not_101(
    attribute: str, path: str, extra: dict[str, Any]
) -> None:
    base = replace(GOOD, **extra)
    assert validate_event(patched(base, {attribute: "x" * 100})) == []
    assert found(validate_event(patched(base, {attribute: "x" * 101}))) == {(path, "ID_TOO_LONG")}


@pytest.mark.parametrize(("attribute", "path", "extra"), ID_FIELDS)
@pytest.mark.parametrize("bad", ["a\x00b", "a\nb", "tab\there", "\x7f", " lead", "lead "])
def test_ids_refuse_control_characters_and_outer_whitespace(
    attribute: str, path: str, extra: dict[str, Any], bad: str
) -> None:
    event = patched(GOOD, {**extra, attribute: bad})
    assert found(validate_event(event)) == {(path, "INVALID_VALUE")}


def test_ids_may_hold_inner_spaces_and_unicode() -> None:
    assert validate_event(replace(GOOD, lead_id="Ann Lee", anonymous_id="é-ü-漢字")) == []


def test_brand_and_type_are_required() -> None:
    violations = validate_event(replace(GOOD, brand_id="", type=""))
    assert found(violations) == {("brand_id", "FIELD_REQUIRED"), ("type", "FIELD_REQUIRED")}


def test_unknown_type_is_invalid() -> None:
    assert found(validate_event(replace(GOOD, type="teleport"))) == {("type", "INVALID_VALUE")}
    only_views = frozenset({"page_view"})
    assert validate_event(GOOD, known_event_types=only_views) == []
    assert found(validate_event(replace(GOOD, type="click"), known_event_types=only_views)) == {
        ("type", "INVALID_VALUE")
    }


def test_custom_name_is_required_for_custom_and_refused_otherwise() -> None:
    assert validate_event(replace(GOOD, type="custom", custom_name="trial_extended")) == []
    assert found(validate_event(replace(GOOD, type="custom"))) == {
        ("custom_name", "FIELD_REQUIRED")
    }
    assert found(validate_event(replace(GOOD, custom_name="trial_extended"))) == {
        ("custom_name", "INVALID_VALUE")
    }


def test_subject_needs_a_lead_or_an_anonymous_id() -> None:
    assert found(validate_event(replace(GOOD, anonymous_id=""))) == {("subject", "MISSING_SUBJECT")}
    assert validate_event(replace(GOOD, anonymous_id="", lead_id="lead-1")) == []


# --- strings, urls, ip, time -------------------------------------------------------------


@pytest.mark.parametrize(
    ("attribute", "path"),
    [("user_agent", "user_agent"), ("referrer", "referrer"), ("page_url", "page_url")],
)
def test_string_fields_may_have_1000_characters_not_1001(attribute: str, path: str) -> None:
    def of_length(n: int) -> str:
        prefix = "https://modumind.com/"
        return prefix + "a" * (n - len(prefix))

    assert validate_event(patched(GOOD, {attribute: of_length(1000)})) == []
    assert found(validate_event(patched(GOOD, {attribute: of_length(1001)}))) == {
        (path, "STRING_TOO_LONG")
    }


@pytest.mark.parametrize("name", ["channel", "source", "medium", "campaign", "content", "term"])
def test_marketing_strings_are_limited(name: str) -> None:
    ok = Marketing(**{name: "m" * 1000})
    too_long = Marketing(**{name: "m" * 1001})
    assert validate_event(replace(GOOD, marketing=ok)) == []
    assert found(validate_event(replace(GOOD, marketing=too_long))) == {
        (f"marketing.{name}", "STRING_TOO_LONG")
    }


def test_nul_in_a_text_field_is_invalid() -> None:
    # PostgreSQL text cannot hold NUL; accepting it would fail the whole batch's insert.
    assert found(validate_event(replace(GOOD, user_agent="Mozilla\x00"))) == {
        ("user_agent", "INVALID_VALUE")
    }
    assert found(validate_event(replace(GOOD, marketing=Marketing(term="a\x00")))) == {
        ("marketing.term", "INVALID_VALUE")
    }


@pytest.mark.parametrize(
    "url",
    [
        "https://modumind.com",
        "http://modumind.com/a/b?c=d#e",
        "HTTPS://ModuMind.com:8443/x",
        "https://[2001:db8::1]/x",
        "https://例え.jp/パス",
    ],
)
def test_valid_page_urls(url: str) -> None:
    assert validate_event(replace(GOOD, page_url=url)) == []


@pytest.mark.parametrize(
    "url",
    [
        "modumind.com/pricing",
        "/pricing",
        "ftp://modumind.com/file",
        "https://",
        "https://modumind.com:99999/",
        "https://[::1/",
        "https://modu mind.com/",
        "https://modumind.com/\n",
        "javascript:alert(1)",
    ],
)
def test_invalid_page_urls(url: str) -> None:
    assert found(validate_event(replace(GOOD, page_url=url))) == {("page_url", "INVALID_VALUE")}


def test_referrer_is_any_absolute_url() -> None:
    app = "android-app://com.google.android.gm/"
    assert validate_event(replace(GOOD, referrer=app)) == []
    assert found(validate_event(replace(GOOD, referrer="google"))) == {
        ("referrer", "INVALID_VALUE")
    }


@pytest.mark.parametrize("ip", ["203.0.113.7", "2001:db8::1", "::ffff:203.0.113.7"])
def test_valid_ips(ip: str) -> None:
    assert validate_event(replace(GOOD, ip=ip)) == []


@pytest.mark.parametrize("ip", ["203.0.113", "203.0.113.256", "01.2.3.4", "fe80::1%eth0", "x"])
def test_invalid_ips(ip: str) -> None:
    assert found(validate_event(replace(GOOD, ip=ip))) == {("ip", "INVALID_VALUE")}


def test_timestamps_need_a_time_zone() -> None:
    naive = datetime(2025, 3, 1, 12, 0)
    assert found(validate_event(replace(GOOD, occurred_at=naive, sent_at=naive))) == {
        ("occurred_at", "INVALID_VALUE"),
        ("sent_at", "INVALID_VALUE"),
    }


def test_value_is_checked_with_its_paths() -> None:
    event = replace(GOOD, value=Money(-5, 250_000_000, "usd"))
    assert found(validate_event(event)) == {
        ("value.nanos", "INVALID_AMOUNT"),
        ("value.currency_code", "INVALID_CURRENCY"),
    }
    assert validate_event(replace(GOOD, value=Money(-5, -250_000_000, "EUR"))) == []


# --- properties ----------------------------------------------------------------------


def test_256_properties_ok_257_too_many() -> None:
    assert validate_properties({f"p{i}": i for i in range(256)}) == []
    violations = validate_properties({f"p{i}": i for i in range(257)})
    assert found(violations) == {("properties", "TOO_MANY_PROPERTIES")}
    assert "257" in violations[0].reason


def test_nested_values_do_not_count_as_top_level_properties() -> None:
    assert validate_properties({"a": {f"p{i}": i for i in range(300)}}) == []


def test_depth_3_ok_depth_4_too_deep() -> None:
    assert validate_properties({"a": {"b": {"c": 1}}}) == []
    assert validate_properties({"a": {"b": {}}}) == []
    assert found(validate_properties({"a": {"b": {"c": {"d": 1}}}})) == {
        ("properties.a.b.c", "NESTING_TOO_DEEP")
    }
    assert found(validate_properties({"a": {"b": {"c": {}}}})) == {
        ("properties.a.b.c", "NESTING_TOO_DEEP")
    }


def test_lists_are_levels_too() -> None:
    assert validate_properties({"a": [[1, 2], [3]]}) == []
    assert found(validate_properties({"a": [[[1]]]})) == {
        ("properties.a[0][0]", "NESTING_TOO_DEEP")
    }
    assert found(validate_properties({"a": [{"b": [1]}]})) == {
        ("properties.a[0].b", "NESTING_TOO_DEEP")
    }


def test_string_values_1000_ok_1001_too_long_anywhere() -> None:
    assert validate_properties({"plan": {"tier": "x" * 1000}}) == []
    assert found(validate_properties({"plan": {"tier": "x" * 1001}})) == {
        ("properties.plan.tier", "STRING_TOO_LONG")
    }
    assert found(validate_properties({"tags": ["ok", "x" * 1001]})) == {
        ("properties.tags[1]", "STRING_TOO_LONG")
    }


def test_keys_100_ok_101_too_long() -> None:
    assert validate_properties({"k" * 100: 1}) == []
    assert found(validate_properties({"k" * 101: 1})) == {("properties", "STRING_TOO_LONG")}
    assert found(validate_properties({"plan": {"k" * 101: 1}})) == {
        ("properties.plan", "STRING_TOO_LONG")
    }


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({"n": math.nan}, "properties.n"),
        ({"n": [math.inf]}, "properties.n[0]"),
        ({"s": "a\x00"}, "properties.s"),
        ({"b": b"bytes"}, "properties.b"),
        ({"a": {1: "x"}}, "properties.a"),
        ({"a\x00": 1}, "properties"),
    ],
)
def test_values_that_json_or_postgres_cannot_hold_are_invalid(value: Any, path: str) -> None:
    assert found(validate_properties(value)) == {(path, "INVALID_VALUE")}


def test_properties_must_be_an_object() -> None:
    assert found(validate_properties(["a"])) == {("properties", "INVALID_VALUE")}


def test_paths_quote_keys_that_are_not_plain() -> None:
    assert property_path("properties", "plan_tier-2") == "properties.plan_tier-2"
    assert property_path("properties", "a.b") == 'properties["a.b"]'
    assert property_path("properties", "") == 'properties[""]'
    assert found(validate_properties({"a.b": "x" * 1001})) == {
        ('properties["a.b"]', "STRING_TOO_LONG")
    }


def test_all_violations_are_reported_not_just_the_first() -> None:
    bad = IncomingEvent(
        event_id="e" * 101,
        type="custom",
        value=Money(1, 0, ""),
        page_url="nope",
        ip="999.1.1.1",
        properties={"a": {"b": {"c": {"d": 1}}}, "s": "x" * 1001},
        size_bytes=40_000,
    )
    assert found(validate_event(bad)) == {
        ("", "EVENT_TOO_LARGE"),
        ("event_id", "ID_TOO_LONG"),
        ("brand_id", "FIELD_REQUIRED"),
        ("custom_name", "FIELD_REQUIRED"),
        ("subject", "MISSING_SUBJECT"),
        ("value.currency_code", "INVALID_CURRENCY"),
        ("page_url", "INVALID_VALUE"),
        ("ip", "INVALID_VALUE"),
        ("properties.a.b.c", "NESTING_TOO_DEEP"),
        ("properties.s", "STRING_TOO_LONG"),
    }


def test_violations_per_event_are_capped() -> None:
    hostile = replace(GOOD, properties={f"p{i}": "x" * 1001 for i in range(250)})
    violations = validate_event(hostile)
    assert len(violations) == 100
    assert all(v.code == ViolationCode.STRING_TOO_LONG for v in violations)
    assert len(validate_event(hostile, Limits(max_violations=5))) == 5


def test_limits_are_configurable() -> None:
    strict = Limits(max_depth=1, max_string_chars=3, max_properties=1)
    assert found(validate_properties({"a": "abcd", "b": {}}, limits=strict)) == {
        ("properties", "TOO_MANY_PROPERTIES"),
        ("properties.a", "STRING_TOO_LONG"),
        ("properties.b", "NESTING_TOO_DEEP"),
    }


# --- id helpers for Identify / Alias ----------------------------------------------------


def test_validate_id() -> None:
    assert validate_id("lead-1", "lead_id") == []
    assert found(validate_id("", "lead_id")) == {("lead_id", "FIELD_REQUIRED")}
    assert validate_id("", "anonymous_id", required=False) == []
    assert found(validate_id("x" * 101, "lead_id")) == {("lead_id", "ID_TOO_LONG")}
    assert validate_id("x" * 100, "lead_id") == []
    assert found(validate_id("a\tb", "anonymous_id")) == {("anonymous_id", "INVALID_VALUE")}


def test_validate_subject() -> None:
    assert found(validate_subject("", "")) == {("subject", "MISSING_SUBJECT")}
    assert validate_subject("lead-1", "") == []
    assert found(validate_subject("x" * 101, "a\n", field="request.subject")) == {
        ("request.subject.lead_id", "ID_TOO_LONG"),
        ("request.subject.anonymous_id", "INVALID_VALUE"),
    }


# --- properties of the validator ---------------------------------------------------------

keys = st.text(max_size=120)
leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=1100)
)
json_like = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=30,
)


def reference_ok(value: Any, level: int = 1) -> bool:
    """An independent, slow statement of the rules for an object at `level`."""
    if isinstance(value, dict) and any(len(k) > 100 or "\x00" in k for k in value):
        return False
    for item in value.values() if isinstance(value, dict) else value:
        if isinstance(item, dict | list):
            if level + 1 > 3 or not reference_ok(item, level + 1):
                return False
        elif isinstance(item, str):
            if len(item) > 1000 or "\x00" in item:
                return False
        elif isinstance(item, float) and not math.isfinite(item):
            return False
    return True


@settings(max_examples=200)
@given(st.dictionaries(keys, json_like, max_size=8))
def test_properties_are_valid_exactly_when_the_reference_says_so(value: dict[str, Any]) -> None:
    violations = validate_properties(value)
    assert (violations == []) == reference_ok(value)
    assert all(v.field.startswith("properties") for v in violations)


@given(json_like)
def test_validation_never_raises_on_json_like_data(value: Any) -> None:
    violations = validate_properties(value)
    assert isinstance(value, dict) or found(violations) == {("properties", "INVALID_VALUE")}


@given(
    st.builds(
        IncomingEvent,
        index=st.integers(0, 999),
        event_id=st.text(max_size=120),
        brand_id=st.text(max_size=120),
        type=st.sampled_from(["", "page_view", "custom", "email_opened", "bogus"]),
        custom_name=st.text(max_size=120),
        lead_id=st.text(max_size=120),
        anonymous_id=st.text(max_size=120),
        session_id=st.text(max_size=120),
        page_url=st.text(max_size=50) | st.just("https://modumind.com/x"),
        referrer=st.text(max_size=50),
        user_agent=st.text(max_size=50),
        ip=st.text(max_size=50),
        value=st.none() | st.builds(Money, st.integers(-(2**64), 2**64), st.integers(), st.text()),
        properties=st.none() | st.dictionaries(keys, json_like, max_size=5),
        size_bytes=st.integers(0, 100_000),
    )
)
def test_validate_event_never_raises_and_names_known_fields(event: IncomingEvent) -> None:
    fields = {v.field.split(".")[0].split("[")[0] for v in validate_event(event)}
    assert fields <= {
        "", "event_id", "brand_id", "type", "custom_name", "subject", "session_id", "value",
        "page_url", "referrer", "user_agent", "ip", "properties", "occurred_at", "sent_at",
        "marketing",
    }  # fmt: skip
