"""Compile the probe's proto on first import (into a cache directory) and load it."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTOS = HERE.parent / "protos"
ROOT = HERE.parents[2]


def _generate(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    well_known = resources.files("grpc_tools") / "_proto"
    subprocess.run(
        [
            sys.executable, "-m", "grpc_tools.protoc",
            f"-I{PROTOS}", f"-I{ROOT / 'protos'}", f"-I{well_known}",
            f"--python_out={out}", f"--grpc_python_out={out}",
            "leadflow_test/v1/probe.proto",
        ],
        check=True,
    )  # fmt: skip
    for directory in (out / "leadflow_test", out / "leadflow_test" / "v1"):
        (directory / "__init__.py").touch()


def _load():
    out = Path(os.environ.get("LEADFLOW_TEST_PROTO_OUT", ROOT / ".pytest_cache" / "probe_gen"))
    source = PROTOS / "leadflow_test" / "v1" / "probe.proto"
    generated = out / "leadflow_test" / "v1" / "probe_pb2.py"
    if not generated.exists() or generated.stat().st_mtime < source.stat().st_mtime:
        _generate(out)
    if str(out) not in sys.path:
        sys.path.insert(0, str(out))
    pb2 = importlib.import_module("leadflow_test.v1.probe_pb2")
    grpc_module = importlib.import_module("leadflow_test.v1.probe_pb2_grpc")
    return pb2, grpc_module


probe_pb2, probe_pb2_grpc = _load()
