"""Checks a routing configuration (PutRoutingConfig, `leadflow routing apply`).

Every problem is reported, each naming its item: rules and sequences by index and id
(`rules[3] (id "hot-enterprise").condition: undeclared reference to 'lead.scor'`), so one
round trip fixes them all. Warnings are remarks that do not make the configuration invalid.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from leadflow_routing.domain.conditions import ConditionError, compile_condition
from leadflow_routing.domain.config import (
    MAX_SINK_TIMEOUT,
    Brand,
    BreachAction,
    Continuation,
    NurtureSequence,
    RetryPolicy,
    RoutingConfig,
    Rule,
    Sink,
    Strategy,
    with_defaults,
)
from leadflow_routing.domain.snapshot import Segment
from leadflow_routing.domain.violations import Violation

MAX_RULES = 1000
MAX_ID = 100
MAX_DESCRIPTION = 1000
MAX_WEIGHT = 1000
MAX_DAY_OFFSET = 365
MAX_ATTEMPTS = 100
BRAND_ID = re.compile(r"[a-z0-9-]{1,64}")
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})

_Bad = Callable[[str, str, str], None]
"""Reports one violation: bad(path, code, reason)."""


@dataclass(frozen=True, slots=True)
class ConfigWarning:
    field: str
    message: str


def _join(prefix: str, path: str) -> str:
    return f"{prefix}.{path}" if prefix else path


def _label(kind: str, index: int, item_id: str) -> str:
    return f'{kind}[{index}] (id "{item_id}")' if item_id else f"{kind}[{index}]"


def validate_config(
    config: RoutingConfig, prefix: str = "config"
) -> tuple[list[Violation], list[ConfigWarning]]:
    """(violations, warnings); valid when there are no violations."""
    out: list[Violation] = []
    warnings: list[ConfigWarning] = []

    def bad(path: str, code: str, reason: str) -> None:
        out.append(Violation(_join(prefix, path), code, reason))

    if len(config.description) > MAX_DESCRIPTION:
        bad("description", "TOO_LONG", f"must be at most {MAX_DESCRIPTION} characters")
    if config.time_zone:
        try:
            ZoneInfo(config.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            bad("time_zone", "UNKNOWN_TIME_ZONE", f"unknown IANA time zone {config.time_zone!r}")

    if not config.brands:
        bad("brands", "REQUIRED", "at least one brand is required")
    brand_ids: set[str] = set()
    for i, brand in enumerate(config.brands):
        label = _label("brands", i, brand.id)
        if not brand.id:
            bad(f"{label}.id", "REQUIRED", "must not be empty")
        elif not BRAND_ID.fullmatch(brand.id):
            bad(f"{label}.id", "INVALID", "lower case letters, digits and '-', at most 64")
        elif brand.id in brand_ids:
            bad(f"{label}.id", "DUPLICATE", f"brand id {brand.id!r} is used twice")
        brand_ids.add(brand.id)
        _check_brand(brand, label, bad)
        if not brand.owners and not brand.fallback_owner_id:
            warnings.append(
                ConfigWarning(
                    _join(prefix, label), "brand has no owner: leads go to its sink unowned"
                )
            )

    if len(config.rules) > MAX_RULES:
        bad("rules", "TOO_MANY", f"at most {MAX_RULES} rules (got {len(config.rules)})")
    sequence_ids = {s.id for s in with_defaults(config).nurture_sequences}
    rule_ids: set[str] = set()
    catch_all: str | None = None
    for i, rule in enumerate(config.rules):
        label = _label("rules", i, rule.id)
        _check_id(rule.id, "rule", label, rule_ids, bad)
        _check_rule(config, rule, label, sequence_ids, bad)
        if catch_all is not None and not rule.disabled:
            warnings.append(ConfigWarning(_join(prefix, label), f"unreachable: {catch_all}"))
        elif (
            catch_all is None
            and not rule.disabled
            and not rule.condition.strip()
            and rule.continuation is not Continuation.ALSO_ROUTE
        ):
            catch_all = f"rule {rule.id} ({label.split(' ')[0]}) matches every lead and stops"

    used = {r.nurture_sequence_id for r in config.rules if r.nurture_sequence_id}
    by_segment = any(r.nurture_by_segment for r in config.rules)
    seen_ids: set[str] = set()
    segments: dict[Segment, str] = {}
    for i, sequence in enumerate(config.nurture_sequences):
        label = _label("nurture_sequences", i, sequence.id)
        _check_id(sequence.id, "sequence", label, seen_ids, bad)
        if sequence.segment is not Segment.UNSPECIFIED:
            if sequence.segment in segments:
                bad(
                    f"{label}.segment",
                    "DUPLICATE",
                    f"segment {sequence.segment.short_name} already has sequence "
                    f"{segments[sequence.segment]!r}",
                )
            segments[sequence.segment] = sequence.id
        _check_sequence(sequence, label, bad)
        if sequence.id not in used and not (
            by_segment and sequence.segment is not Segment.UNSPECIFIED
        ):
            warnings.append(ConfigWarning(_join(prefix, label), "sequence not used by any rule"))

    sla = config.sla
    if sla.acknowledge_within < timedelta(0):
        bad("sla.acknowledge_within", "NEGATIVE", "must not be negative")
    elif sla.enabled:
        if sla.breach_action is BreachAction.UNSPECIFIED:
            bad("sla.breach_action", "REQUIRED", "required when acknowledge_within is set")
        if sla.escalation_owner_id and len(sla.escalation_owner_id) > MAX_ID:
            bad("sla.escalation_owner_id", "TOO_LONG", f"must be at most {MAX_ID} characters")
        if sla.breach_action is BreachAction.ESCALATE and sla.escalation_owner_id:
            missing = [
                b.id
                for b in config.brands
                if b.owner(sla.escalation_owner_id) is None and not b.fallback_owner_id
            ]
            if missing:
                warnings.append(
                    ConfigWarning(
                        _join(prefix, "sla.escalation_owner_id"),
                        "no such owner and no fallback in brands " + ", ".join(missing),
                    )
                )
    return out, warnings


def _check_id(item_id: str, kind: str, label: str, seen: set[str], bad: _Bad) -> None:
    if not item_id:
        bad(f"{label}.id", "REQUIRED", "must not be empty")
    elif len(item_id) > MAX_ID:
        bad(f"{label}.id", "TOO_LONG", f"must be at most {MAX_ID} characters")
    elif item_id in seen:
        bad(f"{label}.id", "DUPLICATE", f"{kind} id {item_id!r} is used twice")
    seen.add(item_id)


def _check_brand(brand: Brand, label: str, bad: _Bad) -> None:
    owner_ids: set[str] = set()
    for j, owner in enumerate(brand.owners):
        olabel = f"{label}.owners[{j}]"
        if not owner.id:
            bad(f"{olabel}.id", "REQUIRED", "must not be empty")
        elif len(owner.id) > MAX_ID:
            bad(f"{olabel}.id", "TOO_LONG", f"must be at most {MAX_ID} characters")
        elif owner.id in owner_ids:
            bad(f"{olabel}.id", "DUPLICATE", f"owner id {owner.id!r} is used twice in the brand")
        owner_ids.add(owner.id)
        if not 0 <= owner.weight <= MAX_WEIGHT:
            bad(f"{olabel}.weight", "OUT_OF_RANGE", f"must be in 1..{MAX_WEIGHT} (0 means 1)")
        if owner.daily_capacity < 0:
            bad(f"{olabel}.daily_capacity", "NEGATIVE", "must not be negative (0: no limit)")
        for k, period in enumerate(owner.out_of_office_periods):
            if period.start and period.end and period.end <= period.start:
                bad(
                    f"{olabel}.out_of_office_periods[{k}]",
                    "EMPTY_RANGE",
                    "end must be after start",
                )
    if brand.fallback_owner_id and brand.fallback_owner_id not in owner_ids:
        bad(
            f"{label}.fallback_owner_id",
            "UNKNOWN_OWNER",
            f"unknown owner {brand.fallback_owner_id!r} (not one of the brand's owners)",
        )
    _check_sink(brand.sink, f"{label}.sink", bad)


def _check_sink(sink: Sink, label: str, bad: _Bad) -> None:
    if sink.webhook is not None and sink.mautic is not None:
        bad(label, "AMBIGUOUS", "set one of webhook, mautic, log")
    if sink.webhook is not None:
        hook = sink.webhook
        _check_url(hook.url, f"{label}.webhook.url", bad)
        if not hook.secret_ref:
            bad(f"{label}.webhook.secret_ref", "REQUIRED", "must name the signing secret")
        _check_timeout(hook.timeout, f"{label}.webhook.timeout", bad)
        for name in hook.headers:
            if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", name):
                bad(f"{label}.webhook.headers", "INVALID", f"not a header name: {name!r}")
    if sink.mautic is not None:
        mautic = sink.mautic
        _check_url(mautic.base_url, f"{label}.mautic.base_url", bad)
        if not mautic.credentials_ref:
            bad(f"{label}.mautic.credentials_ref", "REQUIRED", "must name the API credentials")
        _check_timeout(mautic.timeout, f"{label}.mautic.timeout", bad)
        for name in ("segment_id", "campaign_id"):
            value = getattr(mautic, name)
            if value and not value.isdigit():
                bad(f"{label}.mautic.{name}", "INVALID", "must be a Mautic numeric id")
    _check_retry(sink.retry, f"{label}.retry", bad)


def _check_url(url: str, path: str, bad: _Bad) -> None:
    if not url:
        bad(path, "REQUIRED", "must not be empty")
        return
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname in _LOCAL_HOSTS:
        return
    bad(path, "INVALID_URL", "must be an https URL (http only for localhost)")


def _check_timeout(timeout: timedelta, path: str, bad: _Bad) -> None:
    if timeout < timedelta(0) or timeout > MAX_SINK_TIMEOUT:
        bad(path, "OUT_OF_RANGE", "must be at most 60 s (unset: 10 s)")


def _check_retry(retry: RetryPolicy, path: str, bad: _Bad) -> None:
    if not 0 <= retry.max_attempts <= MAX_ATTEMPTS:
        bad(f"{path}.max_attempts", "OUT_OF_RANGE", f"must be in 1..{MAX_ATTEMPTS} (0: 20)")
    if retry.initial_backoff < timedelta(0):
        bad(f"{path}.initial_backoff", "NEGATIVE", "must not be negative")
    if retry.max_backoff < timedelta(0):
        bad(f"{path}.max_backoff", "NEGATIVE", "must not be negative")
    filled = retry.filled()
    if filled.max_backoff < filled.initial_backoff:
        bad(f"{path}.max_backoff", "OUT_OF_RANGE", "must not be shorter than initial_backoff")


def _check_rule(
    config: RoutingConfig, rule: Rule, label: str, sequence_ids: set[str], bad: _Bad
) -> None:
    if len(rule.description) > MAX_DESCRIPTION:
        bad(f"{label}.description", "TOO_LONG", f"must be at most {MAX_DESCRIPTION} characters")
    try:
        compile_condition(rule.condition)
    except ConditionError as exc:
        bad(f"{label}.condition", "INVALID_CONDITION", str(exc))
    brand = config.brand(rule.target_brand_id)
    if not rule.target_brand_id:
        bad(f"{label}.target_brand_id", "REQUIRED", "must name a brand")
    elif brand is None:
        bad(f"{label}.target_brand_id", "UNKNOWN_BRAND", f"unknown brand {rule.target_brand_id!r}")
    if rule.strategy is Strategy.UNSPECIFIED:
        bad(
            f"{label}.strategy",
            "REQUIRED",
            "one of fixed_owner, round_robin, weighted, least_loaded",
        )
    elif rule.strategy is Strategy.FIXED_OWNER:
        if not rule.fixed_owner_id:
            bad(f"{label}.fixed_owner_id", "REQUIRED", "required for the fixed_owner strategy")
        elif brand is not None and brand.owner(rule.fixed_owner_id) is None:
            bad(
                f"{label}.fixed_owner_id",
                "UNKNOWN_OWNER",
                f"unknown owner {rule.fixed_owner_id!r} in brand {brand.id!r}",
            )
    elif rule.fixed_owner_id:
        bad(
            f"{label}.fixed_owner_id",
            "NOT_ALLOWED",
            f"only for the fixed_owner strategy (strategy is {rule.strategy.short_name})",
        )
    if rule.nurture_sequence_id and rule.nurture_by_segment:
        bad(f"{label}.nurture", "AMBIGUOUS", "set nurture_sequence_id or nurture_by_segment")
    elif rule.nurture_sequence_id and rule.nurture_sequence_id not in sequence_ids:
        bad(
            f"{label}.nurture_sequence_id",
            "UNKNOWN_SEQUENCE",
            f"unknown nurture sequence {rule.nurture_sequence_id!r}",
        )


def _check_sequence(sequence: NurtureSequence, label: str, bad: _Bad) -> None:
    if not sequence.steps:
        bad(f"{label}.steps", "REQUIRED", "at least one step is required")
    previous = -1
    for k, step in enumerate(sequence.steps):
        slabel = f"{label}.steps[{k}]"
        if not 0 <= step.day_offset <= MAX_DAY_OFFSET:
            bad(f"{slabel}.day_offset", "OUT_OF_RANGE", f"must be in 0..{MAX_DAY_OFFSET}")
        elif step.day_offset <= previous:
            bad(
                f"{slabel}.day_offset",
                "NOT_INCREASING",
                f"must be greater than the previous step's ({previous})",
            )
        previous = max(previous, step.day_offset)
        if not step.template:
            bad(f"{slabel}.template", "REQUIRED", "must name a template")
