"""OpenTelemetry metrics with a Prometheus scrape endpoint.

A service process calls `configure_metrics` once from its `__main__` (like tracing): the
meter provider gets a Prometheus reader and `/metrics` is served over HTTP on the metrics
port. Instruments are made through the OpenTelemetry API, so code that records before (or
without) `configure_metrics`, such as a test running a service in its own process, records
into the API's no-op or proxy meter at no cost.

What is recorded, by whom:
- RPCs: count and latency per method and status code (the server interceptor);
- messages consumed per consumer, subject and outcome (the consumer);
- dead letters per consumer and subject (the consumer);
- outbox rows published (the relay);
- sink delivery failures per sink kind (routing);
- sampled every LEADFLOW_METRICS_SAMPLE_SECONDS by the runtime: each consumer's lag (messages
  not yet delivered) and unacknowledged messages, the outbox backlog and the age of its oldest
  row, and the rows in the dead-letter table.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

METER_NAME = "leadflow"
# Latency buckets in seconds: 1 ms to 30 s.
RPC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

_lock = threading.Lock()
_provider_set = False


@dataclass
class Samples:
    """The latest sampled values the observable gauges report (keyed by their labels)."""

    consumer_pending: dict[str, int] = field(default_factory=dict)
    consumer_ack_pending: dict[str, int] = field(default_factory=dict)
    outbox_backlog: int | None = None
    outbox_oldest_seconds: float | None = None
    dead_letters: int | None = None


SAMPLES = Samples()


def configure_metrics(service: str, *, host: str, port: int) -> int:
    """Install the process's meter provider with a Prometheus reader and serve `/metrics` on
    host:port (0: any free port). Returns the bound port. Once per process."""
    global _provider_set
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.resources import Resource
    from prometheus_client import start_http_server

    with _lock:
        if _provider_set:
            raise RuntimeError("metrics are already configured in this process")
        resource = Resource.create(
            {"service.name": f"leadflow-{service}", "service.namespace": "leadflow"}
        )
        metrics.set_meter_provider(
            MeterProvider(resource=resource, metric_readers=[PrometheusMetricReader()])
        )
        _provider_set = True
    server, _ = start_http_server(port, addr=host)
    return int(server.server_port)


def _meter() -> metrics.Meter:
    return metrics.get_meter(METER_NAME)


class _Instruments:
    """Made on first use, from whatever meter provider is installed by then (the API's
    proxy forwards to one installed later)."""

    def __init__(self) -> None:
        meter = _meter()
        self.rpc_requests = meter.create_counter(
            "leadflow.rpc.server.requests", unit="{request}", description="RPCs served"
        )
        self.rpc_duration = meter.create_histogram(
            "leadflow.rpc.server.duration",
            unit="s",
            description="Time to answer an RPC",
            explicit_bucket_boundaries_advisory=list(RPC_BUCKETS),
        )
        self.messages = meter.create_counter(
            "leadflow.consumer.messages",
            unit="{message}",
            description="Messages a consumer finished, by outcome",
        )
        self.dead_lettered = meter.create_counter(
            "leadflow.consumer.dead_lettered",
            unit="{message}",
            description="Messages moved to the dead-letter table",
        )
        self.outbox_published = meter.create_counter(
            "leadflow.outbox.published", unit="{message}", description="Outbox rows published"
        )
        self.sink_failures = meter.create_counter(
            "leadflow.sink.delivery.failures",
            unit="{delivery}",
            description="Failed sink delivery attempts (final: no retry left)",
        )
        meter.create_observable_gauge(
            "leadflow.consumer.pending",
            callbacks=[_per_consumer(SAMPLES.consumer_pending)],
            unit="{message}",
            description="Messages in the stream not yet delivered to the consumer (its lag)",
        )
        meter.create_observable_gauge(
            "leadflow.consumer.ack_pending",
            callbacks=[_per_consumer(SAMPLES.consumer_ack_pending)],
            unit="{message}",
            description="Messages delivered to the consumer and not yet acknowledged",
        )
        meter.create_observable_gauge(
            "leadflow.outbox.backlog",
            callbacks=[_single(lambda: SAMPLES.outbox_backlog)],
            unit="{message}",
            description="Committed outbox rows not yet published",
        )
        meter.create_observable_gauge(
            "leadflow.outbox.oldest_age",
            callbacks=[_single(lambda: SAMPLES.outbox_oldest_seconds)],
            unit="s",
            description="Age of the oldest unpublished outbox row (0 when none)",
        )
        meter.create_observable_gauge(
            "leadflow.dead_letters.stored",
            callbacks=[_single(lambda: SAMPLES.dead_letters)],
            unit="{message}",
            description="Rows in the service's dead-letter table",
        )


def _per_consumer(values: dict[str, int]):
    def observe(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(v, {"consumer": k}) for k, v in list(values.items())]

    return observe


def _single(read):
    def observe(_: CallbackOptions) -> Iterable[Observation]:
        value = read()
        return [] if value is None else [Observation(value)]

    return observe


_instruments: _Instruments | None = None


def instruments() -> _Instruments:
    global _instruments
    if _instruments is None:
        with _lock:
            if _instruments is None:
                _instruments = _Instruments()
    return _instruments


def record_rpc(method: str, code: str, seconds: float) -> None:
    attributes = {"rpc.method": method, "rpc.grpc.status_code": code}
    i = instruments()
    i.rpc_requests.add(1, attributes)
    i.rpc_duration.record(seconds, attributes)


def record_message(consumer: str, subject: str, outcome: str, count: int = 1) -> None:
    """outcome: applied, duplicate, skipped, retried or dead_lettered."""
    instruments().messages.add(
        count, {"consumer": consumer, "subject": subject, "outcome": outcome}
    )


def record_dead_letter(consumer: str, subject: str) -> None:
    instruments().dead_lettered.add(1, {"consumer": consumer, "subject": subject})
    record_message(consumer, subject, "dead_lettered")


def record_published(count: int) -> None:
    instruments().outbox_published.add(count)


def record_sink_failure(kind: str, *, final: bool) -> None:
    instruments().sink_failures.add(1, {"sink": kind, "final": "true" if final else "false"})
