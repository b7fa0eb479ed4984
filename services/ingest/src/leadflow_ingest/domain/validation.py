"""Validation of a client event and of ids: every violation found, each naming its field.

Field paths are relative to the event and use the proto field names ("brand_id",
"subject.lead_id", "value.currency_code", "properties.plan.tier"); "" means the whole event.
Place them under the request with `Violation.under("events[3]")`.

Rules (DESIGN.md section 3 "Ingest", the comments of TrackEvent and ViolationCode):

- size: the serialized event at most `max_event_bytes` (32 KiB = 32,768 bytes; equal is ok).
- ids (event_id, brand_id, custom_name, subject.lead_id, subject.anonymous_id, session_id):
  at most `max_id_chars` (100) characters, no control characters, no leading or trailing
  whitespace. brand_id and type are required, and at least one subject id; custom_name is
  required when type is "custom" and refused otherwise.
- other string fields (page_url, referrer, user_agent, marketing.*): at most
  `max_string_chars` (1,000) characters and no NUL (PostgreSQL text cannot hold one).
  page_url is an absolute http(s) URL; referrer an absolute URL of any scheme (Android app
  referrers are "android-app://..."); ip an IPv4 or IPv6 address.
- timestamps carry a time zone.
- value: see currency.validate_money.
- properties (and profile traits), see `validate_properties`.

Lengths are counted in characters (code points), as the proto comments say.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from datetime import datetime
from math import isfinite as _isfinite
from typing import Any
from urllib.parse import urlsplit

from leadflow_ingest.domain.currency import validate_money
from leadflow_ingest.domain.ip import is_ip
from leadflow_ingest.domain.model import (
    CUSTOM,
    DEFAULT_LIMITS,
    EVENT_TYPES,
    IncomingEvent,
    Limits,
    Violation,
    ViolationCode,
)

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Property keys that can stand in a dotted path as they are; others are written ["..."].
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_\-]+")
_MARKETING_FIELDS = ("channel", "source", "medium", "campaign", "content", "term")

_REQUIRED = ViolationCode.FIELD_REQUIRED
_INVALID = ViolationCode.INVALID_VALUE
_ID_TOO_LONG = ViolationCode.ID_TOO_LONG
_TOO_LONG = ViolationCode.STRING_TOO_LONG
_TOO_DEEP = ViolationCode.NESTING_TOO_DEEP


def validate_event(
    event: IncomingEvent,
    limits: Limits = DEFAULT_LIMITS,
    *,
    known_event_types: Collection[str] = EVENT_TYPES,
) -> list[Violation]:
    """Every violation of `event` (at most `limits.max_violations`); empty when it is valid.

    Never raises on any input the mapping layer can produce; timing and consent rules
    (OUTSIDE_RETENTION, CONSENT_WITHDRAWN, SUBJECT_ERASED) need state and are not checked here.
    """
    out: list[Violation] = []
    max_id = limits.max_id_chars
    max_str = limits.max_string_chars

    if event.size_bytes > limits.max_event_bytes:
        out.append(
            Violation(
                "",
                ViolationCode.EVENT_TOO_LARGE,
                f"event is {event.size_bytes} bytes serialized, "
                f"the limit is {limits.max_event_bytes}",
            )
        )

    check_id(event.event_id, "event_id", max_id, False, out)
    check_id(event.brand_id, "brand_id", max_id, True, out)

    event_type = event.type
    if not event_type:
        out.append(Violation("type", _REQUIRED, "type is required"))
    elif event_type not in known_event_types:
        out.append(Violation("type", _INVALID, f"unknown event type {event_type[:100]!r}"))
    if event_type == CUSTOM:
        check_id(event.custom_name, "custom_name", max_id, True, out)
    elif event.custom_name:
        out.append(
            Violation("custom_name", _INVALID, "custom_name is only allowed when type is custom")
        )
        check_id(event.custom_name, "custom_name", max_id, False, out)

    if not event.lead_id and not event.anonymous_id:
        out.append(
            Violation(
                "subject",
                ViolationCode.MISSING_SUBJECT,
                "subject needs a lead_id or an anonymous_id",
            )
        )
    else:
        check_id(event.lead_id, "subject.lead_id", max_id, False, out)
        check_id(event.anonymous_id, "subject.anonymous_id", max_id, False, out)
    check_id(event.session_id, "session_id", max_id, False, out)

    _check_time(event.occurred_at, "occurred_at", out)
    _check_time(event.sent_at, "sent_at", out)

    marketing = event.marketing
    if marketing is not None:
        for name in _MARKETING_FIELDS:
            check_text(getattr(marketing, name), "marketing." + name, max_str, out)

    if event.value is not None:
        out.extend(validate_money(event.value, "value"))

    if event.page_url:
        _check_url(event.page_url, "page_url", max_str, True, out)
    if event.referrer:
        _check_url(event.referrer, "referrer", max_str, False, out)
    check_text(event.user_agent, "user_agent", max_str, out)
    if event.ip and not is_ip(event.ip):
        out.append(Violation("ip", _INVALID, "ip is not an IPv4 or IPv6 address"))

    if event.properties is not None:
        check_properties(event.properties, "properties", limits, out)

    if len(out) > limits.max_violations:
        del out[limits.max_violations :]
    return out


def validate_properties(
    value: Any, field: str = "properties", limits: Limits = DEFAULT_LIMITS
) -> list[Violation]:
    """Violations of a properties (or traits) object, with paths under `field`.

    - at most `max_properties` (256) top-level keys (TOO_MANY_PROPERTIES);
    - nesting: the object itself is level 1 and every object or list inside it one level
      deeper than its parent; a container at a level above `max_depth` (3) is
      NESTING_TOO_DEEP and is not looked into. So {"a": {"b": {"c": 1}}} is fine and
      {"a": {"b": {"c": {}}}} or {"a": {"b": [[1]]}} is not: a path from the object to any
      value has at most 3 steps (keys or list indexes);
    - string values at most `max_string_chars` (1,000) characters, keys at most
      `max_key_chars` (100) (STRING_TOO_LONG); the value under an over-long key is not
      looked into;
    - values are JSON values: str, finite float/int, bool, None, dict with str keys, list;
      NaN and infinities (jsonb cannot store them), NUL characters and other types are
      INVALID_VALUE.

    Paths: "properties.plan.tier", "properties.tags[2]", "properties[\"a.b\"]" for keys
    that are not plain [A-Za-z0-9_-]+.
    """
    out: list[Violation] = []
    check_properties(value, field, limits, out)
    if len(out) > limits.max_violations:
        del out[limits.max_violations :]
    return out


def validate_id(
    value: str, field: str, *, required: bool = True, max_chars: int = DEFAULT_LIMITS.max_id_chars
) -> list[Violation]:
    """Violations of one id (lead, anonymous, brand, session...): FIELD_REQUIRED when empty
    and required, ID_TOO_LONG over `max_chars`, INVALID_VALUE for control characters or
    leading/trailing whitespace."""
    out: list[Violation] = []
    check_id(value, field, max_chars, required, out)
    return out


def validate_subject(
    lead_id: str,
    anonymous_id: str,
    *,
    field: str = "subject",
    max_chars: int = DEFAULT_LIMITS.max_id_chars,
) -> list[Violation]:
    """Violations of a SubjectRef: at least one id (MISSING_SUBJECT), each a valid id."""
    if not lead_id and not anonymous_id:
        return [
            Violation(
                field, ViolationCode.MISSING_SUBJECT, "subject needs a lead_id or an anonymous_id"
            )
        ]
    out: list[Violation] = []
    check_id(lead_id, f"{field}.lead_id", max_chars, False, out)
    check_id(anonymous_id, f"{field}.anonymous_id", max_chars, False, out)
    return out


def property_path(parent: str, key: str) -> str:
    """The path of `key` inside the object at `parent`."""
    if _PLAIN_KEY.fullmatch(key):
        return f"{parent}.{key}"
    return f"{parent}[{json.dumps(key, ensure_ascii=False)}]"


# --- append-style checks (no list per call, for the hot path); also used by profile.py ---


def check_id(value: str, field: str, max_chars: int, required: bool, out: list[Violation]) -> None:
    if not value:
        if required:
            out.append(Violation(field, _REQUIRED, f"{field} is required"))
        return
    if len(value) > max_chars:
        out.append(
            Violation(
                field,
                _ID_TOO_LONG,
                f"{field} has {len(value)} characters, the limit is {max_chars}",
            )
        )
    if not value.isprintable() and _CONTROL.search(value):
        out.append(Violation(field, _INVALID, f"{field} contains control characters"))
    elif value[0].isspace() or value[-1].isspace():
        out.append(Violation(field, _INVALID, f"{field} starts or ends with whitespace"))


def check_text(value: str, field: str, max_chars: int, out: list[Violation]) -> None:
    if len(value) > max_chars:
        out.append(
            Violation(
                field,
                _TOO_LONG,
                f"{field} has {len(value)} characters, the limit is {max_chars}",
            )
        )
    if "\x00" in value:
        out.append(Violation(field, _INVALID, f"{field} contains a NUL character"))


def _check_time(value: datetime | None, field: str, out: list[Violation]) -> None:
    if value is not None and value.utcoffset() is None:
        out.append(Violation(field, _INVALID, f"{field} has no time zone"))


# scheme://host[/...] with an ordinary host name and no port or userinfo.
_PLAIN_HTTP_URL = re.compile(
    r"https?://[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?:[/?#][^\s]*)?",
    re.IGNORECASE,
)


def _check_url(value: str, field: str, max_chars: int, http: bool, out: list[Violation]) -> None:
    if len(value) > max_chars:
        out.append(
            Violation(
                field,
                _TOO_LONG,
                f"{field} has {len(value)} characters, the limit is {max_chars}",
            )
        )
        return
    if not value.isprintable():
        out.append(Violation(field, _INVALID, f"{field} contains control characters"))
        return
    if _PLAIN_HTTP_URL.fullmatch(value):
        return  # the usual shape; anything else (ports, userinfo, odd hosts) is parsed below
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        parts = None
    if parts is None or not parts.netloc or " " in parts.netloc:
        out.append(Violation(field, _INVALID, f"{field} is not an absolute URL"))
    elif http and (parts.scheme not in ("http", "https") or not parts.hostname):
        out.append(Violation(field, _INVALID, f"{field} is not an absolute http(s) URL"))


def check_properties(value: Any, field: str, limits: Limits, out: list[Violation]) -> None:
    if not isinstance(value, dict):
        out.append(Violation(field, _INVALID, f"{field} must be an object"))
        return
    if len(value) > limits.max_properties:
        out.append(
            Violation(
                field,
                ViolationCode.TOO_MANY_PROPERTIES,
                f"{len(value)} properties, the limit is {limits.max_properties}",
            )
        )
    # Nearly every object is clean: check it without building paths, and walk it again with
    # paths only to say what is wrong.
    if not _clean_object(value, 1, limits.max_depth, limits.max_string_chars, limits.max_key_chars):
        _walk_object(value, field, 1, limits, out)


def _clean_object(obj: dict[Any, Any], level: int, depth: int, chars: int, keys: int) -> bool:
    for key, item in obj.items():
        if type(key) is not str or len(key) > keys or "\x00" in key:
            return False
        kind = type(item)
        if kind is str:
            if len(item) > chars or "\x00" in item:
                return False
        elif kind is float:
            if not _isfinite(item):
                return False
        elif kind is dict:
            if level >= depth or not _clean_object(item, level + 1, depth, chars, keys):
                return False
        elif kind is list:
            if level >= depth or not _clean_list(item, level + 1, depth, chars, keys):
                return False
        elif item is not None and kind is not bool and kind is not int:
            return False
    return True


def _clean_list(items: list[Any], level: int, depth: int, chars: int, keys: int) -> bool:
    for item in items:
        kind = type(item)
        if kind is str:
            if len(item) > chars or "\x00" in item:
                return False
        elif kind is float:
            if not _isfinite(item):
                return False
        elif kind is dict:
            if level >= depth or not _clean_object(item, level + 1, depth, chars, keys):
                return False
        elif kind is list:
            if level >= depth or not _clean_list(item, level + 1, depth, chars, keys):
                return False
        elif item is not None and kind is not bool and kind is not int:
            return False
    return True


def _walk_object(
    obj: dict[Any, Any], path: str, level: int, limits: Limits, out: list[Violation]
) -> None:
    max_key = limits.max_key_chars
    for key, item in obj.items():
        if len(out) >= limits.max_violations:
            return
        if type(key) is not str:
            out.append(Violation(path, _INVALID, f"property key {key!r:.50} is not a string"))
            continue
        if len(key) > max_key:
            out.append(
                Violation(
                    path,
                    _TOO_LONG,
                    f"property key {key[:40]!r}... has {len(key)} characters, "
                    f"the limit is {max_key}",
                )
            )
            continue
        if "\x00" in key:
            out.append(Violation(path, _INVALID, "property key contains a NUL character"))
            continue
        kind = type(item)
        if kind is str:
            if len(item) > limits.max_string_chars or "\x00" in item:
                _bad_string(item, property_path(path, key), limits, out)
        elif kind is float:
            if not _isfinite(item):
                out.append(Violation(property_path(path, key), _INVALID, "number is not finite"))
        elif item is None or kind is bool or kind is int:
            pass
        elif isinstance(item, dict | list):
            _walk_child(item, property_path(path, key), level + 1, limits, out)
        else:
            out.append(
                Violation(property_path(path, key), _INVALID, f"unsupported {kind.__name__} value")
            )


def _walk_list(
    items: list[Any], path: str, level: int, limits: Limits, out: list[Violation]
) -> None:
    for index, item in enumerate(items):
        if len(out) >= limits.max_violations:
            return
        kind = type(item)
        if kind is str:
            if len(item) > limits.max_string_chars or "\x00" in item:
                _bad_string(item, f"{path}[{index}]", limits, out)
        elif kind is float:
            if not _isfinite(item):
                out.append(Violation(f"{path}[{index}]", _INVALID, "number is not finite"))
        elif item is None or kind is bool or kind is int:
            pass
        elif isinstance(item, dict | list):
            _walk_child(item, f"{path}[{index}]", level + 1, limits, out)
        else:
            out.append(
                Violation(f"{path}[{index}]", _INVALID, f"unsupported {kind.__name__} value")
            )


def _walk_child(item: Any, path: str, level: int, limits: Limits, out: list[Violation]) -> None:
    if level > limits.max_depth:
        out.append(
            Violation(path, _TOO_DEEP, f"nested at level {level}, the limit is {limits.max_depth}")
        )
    elif isinstance(item, dict):
        _walk_object(item, path, level, limits, out)
    else:
        _walk_list(item, path, level, limits, out)


def _bad_string(value: str, path: str, limits: Limits, out: list[Violation]) -> None:
    if len(value) > limits.max_string_chars:
        out.append(
            Violation(
                path,
                _TOO_LONG,
                f"string value has {len(value)} characters, the limit is {limits.max_string_chars}",
            )
        )
    if "\x00" in value:
        out.append(Violation(path, _INVALID, "string value contains a NUL character"))
