"""Country of an IP address, looked up before the address is truncated.

geoip2fast carries its own data file (country level, IPv4 and common IPv6 ranges), so the
lookup needs no network and no licence key. Private and unknown addresses give no location.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any


@dataclass(frozen=True)
class GeoLocation:
    country: str  # ISO 3166-1 alpha-2
    region: str = ""
    city: str = ""


@cache
def _reader() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from geoip2fast import GeoIP2Fast

        return GeoIP2Fast(verbose=False)


def locate(ip: str) -> GeoLocation | None:
    """The country of a valid IP address. Country data has no finer grain than an IPv4 /24,
    so IPv4 lookups are cached per /24 (the prefix ingest keeps anyway)."""
    if ":" not in ip:
        return _locate_ipv4_network(ip.rsplit(".", 1)[0])
    return _lookup(ip)


@lru_cache(maxsize=65_536)
def _locate_ipv4_network(prefix: str) -> GeoLocation | None:
    return _lookup(f"{prefix}.0")


def _lookup(ip: str) -> GeoLocation | None:
    try:
        result = _reader().lookup(ip)
    except Exception:  # a lookup must never cost an event
        return None
    code = getattr(result, "country_code", "") or ""
    if len(code) != 2 or not code.isalpha():
        return None  # "--" (unknown) or a private-network marker
    return GeoLocation(country=code.upper())


def warm_up() -> None:
    """Load the data file at startup rather than on the first event."""
    _reader()
