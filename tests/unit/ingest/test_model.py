"""The domain's vocabulary matches the wire contract it is mapped from and to."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from leadflow.common.v1 import event_type_pb2
from leadflow.ingest.v1 import event_pb2, ingest_service_pb2
from leadflow_ingest.domain.model import (
    EVENT_TYPES,
    Limits,
    MachineSignal,
    TenantPolicy,
    Violation,
    ViolationCode,
)


def _short_names(enum: Any, prefix: str) -> set[str]:
    names = enum.keys()
    return {name.removeprefix(prefix) for name in names if not name.endswith("_UNSPECIFIED")}


def test_event_types_are_the_proto_short_names() -> None:
    assert _short_names(event_type_pb2.EventType, "EVENT_TYPE_") == {
        name.upper() for name in EVENT_TYPES
    }
    assert len(EVENT_TYPES) == 24


def test_violation_codes_are_the_proto_names() -> None:
    assert _short_names(ingest_service_pb2.ViolationCode, "VIOLATION_CODE_") == {
        code.value for code in ViolationCode
    }
    # The mapping layer can look every code up by name.
    for code in ViolationCode:
        assert ingest_service_pb2.ViolationCode.Value("VIOLATION_CODE_" + code) > 0


def test_machine_signals_are_the_proto_names() -> None:
    assert _short_names(event_pb2.MachineSignal, "MACHINE_SIGNAL_") == {
        signal.value for signal in MachineSignal
    }


def test_limits_defaults_are_design_section_3() -> None:
    limits = Limits()
    assert limits.max_event_bytes == 32_768
    assert limits.max_properties == 256
    assert limits.max_depth == 3
    assert limits.max_string_chars == 1_000
    assert limits.max_key_chars == 100
    assert limits.max_id_chars == 100
    assert limits.max_batch_events == 1_000
    assert limits.max_batch_bytes == 1_048_576


def test_tenant_policy_defaults() -> None:
    policy = TenantPolicy()
    assert policy.retention_days == 365
    assert policy.require_consent is False
    assert policy.ip_mode == "truncate"
    assert policy.session_timeout == timedelta(minutes=30)
    assert policy.machine_click_window_seconds == 10.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"retention_days": 0},
        {"ip_mode": "hash"},
        {"ip_mode": "hash", "ip_hash_key": b""},
        {"ip_mode": "raw"},
        {"session_timeout": timedelta(0)},
        {"machine_click_window_seconds": -1.0},
    ],
)
def test_tenant_policy_refuses_inconsistent_settings(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        TenantPolicy(**kwargs)


def test_tenant_policy_hash_mode_with_key() -> None:
    assert TenantPolicy(ip_mode="hash", ip_hash_key=b"k").ip_hash_key == b"k"


def test_violation_under_prefixes_the_path() -> None:
    inner = Violation("value.currency_code", ViolationCode.INVALID_CURRENCY, "bad")
    whole = Violation("", ViolationCode.EVENT_TOO_LARGE, "big")
    assert inner.under("events[3]").field == "events[3].value.currency_code"
    assert whole.under("events[0]").field == "events[0]"
    assert inner.under("").field == "value.currency_code"
    assert inner.under("event").code == "INVALID_CURRENCY"
