"""`leadflow up` on a machine with no servers: embedded PostgreSQL and NATS, every installed
service SERVING, and after Ctrl-C not one process left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from processes import SUPPORT, install_probe_entry_point

from leadflow_platform.service import SUITE, discover_services

pytestmark = pytest.mark.integration


def _wait_for(path: Path, process: subprocess.Popen, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"leadflow up exited with {process.returncode}")
        if path.exists():
            try:
                return json.loads(path.read_text())
            except ValueError:
                pass
        time.sleep(0.1)
    raise AssertionError(f"{path} not written in {timeout}s")


def test_up_starts_everything_and_ctrl_c_stops_everything(tmp_path):
    site = tmp_path / "site"
    install_probe_entry_point(site)
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    env.update(
        PYTHONPATH=os.pathsep.join([str(site), str(SUPPORT), *sys.path]),
        LEADFLOW_DATA_DIR=str(data_dir),
        LEADFLOW_LOG_FORMAT="json",
        LEADFLOW_LOG_LEVEL="warning",
        COLUMNS="200",
    )
    up = subprocess.Popen(
        [sys.executable, "-m", "leadflow_platform.cli", "up"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        stack = _wait_for(data_dir / "stack.json", up, timeout=120)
        assert stack["database_url"].startswith("postgresql://")
        assert stack["nats_url"].startswith("nats://")
        installed = set(discover_services())
        assert set(stack["services"]) == installed | {"probe"}
        lines: list[str] = []
        assert up.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = up.stdout.readline()
            lines.append(line)
            if "leadflow is up" in line or up.poll() is not None:
                break
        output = "".join(lines)
        assert "leadflow is up" in output, output
        for name in installed | {"probe"}:
            row = next(line for line in output.splitlines() if f" {name} " in line)
            assert "SERVING" in row, output
        for name in set(SUITE) - installed:
            row = next(line for line in output.splitlines() if f" {name} " in line)
            assert "not built yet" in row, output

        # everything that runs now: our children, and PostgreSQL (daemonised by pg_ctl)
        postmaster = int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
        started = [p.pid for p in psutil.Process(up.pid).children(recursive=True)]
        started.append(postmaster)
        assert len(started) >= 2 + len(installed) + 1  # nats, postgres, every service

        up.send_signal(signal.SIGINT)  # Ctrl-C
        assert up.wait(60) == 0
    finally:
        if up.poll() is None:  # a failed assertion: still stop it the way a user would
            up.send_signal(signal.SIGINT)
            try:
                up.wait(60)
            except subprocess.TimeoutExpired:
                up.kill()
    time.sleep(0.5)
    alive = [pid for pid in started if psutil.pid_exists(pid) and
             psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]  # fmt: skip
    assert alive == [], f"left behind: {alive}"
    assert not (data_dir / "stack.json").exists()


def _start_up(data_dir: Path, site: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    env.update(
        PYTHONPATH=os.pathsep.join([str(site), str(SUPPORT), *sys.path]),
        LEADFLOW_DATA_DIR=str(data_dir),
        LEADFLOW_LOG_FORMAT="json",
        LEADFLOW_LOG_LEVEL="warning",
        COLUMNS="200",
    )
    up = subprocess.Popen(
        [sys.executable, "-m", "leadflow_platform.cli", "up", *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert up.stdout is not None
    lines = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = up.stdout.readline()
        lines.append(line)
        if "leadflow is up" in line or up.poll() is not None:
            break
    return up, "".join(lines)


def _alive(pid: int) -> bool:
    return psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE


def test_a_killed_up_takes_its_services_along_and_the_next_up_recovers(tmp_path):
    site = tmp_path / "site"
    install_probe_entry_point(site)
    data_dir = tmp_path / "data"
    up, output = _start_up(data_dir, site, "--only", "probe")
    try:
        assert "leadflow is up" in output, output
        children = [p.pid for p in psutil.Process(up.pid).children(recursive=True)]
        assert len(children) >= 2  # nats-server and the probe
        up.send_signal(signal.SIGKILL)  # no chance to clean up
        up.wait(10)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(_alive(pid) for pid in children):
            time.sleep(0.2)
        assert [pid for pid in children if _alive(pid)] == []  # they died with their parent
    finally:
        if up.poll() is None:
            up.kill()
    # PostgreSQL (daemonised by pg_ctl) survived; the next `leadflow up` takes over cleanly.
    again, output = _start_up(data_dir, site, "--only", "probe")
    try:
        assert "leadflow is up" in output, output
        again.send_signal(signal.SIGINT)
        assert again.wait(60) == 0
    finally:
        if again.poll() is None:
            again.kill()
    assert not (data_dir / "postgres" / "postmaster.pid").exists()
