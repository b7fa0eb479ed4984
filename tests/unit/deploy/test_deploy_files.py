"""deploy/: the image, compose files and Helm chart agree with the code they run.

The names they use (services, ports, commands, settings) are read from the code: the
service registry and DEFAULT_PORTS, the `leadflow` console script and its parser, the
settings the platform and each service declare. Helm templates hold Go templating, so they
are checked as text; everything else is parsed as YAML.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import pytest
import yaml
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from nats.aio.client import DEFAULT_DRAIN_TIMEOUT

from leadflow_platform import telemetry
from leadflow_platform.cli import build_parser
from leadflow_platform.service import DEFAULT_METRICS_PORTS, DEFAULT_PORTS, discover_services
from leadflow_platform.settings import SETTINGS

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "helm" / "leadflow"
TEMPLATES = CHART / "templates"
ENV_NAME = re.compile(r"\bLEADFLOW_[A-Z0-9_]*[A-Z0-9]\b")
# The ordered shutdown (leadflow_platform.lifecycle): consumers finish, in-flight calls
# finish, other tasks finish, the pool closes - each up to the grace - plus NATS's drain
# timeout and the span flush (telemetry.shutdown_tracing, 5 s).
GRACE_BOUNDED_STEPS = 4
SPAN_FLUSH_SECONDS = 5


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def compose() -> dict[str, Any]:
    return load(DEPLOY / "compose.yaml")


def values() -> dict[str, Any]:
    return load(CHART / "values.yaml")


def leadflow_containers(services: dict[str, Any]) -> dict[str, Any]:
    """Compose services that run the leadflow image."""
    return {n: s for n, s in services.items() if s.get("image") == "leadflow:local"}


def shutdown_bound(grace: float) -> float:
    return GRACE_BOUNDED_STEPS * grace + DEFAULT_DRAIN_TIMEOUT + SPAN_FLUSH_SECONDS


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), " ".join(rest.split())))
    return out


# --- YAML ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        DEPLOY / "compose.yaml",
        DEPLOY / "compose.observability.yaml",
        DEPLOY / "otel-collector.yaml",
        CHART / "Chart.yaml",
        CHART / "values.yaml",
    ],
    ids=lambda p: str(p.relative_to(DEPLOY)),
)
def test_yaml_files_parse(path):
    assert isinstance(load(path), dict)


def test_chart_is_a_helm_v2_application_chart():
    chart = load(CHART / "Chart.yaml")
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "leadflow"
    assert chart["type"] == "application"
    assert re.fullmatch(r"\d+\.\d+\.\d+", chart["version"])


# --- the image ----------------------------------------------------------------------------


def test_image_runs_the_console_script_with_a_service_argument():
    scripts = tomllib.loads((ROOT / "libs/platform/pyproject.toml").read_text())["project"][
        "scripts"
    ]
    assert scripts["leadflow"] == "leadflow_platform.cli:main"
    instructions = dockerfile_instructions()
    entrypoints = [args for word, args in instructions if word == "ENTRYPOINT"]
    assert entrypoints == ['["leadflow", "serve"]']
    # No default service: `docker run IMAGE scoring` names it.
    assert not [args for word, args in instructions if word == "CMD"]
    # The parser the console script runs knows `serve <service>` and `migrate`.
    parser = build_parser()
    for name in DEFAULT_PORTS:
        args = parser.parse_args(["serve", name])
        assert (args.command, args.service) == ("serve", name)
    assert parser.parse_args(["migrate"]).command == "migrate"


def test_image_exposes_every_service_port():
    exposed = [args for word, args in dockerfile_instructions() if word == "EXPOSE"]
    assert [[int(p) for p in ports.split()] for ports in exposed] == [
        list(DEFAULT_PORTS.values()),
        list(DEFAULT_METRICS_PORTS.values()),
    ]
    assert set(discover_services()) == set(DEFAULT_PORTS)


def test_image_is_slim_non_root_and_installs_the_locked_workspace():
    instructions = dockerfile_instructions()
    args = {word: [a for w, a in instructions if w == word] for word, _ in instructions}
    assert args["ARG"] == ["PYTHON_IMAGE=python:3.11-slim"]
    assert args["FROM"] == ["${PYTHON_IMAGE} AS builder", "${PYTHON_IMAGE}"]
    users = args["USER"]
    assert len(users) == 1 and not users[0].startswith(("0", "root"))
    runs = " ".join(args["RUN"])
    assert "uv sync --frozen --all-packages --no-dev --no-editable" in runs
    # Every workspace member is in the build (members are globs such as libs/*).
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for member in root["tool"]["uv"]["workspace"]["members"]:
        folder = member.split("/")[0]
        assert f"{folder} {folder}" in args["COPY"], member
    # The uv the Makefile pins.
    makefile_uv = re.search(r"^UV_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), re.M)
    assert makefile_uv is not None
    assert f"uv=={makefile_uv[1]}" in runs
    assert "COPY deploy/healthcheck.py /app/healthcheck.py" in [f"COPY {a}" for a in args["COPY"]]
    healthcheck = args["HEALTHCHECK"][0]
    assert healthcheck.endswith('CMD ["python", "/app/healthcheck.py"]')


def test_dockerignore_keeps_local_state_out_of_the_build_context():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".leadflow"} <= ignored
    needed = {"pyproject.toml", "uv.lock", "libs", "services", "deploy"}
    assert not needed & ignored


# --- compose ------------------------------------------------------------------------------


def test_compose_runs_every_service_on_its_port_after_migrate():
    services = compose()["services"]
    containers = leadflow_containers(services)
    assert set(containers) == {*discover_services(), "migrate"}
    assert containers["migrate"]["entrypoint"] == ["leadflow", "migrate"]
    assert containers["migrate"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "nats": {"condition": "service_healthy"},
    }
    for name, port in DEFAULT_PORTS.items():
        service = containers[name]
        assert service["command"] == [name]
        assert "entrypoint" not in service  # the image's: leadflow serve
        published = [p.rsplit(":", 1)[1] for p in service["ports"]]
        assert published == [str(port), str(DEFAULT_METRICS_PORTS[name])]
        assert service["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
        assert service["healthcheck"]["test"] == [
            "CMD",
            "python",
            "/app/healthcheck.py",
            str(port),
        ]
        assert "LEADFLOW_GRPC_PORT" not in service["environment"]  # the service's own


def test_compose_runs_nats_with_jetstream_and_postgres_with_health_checks():
    services = compose()["services"]
    nats = services["nats"]
    assert "-js" in nats["command"]
    store = nats["command"][nats["command"].index("-sd") + 1]
    assert any(v.endswith(f":{store}") for v in nats["volumes"])
    assert "js-enabled-only=true" in " ".join(nats["healthcheck"]["test"])
    postgres = services["postgres"]
    assert postgres["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    env = compose()["x-leadflow-env"]
    assert env["LEADFLOW_DATABASE_URL"].startswith("postgresql://")
    assert "@postgres:5432/" in env["LEADFLOW_DATABASE_URL"]
    assert env["LEADFLOW_NATS_URL"] == "nats://nats:4222"


def test_compose_environment_uses_only_declared_settings(declared):
    for name, service in leadflow_containers(compose()["services"]).items():
        unknown = set(service["environment"]) - set(declared)
        assert not unknown, f"{name}: {sorted(unknown)}"
        for env, raw in service["environment"].items():
            declared[env].parse(str(raw))  # a value the service accepts


def test_observability_overlay_sends_every_service_to_the_collector():
    overlay = load(DEPLOY / "compose.observability.yaml")["services"]
    for name in DEFAULT_PORTS:
        env = overlay[name]["environment"]
        assert set(env) == {"OTEL_EXPORTER_OTLP_ENDPOINT"}
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4317"
    # The variable is the one the platform's telemetry reads.
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in inspect.getsource(telemetry)
    collector = overlay["otel-collector"]
    mounted = [v.split(":")[0] for v in collector["volumes"]]
    assert mounted == ["./otel-collector.yaml"]
    assert any(a.startswith("--config=") for a in collector["command"])
    config = load(DEPLOY / "otel-collector.yaml")
    assert config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"].endswith(":4317")
    traces = config["service"]["pipelines"]["traces"]
    assert traces["receivers"] == ["otlp"]
    for exporter in traces["exporters"]:
        assert config["exporters"][exporter]["endpoint"] == "jaeger:4317"
    assert "jaeger" in overlay


def test_compose_waits_longer_than_the_shutdown_can_take():
    spec = compose()
    grace = float(spec["x-leadflow-env"]["LEADFLOW_SHUTDOWN_GRACE_SECONDS"])
    for name in DEFAULT_PORTS:
        stop = spec["services"][name]["stop_grace_period"]
        assert stop.endswith("s")
        assert float(stop[:-1]) > shutdown_bound(grace)


# --- Helm ---------------------------------------------------------------------------------


def test_helm_values_list_every_service_with_its_port():
    listed = values()["services"]
    assert [s["name"] for s in listed] == list(DEFAULT_PORTS)
    for service in listed:
        assert service["port"] == DEFAULT_PORTS[service["name"]]
        assert service["metricsPort"] == DEFAULT_METRICS_PORTS[service["name"]]
        resources = service["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"])
        assert "memory" in resources["limits"]
        scaling = service["autoscaling"]
        assert 1 <= scaling["minReplicas"] <= scaling["maxReplicas"]
        assert 0 < scaling["targetCPUUtilizationPercentage"] <= 100
        # A node drain can always proceed: the budget leaves a pod to evict.
        assert service["podDisruptionBudget"]["minAvailable"] < scaling["minReplicas"]


def test_helm_environment_uses_only_declared_settings(declared):
    spec = values()
    env = dict(spec["env"])
    for service in spec["services"]:
        env.update(service.get("env") or {})
    assert set(env) <= set(declared), sorted(set(env) - set(declared))
    for name, raw in env.items():
        declared[name].parse(str(raw))
    templated = set()
    for template in TEMPLATES.glob("*"):
        templated |= set(re.findall(r"name: (LEADFLOW_\w+)", template.read_text()))
    assert templated == {
        "LEADFLOW_DATABASE_URL",
        "LEADFLOW_NATS_URL",
        "LEADFLOW_GRPC_PORT",
        "LEADFLOW_METRICS",
        "LEADFLOW_METRICS_PORT",
    }
    assert set(templated) <= set(declared)


def test_every_name_in_deploy_files_is_a_declared_setting(declared):
    files = [p for p in DEPLOY.rglob("*") if p.is_file() and p.suffix != ".py"]
    assert files
    for path in files:
        unknown = set(ENV_NAME.findall(path.read_text())) - set(declared)
        assert not unknown, f"{path.relative_to(ROOT)}: {sorted(unknown)}"


def test_one_templated_deployment_loops_over_the_services():
    kinds = {
        p.name: re.findall(r"^kind: (\w+)", p.read_text(), re.M) for p in TEMPLATES.glob("*.yaml")
    }
    assert kinds == {
        "deployment.yaml": ["Deployment"],
        "service.yaml": ["Service"],
        "hpa.yaml": ["HorizontalPodAutoscaler"],
        "pdb.yaml": ["PodDisruptionBudget"],
        "migrate-job.yaml": ["Job"],
    }
    for name in ("deployment.yaml", "service.yaml", "hpa.yaml", "pdb.yaml"):
        assert "{{- range $svc := .Values.services }}" in (TEMPLATES / name).read_text()
    hpa = (TEMPLATES / "hpa.yaml").read_text()
    assert "apiVersion: autoscaling/v2" in hpa
    assert "apiVersion: policy/v1" in (TEMPLATES / "pdb.yaml").read_text()


def test_deployment_serves_the_service_and_probes_its_health_port():
    text = (TEMPLATES / "deployment.yaml").read_text()
    assert 'command: ["leadflow", "serve"]' in text
    assert "args: [{{ $svc.name | quote }}]" in text
    assert "containerPort: {{ $svc.port }}" in text
    assert re.search(r"name: LEADFLOW_GRPC_PORT\n\s+value: \{\{ \$svc\.port \| quote \}\}", text)
    probes = re.findall(r"(\w+Probe):\n\s+grpc:\n\s+port: (.+)\n", text)
    assert dict(probes) == {
        "startupProbe": "{{ $svc.port }}",
        "readinessProbe": "{{ $svc.port }}",
        "livenessProbe": "{{ $svc.port }}",
    }
    assert "toYaml $svc.resources" in text
    # Metrics: the container port, the setting and the scrape annotation name one port.
    assert "containerPort: {{ $svc.metricsPort }}" in text
    assert re.search(
        r"name: LEADFLOW_METRICS_PORT\n\s+value: \{\{ \$svc\.metricsPort \| quote \}\}", text
    )
    assert "prometheus.io/port: {{ $svc.metricsPort | quote }}" in text
    assert "terminationGracePeriodSeconds: {{ $.Values.terminationGracePeriodSeconds }}" in text
    service = (TEMPLATES / "service.yaml").read_text()
    assert "port: {{ $svc.port }}" in service and "targetPort: grpc" in service
    assert "port: {{ $svc.metricsPort }}" in service and "targetPort: metrics" in service


def test_migrate_job_runs_before_install_and_upgrade_with_the_secret_url():
    text = (TEMPLATES / "migrate-job.yaml").read_text()
    assert 'command: ["leadflow", "migrate"]' in text
    assert '"helm.sh/hook": pre-install,pre-upgrade' in text
    helpers = (TEMPLATES / "_helpers.tpl").read_text()
    assert re.search(
        r"name: LEADFLOW_DATABASE_URL\n\s+valueFrom:\n\s+secretKeyRef:\n"
        r"\s+name: \{\{ \.Values\.database\.existingSecret \}\}",
        helpers,
    )
    assert values()["database"]["existingSecret"]


def test_pods_wait_longer_than_the_shutdown_can_take():
    spec = values()
    grace = float(
        spec["env"].get(
            "LEADFLOW_SHUTDOWN_GRACE_SECONDS", SETTINGS["shutdown_grace_seconds"].default
        )
    )
    for service in spec["services"]:
        own = (service.get("env") or {}).get("LEADFLOW_SHUTDOWN_GRACE_SECONDS")
        assert own is None or float(own) <= grace
    assert spec["terminationGracePeriodSeconds"] > shutdown_bound(grace)
    assert spec["terminationGracePeriodSeconds"] > SETTINGS["shutdown_grace_seconds"].default


# --- the health check script ----------------------------------------------------------------


def healthcheck_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_healthcheck", DEPLOY / "healthcheck.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_healthcheck_port_comes_from_the_argument_the_environment_or_the_command():
    probe = healthcheck_module()
    command = ["/app/.venv/bin/python", "/app/.venv/bin/leadflow", "serve", "routing"]
    assert probe.resolve_port(["6000"], {"LEADFLOW_GRPC_PORT": "7000"}, command) == 6000
    assert probe.resolve_port([], {"LEADFLOW_GRPC_PORT": "7000"}, command) == 7000
    assert probe.resolve_port([], {}, command) == DEFAULT_PORTS["routing"]
    with pytest.raises(ValueError, match="no port"):
        probe.resolve_port([], {}, ["/bin/sh"])


def test_healthcheck_passes_only_while_the_server_is_serving():
    probe = healthcheck_module()
    servicer = health.HealthServicer()
    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        assert probe.main([str(port)]) == 0
        servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        assert probe.main([str(port)]) == 1
    finally:
        server.stop(None)
    assert probe.check(port, timeout=1.0) == "UNAVAILABLE"
