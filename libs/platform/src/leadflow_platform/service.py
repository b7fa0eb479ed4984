"""What a service declares about itself, and how the suite finds the services that exist.

Each service package exports a `ServiceSpec` under the `leadflow.services` entry point group
(`[project.entry-points."leadflow.services"]` in its pyproject). `leadflow up`, `leadflow
migrate` and `leadflow serve` discover services there: a service that is not built is simply
not installed, so it is not started.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from leadflow_platform.db.migrations_runner import Migration, load_migrations
from leadflow_platform.nats.streams import StreamSpec, stream_for

if TYPE_CHECKING:
    from leadflow_platform.lifecycle import Runtime

ENTRY_POINT_GROUP = "leadflow.services"
# Conventional ports, in the order the suite's data flows.
DEFAULT_PORTS = {
    "ingest": 50051,
    "scoring": 50052,
    "attribution": 50053,
    "routing": 50054,
    "reporting": 50055,
}
SUITE = tuple(DEFAULT_PORTS)
# Prometheus scrape ports (9464 is OpenTelemetry's usual one; one per service on a host).
DEFAULT_METRICS_PORTS = {name: 9461 + i for i, name in enumerate(SUITE)}


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    # Registers servicers, consumers and background tasks on the runtime; runs before any
    # connection exists, so it only wires things (they use runtime.pool/bus when called).
    build: Callable[[Runtime], Awaitable[None] | None]
    migrations_package: str | None = None
    publishes: bool = True

    @property
    def schema(self) -> str:
        return self.name

    @property
    def default_port(self) -> int:
        return DEFAULT_PORTS.get(self.name, 50060)

    @property
    def default_metrics_port(self) -> int:
        return DEFAULT_METRICS_PORTS.get(self.name, 9470)

    @property
    def stream(self) -> StreamSpec | None:
        return stream_for(self.name) if self.publishes else None

    def migrations(self) -> list[Migration]:
        """The platform's messaging tables first, then the service's own files."""
        found = load_migrations("messaging", "leadflow_platform.db.migrations.messaging")
        if self.migrations_package:
            found += load_migrations(self.name, self.migrations_package)
        return found


def discover_services() -> dict[str, ServiceSpec]:
    """Installed services, in suite order (ingest first), then any others by name."""
    found: dict[str, ServiceSpec] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        spec = ep.load()
        if not isinstance(spec, ServiceSpec):
            raise TypeError(f"entry point {ep.name} is not a ServiceSpec")
        found[spec.name] = spec
    order = {name: i for i, name in enumerate(SUITE)}
    return dict(sorted(found.items(), key=lambda item: (order.get(item[0], 99), item[0])))


def tenancy_migrations() -> list[Migration]:
    return load_migrations("tenancy", "leadflow_platform.db.migrations.tenancy")
