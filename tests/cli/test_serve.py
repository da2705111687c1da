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
    assert lines[0].split() == ["MODEL", "PROVIDER", "UPSTREAM", "MODEL"]
    assert any(line.split()[:2] == ["fake-model", "fake"] for line in lines[1:])
