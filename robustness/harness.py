"""Start the pieces the robustness runs need: the fake upstream and ``chatgate serve`` processes.

Both run as real processes in their own process groups (``bench.procs.Service``), so a run
measures the gateway alone (RSS, CPU) and always cleans up, even on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from bench.procs import Service, free_port

REPO = Path(__file__).resolve().parent.parent
UPSTREAM_KEY = "sk-fake-upstream-key-0123456789"
FAULT_READ_TIMEOUT = 1.0  # seconds: the `faulty` provider's read timeout


def gateway_yaml(
    fake_url: str,
    workdir: Path,
    *,
    cache: bool = False,
    read_timeout: float = 30.0,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A chatgate config routing to the fake only: ``fake-model``, ``local`` (the OpenAPI
    example's model name, so schema examples reach the upstream too), ``faulty-model`` (a
    keyless provider with a 1 s read timeout: faults injected through it never change a key's
    health) and a GigaChat provider for ``POST /gigachat/``."""
    data: dict[str, Any] = {
        "discover_env": False,
        "local_model": False,
        "server": {"log_level": "warning", "drain_seconds": 2},
        "database": {"url": f"sqlite+aiosqlite:///{workdir / 'chatgate.db'}"},
        "cache": {"enabled": cache, "dir": str(workdir / "cache")},
        "providers": {
            "fake": {
                "type": "openai",
                "base_url": fake_url + "/v1",
                "api_keys": [UPSTREAM_KEY],
                "models": ["fake-model", "fake-reasoner"],
                "timeouts": {"connect": 2, "read": read_timeout},
            },
            "faulty": {
                "type": "openai",
                "base_url": fake_url + "/v1",
                "timeouts": {"connect": 1, "read": FAULT_READ_TIMEOUT},
            },
            "giga": {
                "type": "gigachat",
                "base_url": fake_url + "/api/v1",
                "auth_url": fake_url + "/api/v2/oauth",
                "credentials": "fake-gigachat-credentials",
                "scope": "GIGACHAT_API_PERS",
            },
        },
        "models": {
            "local": {"provider": "fake", "model": "fake-model"},
            "faulty-model": {"provider": "faulty", "model": "fake-model"},
        },
    }
    data.update(extra or {})
    return data


def clean_env() -> dict[str, str]:
    """This environment without ``CHATGATE_*`` (they would override the config file) and without
    the variables that make chatgate discover real providers."""
    discovery = {"DEEPSEEK_API_KEY", "OPENAI_API_KEY", "GIGACHAT_CREDENTIALS", "OLLAMA_BASE_URL"}
    return {
        k: v for k, v in os.environ.items() if not k.startswith("CHATGATE_") and k not in discovery
    }


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def fake_service(workdir: Path, port: int | None = None, **knobs: Any) -> Service:
    """``python -m tests.fakes.upstream`` as its own process (not started yet)."""
    port = port or free_port()
    argv = [sys.executable, "-m", "tests.fakes.upstream", "--host", "127.0.0.1"]
    argv += ["--port", str(port)]
    for name, value in knobs.items():
        argv += [f"--{name.replace('_', '-')}", str(value)]
    return Service(
        name="fake-upstream",
        argv=argv,
        base_url=f"http://127.0.0.1:{port}",
        ready_path="/_fake/stats",
        log_path=workdir / "fake-upstream.log",
        cwd=REPO,
    )


def chatgate_service(
    workdir: Path, config: Path, *, port: int | None = None, name: str = "chatgate"
) -> Service:
    """``chatgate serve --config …`` as its own process (not started yet)."""
    port = port or free_port()
    argv = [sys.executable, "-m", "chatgate.cli", "serve", "--config", str(config)]
    argv += ["--port", str(port)]
    return Service(
        name=name,
        argv=argv,
        base_url=f"http://127.0.0.1:{port}",
        ready_path="/ready",
        log_path=workdir / f"{name}.log",
        cwd=REPO,
        env=clean_env(),
    )


@dataclass
class Stack:
    """A running fake upstream and chatgate in front of it."""

    fake: Service
    gateway: Service

    @property
    def fake_url(self) -> str:
        return self.fake.base_url

    @property
    def url(self) -> str:
        return self.gateway.base_url


@contextlib.contextmanager
def stack(
    workdir: Path,
    *,
    cache: bool = False,
    read_timeout: float = 30.0,
    extra: dict[str, Any] | None = None,
    timeout: float = 60.0,
) -> Iterator[Stack]:
    """Fake upstream + ``chatgate serve`` processes, stopped (SIGTERM, then SIGKILL) on exit."""
    fake = fake_service(workdir)
    config = gateway_yaml(
        fake.base_url, workdir, cache=cache, read_timeout=read_timeout, extra=extra
    )
    path = write_config(workdir / "chatgate.yaml", config)
    gateway = chatgate_service(workdir, path)
    try:
        fake.start(timeout)
        gateway.start(timeout)
        yield Stack(fake, gateway)
    finally:
        gateway.stop()
        fake.stop()


def fake_stats(fake_url: str) -> dict[str, Any]:
    stats: dict[str, Any] = httpx.get(fake_url + "/_fake/stats", timeout=5).json()
    return stats
