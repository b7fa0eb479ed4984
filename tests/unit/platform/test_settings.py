from __future__ import annotations

import re
from pathlib import Path

import pytest

from leadflow_platform.settings import SETTINGS, Settings, SettingsError

README = Path(__file__).resolve().parents[3] / "README.md"


def test_defaults_without_environment():
    s = Settings.from_env({})
    assert s.database_url == ""
    assert s.grpc_port is None
    assert s.consumer_max_deliver == 5
    assert s.consumer_backoff_seconds == (1.0, 5.0, 30.0, 120.0)
    assert s.log_format == "auto"


def test_values_are_parsed_by_type():
    s = Settings.from_env(
        {
            "LEADFLOW_GRPC_PORT": "0",
            "LEADFLOW_CONSUMER_BACKOFF_SECONDS": "0.5, 2,10",
            "LEADFLOW_TRACING": "off",
            "LEADFLOW_LOG_FORMAT": "JSON",
        }
    )
    assert s.grpc_port == 0
    assert s.consumer_backoff_seconds == (0.5, 2.0, 10.0)
    assert s.tracing is False
    assert s.log_format == "json"


@pytest.mark.parametrize(
    ("env", "value", "message"),
    [
        ("LEADFLOW_GRPC_PORT", "70000", "port number"),
        ("LEADFLOW_CONSUMER_MAX_DELIVER", "0", "positive integer"),
        ("LEADFLOW_CONSUMER_BACKOFF_SECONDS", "1,-2", "positive seconds"),
        ("LEADFLOW_LOG_FORMAT", "xml", "one of auto, json, console"),
        ("LEADFLOW_TRACING", "maybe", "true or false"),
        ("LEADFLOW_BUS_NAMESPACE", "a.b", "letters, digits"),
        ("LEADFLOW_STREAM_REPLICAS", "6", "1 to 5"),
        ("LEADFLOW_METRICS_PORT", "-1", "port number"),
    ],
)
def test_a_bad_value_names_its_variable(env, value, message):
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({env: value})
    assert str(caught.value).startswith(f"{env}={value!r}")
    assert message in str(caught.value)


def test_stream_replicas_reach_the_stream_configuration():
    from leadflow_platform.provision import stream_limits

    assert stream_limits(Settings.from_env({})).replicas == 1
    assert stream_limits(Settings.from_env({"LEADFLOW_STREAM_REPLICAS": "3"})).replicas == 3


def test_pool_bounds_must_be_ordered():
    with pytest.raises(SettingsError, match="MIN_SIZE exceeds"):
        Settings.from_env({"LEADFLOW_DB_POOL_MIN_SIZE": "20", "LEADFLOW_DB_POOL_MAX_SIZE": "5"})


def test_a_service_needs_both_servers():
    with pytest.raises(SettingsError, match="LEADFLOW_DATABASE_URL and LEADFLOW_NATS_URL"):
        Settings.from_env({}).require_infrastructure()
    with pytest.raises(SettingsError, match="^LEADFLOW_NATS_URL must be set"):
        Settings.from_env({"LEADFLOW_DATABASE_URL": "postgresql://x"}).require_infrastructure()


def test_readme_documents_every_setting_and_no_other():
    from leadflow_attribution.config import SETTINGS as ATTRIBUTION_SETTINGS
    from leadflow_ingest.config import SETTINGS as INGEST_SETTINGS
    from leadflow_routing.config import SETTINGS as ROUTING_SETTINGS
    from leadflow_scoring.config import SETTINGS as SCORING_SETTINGS

    documented = set(re.findall(r"^\| `(LEADFLOW_[A-Z_]+)`", README.read_text(), re.MULTILINE))
    services = (INGEST_SETTINGS, SCORING_SETTINGS, ATTRIBUTION_SETTINGS, ROUTING_SETTINGS)
    declared = {s.env for s in (*SETTINGS.values(), *(v for m in services for v in m.values()))}
    assert documented == declared
