"""The suite's services as separate processes, the way `leadflow up` and a deployment run them:
any number of replicas of each service, every replica on gRPC and metrics ports of its own,
its output in a log file; started, waited for, scraped and stopped from a test.

    with suite_processes(settings, tmp_path) as suite:
        suite.start("ingest", replicas=2)
        suite.start("scoring", OTEL_EXPORTER_OTLP_ENDPOINT=receiver)
        await suite.serving()
        async with open_channel(suite.address("ingest", 1)) as channel: ...
        suite.replicas("ingest")[0].metrics().value("leadflow_rpc_server_requests_total")
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from harness import eventually
from processes import service_env

from leadflow_platform.embedded import free_port
from leadflow_platform.grpc.client import health_status
from leadflow_platform.settings import Settings

SERVICES = ("ingest", "scoring", "attribution", "routing", "reporting")

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class Samples:
    """One scrape of a Prometheus endpoint: every sample, keyed by name and labels."""

    values: dict[tuple[str, frozenset[tuple[str, str]]], float]

    @classmethod
    def parse(cls, text: str) -> Samples:
        values = {}
        for line in text.splitlines():
            match = _SAMPLE.match(line)
            if match is None or line.startswith("#"):
                continue
            name, labels, value = match.groups()
            values[(name, frozenset(_LABEL.findall(labels or "")))] = float(value)
        return cls(values)

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples of `name` whose labels include `labels` (0 when none)."""
        wanted = set(labels.items())
        return sum(v for (n, pairs), v in self.values.items() if n == name and wanted <= pairs)


@dataclass
class Replica:
    """One process of a service."""

    service: str
    index: int
    grpc_port: int
    metrics_port: int
    log: Path
    process: subprocess.Popen[bytes]
    _log_file: IO[bytes] = field(repr=False)

    @property
    def name(self) -> str:
        return f"{self.service}-{self.index}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def metrics(self) -> Samples:
        """Its Prometheus endpoint, scraped now (blocking: see `scrape`)."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as reply:
            return Samples.parse(reply.read().decode())

    async def scrape(self) -> Samples:
        return await asyncio.to_thread(self.metrics)


class SuiteProcesses:
    """Services started as `python -m leadflow_<service>` on this test's database and bus.

    `env` applies to every process started, a start's own keywords to its replicas only;
    a value of None removes the variable from the inherited environment."""

    def __init__(self, settings: Settings, logs: Path, **env: str | None) -> None:
        self.settings = settings
        self._logs = logs
        self._env = env
        self._replicas: dict[str, list[Replica]] = {}

    def start(self, service: str, *, replicas: int = 1, **env: str | None) -> list[Replica]:
        """Start `replicas` more processes of `service` (each a full replica: API, consumers,
        relay, jobs) and return them; they serve once `serving` says so."""
        self._logs.mkdir(parents=True, exist_ok=True)
        started = []
        for _ in range(replicas):
            index = len(self._replicas.get(service, []))
            grpc_port, metrics_port = free_port(), free_port()
            variables = {
                "LEADFLOW_GRPC_PORT": str(grpc_port),
                "LEADFLOW_METRICS_PORT": str(metrics_port),
                **self._env,
                **env,
            }
            process_env = service_env(
                self.settings, **{k: v for k, v in variables.items() if v is not None}
            )
            for name, value in variables.items():
                if value is None:
                    process_env.pop(name, None)
            log = self._logs / f"{service}-{index}.log"
            log_file = log.open("wb")
            process = subprocess.Popen(
                [sys.executable, "-m", f"leadflow_{service}"],
                env=process_env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
            replica = Replica(service, index, grpc_port, metrics_port, log, process, log_file)
            self._replicas.setdefault(service, []).append(replica)
            started.append(replica)
        return started

    def replicas(self, service: str) -> list[Replica]:
        return list(self._replicas.get(service, []))

    def all_replicas(self) -> list[Replica]:
        return [r for service in self._replicas.values() for r in service]

    def address(self, service: str, index: int = 0) -> str:
        return self._replicas[service][index].address

    async def serving(self, *services: str, timeout: float = 90.0) -> None:
        """Wait until every replica of `services` (default: all started) answers its health
        check SERVING; fail at once, naming its log, when one has exited."""
        names = services or tuple(self._replicas)
        replicas = [r for name in names for r in self._replicas[name]]

        async def all_serving() -> bool:
            for replica in replicas:
                code = replica.process.poll()
                assert code is None, f"{replica.name} exited with {code}: see {replica.log}"
            statuses = await asyncio.gather(*(health_status(r.address) for r in replicas))
            return all(s == "SERVING" for s in statuses)

        await eventually(all_serving, timeout=timeout, interval=0.2)

    def stop(self, grace: float = 30.0) -> None:
        """SIGTERM every process (each drains in order), then wait; kill what outlives
        `grace`."""
        replicas = self.all_replicas()
        for replica in replicas:
            if replica.process.poll() is None:
                replica.process.send_signal(signal.SIGTERM)
        for replica in replicas:
            try:
                replica.process.wait(grace)
            except subprocess.TimeoutExpired:
                replica.process.kill()
                replica.process.wait(5)
            replica._log_file.close()


@contextlib.contextmanager
def suite_processes(settings: Settings, logs: Path, **env: str | None) -> Iterator[SuiteProcesses]:
    """A SuiteProcesses whose processes are all stopped when the block ends."""
    suite = SuiteProcesses(settings, logs, **env)
    try:
        yield suite
    finally:
        suite.stop()
