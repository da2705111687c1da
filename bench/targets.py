"""What is measured: the fake upstream, chatgate (in one or more config variants) and LiteLLM."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from procs import Service, free_port, pinned

MODEL = "fake-model"
API_KEY = "sk-fake"
CHAT_PATH = "/v1/chat/completions"

# Variables that would make a gateway discover real providers or change its settings.
_SCRUBBED_PREFIXES = ("CHATGATE_", "LITELLM_", "DEEPSEEK_", "OPENAI_", "GIGACHAT_", "OLLAMA_")
_SCRUBBED_NAMES = {"DATABASE_URL", "REDIS_URL", "REDIS_HOST", "STORE_MODEL_IN_DB"} | {
    # Loopback only: no HTTP proxy in the path, whatever the shell has set.
    name
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
    for name in (proxy, proxy.lower())
}


@dataclass(frozen=True)
class Variant:
    """A chatgate configuration to measure: `config` is merged over the base config."""

    name: str
    description: str
    config: Mapping[str, Any] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    client_key: bool = False  # create a chatgate key before the run; wrk sends it
    unique_bodies: bool = False  # every request different (cache misses)

    @property
    def label(self) -> str:
        return "chatgate" if self.name == "default" else f"chatgate+{self.name}"


_HIGH = {"rpm": 2**31 - 1, "tpm": 2**31 - 1}  # limits that never trigger (the largest a key holds)
_CACHE = {"cache": {"enabled": True, "dir": "cache"}}

# Pick with --variants; each is merged over the base config.
VARIANTS: dict[str, Variant] = {
    "default": Variant("default", "plain pass-through: no cache, no rate limits, no auth"),
    "cache": Variant("cache", "cache on, the same request every time (hits)", _CACHE),
    "cache-miss": Variant(
        "cache-miss",
        "cache on, every request different (misses, stored)",
        _CACHE,
        unique_bodies=True,
    ),
    "limits": Variant(
        "limits",
        "client keys required + global and per-key rpm/tpm limits high enough never to trigger",
        {"auth": {"require_keys": True}, "rate_limits": dict(_HIGH)},
        client_key=True,
    ),
}


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_SCRUBBED_PREFIXES) and k not in _SCRUBBED_NAMES
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def _deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@dataclass
class Target:
    """A name, the URL wrk hits, the request body file per mode, and the gateway process to
    watch (None for the direct run)."""

    name: str
    url: str
    service: Service | None
    bodies: dict[str, Path]  # the modes it is measured in: those it has a body for
    wrk_args: tuple[str, ...] = ()


def fake_upstream(*, repo: Path, work: Path, chunks: int, cpu: int | None) -> Service:
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "tests.fakes.upstream",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--chunks",
        str(chunks),
        "--latency-ms",
        "0",
    ]
    return Service(
        name="fake upstream",
        argv=pinned(cpu, argv),
        base_url=f"http://127.0.0.1:{port}",
        ready_path="/v1/models",
        log_path=work / "fake-upstream.log",
        cwd=repo,
        env=clean_env(),
    )


def baseline_source(repo: Path, rev: str, where: Path) -> tuple[str, Path]:
    """A checkout of chatgate at ``rev`` (a git worktree under ``where``), to be measured
    interleaved with the working tree: (its short name, its ``src`` directory)."""
    short = subprocess.run(
        ["git", "rev-parse", "--short", rev], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    tree = where / f"baseline-{short}"
    if not (tree / "src" / "chatgate").is_dir():
        subprocess.run(
            ["git", "worktree", "add", "--force", "--detach", str(tree), rev],
            cwd=repo,
            capture_output=True,
            check=True,
        )
    return short, tree / "src"


def chatgate(
    *,
    variant: Variant,
    exe: Path,
    upstream: Service,
    work: Path,
    cpu: int | None,
    source: tuple[str, Path] | None = None,
) -> Service:
    """chatgate in ``variant``; with ``source`` (name, src dir) the code of another checkout,
    run by this venv's Python, labelled ``chatgate@rev-name``."""
    port = free_port()
    config = _deep_merge(
        {
            "discover_env": False,
            "local_model": False,
            "providers": {
                "fake": {
                    "type": "openai",
                    "base_url": f"{upstream.base_url}/v1",
                    "api_keys": [API_KEY],
                }
            },
            "models": {MODEL: {"provider": "fake", "model": MODEL}},
        },
        variant.config,
    )
    label = variant.label
    if source is not None:
        label = label.replace("chatgate", f"chatgate@rev-{source[0]}", 1)
    run_dir = work / label  # its cwd: a default SQLite file lands here, not in the repo
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / "chatgate.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    wrk_args: list[str] = []
    command = [str(exe)]
    env = clean_env()
    if source is not None:
        command = [sys.executable, "-m", "chatgate.cli"]
        env["PYTHONPATH"] = str(source[1])
    if variant.client_key:
        wrk_args.append("key=" + _create_key(command, env, config_path, run_dir))
    if variant.unique_bodies:
        wrk_args.append("unique")
    argv = [
        *command,
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--config",
        str(config_path),
        "--workers",
        "1",
        *variant.args,
    ]
    return Service(
        name=label,
        argv=pinned(cpu, argv),
        base_url=f"http://127.0.0.1:{port}",
        ready_path="/health",
        log_path=work / f"{label}.log",
        cwd=run_dir,
        env=env,
        wrk_args=tuple(wrk_args),
    )


def _create_key(command: list[str], env: dict[str, str], config_path: Path, run_dir: Path) -> str:
    """A client key with limits that never trigger (the key is the command's last line)."""
    out = subprocess.run(
        [
            *command,
            "keys",
            "create",
            "--name",
            "bench",
            "--rpm",
            str(_HIGH["rpm"]),
            "--tpm",
            str(_HIGH["tpm"]),
            "--config",
            str(config_path),
        ],
        cwd=run_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1]


def litellm(*, exe: Path, upstream: Service, work: Path, cpu: int | None) -> Service:
    port = free_port()
    config = {
        "model_list": [
            {
                "model_name": MODEL,
                "litellm_params": {
                    "model": f"openai/{MODEL}",
                    "api_base": f"{upstream.base_url}/v1",
                    "api_key": API_KEY,
                },
            }
        ],
        # Everything that would skew it off: no telemetry, no verbose logs, no DB writes.
        "litellm_settings": {"telemetry": False, "set_verbose": False, "json_logs": False},
        # No master key, like chatgate here (no client auth): both skip key checks.
        "general_settings": {
            "disable_spend_logs": True,
            "disable_error_logs": True,
            "dangerously_permit_weak_or_unset_master_key": True,
        },
    }
    run_dir = work / "litellm"
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / "litellm.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    env = clean_env(
        {
            "LITELLM_TELEMETRY": "False",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch of the cost map from the internet
            "LITELLM_LOG": "ERROR",  # also turns uvicorn's access log off
            "LITELLM_DONT_SHOW_FEEDBACK_BOX": "true",
            "DISABLE_ADMIN_UI": "True",
        }
    )
    argv = [
        str(exe),
        "--config",
        str(config_path),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        "1",
    ]
    return Service(
        name="litellm",
        argv=pinned(cpu, argv),
        # /health would call the model; liveliness is LiteLLM's plain liveness probe.
        base_url=f"http://127.0.0.1:{port}",
        ready_path="/health/liveliness",
        log_path=work / "litellm.log",
        cwd=run_dir,
        env=env,
    )
