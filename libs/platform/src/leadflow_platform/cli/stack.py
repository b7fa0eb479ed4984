"""The running stack's address book: `<data dir>/stack.json`, written by `leadflow up`.

Other commands (`leadflow keys`, `leadflow migrate`, `leadflow serve`) read it when
LEADFLOW_DATABASE_URL / LEADFLOW_NATS_URL are not set, so they work in a second terminal
next to `make up` without copying URLs around.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from dataclasses import asdict, dataclass, field
from pathlib import Path

from leadflow_platform.settings import Settings


@dataclass
class StackFile:
    pid: int
    database_url: str
    nats_url: str
    services: dict[str, str] = field(default_factory=dict)  # name -> host:port
    # Processes this stack started (services, nats-server), so a later `leadflow up` can
    # clean up after a run that was killed before it could stop them.
    children: list[int] = field(default_factory=list)

    @staticmethod
    def path(data_dir: str | Path) -> Path:
        return Path(data_dir) / "stack.json"

    def write(self, data_dir: str | Path) -> None:
        target = self.path(data_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_suffix(".tmp")
        temp.write_text(json.dumps(asdict(self), indent=2))
        temp.replace(target)

    @classmethod
    def load(cls, data_dir: str | Path) -> StackFile | None:
        """The stack file as written, whether its `leadflow up` still runs or not."""
        try:
            return cls(**json.loads(cls.path(data_dir).read_text()))
        except (OSError, ValueError, TypeError):
            return None

    @classmethod
    def read(cls, data_dir: str | Path) -> StackFile | None:
        """The running stack, or None when there is none."""
        stack = cls.load(data_dir)
        return stack if stack is not None and _alive(stack.pid) else None

    def stop_leftovers(self) -> list[int]:
        """Terminate the children of a dead `leadflow up` that are still alive."""
        stopped = []
        for pid in self.children:
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
                    stopped.append(pid)
        return stopped


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def resolve(settings: Settings) -> Settings:
    """Fill unset server URLs from a running `leadflow up`, when there is one."""
    if settings.database_url and settings.nats_url:
        return settings
    stack = StackFile.read(settings.data_dir)
    if stack is None:
        return settings
    return settings.with_overrides(
        database_url=settings.database_url or stack.database_url,
        nats_url=settings.nats_url or stack.nats_url,
    )
