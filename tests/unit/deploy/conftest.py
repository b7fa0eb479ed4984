"""What the deploy and docs tests compare the files against, read from the code itself:
the settings the platform and each service declare, and the consumers each service wires."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import inspect
from dataclasses import dataclass
from typing import Any

import pytest

from leadflow_platform.lifecycle import Runtime
from leadflow_platform.nats.consumer import ConsumerSpec
from leadflow_platform.service import discover_services
from leadflow_platform.settings import SETTINGS, Setting, Settings


@pytest.fixture(scope="session")
def declared() -> dict[str, Setting]:
    """Every `LEADFLOW_*` variable the platform or an installed service reads, by name."""
    declared = {s.env: s for s in SETTINGS.values()}
    for name in discover_services():
        module = f"leadflow_{name}.config"
        if importlib.util.find_spec(module) is not None:
            for setting in importlib.import_module(module).SETTINGS.values():
                declared[setting.env] = setting
    return declared


@dataclass(frozen=True)
class Registered:
    service: str
    consumers: tuple[ConsumerSpec, ...]


class _Recorder(Runtime):
    """A runtime that only records what a service's build function wires (no I/O: the build
    runs before any connection exists)."""

    def __init__(self, spec: Any, settings: Settings) -> None:
        super().__init__(spec, settings)
        self.recorded: list[ConsumerSpec] = []

    def add_consumer(self, spec: ConsumerSpec, handler: Any) -> None:
        self.recorded.append(spec)
        super().add_consumer(spec, handler)


@pytest.fixture(scope="session")
def registered() -> dict[str, Registered]:
    """Each installed service's durable consumers, as its build function registers them."""
    settings = Settings.from_env(
        {"LEADFLOW_DATABASE_URL": "postgresql://unused", "LEADFLOW_NATS_URL": "nats://unused"}
    )
    found = {}
    for name, spec in discover_services().items():
        recorder = _Recorder(spec, settings)
        built = spec.build(recorder)
        if inspect.isawaitable(built):
            asyncio.run(_wait(built))
        found[name] = Registered(name, tuple(recorder.recorded))
    return found


async def _wait(awaitable: Any) -> None:
    await awaitable
