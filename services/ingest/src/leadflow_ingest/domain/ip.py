"""IP addresses: parse, then truncate or keyed-hash, so that a raw address is never stored.

Geo lookup needs the full address and happens outside the domain before any of this.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import socket
from dataclasses import dataclass

from leadflow_ingest.domain.model import IpMode

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_V6_KEEP = ((1 << 48) - 1) << 80  # /48
# 6to4 (2002::/16) carries the site's public IPv4 address in bits 16..47, so its /48 would
# keep all of that IPv4 address; keep 16 + 24 bits instead, as much as an IPv4 /24 keeps.
_V6_6TO4_KEEP = ((1 << 40) - 1) << 88
_6TO4 = ipaddress.IPv6Network("2002::/16")
_MAX_IP_TEXT = 64
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}")
_IPV6_CHARS = re.compile(r"[0-9A-Fa-f:.]+")


def parse_ip(text: str) -> IpAddress | None:
    """The address in `text`, or None when it is not a plain IPv4 or IPv6 address.

    Surrounding whitespace is ignored. Refused: zone ids ("fe80::1%eth0": local to the
    sender's machine), prefixes ("10.0.0.0/8"), IPv4 with leading zeros. An IPv4-mapped IPv6
    address ("::ffff:203.0.113.7") is returned as the IPv4 address it carries, so that it is
    truncated and hashed as that address.
    """
    text = text.strip()
    if _IPV4.fullmatch(text) is not None:
        # The pattern is strict (no leading zeros), so inet_aton reads exactly that address.
        # inet_aton/inet_pton are pure conversions; with an int, ipaddress is ~5x faster.
        return ipaddress.IPv4Address(int.from_bytes(socket.inet_aton(text)))
    if not text or len(text) > _MAX_IP_TEXT or _IPV6_CHARS.fullmatch(text) is None:
        return None
    try:
        packed = socket.inet_pton(socket.AF_INET6, text)
    except OSError:
        return None
    address = ipaddress.IPv6Address(int.from_bytes(packed))
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_ip(text: str) -> bool:
    """Whether `parse_ip(text)` finds an address (IPv4 without building it)."""
    return _IPV4.fullmatch(text.strip()) is not None or parse_ip(text) is not None


def truncate_ip(address: IpAddress) -> str:
    """Text form of the address's network: /24 for IPv4 ("203.0.113.0"), /48 for IPv6
    ("2001:db8:1::"; /40 for 6to4, see above)."""
    if isinstance(address, ipaddress.IPv4Address):
        packed = address.packed
        return f"{packed[0]}.{packed[1]}.{packed[2]}.0"
    keep = _V6_6TO4_KEEP if address in _6TO4 else _V6_KEEP
    return str(ipaddress.IPv6Address(int(address) & keep))


def hash_ip(address: IpAddress, key: bytes) -> str:
    """Hex HMAC-SHA256 of the address's packed bytes (4 or 16) under the tenant's key.

    Hashing the packed form makes every text spelling of one address hash alike.
    """
    if not key:
        raise ValueError("hash_ip needs a non-empty key")
    return hmac.new(key, address.packed, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class StoredIp:
    """The stored form of an address: exactly one of the two is set (RecordedEvent.ip_address)."""

    truncated: str = ""
    hash: str = ""


def stored_ip(address: IpAddress, mode: IpMode, key: bytes | None = None) -> StoredIp:
    """What the tenant's policy keeps of `address`: its truncation, or its keyed hash."""
    if mode == "hash":
        if not key:
            raise ValueError("ip mode 'hash' needs a key")
        return StoredIp(hash=hash_ip(address, key))
    return StoredIp(truncated=truncate_ip(address))
