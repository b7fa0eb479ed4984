"""`leadflow demo` on a machine with nothing running: it starts the suite, pushes a generated
portfolio through every service, prints the summary, writes the weekly report, and stops
everything it started."""

from __future__ import annotations

import os
import subprocess
import sys

import psutil
import pytest

pytestmark = pytest.mark.integration


def test_demo_runs_the_whole_suite_and_writes_the_weekly_report(tmp_path):
    data_dir = tmp_path / "data"
    out = tmp_path / "weekly.html"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    env.update(LEADFLOW_DATA_DIR=str(data_dir), LEADFLOW_LOG_LEVEL="warning", COLUMNS="160")
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    demo = subprocess.run(
        [sys.executable, "-m", "leadflow_platform.cli", "demo", "--leads", "150", "--seed", "3",
         "--out", str(out)],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    output = demo.stdout + demo.stderr
    assert demo.returncode == 0, output
    for title in ("Leads by grade and brand", "Top channels by attributed revenue",
                  "Routing outcomes", "Top insights"):  # fmt: skip
        assert title in output, output
    for brand in ("modumind", "stacksense", "epicquest", "ikid", "vision2results"):
        assert brand in output
    for model in ("first touch", "last touch", "linear"):
        assert model in output
    assert "still catching up" not in output
    html = out.read_text()
    assert html.startswith("<!DOCTYPE html>") and html.count("<svg") >= 3
    assert out.with_suffix(".txt").read_text().strip()
    assert str(out.resolve()) in output.replace("\n", "")
    left = {p.pid for p in psutil.Process().children(recursive=True)} - before
    assert not left  # the suite it started is stopped
