"""`leadflow routing apply -f` and `leadflow routing show` against a running routing service."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from routing_support import EXAMPLE, routing_env, routing_suite

from leadflow_routing.domain.document import load_yaml

pytestmark = pytest.mark.integration
LEADFLOW = str(Path(sys.executable).with_name("leadflow"))


async def leadflow(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        LEADFLOW, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()


async def test_apply_then_show_round_trips_the_example(settings, monkeypatch, tmp_path):
    routing_env(monkeypatch, tmp_path)
    async with routing_suite(settings) as s:
        target = ["--target", f"127.0.0.1:{s.runtimes[0].port}", "--key", s.base.key]
        code, out, err = await leadflow("routing", "apply", "-f", str(EXAMPLE), *target)
        assert (code, out.strip()) == (0, "routing configuration version 1 is active"), err

        code, out, _ = await leadflow("routing", "show", *target)
        assert code == 0
        shown = load_yaml(out)
        assert shown.rules == load_yaml(EXAMPLE.read_text()).rules
        assert "version: 1" in out

        broken = tmp_path / "broken.yaml"
        broken.write_text(
            EXAMPLE.read_text().replace('lead.home_brand_id == "ikid"', "lead.hom == 1")
        )
        code, _, err = await leadflow("routing", "apply", "-f", str(broken), *target)
        assert code == 1
        assert "rules[5] (id \"ikid-home\").condition: undeclared reference to 'lead.hom'" in err
