"""Settings from `LEADFLOW_*` environment variables.

Every setting is declared once in `SETTINGS` with its variable, type, default and meaning; the
README's configuration table is checked against this list by a test, so the two cannot drift.
Standard `OTEL_*` variables are left to the OpenTelemetry SDK.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any


class SettingsError(ValueError):
    """A `LEADFLOW_*` variable holds a value that cannot be used; the message names it."""


@dataclass(frozen=True)
class Setting:
    env: str
    default: Any
    parse: Callable[[str], Any]
    doc: str


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false")


def _seconds_list(raw: str) -> tuple[float, ...]:
    values = tuple(float(part) for part in raw.split(",") if part.strip())
    if not values or any(v <= 0 for v in values):
        raise ValueError("expected a comma-separated list of positive seconds")
    return values


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("expected a positive integer")
    return value


def _port(raw: str) -> int:
    value = int(raw)
    if not 0 <= value <= 65535:
        raise ValueError("expected a port number 0..65535 (0 = any free port)")
    return value


def _replicas(raw: str) -> int:
    value = int(raw)
    if not 1 <= value <= 5:
        raise ValueError("expected 1 to 5 (JetStream's limit)")
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if value <= 0:
        raise ValueError("expected a positive number")
    return value


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return value

    return parse


def _text(raw: str) -> str:
    return raw.strip()


def _namespace(raw: str) -> str:
    value = raw.strip()
    if value and not value.replace("_", "").replace("-", "").isalnum():
        raise ValueError("expected letters, digits, '-' or '_'")
    return value


SETTINGS: dict[str, Setting] = {
    "database_url": Setting(
        "LEADFLOW_DATABASE_URL",
        "",
        _text,
        "PostgreSQL URL. Unset: `leadflow up` starts an embedded PostgreSQL under the data dir.",
    ),
    "nats_url": Setting(
        "LEADFLOW_NATS_URL",
        "",
        _text,
        "NATS URL (JetStream enabled). Unset: `leadflow up` starts an embedded nats-server.",
    ),
    "data_dir": Setting(
        "LEADFLOW_DATA_DIR",
        ".leadflow",
        _text,
        "Where `leadflow up` keeps the embedded servers' data and its `stack.json`.",
    ),
    "grpc_host": Setting(
        "LEADFLOW_GRPC_HOST", "0.0.0.0", _text, "Address a service's gRPC server binds to."
    ),
    "grpc_port": Setting(
        "LEADFLOW_GRPC_PORT",
        None,
        _port,
        "Port a service's gRPC server binds to. Unset: the service's own (ingest 50051 ..."
        " reporting 50055); 0: any free port.",
    ),
    "workers": Setting(
        "LEADFLOW_WORKERS",
        1,
        _positive_int,
        "Processes one `leadflow serve` runs, sharing the gRPC port (SO_REUSEPORT); each is a"
        " full replica. Use up to the cores a service may have.",
    ),
    "max_message_bytes": Setting(
        "LEADFLOW_MAX_MESSAGE_BYTES",
        1_048_576 + 65_536,
        _positive_int,
        "Largest gRPC request accepted; larger ones are refused before they are read.",
    ),
    "shutdown_grace_seconds": Setting(
        "LEADFLOW_SHUTDOWN_GRACE_SECONDS",
        10.0,
        _positive_float,
        "How long in-flight RPCs and handlers may run after SIGTERM before they are cancelled.",
    ),
    "db_pool_min_size": Setting(
        "LEADFLOW_DB_POOL_MIN_SIZE", 2, _positive_int, "Connections a service keeps open."
    ),
    "db_pool_max_size": Setting(
        "LEADFLOW_DB_POOL_MAX_SIZE", 10, _positive_int, "Most connections a service opens."
    ),
    "bus_namespace": Setting(
        "LEADFLOW_BUS_NAMESPACE",
        "",
        _namespace,
        "Prefix for streams and subjects, so several environments can share one NATS.",
    ),
    "stream_max_age_days": Setting(
        "LEADFLOW_STREAM_MAX_AGE_DAYS",
        7.0,
        _positive_float,
        "How long streams keep messages (consumers must catch up within it).",
    ),
    "stream_max_bytes": Setting(
        "LEADFLOW_STREAM_MAX_BYTES",
        8 * 1024**3,
        _positive_int,
        "Size cap of each stream; when full it refuses new messages (DiscardNew), never drops.",
    ),
    "stream_duplicate_window_seconds": Setting(
        "LEADFLOW_STREAM_DUPLICATE_WINDOW_SECONDS",
        120.0,
        _positive_float,
        "Window in which JetStream drops a re-published Nats-Msg-Id (inboxes dedupe beyond it).",
    ),
    "stream_replicas": Setting(
        "LEADFLOW_STREAM_REPLICAS",
        1,
        _replicas,
        "Copies JetStream keeps of each stream (and its consumers): 1, or 3 on a 3-node"
        " cluster so that a node can be lost.",
    ),
    "consumer_batch_size": Setting(
        "LEADFLOW_CONSUMER_BATCH_SIZE", 100, _positive_int, "Messages a consumer fetches at once."
    ),
    "consumer_max_deliver": Setting(
        "LEADFLOW_CONSUMER_MAX_DELIVER",
        5,
        _positive_int,
        "Deliveries of a failing message before it is moved to the dead-letter table.",
    ),
    "consumer_backoff_seconds": Setting(
        "LEADFLOW_CONSUMER_BACKOFF_SECONDS",
        (1.0, 5.0, 30.0, 120.0),
        _seconds_list,
        "Redelivery delays after each failed attempt (comma-separated seconds).",
    ),
    "outbox_batch_size": Setting(
        "LEADFLOW_OUTBOX_BATCH_SIZE", 500, _positive_int, "Outbox rows a relay publishes at once."
    ),
    "outbox_poll_seconds": Setting(
        "LEADFLOW_OUTBOX_POLL_SECONDS",
        1.0,
        _positive_float,
        "Relay poll interval; a commit also wakes it at once through LISTEN/NOTIFY.",
    ),
    "outbox_reconcile_seconds": Setting(
        "LEADFLOW_OUTBOX_RECONCILE_SECONDS",
        300.0,
        _positive_float,
        "How often published outbox rows are checked against the stream; what it lost is"
        " published again.",
    ),
    "auth_cache_seconds": Setting(
        "LEADFLOW_AUTH_CACHE_SECONDS",
        5.0,
        _positive_float,
        "How long a verified API key is cached; a revoked key is refused after at most this.",
    ),
    "log_format": Setting(
        "LEADFLOW_LOG_FORMAT",
        "auto",
        _choice("auto", "json", "console"),
        "`json`, `console`, or `auto` (console on a terminal, JSON otherwise).",
    ),
    "log_level": Setting(
        "LEADFLOW_LOG_LEVEL",
        "info",
        _choice("debug", "info", "warning", "error"),
        "Lowest level logged.",
    ),
    "tracing": Setting(
        "LEADFLOW_TRACING",
        True,
        _bool,
        "Record OpenTelemetry spans; exported over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set.",
    ),
    "metrics": Setting(
        "LEADFLOW_METRICS",
        True,
        _bool,
        "Serve Prometheus metrics (`/metrics`) on the metrics port.",
    ),
    "metrics_port": Setting(
        "LEADFLOW_METRICS_PORT",
        None,
        _port,
        "Port of the metrics endpoint. Unset: the service's own (ingest 9461 ... reporting"
        " 9465); 0: any free port. Worker N of LEADFLOW_WORKERS serves on this port + N.",
    ),
    "metrics_sample_seconds": Setting(
        "LEADFLOW_METRICS_SAMPLE_SECONDS",
        15.0,
        _positive_float,
        "How often consumer lag, outbox backlog and dead letters are read for the metrics.",
    ),
    "tls_cert_file": Setting(
        "LEADFLOW_TLS_CERT_FILE",
        "",
        _text,
        "PEM certificate chain a service serves TLS with (with LEADFLOW_TLS_KEY_FILE). Unset:"
        " plaintext.",
    ),
    "tls_key_file": Setting(
        "LEADFLOW_TLS_KEY_FILE", "", _text, "PEM private key of LEADFLOW_TLS_CERT_FILE."
    ),
    "tls_client_ca_file": Setting(
        "LEADFLOW_TLS_CLIENT_CA_FILE",
        "",
        _text,
        "Mutual TLS: clients must present a certificate signed by a CA in this PEM file.",
    ),
    "tls_ca_file": Setting(
        "LEADFLOW_TLS_CA_FILE",
        "",
        _text,
        "Client side (leadflow commands, tests, benchmarks): connect over TLS, trusting the CAs"
        " in this PEM file.",
    ),
    "tls_client_cert_file": Setting(
        "LEADFLOW_TLS_CLIENT_CERT_FILE",
        "",
        _text,
        "Client side: PEM certificate presented to a service that requires mutual TLS.",
    ),
    "tls_client_key_file": Setting(
        "LEADFLOW_TLS_CLIENT_KEY_FILE", "", _text, "PEM private key of the client certificate."
    ),
    "tls_server_name": Setting(
        "LEADFLOW_TLS_SERVER_NAME",
        "",
        _text,
        "Client side: the name a service's certificate is checked against, when not the"
        " host connected to.",
    ),
}


@dataclass(frozen=True)
class Settings:
    database_url: str
    nats_url: str
    data_dir: str
    grpc_host: str
    grpc_port: int | None
    workers: int
    max_message_bytes: int
    shutdown_grace_seconds: float
    db_pool_min_size: int
    db_pool_max_size: int
    bus_namespace: str
    stream_max_age_days: float
    stream_max_bytes: int
    stream_duplicate_window_seconds: float
    stream_replicas: int
    consumer_batch_size: int
    consumer_max_deliver: int
    consumer_backoff_seconds: tuple[float, ...]
    outbox_batch_size: int
    outbox_poll_seconds: float
    outbox_reconcile_seconds: float
    auth_cache_seconds: float
    log_format: str
    log_level: str
    tracing: bool
    metrics: bool
    metrics_port: int | None
    metrics_sample_seconds: float
    tls_cert_file: str
    tls_key_file: str
    tls_client_ca_file: str
    tls_ca_file: str
    tls_client_cert_file: str
    tls_client_key_file: str
    tls_server_name: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        settings = cls(**read_settings(SETTINGS, environ))
        if settings.db_pool_min_size > settings.db_pool_max_size:
            raise SettingsError("LEADFLOW_DB_POOL_MIN_SIZE exceeds LEADFLOW_DB_POOL_MAX_SIZE")
        _check_pairs(settings)
        return settings

    def with_overrides(self, **changes: Any) -> Settings:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Settings(**values)

    def require_infrastructure(self) -> None:
        """A service cannot start without both servers; say which variable is missing."""
        missing = [s.env for k, s in SETTINGS.items() if k in {"database_url", "nats_url"}]
        missing = [env for env in missing if not getattr(self, _field_for(env))]
        if missing:
            raise SettingsError(
                f"{' and '.join(missing)} must be set to run a service "
                "(`leadflow up` sets them, starting embedded servers when needed)"
            )


def read_settings(
    declared: Mapping[str, Setting], environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Parse each declared setting from the environment (its default when unset or empty).
    Services declare their own `LEADFLOW_<SERVICE>_*` settings the same way."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name, setting in declared.items():
        raw = env.get(setting.env)
        if raw is None or raw == "":
            values[name] = setting.default
            continue
        try:
            values[name] = setting.parse(raw)
        except ValueError as exc:
            raise SettingsError(f"{setting.env}={raw!r}: {exc}") from None
    return values


def positive_int(raw: str) -> int:
    return _positive_int(raw)


def positive_float(raw: str) -> float:
    return _positive_float(raw)


def _check_pairs(settings: Settings) -> None:
    """TLS files that only work together are named together."""
    pairs = [
        ("tls_cert_file", "tls_key_file"),
        ("tls_key_file", "tls_cert_file"),
        ("tls_client_ca_file", "tls_cert_file"),
        ("tls_client_cert_file", "tls_client_key_file"),
        ("tls_client_key_file", "tls_client_cert_file"),
    ]
    for name, needs in pairs:
        if getattr(settings, name) and not getattr(settings, needs):
            raise SettingsError(f"{SETTINGS[name].env} is set but {SETTINGS[needs].env} is not")


def _field_for(env: str) -> str:
    return next(name for name, s in SETTINGS.items() if s.env == env)
