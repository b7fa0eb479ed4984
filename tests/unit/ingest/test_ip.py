"""IP parsing, truncation (/24, /48) and keyed hashing."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leadflow_ingest.domain.ip import StoredIp, hash_ip, parse_ip, stored_ip, truncate_ip


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("203.0.113.7", "203.0.113.7"),
        (" 203.0.113.7 ", "203.0.113.7"),
        ("0.0.0.0", "0.0.0.0"),
        ("255.255.255.255", "255.255.255.255"),
        ("2001:db8::1", "2001:db8::1"),
        ("2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("::", "::"),
    ],
)
def test_parse_ip(text: str, expected: str) -> None:
    assert str(parse_ip(text)) == expected


@pytest.mark.parametrize(
    "text",
    [
        "", "203.0.113", "203.0.113.256", "01.2.3.4", "1.2.3.4/24", "fe80::1%eth0",
        "1::2::3", "2001:db8::g", "1:2:3:4:5:6:7:8:9", "localhost", "1.2.3.4.5",
        "\u0661.\u0662.\u0663.\u0664",
    ],
)  # fmt: skip
def test_parse_ip_refuses(text: str) -> None:
    assert parse_ip(text) is None


@pytest.mark.parametrize(
    ("text", "truncated"),
    [
        ("203.0.113.7", "203.0.113.0"),
        ("203.0.113.255", "203.0.113.0"),
        ("10.1.2.3", "10.1.2.0"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1::"),
        ("2001:db8:abcd:ffff:ffff:ffff:ffff:ffff", "2001:db8:abcd::"),
        ("::1", "::"),
        ("::ffff:203.0.113.7", "203.0.113.0"),
        # 6to4 embeds 203.0.113.7 in bits 16..47: keep only its first 24 bits.
        ("2002:cb00:7107::1", "2002:cb00:7100::"),
    ],
)
def test_truncate_ip(text: str, truncated: str) -> None:
    address = parse_ip(text)
    assert address is not None
    assert truncate_ip(address) == truncated


def test_hash_ip_is_hmac_sha256_of_the_packed_address() -> None:
    key = b"tenant-key"
    expected = hmac.new(key, bytes([203, 0, 113, 7]), hashlib.sha256).hexdigest()
    v4 = parse_ip("203.0.113.7")
    mapped = parse_ip("::ffff:203.0.113.7")
    assert v4 is not None and mapped is not None
    assert hash_ip(v4, key) == expected
    assert hash_ip(mapped, key) == expected
    assert len(expected) == 64
    assert hash_ip(v4, b"other-key") != expected
    with pytest.raises(ValueError):
        hash_ip(v4, b"")


def test_stored_ip_follows_the_mode() -> None:
    address = ipaddress.ip_address("198.51.100.23")
    assert stored_ip(address, "truncate") == StoredIp(truncated="198.51.100.0")
    hashed = stored_ip(address, "hash", b"k")
    assert hashed.truncated == "" and hashed.hash == hash_ip(address, b"k")
    with pytest.raises(ValueError):
        stored_ip(address, "hash")


@given(st.integers(0, 2**32 - 1))
def test_truncated_ipv4_never_holds_host_bits(value: int) -> None:
    address = ipaddress.IPv4Address(value)
    truncated = ipaddress.IPv4Address(truncate_ip(address))
    assert int(truncated) & 0xFF == 0
    assert int(truncated) == value & 0xFFFFFF00
    assert parse_ip(str(address)) == address


@given(st.integers(0, 2**128 - 1))
def test_truncated_ipv6_never_holds_host_bits(value: int) -> None:
    address = ipaddress.IPv6Address(value)
    parsed = parse_ip(str(address))
    assert parsed is not None
    truncated = ipaddress.ip_address(truncate_ip(parsed))
    if isinstance(parsed, ipaddress.IPv4Address):  # an IPv4-mapped address
        assert int(truncated) & 0xFF == 0
    else:
        assert int(truncated) & ((1 << 80) - 1) == 0
        assert int(truncated) == value >> 80 << 80 or int(truncated) == value >> 88 << 88
    assert parse_ip(address.exploded) == parsed


@given(st.text(max_size=60))
def test_parse_ip_agrees_with_ipaddress_on_any_text(text: str) -> None:
    try:
        expected: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(
            text.strip()
        )
    except ValueError:
        expected = None
    if isinstance(expected, ipaddress.IPv6Address):
        if expected.scope_id is not None:
            expected = None  # zone ids are refused on purpose
        elif expected.ipv4_mapped is not None:
            expected = expected.ipv4_mapped
    assert parse_ip(text) == expected
