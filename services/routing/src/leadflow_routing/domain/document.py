"""The routing configuration as a YAML document (`leadflow routing apply -f` / `show`).

Keys are the proto field names; enums are their short lower-case names ("round_robin",
"also_route", "enterprise", "email"); durations are "90s", "10m", "4h", "1d" (or a number of
seconds); times ISO 8601 with a zone. Unknown keys are refused, so a typo never silently
drops a setting. Errors name the YAML path ("rules[3].strategy").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar

import yaml

from leadflow_routing.domain.config import (
    Brand,
    BreachAction,
    Continuation,
    MauticSink,
    NurtureChannel,
    NurtureSequence,
    NurtureStep,
    Owner,
    RetryPolicy,
    RoutingConfig,
    Rule,
    Sink,
    Sla,
    Strategy,
    TimeRange,
    WebhookSink,
)
from leadflow_routing.domain.snapshot import Segment, ShortNamedEnum
from leadflow_routing.domain.violations import Violation

E = TypeVar("E", bound=ShortNamedEnum)
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?")


_OWNER_KEYS = {
    "id",
    "name",
    "email",
    "weight",
    "daily_capacity",
    "out_of_office",
    "out_of_office_periods",
}
_WEBHOOK_KEYS = {"url", "secret_ref", "headers", "timeout"}
_RETRY_KEYS = {"max_attempts", "initial_backoff", "max_backoff"}
_SLA_KEYS = {"acknowledge_within", "breach_action", "escalation_owner_id"}


class DocumentError(ValueError):
    def __init__(self, violations: list[Violation]) -> None:
        super().__init__("; ".join(str(v) for v in violations))
        self.violations = violations


class _Reader:
    """Reads one mapping, collecting violations instead of stopping at the first."""

    def __init__(self, data: Any, path: str, out: list[Violation], allowed: set[str]) -> None:
        self.path = path
        self.out = out
        if not isinstance(data, Mapping):
            self.bad("", "must be a mapping")
            data = {}
        self.data: Mapping[str, Any] = data
        for key in data:
            if key not in allowed:
                self.bad(str(key), "unknown key (allowed: " + ", ".join(sorted(allowed)) + ")")

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path and key else (self.path or key or "document")

    def bad(self, key: str, reason: str) -> None:
        self.out.append(Violation(self.at(key), "INVALID", reason))

    def text(self, key: str) -> str:
        value = self.data.get(key, "")
        if value is None:
            return ""
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.bad(key, "must be a string")
            return ""
        return str(value)

    def integer(self, key: str) -> int:
        value = self.data.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int):
            self.bad(key, "must be an integer")
            return 0
        return value

    def flag(self, key: str) -> bool:
        value = self.data.get(key, False)
        if not isinstance(value, bool):
            self.bad(key, "must be true or false")
            return False
        return value

    def enum(self, key: str, kind: type[E], default: E) -> E:
        value = self.data.get(key)
        if value is None or value == "":
            return default
        member = kind.from_short_name(str(value)) if isinstance(value, str) else None
        if member is None or member.value == 0:
            names = ", ".join(m.short_name for m in kind if m.value != 0)
            self.bad(key, f"unknown value {value!r} (one of {names})")
            return default
        return member

    def duration(self, key: str) -> timedelta:
        value = self.data.get(key)
        if value is None or value == "":
            return timedelta(0)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return timedelta(seconds=value)
        m = _DURATION.fullmatch(str(value).strip())
        if m is None or not any(m.groups()):
            self.bad(key, f"not a duration {value!r} (e.g. 90s, 10m, 4h, 1d)")
            return timedelta(0)
        d, h, mins, s = m.groups()
        return timedelta(
            days=int(d or 0), hours=int(h or 0), minutes=int(mins or 0), seconds=float(s or 0)
        )

    def time(self, key: str) -> datetime | None:
        value = self.data.get(key)
        if value is None or value == "":
            return None
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                self.bad(key, f"not an ISO 8601 time: {value!r}")
                return None
        if not isinstance(value, datetime) or value.tzinfo is None:
            self.bad(key, "must be an ISO 8601 time with a zone")
            return None
        return value

    def items(self, key: str) -> list[tuple[str, Any]]:
        value = self.data.get(key) or []
        if not isinstance(value, list):
            self.bad(key, "must be a list")
            return []
        return [(f"{self.at(key)}[{i}]", item) for i, item in enumerate(value)]

    def mapping(self, key: str) -> Any:
        return self.data.get(key)


def _owner(data: Any, path: str, out: list[Violation]) -> Owner:
    r = _Reader(
        data,
        path,
        out,
        {
            "id",
            "name",
            "email",
            "weight",
            "daily_capacity",
            "out_of_office",
            "out_of_office_periods",
        },
    )
    periods = []
    for ppath, item in r.items("out_of_office_periods"):
        p = _Reader(item, ppath, out, {"start", "end"})
        periods.append(TimeRange(start=p.time("start"), end=p.time("end")))
    return Owner(
        id=r.text("id"),
        name=r.text("name"),
        email=r.text("email"),
        weight=r.integer("weight"),
        daily_capacity=r.integer("daily_capacity"),
        out_of_office=r.flag("out_of_office"),
        out_of_office_periods=tuple(periods),
    )


def _sink(data: Any, path: str, out: list[Violation]) -> Sink:
    if data is None:
        return Sink()
    r = _Reader(data, path, out, {"webhook", "mautic", "log", "retry"})
    webhook = mautic = None
    if r.mapping("webhook") is not None:
        w = _Reader(r.mapping("webhook"), r.at("webhook"), out, _WEBHOOK_KEYS)
        headers = w.mapping("headers") or {}
        if not isinstance(headers, Mapping):
            w.bad("headers", "must be a mapping")
            headers = {}
        webhook = WebhookSink(
            url=w.text("url"),
            secret_ref=w.text("secret_ref"),
            headers={str(k): str(v) for k, v in headers.items()},
            timeout=w.duration("timeout"),
        )
    if r.mapping("mautic") is not None:
        m = _Reader(
            r.mapping("mautic"),
            r.at("mautic"),
            out,
            {"base_url", "credentials_ref", "segment_id", "campaign_id", "timeout"},
        )
        mautic = MauticSink(
            base_url=m.text("base_url"),
            credentials_ref=m.text("credentials_ref"),
            segment_id=m.text("segment_id"),
            campaign_id=m.text("campaign_id"),
            timeout=m.duration("timeout"),
        )
    retry = RetryPolicy()
    if r.mapping("retry") is not None:
        t = _Reader(
            r.mapping("retry"),
            r.at("retry"),
            out,
            _RETRY_KEYS,
        )
        retry = RetryPolicy(
            max_attempts=t.integer("max_attempts"),
            initial_backoff=t.duration("initial_backoff"),
            max_backoff=t.duration("max_backoff"),
        )
    return Sink(webhook=webhook, mautic=mautic, retry=retry)


def config_from_document(data: Any) -> RoutingConfig:
    """The configuration a YAML document describes; raises DocumentError listing every
    problem of form (what the configuration means is checked by validate_config)."""
    out: list[Violation] = []
    top = {
        "description",
        "time_zone",
        "require_tracking_consent",
        "brands",
        "rules",
        "nurture_sequences",
        "sla",
        "version",
        "created_at",
        "created_by",
    }
    r = _Reader(data, "", out, top)
    brands = []
    for path, item in r.items("brands"):
        b = _Reader(item, path, out, {"id", "name", "owners", "fallback_owner_id", "sink"})
        brands.append(
            Brand(
                id=b.text("id"),
                name=b.text("name"),
                owners=tuple(_owner(o, opath, out) for opath, o in b.items("owners")),
                fallback_owner_id=b.text("fallback_owner_id"),
                sink=_sink(b.mapping("sink"), b.at("sink"), out),
            )
        )
    rules = []
    for path, item in r.items("rules"):
        u = _Reader(
            item,
            path,
            out,
            {
                "id",
                "description",
                "condition",
                "target_brand_id",
                "strategy",
                "fixed_owner_id",
                "nurture_sequence_id",
                "nurture_by_segment",
                "continuation",
                "disabled",
            },
        )
        rules.append(
            Rule(
                id=u.text("id"),
                description=u.text("description"),
                condition=u.text("condition"),
                target_brand_id=u.text("target_brand_id"),
                strategy=u.enum("strategy", Strategy, Strategy.UNSPECIFIED),
                fixed_owner_id=u.text("fixed_owner_id"),
                nurture_sequence_id=u.text("nurture_sequence_id"),
                nurture_by_segment=u.flag("nurture_by_segment"),
                continuation=u.enum("continuation", Continuation, Continuation.STOP),
                disabled=u.flag("disabled"),
            )
        )
    sequences = []
    for path, item in r.items("nurture_sequences"):
        q = _Reader(item, path, out, {"id", "name", "segment", "steps"})
        steps = []
        for spath, step in q.items("steps"):
            s = _Reader(step, spath, out, {"day_offset", "template", "channel"})
            steps.append(
                NurtureStep(
                    day_offset=s.integer("day_offset"),
                    template=s.text("template"),
                    channel=s.enum("channel", NurtureChannel, NurtureChannel.EMAIL),
                )
            )
        sequences.append(
            NurtureSequence(
                id=q.text("id"),
                name=q.text("name"),
                segment=q.enum("segment", Segment, Segment.UNSPECIFIED),
                steps=tuple(steps),
            )
        )
    sla = Sla()
    if r.mapping("sla") is not None:
        s = _Reader(
            r.mapping("sla"),
            "sla",
            out,
            _SLA_KEYS,
        )
        sla = Sla(
            acknowledge_within=s.duration("acknowledge_within"),
            breach_action=s.enum("breach_action", BreachAction, BreachAction.UNSPECIFIED),
            escalation_owner_id=s.text("escalation_owner_id"),
        )
    config = RoutingConfig(
        description=r.text("description"),
        time_zone=r.text("time_zone"),
        require_tracking_consent=r.flag("require_tracking_consent"),
        brands=tuple(brands),
        rules=tuple(rules),
        nurture_sequences=tuple(sequences),
        sla=sla,
    )
    if out:
        raise DocumentError(out)
    return config


def format_duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    if seconds == int(seconds):
        whole = int(seconds)
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if whole and whole % size == 0:
                return f"{whole // size}{unit}"
        return f"{whole}s"
    return f"{seconds:g}s"


def _time(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def _compact(data: dict[str, Any]) -> dict[str, Any]:
    """Leaves out unset values (empty, zero, false), keeping the document short."""
    return {k: v for k, v in data.items() if v not in ("", 0, False, None, [], {})}


def config_to_document(config: RoutingConfig) -> dict[str, Any]:
    def sink(s: Sink) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        if s.webhook is not None:
            doc["webhook"] = _compact(
                {
                    "url": s.webhook.url,
                    "secret_ref": s.webhook.secret_ref,
                    "headers": dict(s.webhook.headers),
                    "timeout": format_duration(s.webhook.timeout) if s.webhook.timeout else "",
                }
            )
        elif s.mautic is not None:
            doc["mautic"] = _compact(
                {
                    "base_url": s.mautic.base_url,
                    "credentials_ref": s.mautic.credentials_ref,
                    "segment_id": s.mautic.segment_id,
                    "campaign_id": s.mautic.campaign_id,
                    "timeout": format_duration(s.mautic.timeout) if s.mautic.timeout else "",
                }
            )
        else:
            doc["log"] = {}
        retry = _compact(
            {
                "max_attempts": s.retry.max_attempts,
                "initial_backoff": format_duration(s.retry.initial_backoff)
                if s.retry.initial_backoff
                else "",
                "max_backoff": format_duration(s.retry.max_backoff) if s.retry.max_backoff else "",
            }
        )
        if retry:
            doc["retry"] = retry
        return doc

    brands = [
        _compact(
            {
                "id": b.id,
                "name": b.name,
                "fallback_owner_id": b.fallback_owner_id,
                "owners": [
                    _compact(
                        {
                            "id": o.id,
                            "name": o.name,
                            "email": o.email,
                            "weight": o.weight,
                            "daily_capacity": o.daily_capacity,
                            "out_of_office": o.out_of_office,
                            "out_of_office_periods": [
                                _compact({"start": _time(p.start), "end": _time(p.end)})
                                for p in o.out_of_office_periods
                            ],
                        }
                    )
                    for o in b.owners
                ],
                "sink": sink(b.sink),
            }
        )
        for b in config.brands
    ]
    rules = [
        _compact(
            {
                "id": r.id,
                "description": r.description,
                "condition": r.condition,
                "target_brand_id": r.target_brand_id,
                "strategy": r.strategy.short_name if r.strategy.value else "",
                "fixed_owner_id": r.fixed_owner_id,
                "nurture_sequence_id": r.nurture_sequence_id,
                "nurture_by_segment": r.nurture_by_segment,
                "continuation": "also_route" if r.continuation is Continuation.ALSO_ROUTE else "",
                "disabled": r.disabled,
            }
        )
        for r in config.rules
    ]
    sequences = [
        _compact(
            {
                "id": s.id,
                "name": s.name,
                "segment": s.segment.short_name if s.segment.value else "",
                "steps": [
                    _compact(
                        {
                            "day_offset": st.day_offset,
                            "template": st.template,
                            "channel": st.channel.short_name
                            if st.channel not in (NurtureChannel.UNSPECIFIED, NurtureChannel.EMAIL)
                            else "",
                        }
                    )
                    | {"day_offset": st.day_offset}
                    for st in s.steps
                ],
            }
        )
        for s in config.nurture_sequences
    ]
    sla = _compact(
        {
            "acknowledge_within": format_duration(config.sla.acknowledge_within)
            if config.sla.enabled
            else "",
            "breach_action": config.sla.breach_action.short_name
            if config.sla.breach_action.value
            else "",
            "escalation_owner_id": config.sla.escalation_owner_id,
        }
    )
    return _compact(
        {
            "version": config.version,
            "created_at": _time(config.created_at),
            "created_by": config.created_by,
            "description": config.description,
            "time_zone": config.time_zone,
            "require_tracking_consent": config.require_tracking_consent,
            "brands": brands,
            "rules": rules,
            "nurture_sequences": sequences,
            "sla": sla,
        }
    )


def load_yaml(text: str) -> RoutingConfig:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        reason = "not valid YAML: " + " ".join(str(exc).split())
        raise DocumentError([Violation("document", "INVALID_YAML", reason)]) from None
    return config_from_document(data)


def dump_yaml(config: RoutingConfig) -> str:
    return yaml.safe_dump(
        config_to_document(config), sort_keys=False, allow_unicode=True, width=100
    )
