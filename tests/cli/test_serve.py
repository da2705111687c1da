"""`chatgate serve` and `chatgate models` as real processes."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

from tests.cli.process import chatgate, free_port, wait_healthy
from tests.conftest import FAKE_CONTENT
from tests.fakes.upstream import FakeUpstream


def config_file(tmp_path: Path, fake: FakeUpstream) -> Path:
    path = tmp_path / "chatgate.yaml"
    path.write_text(
        "discover_env: false\nlocal_model: false\n"
        f"database: {{url: 'sqlite:///{tmp_path}/db'}}\nproviders:\n"
        f"  fake: {{type: openai, base_url: '{fake.base_url}/v1', discover_models: true}}\n",
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_answers_and_stops_cleanly_on_sigterm(
    tmp_path: Path, fake: FakeUpstream, workers: str
) -> None:
    port = free_port()
    proc = chatgate(
        "serve",
        "--config",
        str(config_file(tmp_path, fake)),
        "--port",
        str(port),
        env={"CHATGATE_WORKERS": workers},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        resp = httpx.post(
            url + "/v1/chat/completions",
            json={"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert resp.json()["choices"][0]["message"]["content"] == FAKE_CONTENT
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_models_command_lists_discovered_models(tmp_path: Path, fake: FakeUpstream) -> None:
    proc = chatgate("models", "--config", str(config_file(tmp_path, fake)))
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    lines = out.strip().splitlines()
    assert lines[0].split() == ["MODEL", "PROVIDER", "UPSTREAM", "MODEL", "SOURCE"]
    assert any(line.split() == ["fake-model", "fake", "fake-model", "listed"] for line in lines)


def deepseek_env(fake: FakeUpstream) -> dict[str, str]:
    return {"DEEPSEEK_API_KEY": "sk-ds-0123456789", "DEEPSEEK_BASE_URL": fake.base_url}


def test_models_command_says_where_each_model_came_from(tmp_path: Path, fake: FakeUpstream) -> None:
    path = tmp_path / "chatgate.yaml"
    path.write_text(
        f"local_model: false\ndatabase: {{url: 'sqlite:///{tmp_path}/db'}}\n"
        "aliases: {deepseek-chat: deepseek-v4-flash}\n",
        encoding="utf-8",
    )
    proc = chatgate("models", "--config", str(path), env=deepseek_env(fake))
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    rows = [line.split() for line in out.strip().splitlines()]
    assert rows == [
        ["MODEL", "PROVIDER", "UPSTREAM", "MODEL", "SOURCE"],
        ["deepseek-v4-flash", "deepseek", "deepseek-v4-flash", "listed"],
        ["deepseek-v4-pro", "deepseek", "deepseek-v4-pro", "listed"],
        ["deepseek-chat", "deepseek", "deepseek-v4-flash", "alias", "of", "deepseek-v4-flash"],
    ]
    assert [r["path"] for r in fake.requests] == ["/models"]  # DeepSeek's own list
    assert fake.requests[0]["headers"]["Authorization"] == "Bearer sk-ds-0123456789"


def test_models_command_falls_back_when_listing_fails(tmp_path: Path, fake: FakeUpstream) -> None:
    fake.configure(models_status=503)
    path = tmp_path / "chatgate.yaml"
    path.write_text(
        f"local_model: false\ndatabase: {{url: 'sqlite:///{tmp_path}/db'}}\n", encoding="utf-8"
    )
    proc = chatgate("models", "--config", str(path), env=deepseek_env(fake))
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    lines = out.strip().splitlines()
    [why] = [line for line in lines if "cannot list models" in line]
    assert "provider deepseek: cannot list models (deepseek: fake error 503)" in why
    assert why.endswith("serving its fallback models: deepseek-v4-flash, deepseek-v4-pro")
    assert "sk-ds-0123456789" not in out
    rows = [line.split() for line in lines if line.startswith("deepseek-")]
    assert rows == [
        ["deepseek-v4-flash", "deepseek", "deepseek-v4-flash", "fallback"],
        ["deepseek-v4-pro", "deepseek", "deepseek-v4-pro", "fallback"],
    ]
