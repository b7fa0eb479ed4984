"""Plain data of ingest: an event as a client sent it, violations, limits and tenant policy.

The api/mapping layer builds these from protobuf messages: Struct values become plain
dict/list/str/float/bool/None, Timestamps aware UTC datetimes, enum values short lower-case
names ("page_view"), and an unspecified or unknown enum value the empty string.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

# Short names of leadflow.common.v1.EventType (the enum name without EVENT_TYPE_, lower case).
EVENT_TYPES: frozenset[str] = frozenset(
    {
        "page_view", "click", "scroll", "search", "form_submitted",
        "email_sent", "email_opened", "email_clicked", "email_replied", "email_bounced",
        "sms_sent", "sms_replied", "call_made", "meeting_scheduled", "content_downloaded",
        "social_interaction", "ad_clicked", "purchase", "signup", "tool_usage", "export",
        "performance_sample", "heatmap_click", "custom",
    }
)  # fmt: skip

CUSTOM = "custom"
PAGE_VIEW = "page_view"


class ViolationCode(enum.StrEnum):
    """leadflow.ingest.v1.ViolationCode without its prefix; the value is the name."""

    FIELD_REQUIRED = "FIELD_REQUIRED"
    MISSING_SUBJECT = "MISSING_SUBJECT"
    INVALID_VALUE = "INVALID_VALUE"
    ID_TOO_LONG = "ID_TOO_LONG"
    EVENT_TOO_LARGE = "EVENT_TOO_LARGE"
    TOO_MANY_PROPERTIES = "TOO_MANY_PROPERTIES"
    NESTING_TOO_DEEP = "NESTING_TOO_DEEP"
    STRING_TOO_LONG = "STRING_TOO_LONG"
    INVALID_CURRENCY = "INVALID_CURRENCY"
    INVALID_AMOUNT = "INVALID_AMOUNT"
    OUTSIDE_RETENTION = "OUTSIDE_RETENTION"
    CONSENT_WITHDRAWN = "CONSENT_WITHDRAWN"
    SUBJECT_ERASED = "SUBJECT_ERASED"


class MachineSignal(enum.StrEnum):
    """leadflow.ingest.v1.MachineSignal without its prefix; the value is the name."""

    IMAGE_PROXY_PREFETCH = "IMAGE_PROXY_PREFETCH"
    LINK_SCANNER = "LINK_SCANNER"
    BOT_USER_AGENT = "BOT_USER_AGENT"


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule. `field` is a path relative to the validated object ("" = all of it)."""

    field: str
    code: ViolationCode
    reason: str

    def under(self, prefix: str) -> Violation:
        """The same violation with its path placed under `prefix`, e.g. "events[3]"."""
        if not prefix:
            return self
        if not self.field:
            return Violation(prefix, self.code, self.reason)
        joiner = "" if self.field.startswith("[") else "."
        return Violation(f"{prefix}{joiner}{self.field}", self.code, self.reason)


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount: units + nanos / 10^9 in `currency_code` (as google.type.Money)."""

    units: int = 0
    nanos: int = 0
    currency_code: str = ""

    @property
    def is_zero(self) -> bool:
        return self.units == 0 and self.nanos == 0


@dataclass(frozen=True, slots=True)
class Marketing:
    """Marketing context of a touchpoint (leadflow.common.v1.MarketingContext)."""

    channel: str = ""
    source: str = ""
    medium: str = ""
    campaign: str = ""
    content: str = ""
    term: str = ""

    @property
    def is_empty(self) -> bool:
        return not (
            self.channel or self.source or self.medium or self.campaign or self.content or self.term
        )


@dataclass(frozen=True, slots=True)
class IncomingEvent:
    """One TrackEvent as the client sent it, plus its position and serialized size."""

    index: int = 0
    event_id: str = ""
    brand_id: str = ""
    type: str = ""
    custom_name: str = ""
    lead_id: str = ""
    anonymous_id: str = ""
    session_id: str = ""
    occurred_at: datetime | None = None
    sent_at: datetime | None = None
    marketing: Marketing | None = None
    value: Money | None = None
    page_url: str = ""
    referrer: str = ""
    user_agent: str = ""
    ip: str = ""
    properties: dict[str, Any] | None = None
    size_bytes: int = 0


@dataclass(frozen=True, slots=True)
class Limits:
    """DESIGN.md section 3 "Ingest" limits (the defaults), configurable per tenant."""

    max_event_bytes: int = 32 * 1024
    max_properties: int = 256
    # The properties object itself is level 1; see validation.py for the exact rule.
    max_depth: int = 3
    max_string_chars: int = 1000
    max_key_chars: int = 100
    max_id_chars: int = 100
    max_batch_events: int = 1000
    max_batch_bytes: int = 1024 * 1024
    # At most this many violations are reported per event (a hostile event could otherwise
    # produce thousands); the event is rejected either way.
    max_violations: int = 100


DEFAULT_LIMITS = Limits()

IpMode = Literal["truncate", "hash"]


@dataclass(frozen=True, slots=True)
class TenantPolicy:
    """Per-tenant settings the ingest rules depend on."""

    retention_days: int = 365
    require_consent: bool = False
    ip_mode: IpMode = "truncate"
    # HMAC key for ip_mode "hash"; required then, ignored otherwise.
    ip_hash_key: bytes | None = None
    session_timeout: timedelta = timedelta(minutes=30)
    # An email open or click within this many seconds of delivery is a machine's.
    machine_click_window_seconds: float = 10.0
    limits: Limits = DEFAULT_LIMITS

    def __post_init__(self) -> None:
        if self.retention_days <= 0:
            raise ValueError("retention_days must be positive")
        if self.ip_mode not in ("truncate", "hash"):
            raise ValueError(f"ip_mode must be 'truncate' or 'hash', not {self.ip_mode!r}")
        if self.ip_mode == "hash" and not self.ip_hash_key:
            raise ValueError("ip_mode 'hash' needs a non-empty ip_hash_key")
        if self.session_timeout <= timedelta(0):
            raise ValueError("session_timeout must be positive")
        if self.machine_click_window_seconds < 0:
            raise ValueError("machine_click_window_seconds must not be negative")
