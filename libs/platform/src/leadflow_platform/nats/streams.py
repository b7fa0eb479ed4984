"""Streams: one per producing service, named after it, holding all of its subjects."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StreamSpec:
    """A producer's stream. `name` and `subjects` are logical (before any bus namespace)."""

    name: str
    subjects: tuple[str, ...]


def stream_for(producer: str) -> StreamSpec:
    """`ingest` -> stream INGEST holding `ingest.>`."""
    return StreamSpec(name=producer.upper(), subjects=(f"{producer}.>",))


def producer_of(subject: str) -> str:
    """`scoring.score.changed` -> `scoring`: the first token names the producer."""
    return subject.split(".", 1)[0]


@dataclass(frozen=True)
class BusNames:
    """Logical names in code, namespaced names on the wire.

    A namespace lets several environments (or test runs) share one NATS server:
    `ingest.event.recorded` becomes `staging.ingest.event.recorded`, stream INGEST becomes
    STAGING_INGEST, consumer `scoring-ingest-events` becomes `staging-scoring-ingest-events`.
    """

    namespace: str = ""

    def subject(self, logical: str) -> str:
        return f"{self.namespace}.{logical}" if self.namespace else logical

    def logical_subject(self, wire: str) -> str:
        prefix = f"{self.namespace}."
        return wire[len(prefix) :] if self.namespace and wire.startswith(prefix) else wire

    def stream(self, logical: str) -> str:
        if not self.namespace:
            return logical
        return f"{self.namespace.upper().replace('-', '_')}_{logical}"

    def consumer(self, logical: str) -> str:
        return f"{self.namespace}-{logical}" if self.namespace else logical
